"""Round-trip every corpus file through medcodec.io: load -> restore, no coding in between.

DICOM and .npy must come back sha256-identical, PNG/TIFF pixel-identical (same dtype, shape, values).
Usage: python benchmarks/io_roundtrip_corpus.py [FOLDER]   (default /work/shared/corpus)
Exits 1 if any file fails, 2 if the folder is missing.
"""

from __future__ import annotations

import collections
import hashlib
import sys
import time
from pathlib import Path

import imagecodecs
import numpy as np

# Runnable from a checkout without installing the package.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from medcodec.io import ImageSource, load, pixel_sha256, restore  # noqa: E402

DEFAULT_CORPUS = Path("/work/shared/corpus")
SKIP_SUFFIXES = {".md", ".tsv", ".txt"}


def decode_pixels(kind: str, data: bytes) -> np.ndarray:
    """Independent decode (imagecodecs) of a PNG/TIFF, all TIFF pages stacked."""
    if kind == "png":
        return imagecodecs.png_decode(data)
    pages, index = [], 0
    while True:
        try:
            pages.append(imagecodecs.tiff_decode(data, index=index))
        except IndexError:
            return np.stack(pages)
        index += 1


def check_file(path: Path) -> tuple[str, str, ImageSource]:
    """('modelled' | 'recompressed' | 'verbatim', '', source) when it round-trips, else ('failed', reason,
    source); 'recompressed': no planes, but compressed pixel data taken apart (lossy JPEG's coefficients)."""
    data = path.read_bytes()
    source = load(path)
    rebuilt = restore(source.kind, source.envelope, source.planes)
    if source.original_sha256 != hashlib.sha256(data).digest():
        return "failed", "original_sha256 does not match the file", source
    for plane in source.planes:
        if plane.dtype != np.uint16 or plane.ndim != 2 or int(plane.max(initial=0)) >> source.bits:
            return "failed", f"plane breaks the contract ({plane.dtype}, {plane.shape})", source
    pixel_sha256(source.planes)
    if source.kind in ("dicom", "npy") or not source.planes:
        if hashlib.sha256(rebuilt).digest() != source.original_sha256:
            return "failed", f"{source.kind} not byte-identical ({len(rebuilt)} vs {len(data)} B)", source
    else:
        before, after = decode_pixels(source.kind, data), decode_pixels(source.kind, rebuilt)
        if before.dtype != after.dtype or before.shape != after.shape or not np.array_equal(before, after):
            return "failed", f"{source.kind} pixels differ", source
    if source.planes:
        return "modelled", "", source
    return ("recompressed" if source.decompressed else "verbatim"), "", source


def main(argv: list[str]) -> int:
    root = Path(argv[1]) if len(argv) > 1 else DEFAULT_CORPUS
    if not root.is_dir():
        print(f"corpus folder not found: {root}")
        return 2
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() not in SKIP_SUFFIXES)
    outcome: collections.Counter[str] = collections.Counter()
    by_kind: collections.Counter[tuple[str, str]] = collections.Counter()
    envelope_bytes = original_bytes = 0
    failures = []
    start = time.perf_counter()
    for path in files:
        try:
            status, reason, source = check_file(path)
        except Exception as exc:  # report every failure, keep going
            status, reason = "failed", f"{type(exc).__name__}: {exc}"
        outcome[status] += 1
        if status == "failed":
            failures.append((path, reason))
        else:
            by_kind[(source.kind, status)] += 1
            envelope_bytes += len(source.envelope)
            original_bytes += path.stat().st_size
    elapsed = time.perf_counter() - start
    ok = outcome["modelled"] + outcome["recompressed"] + outcome["verbatim"]
    print(f"corpus: {root}  files: {len(files)}  ok: {ok}  failed: {outcome['failed']}  ({elapsed:.1f} s)")
    print(f"modelled (planes): {outcome['modelled']}  recompressed (no planes): {outcome['recompressed']}  "
          f"verbatim: {outcome['verbatim']}")
    for (kind, status), count in sorted(by_kind.items()):
        print(f"  {kind:6s} {status:12s} {count}")
    print(f"envelope bytes (before lzma): {envelope_bytes}  of {original_bytes} input bytes")
    for path, reason in failures:
        print(f"FAILED {path.relative_to(root)}: {reason}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
