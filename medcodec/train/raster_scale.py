"""Train the raster method's learned scale (``networks.raster_mlp.scale_keys``) and publish it.

    python -m medcodec.train.raster_scale ../shared/corpus/train --export raster-scale-v1

Why: the raster coder puts each pixel in a scale bucket by a linear sum of its neighbours' errors and
its activity, fitted per plane; the per-bucket scale indices are searched by the encoder. A network that
also sees the pattern of the neighbours (values, both stages' errors, the predictions) estimates the
residual's spread better, and the buckets it defines code smaller (the per-plane search stays on top,
so the network's scale need only rank pixels well, not be calibrated for every plane).

Samples: the fast mode's raster analysis of each training image's first plane (with the shipped
prediction correction, as the encoder codes it), --samples pixels with a raster class; the target is
the pixel's final error. Loss: the discretised logistic's code length (bits) of the error at scale
s * 2**o, o the network's output and s the linear scale sum. One image in VALIDATION_EVERY is held out
and reported on (mean code length per pixel, float and integer network).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from medcodec.io.source import load
from medcodec.networks import raster_mlp
from medcodec.pipelines import raster

from .publish import provenance, publish_model
from .raster_correction import VALIDATION_EVERY, _relative, load_samples, save_samples, training_files


def image_samples(path: Path, samples: int, seed: int) -> dict | None:
    """Scale inputs, linear scale sums and final errors of up to ``samples`` pixels of the image's first
    plane (None when it has no plane or no pixel with a raster class)."""
    try:
        src = load(path)
    except Exception as exc:  # unreadable training files are skipped, not fatal
        print(f"skip {path}: {exc}", file=sys.stderr)
        return None
    if not src.planes:
        return None
    analysis = raster._first_analysis(src.planes[0], src.bits, raster.shipped_correction())
    eligible = np.flatnonzero(analysis.cls < raster.ACTIVITY_CLASSES)
    if eligible.size == 0:
        return None
    rng = np.random.default_rng(seed)
    pixels = np.sort(rng.choice(eligible, size=min(samples, eligible.size), replace=False))
    inputs, scale_sum = analysis.scale_samples(pixels)
    return {"inputs": inputs, "scale_sum": scale_sum, "error": analysis.errors2[pixels].astype(np.int64)}


def gather(folders: list[Path], per_folder: int, samples: int, seed: int) -> tuple[dict, list[dict]]:
    parts, manifest = [], []
    files = training_files(folders, per_folder, seed)
    for number, path in enumerate(files):
        part = image_samples(path, samples, seed + number)
        if part is None:
            continue
        part["validation"] = np.full(part["error"].size, number % VALIDATION_EVERY == VALIDATION_EVERY // 2)
        parts.append(part)
        manifest.append({"file": _relative(path, folders), "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
                         "samples": int(part["error"].size), "validation": bool(part["validation"][0])})
        print(f"[{number + 1}/{len(files)}] {path} {part['error'].size} samples", flush=True)
    data = {key: np.concatenate([p[key] for p in parts]) for key in ("inputs", "scale_sum", "error", "validation")}
    return data, manifest


def code_length(output: torch.Tensor, log2_sum: torch.Tensor, error: torch.Tensor) -> torch.Tensor:
    """Bits of each error (1/16 sample, from the bin's centre) under a discretised logistic of scale
    s * 2**output (s = 2**log2_sum, 1/16 sample) over bins of one sample."""
    scale = torch.exp2(output + log2_sum) / 16.0  # in samples
    centre = error / 16.0
    p = torch.sigmoid((centre + 0.5) / scale) - torch.sigmoid((centre - 0.5) / scale)
    return -torch.log2(p.clamp_min(1e-9))


def build(hidden: int, depth: int) -> torch.nn.Sequential:
    layers: list[torch.nn.Module] = []
    inputs = raster_mlp.SCALE_FEATURES
    for _ in range(depth):
        layers += [torch.nn.Linear(inputs, hidden), torch.nn.ReLU()]
        inputs = hidden
    return torch.nn.Sequential(*layers, torch.nn.Linear(inputs, 1))


def _tensors(data: dict, rows: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    x = torch.from_numpy(data["inputs"][rows].astype(np.float32) / (1 << raster_mlp.FEATURE_SHIFT))
    log2_sum = torch.from_numpy(np.log2(np.maximum(data["scale_sum"][rows], 1)).astype(np.float32))
    return x, log2_sum, torch.from_numpy(data["error"][rows].astype(np.float32))


def fit(net: torch.nn.Sequential, data: dict, rows: np.ndarray, epochs: int, batch: int, lr: float,
        seed: int, log: Path | None) -> list[float]:
    """Adam with a cosine schedule on the code length; returns (and logs) each epoch's mean bits."""
    torch.manual_seed(seed)
    x, log2_sum, error = _tensors(data, rows)
    opt = torch.optim.Adam(net.parameters(), lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(1, epochs))
    losses = []
    for epoch in range(epochs):
        order = torch.randperm(x.shape[0])
        total = 0.0
        for start in range(0, x.shape[0], batch):
            index = order[start:start + batch]
            loss = code_length(net(x[index])[:, 0], log2_sum[index], error[index]).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * index.numel()
        schedule.step()
        losses.append(total / x.shape[0])
        print(f"epoch {epoch + 1}/{epochs}: {losses[-1]:.4f} bits/pixel", flush=True)
        if log is not None:
            with log.open("a") as out:
                out.write(f"{epoch + 1}\t{losses[-1]:.6f}\n")
    return losses


def held_out_bits(data: dict, rows: np.ndarray, output: np.ndarray) -> float:
    """Mean code length of the held-out pixels with the network's outputs (float, o in octaves)."""
    _, log2_sum, error = _tensors(data, rows)
    return float(code_length(torch.from_numpy(output.astype(np.float32)), log2_sum, error).mean())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folders", nargs="+", type=Path, help="training folders (the train split)")
    parser.add_argument("--per-folder", type=int, default=20, help="images per folder at most")
    parser.add_argument("--samples", type=int, default=30000, help="pixels per image")
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--depth", type=int, default=3, help="hidden layers")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--batch", type=int, default=4096)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--cache", type=Path, metavar="NPZ",
                        help="gathered samples: read from this file if it exists, else written to it")
    parser.add_argument("--log", type=Path, metavar="TSV", help="append each epoch's loss to this file")
    parser.add_argument("--export", metavar="ID", help="publish under models/ as ID (e.g. raster-scale-v1)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    started = time.time()
    cached = args.cache is not None and args.cache.exists()
    if cached:
        data, manifest = load_samples(args.cache)
    else:
        data, manifest = gather(args.folders, args.per_folder, args.samples, args.seed)
        if args.cache is not None:
            save_samples(args.cache, data, manifest)
    train, held = np.flatnonzero(~data["validation"]), np.flatnonzero(data["validation"])
    net = build(args.hidden, args.depth)
    losses = fit(net, data, train, args.epochs, args.batch, args.lr, args.seed, args.log)
    layers = raster_mlp.quantise_layers([(m.weight.detach().numpy(), m.bias.detach().numpy())
                                         for m in net if isinstance(m, torch.nn.Linear)])
    exact = raster_mlp.from_integer_layers("candidate", b"", layers, raster_mlp.SCALE_FEATURES)
    with torch.no_grad():
        float_out = net(_tensors(data, held)[0])[:, 0].numpy()
    integer_out = exact.output(data["inputs"][held]) / float(1 << (raster_mlp.FEATURE_SHIFT + raster_mlp.WEIGHT_SHIFT))
    report = {
        "train_samples": int(train.size), "validation_samples": int(held.size), "epoch_losses": losses,
        "validation_bits_float": held_out_bits(data, held, float_out),
        "validation_bits_integer": held_out_bits(data, held, integer_out),
        "minutes": (time.time() - started) / 60, "samples_from_cache": cached,
    }
    print(json.dumps(report, indent=1))
    if args.export:
        params = {"raster": {f"l{k}": {"weight": torch.from_numpy(w), "bias": torch.from_numpy(b)}
                             for k, (w, b) in enumerate(layers)}}
        metadata = {"architecture": raster_mlp.SCALE_ARCHITECTURE,
                    "config": {"hidden": args.hidden, "depth": args.depth, "features": raster_mlp.SCALE_FEATURES,
                               "layers": len(layers), "feature_shift": raster_mlp.FEATURE_SHIFT,
                               "weight_shift": raster_mlp.WEIGHT_SHIFT}}
        command = "python -m medcodec.train.raster_scale " + " ".join(sys.argv[1:] if argv is None else argv)
        extra = {**provenance(command, None), "data_manifest": {"files": manifest}, "training": report}
        entry = publish_model(args.export, params, metadata, extra)
        print(f"published {args.export}: {entry['file']} sha256 {entry['sha256']}")


if __name__ == "__main__":
    main()
