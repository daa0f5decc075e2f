"""Train the raster method's prediction correction (``networks.raster_mlp``) and publish it.

    python -m medcodec.train.raster_correction ../shared/corpus/train --export raster-nn-v1

Samples: for up to --per-folder images of every folder (a fixed shuffle), the raster analysis without
a correction is run on the image's first plane and --samples pixels with a raster class are drawn; each
gives the network's integer features and its target, the second-stage error divided by the local
scale. One image in VALIDATION_EVERY is held out and reported on (code-length proxy, float and integer
network). Training is a few minutes on a 2-core CPU: data gathering dominates.

The published entry in models/manifest.json names the files and their sha256 (the data manifest),
the command, the commit and the held-out numbers.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch

from medcodec.io.source import is_candidate_file, load
from medcodec.networks import raster_mlp
from medcodec.pipelines.raster import prediction
from medcodec.pipelines.raster.analysis import first_analysis
from medcodec.pipelines.raster.layout import ACTIVITY_CLASSES

from .publish import provenance, publish_model
from .trainer import training_device

VALIDATION_EVERY = 5
LOSS_CLAMP = 20.0  # an error beyond 20 local scales is an outlier the network should not chase


def training_files(folders: list[Path], per_folder: int, seed: int) -> list[Path]:
    """Up to per_folder candidate images of each folder (recursively grouped by their parent), shuffled
    with a fixed seed; refuses a folder named 'test' (the test split is for measuring only)."""
    by_parent: dict[Path, list[Path]] = {}
    for folder in folders:
        if "test" in Path(folder).resolve().parts:
            raise SystemExit(f"{folder} looks like a test split; train on the train split only")
        for path in sorted(Path(folder).rglob("*")):
            if path.is_file() and is_candidate_file(path):
                by_parent.setdefault(path.parent, []).append(path)
    rng = random.Random(seed)
    chosen = []
    for parent in sorted(by_parent):
        files = by_parent[parent]
        rng.shuffle(files)
        chosen += files[:per_folder]
    return chosen


def first_plane(path: Path) -> tuple[np.ndarray, int] | None:
    """(the image's first plane, its bits), or None when it has none or cannot be read (said on stderr:
    an unreadable training file is skipped, not fatal). What the raster trainers sample from."""
    try:
        src = load(path)
    except Exception as exc:
        print(f"skip {path}: {exc}", file=sys.stderr)
        return None
    return (src.planes[0], src.bits) if src.planes else None


def image_samples(path: Path, samples: int, seed: int) -> dict | None:
    """Features, targets and scales of up to ``samples`` pixels of the image's first plane (None when
    it has no plane or no pixel with a raster class)."""
    if (found := first_plane(path)) is None:
        return None
    analysis = first_analysis(*found)  # no correction: what the network corrects
    eligible = np.flatnonzero(analysis.cls < ACTIVITY_CLASSES)
    if eligible.size == 0:
        return None
    rng = np.random.default_rng(seed)
    pixels = np.sort(rng.choice(eligible, size=min(samples, eligible.size), replace=False))
    rows, cols = np.divmod(pixels, analysis.width)
    taps = analysis.layout.flat(rows, cols)[:, None] + analysis.layout.offsets[None, :]
    errors1 = analysis._grid_of(prediction.error(analysis.values, analysis.mu1)).ravel()
    errors2 = analysis._grid_of(prediction.error(analysis.values, analysis.mu)).ravel()
    feats, scale = raster_mlp.features(analysis.grid[taps], errors1[taps], errors2[taps], analysis.mu1[pixels],
                                       analysis.mu[pixels], analysis.activity[pixels])
    error = prediction.error(analysis.values[pixels], analysis.mu[pixels])
    return {"features": feats, "error": error.astype(np.int64), "scale": scale}


def _relative(path: Path, folders: list[Path]) -> str:
    """The file's path inside the training folder that holds it (as the other models' data manifests)."""
    for folder in folders:
        try:
            return str(path.resolve().relative_to(Path(folder).resolve()))
        except ValueError:
            continue
    return str(path)


def proxy_gain(error: np.ndarray, correction: np.ndarray) -> float:
    """Mean saving in bits a pixel by the code-length proxy log2(|error| + 0.6) (errors in 1/16)."""
    before = np.log2(np.abs(error) / 16 + 0.6)
    after = np.log2(np.abs(error - correction) / 16 + 0.6)
    return float((before - after).mean())


def gather(folders: list[Path], per_folder: int, samples: int, seed: int,
           sample_image=None) -> tuple[dict, list[dict]]:
    """The training samples of ``training_files`` (the arrays of ``sample_image``, by default this
    module's ``image_samples``: features, error, scale; and validation) and the data manifest (file,
    sha256, samples, held out or not)."""
    sample_image = sample_image or image_samples
    parts, manifest = [], []
    files = training_files(folders, per_folder, seed)
    for number, path in enumerate(files):
        part = sample_image(path, samples, seed + number)
        if part is None:
            continue
        part["validation"] = np.full(part["error"].size, number % VALIDATION_EVERY == VALIDATION_EVERY // 2)
        parts.append(part)
        manifest.append({"file": _relative(path, folders), "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
                         "samples": int(part["error"].size), "validation": bool(part["validation"][0])})
        print(f"[{number + 1}/{len(files)}] {path} {part['error'].size} samples", flush=True)
    data = {key: np.concatenate([p[key] for p in parts]) for key in parts[0]} if parts else {}
    return data, manifest


def save_samples(path: Path, data: dict, manifest: list[dict]) -> None:
    """Gathered samples (named arrays) to an .npz (no pickle): trying network shapes then skips the
    minutes of analysis. Also the learned scale's (train.raster_scale). Compressed: the samples are small
    integers stored as int64, which deflate to about a fifth."""
    np.savez_compressed(path, manifest=np.frombuffer(json.dumps(manifest).encode(), dtype=np.uint8), **data)


def load_samples(path: Path) -> tuple[dict, list[dict]]:
    with np.load(path, allow_pickle=False) as stored:
        data = {key: stored[key] for key in stored.files if key != "manifest"}
        manifest = json.loads(stored["manifest"].tobytes())
    return data, manifest


def build(hidden: int, depth: int = 2) -> torch.nn.Sequential:
    """depth hidden layers of ``hidden`` units with ReLU, then one output."""
    layers: list[torch.nn.Module] = []
    inputs = raster_mlp.FEATURES
    for _ in range(depth):
        layers += [torch.nn.Linear(inputs, hidden), torch.nn.ReLU()]
        inputs = hidden
    return torch.nn.Sequential(*layers, torch.nn.Linear(inputs, 1))


def fit(net: torch.nn.Sequential, x: np.ndarray, target: np.ndarray, epochs: int, batch: int, lr: float,
        seed: int, device: torch.device = torch.device("cpu")) -> list[float]:
    """L1 on error / scale (the proxy's shape); returns each epoch's loss (``fit_epochs``)."""
    xt = torch.from_numpy(x.astype(np.float32) / (1 << raster_mlp.FEATURE_SHIFT))
    tt = torch.from_numpy(target.astype(np.float32))
    return fit_epochs(net, (xt, tt), lambda out, t: (out - t).abs().clamp(max=LOSS_CLAMP).mean(), epochs, batch, lr,
                      seed, device)


def fit_epochs(net: torch.nn.Sequential, tensors: tuple[torch.Tensor, ...], loss_of, epochs: int, batch: int,
               lr: float, seed: int, device: torch.device, after_epoch=None) -> list[float]:
    """Adam with a cosine schedule over shuffled batches of the samples (tensors[0]: the network's inputs,
    the rest what ``loss_of(output, *rest)`` compares its first output with); returns each epoch's mean loss,
    passed to ``after_epoch(epoch, loss)`` too. Trains on device (all samples held there) and leaves the
    network on the CPU. Both raster networks train with it."""
    torch.manual_seed(seed)
    net.to(device)
    tensors = tuple(t.to(device) for t in tensors)
    opt = torch.optim.Adam(net.parameters(), lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(1, epochs))
    losses = []
    for epoch in range(epochs):
        order = torch.randperm(tensors[0].shape[0], device=device)
        total = 0.0
        for start in range(0, order.numel(), batch):
            index = order[start:start + batch]
            loss = loss_of(net(tensors[0][index])[:, 0], *(t[index] for t in tensors[1:]))
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * index.numel()
        schedule.step()
        losses.append(total / max(1, order.numel()))
        if after_epoch is not None:
            after_epoch(epoch, losses[-1])
    net.cpu()
    return losses


def integer_layers(net: torch.nn.Sequential) -> list[tuple[np.ndarray, np.ndarray]]:
    linear = [m for m in net if isinstance(m, torch.nn.Linear)]
    return raster_mlp.quantise_layers([(m.weight.detach().numpy(), m.bias.detach().numpy()) for m in linear])


def arguments(description: str, per_folder: int, samples: int, hidden: int, depth: int,
              example_id: str) -> argparse.ArgumentParser:
    """The command line both raster networks' training shares (this module's and ``raster_scale``'s)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("folders", nargs="+", type=Path, help="training folders (the train split)")
    parser.add_argument("--per-folder", type=int, default=per_folder, help="images per folder at most")
    parser.add_argument("--samples", type=int, default=samples, help="pixels per image")
    parser.add_argument("--hidden", type=int, default=hidden)
    parser.add_argument("--depth", type=int, default=depth, help="hidden layers")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--batch", type=int, default=4096)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                        help="where the float training runs (auto: CUDA when present)")
    parser.add_argument("--cache", type=Path, metavar="NPZ",
                        help="gathered samples: read from this file if it exists, else written to it")
    parser.add_argument("--export", metavar="ID", help=f"publish under models/ as ID (e.g. {example_id})")
    return parser


def samples_of(args: argparse.Namespace, gather_samples) -> tuple[dict, list[dict], bool]:
    """(samples, data manifest, whether they came from --cache): read from the cache file when it exists,
    else ``gather_samples(folders, per_folder, samples, seed)`` (and written to --cache if given)."""
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.cache is not None and args.cache.exists():
        data, manifest = load_samples(args.cache)
        print(f"samples from {args.cache}: {data['error'].size} pixels of {len(manifest)} images", flush=True)
        return data, manifest, True
    data, manifest = gather_samples(args.folders, args.per_folder, args.samples, args.seed)
    if args.cache is not None:
        save_samples(args.cache, data, manifest)
    return data, manifest, False


def publish_raster_network(args: argparse.Namespace, argv: list[str] | None, module: str, architecture: str,
                           inputs: int, layers: list[tuple[np.ndarray, np.ndarray]], manifest: list[dict],
                           report: dict) -> None:
    """Integer layers to models/<--export>.safetensors with their manifest entry (architecture, config,
    command, commit, data manifest, the training report)."""
    params = {"raster": {f"l{k}": {"weight": torch.from_numpy(w), "bias": torch.from_numpy(b)}
                         for k, (w, b) in enumerate(layers)}}
    metadata = {"architecture": architecture,
                "config": {"hidden": args.hidden, "depth": args.depth, "features": inputs, "layers": len(layers),
                           "feature_shift": raster_mlp.FEATURE_SHIFT, "weight_shift": raster_mlp.WEIGHT_SHIFT}}
    command = f"python -m {module} " + " ".join(sys.argv[1:] if argv is None else argv)
    extra = {**provenance(command, None), "data_manifest": {"files": manifest}, "training": report}
    entry = publish_model(args.export, params, metadata, extra)
    print(f"published {args.export}: {entry['file']} sha256 {entry['sha256']}")


def main(argv: list[str] | None = None) -> None:
    args = arguments(__doc__.split("\n\n")[0], 40, 10000, 48, 2, "raster-nn-v1").parse_args(argv)
    started = time.time()
    data, manifest, cached = samples_of(args, gather)
    train, held = ~data["validation"], data["validation"]
    target = data["error"] / data["scale"]
    net = build(args.hidden, args.depth)
    device = training_device(args.device)
    losses = fit(net, data["features"][train], target[train], args.epochs, args.batch, args.lr, args.seed, device)
    layers = integer_layers(net)
    exact = raster_mlp.from_integer_layers("candidate", b"", layers)
    with torch.no_grad():
        float_out = net(torch.from_numpy(data["features"][held].astype(np.float32) / (1 << raster_mlp.FEATURE_SHIFT)))
    report = {
        "train_samples": int(train.sum()), "validation_samples": int(held.sum()), "epoch_losses": losses,
        "validation_proxy_gain_float": proxy_gain(data["error"][held], float_out[:, 0].numpy() * data["scale"][held]),
        "validation_proxy_gain_integer": proxy_gain(data["error"][held],
                                                    exact.correction(data["features"][held], data["scale"][held])),
        "minutes": (time.time() - started) / 60, "samples_from_cache": cached, "device": str(device),
    }
    print(json.dumps(report, indent=1))
    if args.export:
        publish_raster_network(args, argv, "medcodec.train.raster_correction", raster_mlp.ARCHITECTURE,
                               raster_mlp.FEATURES, layers, manifest, report)


if __name__ == "__main__":
    main()
