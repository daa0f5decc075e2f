"""Bands (format 2.22, ``medcodec/bands.py``): what coding a large plane as independent horizontal bands
costs in bytes and gains in decoding time.

Every plane of the corpus with at least two bands' worth of pixels (2 x ``bands.BAND_PIXELS``) is
encoded twice in this process, whole (the default) and in bands (``in_bands=True``, ``--bands``), on one
thread; each file is decoded and checked, the whole one in this process, the banded one
in this process and in ``--processes`` processes (``codec.decode(processes=N)``, as ``medcodec decode
-t N`` does; the worker's start is on the clock). A small crop is coded first, untimed, so numba's and
torch's first calls are not.

    python benchmarks/bands.py [--corpus ../shared/corpus/train] [--mode fast] [--processes 2]
        [--out benchmarks/results/bands.json]

Run it on the train split: it decided the band size and that bands are not the default.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from medcodec import bands, codec, parallel  # noqa: E402
from medcodec.errors import MedcodecError  # noqa: E402
from medcodec.io import source as io_source  # noqa: E402


def large_planes(corpus: Path) -> list[tuple[Path, tuple[int, int]]]:
    """The corpus files whose planes are cut into bands, with their first plane's shape."""
    found = []
    for path in sorted(p for p in corpus.rglob("*") if p.is_file() and io_source.is_candidate_file(p)):
        try:
            src = io_source.load(path)
        except MedcodecError:
            continue
        if src.planes and any(bands.band_count(plane.shape) > 1 for plane in src.planes):
            found.append((path, tuple(src.planes[0].shape)))
    return found


def timed(function, *args, **kwargs):
    start = time.perf_counter()
    result = function(*args, **kwargs)
    return result, time.perf_counter() - start


def measure(path: Path, mode: str, processes: int) -> dict:
    whole, whole_encode = timed(codec.encode, path, mode=mode)
    banded, banded_encode = timed(codec.encode, path, mode=mode, in_bands=True)
    reference, whole_decode = timed(codec.decode, whole)
    one, banded_decode = timed(codec.decode, banded)
    several, banded_decode_processes = timed(codec.decode, banded, processes=processes)
    if not (reference.data == one.data == several.data) or reference.fidelity not in ("bytes", "pixels"):
        raise SystemExit(f"{path}: the whole and the banded files decode differently")
    frames = codec.info(banded)["frames"]
    return {"file": str(path), "shape": list(reference.planes[0].shape), "planes": len(reference.planes),
            "bands": len(frames), "methods": [f["method"] for f in frames],
            "whole_bytes": len(whole), "banded_bytes": len(banded), "ratio": round(len(banded) / len(whole), 5),
            "encode_s": {"whole": round(whole_encode, 2), "banded": round(banded_encode, 2)},
            "decode_s": {"whole": round(whole_decode, 2), "banded": round(banded_decode, 2),
                         f"banded, {processes} processes": round(banded_decode_processes, 2)}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=ROOT.parent / "shared" / "corpus" / "train")
    parser.add_argument("--mode", default="fast", choices=("fast", "slow", "latent"))
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "bands.json")
    args = parser.parse_args()
    parallel.set_budget(1)
    found = large_planes(args.corpus)
    if not found:
        raise SystemExit(f"no plane of {args.corpus} is large enough for bands")
    codec.encode(np.ascontiguousarray(io_source.load(found[0][0]).planes[0][:64, :64]), mode=args.mode)  # untimed
    rows = []
    for path, shape in found:
        rows.append(measure(path, args.mode, args.processes))
        row = rows[-1]
        print(f"{path.name}: {shape[0]}x{shape[1]}, {row['bands']} bands, {row['ratio']:.4f} x the bytes, "
              f"decoding {row['decode_s']}", flush=True)
    whole = sum(r["whole_bytes"] for r in rows)
    banded = sum(r["banded_bytes"] for r in rows)
    totals = {key: round(sum(r["decode_s"][key] for r in rows), 2) for key in rows[0]["decode_s"]}
    summary = {"files": len(rows), "whole_bytes": whole, "banded_bytes": banded, "ratio": round(banded / whole, 5),
               "decode_s": totals, "encode_s": {key: round(sum(r["encode_s"][key] for r in rows), 2)
                                                for key in rows[0]["encode_s"]}}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"command": " ".join(sys.argv), "band_pixels": bands.BAND_PIXELS,
                                    "mode": args.mode, "machine": {"processor": platform.processor(),
                                                                   "python": platform.python_version()},
                                    "summary": summary, "files": rows}, indent=1) + "\n")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
