"""Train the fast-path predictors (D from A, B from A+D, C from A+D+B) on crops of training images.

Phases: float training, activation-range calibration, then quantisation-aware training with the
integer grid the coder uses, so the exported integer network is the one that was trained.
Resumable: the checkpoint holds only tensors and plain numbers (loadable with weights_only=True).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch

from ..networks.lch import LCHNet
from ..pipelines import split as sp
from .loss import code_length_bits, quantised_outputs

DEFAULT_WIDTHS = (16, 24, 32, 48)


def build_networks(widths=DEFAULT_WIDTHS) -> dict[str, LCHNet]:
    return {t: LCHNet(sp.input_channels(t), widths) for t in sp.PREDICTED}


def subimage_bits(nets: dict[str, LCHNet], crops: torch.Tensor, lo: torch.Tensor, shift: torch.Tensor) -> dict:
    """Code lengths (bits per subimage pixel) for a batch of raw crops [N, H, W] with even sides.

    Per target: 'fast' (every pixel by the LC-H pass, left unknown) and 'right' (the odd columns by
    the LC-L pass, the even columns known). The slow path costs (even columns of fast + right) / 2.
    """
    subs = sp.split(crops, fill=0)
    norm = {k: sp.normalise(v, lo.view(-1, 1, 1), shift.view(-1, 1, 1)) for k, v in subs.items()}
    out = {}
    for target in sp.PREDICTED:
        base = sp.base_prediction(target, norm).float()
        fast = _bits_map(nets[target], sp.network_input(target, norm), base, subs[target], lo, shift)
        right = _bits_map(nets[target], sp.network_input(target, norm, left=norm[target]), base, subs[target], lo,
                          shift)
        out[f"fast_{target}"] = fast.mean()
        out[f"right_{target}"] = right[..., 1::2].mean()
        out[f"slow_{target}"] = 0.5 * (fast[..., 0::2].mean() + right[..., 1::2].mean())
    return out


def _bits_map(net, inputs, base, target, lo, shift):
    delta, ell = net(inputs.float())
    mu, ell_q = quantised_outputs(base, delta, ell, shift)
    return code_length_bits(target, lo, shift, mu, ell_q)


def initialise_from(nets: dict[str, LCHNet], checkpoint: Path) -> None:
    """Warm start from an earlier run; input channels added since then start with zero weights."""
    ckpt = torch.load(checkpoint, map_location="cpu", weights_only=True)
    for target, net in nets.items():
        state = net.state_dict()
        for key, value in ckpt["nets"][target].items():
            if key in state and state[key].shape != value.shape and key.endswith("enc0a.conv.weight"):
                padded = torch.zeros_like(state[key])
                padded[:, : value.shape[1]] = value
                value = padded
            state[key] = value
        net.load_state_dict(state)


def augment(batch: torch.Tensor, rng: torch.Generator) -> torch.Tensor:
    """Flips and transposes keep the statistics of medical images and multiply the data by 8."""
    k = int(torch.randint(0, 8, (1,), generator=rng))
    if k & 1:
        batch = batch.flip(-1)
    if k & 2:
        batch = batch.flip(-2)
    if k & 4:
        batch = batch.transpose(-1, -2)
    return batch


def load_crops(path: Path) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    data = np.load(path)
    return (
        torch.from_numpy(data["crops"].astype(np.int64)),
        torch.from_numpy(data["lo"].astype(np.int64)),
        torch.from_numpy(data["shift"].astype(np.int64)),
    )


def train(args: argparse.Namespace) -> None:
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if args.device == "auto" else args.device))
    torch.manual_seed(args.seed)
    crops, lo, shift = load_crops(args.crops)
    crops, lo, shift = crops.to(device), lo.to(device), shift.to(device)
    widths = tuple(int(w) for w in args.widths.split(","))
    nets = build_networks(widths)
    if args.init:
        initialise_from(nets, args.init)
    params = [p for n in nets.values() for p in n.parameters()]
    for n in nets.values():
        n.to(device)
    opt = torch.optim.Adam(params, lr=args.lr)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    ckpt_path = out / "checkpoint.pt"
    state = {"step": 0, "phase": "float", "elapsed": 0.0}
    if ckpt_path.exists() and not args.restart:
        ckpt = torch.load(ckpt_path, map_location=device, weights_only=True)
        for t, n in nets.items():
            n.load_state_dict(ckpt["nets"][t])
        opt.load_state_dict(ckpt["opt"])
        state = {"step": int(ckpt["step"]), "phase": ["float", "qat"][int(ckpt["phase"])],
                 "elapsed": float(ckpt.get("elapsed", 0.0))}
        print(f"resumed at step {state['step']} ({state['phase']})")
    if state["phase"] == "qat":
        for n in nets.values():
            n.set_mode(quantised=True)
    gen = torch.Generator(device="cpu").manual_seed(args.seed + state["step"])
    log = open(out / "log.jsonl", "a")
    t0 = time.time() - state["elapsed"]
    step = state["step"]

    def progress() -> float:
        """Fraction of the run done: by steps, or by wall time when --minutes is given."""
        if args.minutes:
            return (time.time() - t0) / (args.minutes * 60)
        return step / args.steps

    while progress() < 1:
        if progress() >= 1 - args.qat_fraction and state["phase"] == "float":
            calibrate(nets, crops, lo, shift, gen, args.batch)
            state["phase"] = "qat"
        lr = args.lr * 0.5 * (1 + math.cos(math.pi * min(1.0, progress())))
        if state["phase"] == "qat":
            lr *= 0.3
        for g in opt.param_groups:
            g["lr"] = lr
        idx = torch.randint(0, crops.shape[0], (args.batch,), generator=gen).to(device)
        batch = augment(crops[idx], gen)
        bits = subimage_bits(nets, batch, lo[idx], shift[idx])
        loss = sum(v for k, v in bits.items() if not k.startswith("slow")) / 6
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        step += 1
        if step % args.log_every == 0:
            rec = {"step": step, "phase": state["phase"], "lr": lr, "seconds": round(time.time() - t0, 1),
                   **{f"bits_{k}": round(float(v.detach()), 4) for k, v in bits.items()}}
            log.write(json.dumps(rec) + "\n")
            log.flush()
            print(rec, flush=True)
        if step % args.save_every == 0:
            save_checkpoint(ckpt_path, nets, opt, step, state["phase"], time.time() - t0)
    save_checkpoint(ckpt_path, nets, opt, step, state["phase"], time.time() - t0)
    log.close()


def calibrate(nets, crops, lo, shift, gen, batch_size, batches: int = 20) -> None:
    """Record activation ranges in float mode, then switch every layer to quantised training."""
    for n in nets.values():
        n.set_mode(quantised=False, calibrating=True)
    with torch.no_grad():
        for _ in range(batches):
            idx = torch.randint(0, crops.shape[0], (batch_size,), generator=gen).to(crops.device)
            subimage_bits(nets, crops[idx], lo[idx], shift[idx])
    for n in nets.values():
        n.set_mode(quantised=True)


def save_checkpoint(path: Path, nets, opt, step: int, phase: str, elapsed: float) -> None:
    tmp = path.with_suffix(".tmp")
    cpu = {t: {k: v.cpu() for k, v in n.state_dict().items()} for t, n in nets.items()}
    torch.save({"nets": cpu, "opt": opt.state_dict(),
                "step": step, "phase": 0 if phase == "float" else 1, "elapsed": elapsed}, tmp)
    tmp.replace(path)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m medcodec.train", description=__doc__)
    p.add_argument("--crops", type=Path, required=True, help=".npz from python -m medcodec.train.crops")
    p.add_argument("--out", type=Path, required=True, help="run folder (checkpoint.pt, log.jsonl)")
    p.add_argument("--steps", type=int, default=20000, help="length of the run (ignored with --minutes)")
    p.add_argument("--minutes", type=float, default=0,
                   help="length of the run in wall-clock minutes; the schedule follows time (resumable)")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--qat-fraction", type=float, default=0.3)
    p.add_argument("--widths", default=",".join(map(str, DEFAULT_WIDTHS)))
    p.add_argument("--device", default="auto")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--log-every", type=int, default=100)
    p.add_argument("--save-every", type=int, default=1000)
    p.add_argument("--restart", action="store_true", help="ignore an existing checkpoint")
    p.add_argument("--init", type=Path, help="warm-start weights from another run's checkpoint")
    return p.parse_args(argv)


def main(argv=None) -> None:
    train(parse_args(argv))
