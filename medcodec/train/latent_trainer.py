"""Train LVPNet (latent mode) on crops: loss = bits of z (rate proxy) + bits of every pixel's residual.

Phases as in ``trainer``: float training, activation-range calibration, then quantisation-aware
training on the integer grid the decoder uses. z's rate is a learned per-channel logistic prior (the
stream codes z by Huffman, which adapts per image and so costs about as much or less).

    python -m medcodec.train.latent --crops .gpudata/crops96.npz --out runs/latent1 --minutes 20 \
        --export latent-v1 --crops-manifest .gpudata/crops96.manifest.json
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import torch

from ..entropy.residual_model import tables_sha256
from ..networks.lvp import LVPNet
from ..pipelines import split as sp
from ..pipelines.latent import ARCHITECTURE
from .loss import code_length_bits, quantised_outputs
from .publish import git_commit, publish_model
from .trainer import augment, load_crops


def batch_bits(net: LVPNet, crops: torch.Tensor, lo: torch.Tensor, shift: torch.Tensor) -> dict[str, torch.Tensor]:
    """Bits per pixel of a batch of raw crops [N, H, W] (sides multiples of net.multiple): z, residual, total."""
    v = sp.normalise(crops, lo.view(-1, 1, 1), shift.view(-1, 1, 1)).float().unsqueeze(1)
    z = net.latent(v)
    mu, ell = net(z)
    mu_q4, ell_q = quantised_outputs(torch.zeros_like(mu), mu, ell, shift)
    residual = code_length_bits(crops, lo, shift, mu_q4, ell_q)
    pixels = crops.numel()
    z_bpp = net.z_bits(z).sum() / pixels
    res_bpp = residual.sum() / pixels
    return {"z": z_bpp, "residual": res_bpp, "total": z_bpp + res_bpp}


def random_window(batch: torch.Tensor, size: int, gen: torch.Generator) -> torch.Tensor:
    """One random size x size window of the whole batch: smaller steps, many more of them on a CPU."""
    h, w = batch.shape[-2:]
    if not size or size >= min(h, w):
        return batch
    r, c = (int(torch.randint(0, n - size + 1, (1,), generator=gen)) for n in (h, w))
    return batch[..., r:r + size, c:c + size]


def build(args: argparse.Namespace) -> LVPNet:
    return LVPNet(levels=args.levels, latent_channels=args.latent_channels, q_step=args.q_step,
                  qcm_blocks=args.qcm_blocks, use_qcm=not args.no_qcm, plain=args.plain,
                  widths=tuple(int(w) for w in args.widths.split(",")))


def calibrate(net: LVPNet, crops, lo, shift, gen, batch: int, batches: int = 10) -> None:
    net.set_mode(quantised=False, calibrating=True)
    with torch.no_grad():
        for _ in range(batches):
            idx = torch.randint(0, crops.shape[0], (batch,), generator=gen)
            batch_bits(net, crops[idx], lo[idx], shift[idx])
    net.set_mode(quantised=True)


def train(args: argparse.Namespace) -> Path:
    torch.manual_seed(args.seed)
    if args.threads:
        torch.set_num_threads(args.threads)
    crops, lo, shift = load_crops(args.crops)
    net = build(args)
    opt = torch.optim.Adam(net.parameters(), lr=args.lr)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    gen = torch.Generator().manual_seed(args.seed)
    log = open(out / "log.jsonl", "a")
    t0, step, phase = time.time(), 0, "float"

    def progress() -> float:
        return (time.time() - t0) / (args.minutes * 60) if args.minutes else step / args.steps

    while progress() < 1:
        if phase == "float" and progress() >= 1 - args.qat_fraction:
            calibrate(net, crops, lo, shift, gen, args.batch)
            phase = "qat"
        lr = args.lr * 0.5 * (1 + math.cos(math.pi * min(1.0, progress()))) * (0.3 if phase == "qat" else 1.0)
        for g in opt.param_groups:
            g["lr"] = lr
        idx = torch.randint(0, crops.shape[0], (args.batch,), generator=gen)
        bits = batch_bits(net, random_window(augment(crops[idx], gen), args.crop, gen), lo[idx], shift[idx])
        opt.zero_grad(set_to_none=True)
        bits["total"].backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        step += 1
        if step % args.log_every == 0:
            rec = {"step": step, "phase": phase, "lr": round(lr, 6), "seconds": round(time.time() - t0, 1),
                   **{f"bpp_{k}": round(float(v.detach()), 4) for k, v in bits.items()}}
            log.write(json.dumps(rec) + "\n")
            log.flush()
            print(rec, flush=True)
    if phase == "float":  # a run too short to reach QAT still needs calibrated ranges to export
        calibrate(net, crops, lo, shift, gen, args.batch)
    ckpt = out / "checkpoint.pt"
    torch.save({"state": net.state_dict(), "config": net.config(), "step": step,
                "seconds": time.time() - t0}, ckpt)
    log.close()
    return ckpt


def load_checkpoint(path: Path) -> tuple[LVPNet, dict]:
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    net = LVPNet(**ckpt["config"])
    net.load_state_dict(ckpt["state"])
    net.set_mode(quantised=True)
    return net, ckpt


def export(checkpoint: Path, model_id: str, extra: dict) -> dict:
    """Write models/<id>.safetensors (integer decoder + float GMSM) and set only this id's manifest entry."""
    net, ckpt = load_checkpoint(checkpoint)
    params = {"decoder": net.export_integer(), "gmsm": net.float_state()}
    metadata = {"architecture": ARCHITECTURE, "config": net.config(), "residual_tables_sha256": tables_sha256(),
                "checkpoint_step": int(ckpt["step"])}
    return publish_model(model_id, params, metadata, extra)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m medcodec.train.latent", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--crops", type=Path, required=True, help=".npz from python -m medcodec.train.crops")
    p.add_argument("--out", type=Path, required=True, help="run folder (checkpoint.pt, log.jsonl)")
    p.add_argument("--steps", type=int, default=5000, help="length of the run (ignored with --minutes)")
    p.add_argument("--minutes", type=float, default=0, help="length of the run in wall-clock minutes")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--crop", type=int, default=0, help="train on random windows of this side (multiple of 8)")
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--qat-fraction", type=float, default=0.25)
    p.add_argument("--levels", type=int, default=3)
    p.add_argument("--latent-channels", type=int, default=4)
    p.add_argument("--q-step", type=float, default=1 / 32)
    p.add_argument("--qcm-blocks", type=int, default=3)
    p.add_argument("--widths", default="32,24,16,16")
    p.add_argument("--no-qcm", action="store_true", help="ablation: no quantisation compensation")
    p.add_argument("--plain", action="store_true", help="ablation: plain strided CNN instead of GMSM")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--log-every", type=int, default=50)
    p.add_argument("--export", metavar="ID", help="export the result as model ID under models/")
    p.add_argument("--crops-manifest", type=Path, help="data manifest recorded with the export")
    return p.parse_args(argv)


def main(argv=None) -> None:
    import sys

    args = parse_args(argv)
    ckpt = train(args)
    if args.export:
        extra = {"training_command": "python -m medcodec.train.latent " + " ".join(argv or sys.argv[1:]),
                 "code_commit": git_commit()}
        if args.crops_manifest:
            extra["data_manifest"] = json.loads(args.crops_manifest.read_text())
        entry = export(ckpt, args.export, extra)
        print(f"{args.export}: {entry['file']} sha256 {entry['sha256']}")
