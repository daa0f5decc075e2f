"""What the benchmark scripts that drive methods directly share: their common options, the first plane
of every input under a folder, and a timed encode + decode of one plane."""

from __future__ import annotations

import argparse
import collections
import time
from pathlib import Path

import numpy as np

from medcodec.io.source import is_candidate_file, load


def first_planes(folder: Path):
    """(path, first plane, bits) of every readable input under folder, in sorted order; files that do
    not load or hold no modelled plane are passed over (medcodec bench lists them)."""
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and is_candidate_file(p)):
        try:
            src = load(path)
        except Exception:  # noqa: BLE001 - an unreadable file is not a benchmark result
            continue
        if src.planes:
            yield path, src.planes[0], src.bits


def round_trip(encoder, plane: np.ndarray, bits: int, decoder=None):
    """(streams, decoded plane, encode seconds, decode seconds) of a method (decoder: another instance,
    e.g. on another device; default the encoder). The caller compares; decode errors propagate."""
    start = time.perf_counter()
    streams = encoder.encode(plane, bits)
    encode_s = time.perf_counter() - start
    start = time.perf_counter()
    decoded = (decoder or encoder).decode(streams, plane.shape, bits)
    return streams, decoded, encode_s, time.perf_counter() - start


def verified_round_trip(method, plane: np.ndarray, bits: int, name: str, where) -> tuple[list, float, float]:
    """(streams, encode seconds, decode seconds) of ``round_trip``, after checking that the streams decode to
    the plane (SystemExit "<name> round trip failed on <where>" otherwise)."""
    streams, decoded, encode_s, decode_s = round_trip(method, plane, bits)
    if not np.array_equal(decoded, plane):
        raise SystemExit(f"{name} round trip failed on {where}")
    return streams, encode_s, decode_s


def plane_ablation_arguments(doc: str, out: Path, per_group: int = 4, max_pixels: int = 1 << 21,
                             corpus: Path = Path("../shared/corpus/test")) -> argparse.Namespace:
    """--corpus, --per-group, --max-pixels and --out, parsed; exits when the corpus is missing; torch on
    one thread (as the bench runs every codec)."""
    import torch

    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--corpus", type=Path, default=corpus)
    p.add_argument("--per-group", type=int, default=per_group)
    p.add_argument("--max-pixels", type=int, default=max_pixels)
    p.add_argument("--out", type=Path, default=out)
    args = p.parse_args()
    if not args.corpus.exists():
        raise SystemExit(f"{args.corpus} not found")
    torch.set_num_threads(1)
    return args


def pick(corpus: Path, per_group: int, max_pixels: int):
    """(path, plane, bits): the first plane of up to per_group evenly spaced files of every folder, of at
    most max_pixels pixels and at least 8 on a side."""
    by_folder = collections.defaultdict(list)
    for path, plane, bits in first_planes(corpus):
        if plane.size <= max_pixels and min(plane.shape) >= 8:
            by_folder[path.parent].append((path, plane, bits))
    for folder in sorted(by_folder):
        items = by_folder[folder]
        for i in sorted(set(np.linspace(0, len(items) - 1, min(per_group, len(items))).round().astype(int))):
            yield items[i]


def coded_planes(args: argparse.Namespace, methods: dict):
    """For every picked plane: (its row - file, group, folder, pixels -, the plane, its bits, and per
    method (streams, encode seconds, decode seconds)); exits on any inexact round trip."""
    for path, plane, bits in pick(args.corpus, args.per_group, args.max_pixels):
        row = {"file": str(path.relative_to(args.corpus)), "group": f"{bits if bits > 8 else 8}-bit",
               "folder": str(path.parent.relative_to(args.corpus)), "pixels": int(plane.size)}
        coded = {}
        for name, method in methods.items():
            coded[name] = verified_round_trip(method, plane, bits, name, path)
        yield row, plane, bits, coded


def groupings(images: list[dict]):
    """(by, name, rows) for every folder, every bit-depth group and overall, as the ablations summarise."""
    for key in ("folder", "group", None):
        for name in sorted({r[key] for r in images} if key else {"all"}):
            yield key or "overall", name, [r for r in images if key is None or r[key] == name]
