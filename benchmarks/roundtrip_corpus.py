"""Round-trip every file of a corpus through medcodec and check it comes back exactly.

DICOM and .npy must come back byte-identical; PNG and TIFF pixel-identical (decoded independently with
imagecodecs, not with medcodec's own reader). Prints a summary and exits non-zero on any failure.

    python benchmarks/roundtrip_corpus.py                      # /work/shared/corpus, mode fast
    python benchmarks/roundtrip_corpus.py --mode classical some/folder
"""

from __future__ import annotations

import argparse
import concurrent.futures
import multiprocessing
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import imagecodecs
import numpy as np

from medcodec import codec
from medcodec.errors import MedcodecError, ModelMismatchError

DEFAULT_CORPUS = Path("/work/shared/corpus")
SKIP_SUFFIXES = {".md", ".tsv", ".txt", ".json", ".mlc"}


@dataclass
class Result:
    path: str
    bytes_in: int = 0
    bytes_out: int = 0
    seconds: float = 0.0
    methods: str = ""
    error: str = ""


def _pixels(data: bytes, suffix: str) -> np.ndarray:
    if suffix == ".png":
        return imagecodecs.png_decode(data)
    return imagecodecs.tiff_decode(data)


def _check(path: Path, original: bytes, restored: bytes) -> None:
    """Raise AssertionError unless restored is the original (bytes, or pixels for PNG/TIFF)."""
    if restored == original:
        return
    suffix = path.suffix.lower()
    if suffix not in (".png", ".tif", ".tiff"):
        raise AssertionError("restored bytes differ from the original")
    a, b = _pixels(original, suffix), _pixels(restored, suffix)
    if a.dtype != b.dtype or a.shape != b.shape or not np.array_equal(a, b):
        raise AssertionError(f"restored pixels differ ({a.dtype}{a.shape} vs {b.dtype}{b.shape})")


def roundtrip(path: str, mode: str) -> Result:
    result = Result(path)
    try:
        original = Path(path).read_bytes()
        start = time.perf_counter()
        data = codec.encode(original, mode=mode, device="cpu")
        restored = codec.decode(data, device="cpu").data
        result.seconds = time.perf_counter() - start
        result.bytes_in, result.bytes_out = len(original), len(data)
        result.methods = ",".join(sorted({f["method"] for f in codec.info(data)["frames"]})) or "envelope"
        _check(Path(path), original, restored)
    except (MedcodecError, AssertionError) as exc:
        result.error = f"{type(exc).__name__}: {exc}"
    except Exception as exc:  # a bug: still report it as a failure of this file and go on
        result.error = f"unexpected {type(exc).__name__}: {exc}"
    return result


def pick_mode(requested: str) -> str:
    """The requested mode, or classical when its weights are not installed (said once, loudly)."""
    if requested == "classical":
        return requested
    try:
        codec.encode(np.zeros((8, 8), np.uint16), mode=requested, device="cpu")
    except ModelMismatchError as exc:
        print(f"mode {requested!r} unavailable ({exc}); falling back to classical", file=sys.stderr)
        return "classical"
    return requested


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="*", type=Path, help=f"default: {DEFAULT_CORPUS}/train and /test")
    parser.add_argument("--mode", default="fast", choices=["classical", "fast", "slow", "latent"])
    parser.add_argument("-j", "--jobs", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args(argv)
    folders = args.folders or [DEFAULT_CORPUS / "train", DEFAULT_CORPUS / "test"]
    missing = [f for f in folders if not f.is_dir()]
    if missing:
        print(f"no such folder: {', '.join(map(str, missing))}", file=sys.stderr)
        return 2
    files = sorted(str(p) for f in folders for p in f.rglob("*")
                   if p.is_file() and p.suffix.lower() not in SKIP_SUFFIXES)
    mode = pick_mode(args.mode)
    print(f"round trip of {len(files)} files, mode {mode}, {args.jobs} processes", file=sys.stderr)

    start = time.perf_counter()
    results = []
    # spawn, not fork: pick_mode may have started torch's OpenMP pool, which deadlocks in forked children.
    spawn = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(max_workers=args.jobs, mp_context=spawn) as pool:
        # One line per file as it finishes: learned modes on CPU take long, and a killed run still tells.
        for r in pool.map(roundtrip, files, [mode] * len(files)):
            results.append(r)
            status = f"FAIL {r.error}" if r.error else f"ok {r.bytes_in:,} -> {r.bytes_out:,} {r.methods}"
            print(f"[{len(results)}/{len(files)}] {r.path}: {status} ({r.seconds:.1f} s)", flush=True)
    wall = time.perf_counter() - start

    failures = [r for r in results if r.error]
    for r in failures:
        print(f"FAIL {r.path}: {r.error}")
    ok = [r for r in results if not r.error]
    by_method: dict[str, int] = {}
    for r in ok:
        by_method[r.methods] = by_method.get(r.methods, 0) + 1
    total_in, total_out = sum(r.bytes_in for r in ok), sum(r.bytes_out for r in ok)
    print(f"files     : {len(results)} ({len(ok)} ok, {len(failures)} failed)")
    print(f"bytes     : {total_in:,} in -> {total_out:,} out (ratio {total_in / max(total_out, 1):.3f})")
    print("methods   : " + ", ".join(f"{k} {v}" for k, v in sorted(by_method.items())))
    print(f"time      : {wall:.1f} s wall, {sum(r.seconds for r in results):.1f} s coding")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
