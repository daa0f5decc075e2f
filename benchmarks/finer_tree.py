"""Would a finer subimage tree pay? (issue 4: "split A itself, so less is left to JPEG-XL")

The fast path codes A (a quarter of the pixels) with JPEG-XL and predicts D, B, C from it. A finer tree
splits A again: A's own A (a sixteenth) goes to JPEG-XL and A's D, B, C are predicted by the same
networks, and so on. Such a tree's streams are exactly the fast path's streams of every level (a level's
A stream replaced by the next level's whole coding), so its size is measured without building it:

    tree(plane, 1) = fast(plane)
    tree(plane, k) = fast(plane) - A stream of fast(plane) + tree(A, k - 1)

and every coding it adds up is decoded and compared before it counts. Beside it, the tree's best case
and the codings it competes with, on the same planes:

* hybrid: fast(plane) with A coded by the raster coder instead of JPEG-XL (the best coder medcodec has,
  on the quarter-size plane A);
* floor: the bits of the fast path's predicted subimages D, B, C (streams and side information), spread
  over the whole plane: what any tree would cost if its coarser levels' predicted subimages cost what the
  finest level's do per pixel and its root nothing (pixels further apart are harder to predict, so a
  real tree costs more);
* raster: the raster coder on the whole plane (what the fast mode keeps on nearly every plane).

Stream bytes only (no container), methods driven directly (no fallback). Design data: run it on the
train split (the default); --corpus ../shared/corpus/test reports.

    python benchmarks/finer_tree.py [--corpus ../shared/corpus/train] [--per-group 2] [--max-pixels N]
        [--out benchmarks/results/finer_tree.json]
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from medcodec.container.format import SectionKind  # noqa: E402
from medcodec.pipelines.raster.method import RasterMethod  # noqa: E402
from medcodec.pipelines.subimage import FastMethod  # noqa: E402
from method_runs import groupings, pick, plane_ablation_arguments, verified_round_trip  # noqa: E402

LEVELS = 3  # the tree's depth measured: tree2 and tree3
MIN_SIDE = 16  # a level's A smaller than this on a side is not split again


def verified_streams(method, plane: np.ndarray, bits: int, where: str):
    return verified_round_trip(method, plane, bits, method.name, where)[0]


def fast_parts(fast: FastMethod, plane: np.ndarray, bits: int, where: str) -> tuple[int, int]:
    """(A stream bytes, bytes of everything else) of the fast path's coding of plane."""
    streams = verified_streams(fast, plane, bits, where)
    a_bytes = sum(len(s.payload) for s in streams if s.kind == SectionKind.JXL_SUBIMAGE)
    return a_bytes, sum(len(s.payload) for s in streams) - a_bytes


def measure(fast: FastMethod, raster: RasterMethod, plane: np.ndarray, bits: int, levels: int, where: str) -> dict:
    """Bytes of every coding above for one plane."""
    row = {"raster": sum(len(s.payload) for s in verified_streams(raster, plane, bits, where))}
    a_plane = plane[0::2, 0::2]  # split.py's A: even rows, even columns (the extra ones of an odd side)
    predicted_pixels = plane.size - a_plane.size
    a_bytes, rest = fast_parts(fast, plane, bits, where)
    row["fast"] = a_bytes + rest
    row["floor"] = rest * plane.size / predicted_pixels
    row["hybrid"] = rest + sum(len(s.payload) for s in verified_streams(raster, a_plane, bits, where + " (A)"))
    # tree(plane, k): the finer levels' predicted bytes above the last level's A stream
    above, level_plane = rest, a_plane
    for level in range(2, levels + 1):
        if min(level_plane.shape) < 2 * MIN_SIDE:
            break
        level_a, level_rest = fast_parts(fast, level_plane, bits, f"{where} (level {level})")
        above += level_rest
        row[f"tree{level}"] = above + level_a
        level_plane = level_plane[0::2, 0::2]
    return row


def main() -> None:
    args = plane_ablation_arguments(__doc__, ROOT / "benchmarks/results/finer_tree.json", per_group=2,
                                    max_pixels=1 << 20, corpus=Path("../shared/corpus/train"))
    fast, raster = FastMethod(device="cpu"), RasterMethod()
    codings = ["raster", "fast", "hybrid"] + [f"tree{k}" for k in range(2, LEVELS + 1)] + ["floor"]
    start = time.perf_counter()
    images = []
    for path, plane, bits in pick(args.corpus, args.per_group, args.max_pixels):
        where = str(path.relative_to(args.corpus))
        row = {"file": where, "group": f"{bits if bits > 8 else 8}-bit",
               "folder": str(path.parent.relative_to(args.corpus)), "pixels": int(plane.size),
               **measure(fast, raster, plane, bits, LEVELS, where)}
        print(where, " ".join(f"{c} {8 * row[c] / plane.size:.4f}" for c in codings if c in row), flush=True)
        images.append(row)
    summary = []
    for by, name, rows in groupings(images):
        entry = {"by": by, "name": name, "images": len(rows), "pixels": sum(r["pixels"] for r in rows)}
        for c in codings:
            have = [r for r in rows if c in r]  # a plane too small for a level has no such tree
            if have:
                entry[f"{c}_vs_fast"] = round(sum(r[c] for r in have) / sum(r["fast"] for r in have), 4)
                entry[f"{c}_vs_raster"] = round(sum(r[c] for r in have) / sum(r["raster"] for r in have), 4)
        summary.append(entry)
    for entry in summary:
        print(f"{entry['name']:<32}" + " ".join(f"{c} {entry.get(c + '_vs_raster', float('nan')):.3f}"
                                                for c in codings[1:]), "(x raster)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"command": "python " + " ".join(sys.argv),
                                    "seconds": round(time.perf_counter() - start, 1),
                                    "summary": summary, "images": images}, indent=1) + "\n")


if __name__ == "__main__":
    main()
