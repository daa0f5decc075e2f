"""Which planes carry JPEG 2000 history, and what coding them as lossless JPEG 2000 saves.

Every file's first plane is tested (``pipelines.jpeg2000_history.residue_ratios``: per k, the share of the
large 5/3 detail coefficients divisible by 2^k, times 2^k; a decoded lossy JPEG 2000 keeps far from 1).
For each flagged plane: JPEG-XL effort 9, a lossless JPEG 2000 codestream of it and of it moved by one row
(off the grid), and medcodec's fast mode with and without the JPEG 2000 candidate (format 2.23), each a
verified round trip of the plane as an array.

    python benchmarks/jpeg2000_history.py [--corpus ../shared/corpus/train]
        [--out benchmarks/results/jpeg2000_history.json]

Run it on the train split: it decided the thresholds (``jpeg2000_history.LOW`` and ``HIGH``).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import method_runs  # noqa: E402
import result_files  # noqa: E402

from medcodec import codec  # noqa: E402
from medcodec.pipelines import classical, jpeg2000_history  # noqa: E402


def fast_bytes(plane: np.ndarray, with_jpeg2000: bool) -> int:
    """Bytes of the fast mode's file of the plane (an array), its decoding checked."""
    original = jpeg2000_history.carries_history
    if not with_jpeg2000:
        jpeg2000_history.carries_history = lambda _plane: False
    try:
        coded = codec.encode(plane, mode="fast")
    finally:
        jpeg2000_history.carries_history = original
    if not np.array_equal(codec.decode(coded).planes[0], plane):
        raise SystemExit("fast mode did not decode the plane exactly")
    return len(coded)


def measure(plane: np.ndarray, bits: int) -> dict:
    """The flagged plane's sizes (bytes) and bits a pixel."""
    row = {"jxl9": len(classical.jpegxl_encode_plane(plane, bits, 9)),
           "jpeg2000": len(classical.jpeg2000_encode_plane(plane, bits)),
           "jpeg2000 off the grid": len(classical.jpeg2000_encode_plane(plane[1:], bits)),
           "fast without jpeg2000": fast_bytes(plane, False), "fast": fast_bytes(plane, True)}
    row.update({f"{key} bpp": round(8 * value / plane.size, 4) for key, value in list(row.items())})
    row["fast / fast without"] = round(row["fast"] / row["fast without jpeg2000"], 4)
    return row


def main() -> None:
    args = method_runs.plane_ablation_arguments(__doc__, ROOT / "benchmarks/results/jpeg2000_history.json",
                                                per_group=1 << 20, max_pixels=1 << 24,
                                                corpus=Path("../shared/corpus/train"))
    records = []
    for path, plane, bits in method_runs.pick(args.corpus, args.per_group, args.max_pixels):
        start = time.perf_counter()
        ratios = jpeg2000_history.residue_ratios(plane)
        row = {"file": str(path.relative_to(args.corpus)), "folder": str(path.parent.relative_to(args.corpus)),
               "pixels": int(plane.size), "bits": bits, "ratios": [round(r, 3) for r in ratios],
               "test ms": round(1000 * (time.perf_counter() - start), 1),
               "flagged": int(jpeg2000_history.shows_history(ratios))}
        if row["flagged"]:
            row.update(measure(plane, bits))
            print(row, flush=True)
        records.append(row)
    flagged = [r for r in records if r["flagged"]]
    summary = result_files.totals(records, lambda r: r["folder"], ("pixels", "flagged"))
    summary["all"] = {"files": len(records), "flagged": len(flagged),
                      "lowest ratio of the others": min((min(r["ratios"]) for r in records if not r["flagged"]),
                                                        default=None),
                      "highest ratio of the others": max((max(r["ratios"]) for r in records if not r["flagged"]),
                                                         default=None),
                      "test ms, median": float(np.median([r["test ms"] for r in records])) if records else None}
    result_files.write(args.out, records, summary)


if __name__ == "__main__":
    main()
