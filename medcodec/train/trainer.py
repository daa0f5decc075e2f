"""Train medcodec's networks on crops of training images: ``python -m medcodec.train``.

    python -m medcodec.train.crops ../shared/corpus/train -o .gpudata/crops96.npz
    python -m medcodec.train --method subimage --crops .gpudata/crops96.npz --out runs/fast --minutes 60
    python -m medcodec.train --method latent --crops .gpudata/crops96.npz --out runs/latent --minutes 20 \\
        --crop 64 --export latent-v2 --crops-manifest .gpudata/crops96.manifest.json

One loop for every method (``--method``: the subimage predictors of the fast/slow paths, or LVPNet
of the latent mode). Phases: float training, activation-range calibration, then quantisation-aware
training on the integer grid the decoder uses, so the exported integer network is the one that was
trained. Progress goes to <out>/log.jsonl. Resumable: run the same command again and it continues
from <out>/checkpoint.pt (tensors and plain values only, loaded with weights_only=True), schedule
included; --restart ignores it. --export ID publishes the result under models/ with its manifest and
a warm start (models/<id>.warm-start.pt): a new run continues a shipped model on a fresh machine with
``--init models/lch-v2.warm-start.pt``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

from .latent import LatentTask
from .publish import provenance, publish_warm_start
from .subimage import SubimageTask

TASKS = {task.name: task for task in (SubimageTask, LatentTask)}


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


def training_device(name: str) -> torch.device:
    """--device: 'auto' is CUDA when present, else the CPU. Only the float training runs there: the
    exported weights are integers, and what the codec computes with them is the same on every device."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda was asked for, but torch sees no CUDA device; use --device cpu")
    return torch.device(name)


def train(args: argparse.Namespace) -> Path:
    """Run (or continue) a training run; returns the checkpoint's path."""
    task = TASKS[args.method]
    device = training_device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    crops, lo, shift = (t.to(device) for t in load_crops(args.crops))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    ckpt_path = out / "checkpoint.pt"
    ckpt = None
    if ckpt_path.exists() and not args.restart:
        ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=True)
        if ckpt.get("method", "subimage") != task.name:
            raise SystemExit(f"{ckpt_path} is a {ckpt.get('method')} run; use --method {ckpt.get('method')} "
                             "or another --out (or --restart to overwrite it)")
    # a resumed run keeps the architecture it started with, whatever the command line says now
    config = ckpt["config"] if ckpt and "config" in ckpt else task.config_from_args(args)
    nets = task.build(config)
    if args.init and ckpt is None:
        task.initialise(nets, args.init)
    for n in nets.values():
        n.to(device)
    params = [p for n in nets.values() for p in n.parameters()]
    opt = torch.optim.Adam(params, lr=args.lr)
    step, phase, elapsed = 0, "float", 0.0
    if ckpt is not None:
        for name, net in nets.items():
            net.load_state_dict(ckpt["nets"][name])
        opt.load_state_dict(ckpt["opt"])
        step, phase, elapsed = int(ckpt["step"]), ["float", "qat"][int(ckpt["phase"])], float(ckpt["elapsed"])
        print(f"resumed at step {step} ({phase})", flush=True)
    if phase == "qat":
        for n in nets.values():
            n.set_mode(quantised=True)
    gen = torch.Generator(device="cpu").manual_seed(args.seed + step)

    def batch() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        idx = torch.randint(0, crops.shape[0], (args.batch,), generator=gen).to(device)
        return task.prepare(augment(crops[idx], gen), args, gen), lo[idx], shift[idx]

    def save() -> None:
        state = {"method": task.name, "config": config, "step": step, "phase": 0 if phase == "float" else 1,
                 "elapsed": time.time() - t0, "opt": opt.state_dict(),
                 "nets": {name: {k: v.cpu() for k, v in n.state_dict().items()} for name, n in nets.items()}}
        tmp = ckpt_path.with_suffix(".tmp")
        torch.save(state, tmp)
        tmp.replace(ckpt_path)

    def progress() -> float:
        """Fraction of the run done: by steps, or by wall time when --minutes is given."""
        return (time.time() - t0) / (args.minutes * 60) if args.minutes else step / args.steps

    t0 = time.time() - elapsed
    with open(out / "log.jsonl", "a") as log:
        while progress() < 1:
            if phase == "float" and progress() >= 1 - args.qat_fraction:
                calibrate(task, nets, batch)
                phase = "qat"
            lr = args.lr * 0.5 * (1 + math.cos(math.pi * min(1.0, progress()))) * (0.3 if phase == "qat" else 1.0)
            for g in opt.param_groups:
                g["lr"] = lr
            metrics = task.metrics(nets, *batch())
            loss = task.loss(metrics)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            step += 1
            if step % args.log_every == 0:
                rec = {"step": step, "phase": phase, "lr": lr, "seconds": round(time.time() - t0, 1),
                       **{task.log_prefix + k: round(float(v.detach()), 4) for k, v in metrics.items()}}
                log.write(json.dumps(rec) + "\n")
                log.flush()
                print(rec, flush=True)
            if step % args.save_every == 0:
                save()
    if phase == "float":  # a run too short to reach QAT still needs calibrated ranges to export
        calibrate(task, nets, batch)
    save()
    return ckpt_path


def calibrate(task, nets: dict, batch, batches: int = 20) -> None:
    """Record activation ranges in float mode, then switch every layer to quantised training."""
    for n in nets.values():
        n.set_mode(quantised=False, calibrating=True)
    with torch.no_grad():
        for _ in range(batches):
            task.metrics(nets, *batch())
    for n in nets.values():
        n.set_mode(quantised=True)


def export(checkpoint: Path, model_id: str, extra: dict) -> dict:
    """Publish a run's checkpoint as models/<model_id>.safetensors plus its manifest entry."""
    ckpt = torch.load(checkpoint, map_location="cpu", weights_only=True)
    method = ckpt.get("method", "subimage")
    warm_start = publish_warm_start(model_id, ckpt, method)
    return TASKS[method].export(ckpt, model_id, {**extra, "warm_start": warm_start})


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m medcodec.train", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--method", choices=sorted(TASKS), default="subimage",
                   help="subimage: the fast/slow paths' predictors (default); latent: LVPNet")
    p.add_argument("--crops", type=Path, required=True, help=".npz from python -m medcodec.train.crops")
    p.add_argument("--out", type=Path, required=True, help="run folder (checkpoint.pt, log.jsonl)")
    p.add_argument("--steps", type=int, help="length of the run (ignored with --minutes); default per method")
    p.add_argument("--minutes", type=float, default=0,
                   help="length of the run in wall-clock minutes; the schedule follows time (resumable)")
    p.add_argument("--batch", type=int, help="crops per step; default 32 (subimage), 16 (latent)")
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--qat-fraction", type=float, help="share of the run spent in QAT; default 0.3 / 0.25")
    p.add_argument("--widths", help="channel widths; default 16,24,32,48 (subimage), 32,24,16,16 (latent)")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--log-every", type=int)
    p.add_argument("--save-every", type=int, default=1000, help="checkpoint every this many steps")
    p.add_argument("--restart", action="store_true", help="ignore an existing checkpoint")
    p.add_argument("--init", type=Path, help="warm-start weights from another run's checkpoint (new runs only)")
    p.add_argument("--export", metavar="ID", help="when done, publish the result as model ID under models/")
    p.add_argument("--crops-manifest", type=Path, help="data manifest recorded with --export")
    latent = p.add_argument_group("latent method")
    latent.add_argument("--crop", type=int, default=0, help="train on random windows of this side (multiple of 8)")
    latent.add_argument("--levels", type=int, default=3)
    latent.add_argument("--latent-channels", type=int, default=4)
    latent.add_argument("--q-step", type=float, default=1 / 32)
    latent.add_argument("--qcm-blocks", type=int, default=3)
    latent.add_argument("--no-qcm", action="store_true", help="ablation: no quantisation compensation")
    latent.add_argument("--plain", action="store_true", help="ablation: plain strided CNN instead of GMSM")
    args = p.parse_args(argv)
    for key, value in TASKS[args.method].defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    return args


def main(argv=None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    checkpoint = train(args)
    if args.export:
        extra = provenance("python -m medcodec.train " + " ".join(argv), args.crops_manifest)
        entry = export(checkpoint, args.export, extra)
        print(f"{args.export}: {entry['file']} sha256 {entry['sha256']}")
