"""Train the raster method's learned scale (``networks.raster_mlp.scale_keys``) and publish it.

    python -m medcodec.train.raster_scale ../shared/corpus/train --export raster-scale-v2

(raster-scale-v1, without the wide window's features: the same with ``--no-window``.)

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

import functools
import json
import time
from pathlib import Path

import numpy as np
import torch

from medcodec.networks import raster_mlp
from medcodec.pipelines.raster.analysis import first_analysis
from medcodec.pipelines.raster.layout import ACTIVITY_CLASSES
from medcodec.pipelines.raster.method import shipped_correction

from . import raster_correction
from .raster_correction import arguments, first_plane, integer_layers, publish_raster_network, samples_of
from .trainer import training_device


def image_samples(path: Path, samples: int, seed: int) -> dict | None:
    """Scale inputs, linear scale sums and final errors of up to ``samples`` pixels of the image's first
    plane (None when it has no plane or no pixel with a raster class)."""
    if (found := first_plane(path)) is None:
        return None
    analysis = first_analysis(*found, shipped_correction())
    eligible = np.flatnonzero(analysis.cls < ACTIVITY_CLASSES)
    if eligible.size == 0:
        return None
    rng = np.random.default_rng(seed)
    pixels = np.sort(rng.choice(eligible, size=min(samples, eligible.size), replace=False))
    inputs, scale_sum = analysis.scale_samples(pixels)
    return {"inputs": inputs, "scale_sum": scale_sum, "error": analysis.errors2[pixels].astype(np.int64)}


def code_length(output: torch.Tensor, log2_sum: torch.Tensor, error: torch.Tensor) -> torch.Tensor:
    """Bits of each error (1/16 sample, from the bin's centre) under a discretised logistic of scale
    s * 2**output (s = 2**log2_sum, 1/16 sample) over bins of one sample."""
    scale = torch.exp2(output + log2_sum) / 16.0  # in samples
    centre = error / 16.0
    p = torch.sigmoid((centre + 0.5) / scale) - torch.sigmoid((centre - 0.5) / scale)
    return -torch.log2(p.clamp_min(1e-9))


def build(hidden: int, depth: int, inputs: int = raster_mlp.WINDOW_SCALE_FEATURES) -> torch.nn.Sequential:
    layers: list[torch.nn.Module] = []
    for _ in range(depth):
        layers += [torch.nn.Linear(inputs, hidden), torch.nn.ReLU()]
        inputs = hidden
    return torch.nn.Sequential(*layers, torch.nn.Linear(inputs, 1))


def _tensors(data: dict, rows: np.ndarray, inputs: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    x = torch.from_numpy(data["inputs"][rows, :inputs].astype(np.float32) / (1 << raster_mlp.FEATURE_SHIFT))
    log2_sum = torch.from_numpy(np.log2(np.maximum(data["scale_sum"][rows], 1)).astype(np.float32))
    return x, log2_sum, torch.from_numpy(data["error"][rows].astype(np.float32))


def fit(net: torch.nn.Sequential, data: dict, rows: np.ndarray, epochs: int, batch: int, lr: float,
        seed: int, log: Path | None, device: torch.device = torch.device("cpu")) -> list[float]:
    """The code length's mean, minimised (``raster_correction.fit_epochs``); returns (and prints, and
    appends to log) each epoch's mean bits."""
    def report(epoch: int, loss: float) -> None:
        print(f"epoch {epoch + 1}/{epochs}: {loss:.4f} bits/pixel", flush=True)
        if log is not None:
            with log.open("a") as out:
                out.write(f"{epoch + 1}\t{loss:.6f}\n")

    return raster_correction.fit_epochs(net, _tensors(data, rows, net[0].in_features),
                                        lambda out, log2_sum, error: code_length(out, log2_sum, error).mean(),
                                        epochs, batch, lr, seed, device, report)


def held_out_bits(data: dict, rows: np.ndarray, output: np.ndarray) -> float:
    """Mean code length of the held-out pixels with the network's outputs (float, o in octaves)."""
    _, log2_sum, error = _tensors(data, rows, 0)
    return float(code_length(torch.from_numpy(output.astype(np.float32)), log2_sum, error).mean())


def main(argv: list[str] | None = None) -> None:
    parser = arguments(__doc__.split("\n\n")[0], 20, 30000, 64, 3, "raster-scale-v2")
    parser.add_argument("--log", type=Path, metavar="TSV", help="append each epoch's loss to this file")
    parser.add_argument("--no-window", action="store_true",
                        help="without the wide window's features (architecture raster-scale-mlp/v1, raster-scale-v1)")
    args = parser.parse_args(argv)
    started = time.time()
    architecture = raster_mlp.SCALE_ARCHITECTURE if args.no_window else raster_mlp.WINDOW_SCALE_ARCHITECTURE
    inputs = raster_mlp.INPUTS[architecture]
    data, manifest, cached = samples_of(args, functools.partial(raster_correction.gather, sample_image=image_samples))
    train, held = np.flatnonzero(~data["validation"]), np.flatnonzero(data["validation"])
    net = build(args.hidden, args.depth, inputs)
    device = training_device(args.device)
    losses = fit(net, data, train, args.epochs, args.batch, args.lr, args.seed, args.log, device)
    layers = integer_layers(net)
    exact = raster_mlp.from_integer_layers("candidate", b"", layers, inputs)
    with torch.no_grad():
        float_out = net(_tensors(data, held, inputs)[0])[:, 0].numpy()
    integer_out = exact.output(data["inputs"][held, :inputs]) / float(1 << (raster_mlp.FEATURE_SHIFT + raster_mlp.WEIGHT_SHIFT))
    report = {
        "train_samples": int(train.size), "validation_samples": int(held.size), "epoch_losses": losses,
        "validation_bits_float": held_out_bits(data, held, float_out),
        "validation_bits_integer": held_out_bits(data, held, integer_out),
        "minutes": (time.time() - started) / 60, "samples_from_cache": cached, "device": str(device),
    }
    print(json.dumps(report, indent=1))
    if args.export:
        publish_raster_network(args, argv, "medcodec.train.raster_scale", architecture, inputs, layers, manifest,
                               report)


if __name__ == "__main__":
    main()
