"""What the encoder-fitted corrections save: the neighbour refinement (medcodec/pipelines/refine.py), on top
of it the block-phase offsets (medcodec/pipelines/block_phase.py), and on top of both the surprise offsets
(medcodec/pipelines/surprise.py). Fast and slow paths without any, then adding one after the other, on the
same planes of the test split, stream bytes only (no container;
methods driven directly, so no classical fallback hides a learned stream), each coding verified by
decoding it.

    python benchmarks/refine_ablation.py [--corpus ../shared/corpus/test] [--per-group 4]
        [--out benchmarks/results/refine_ablation.json]

Planes: the first plane of up to --per-group files (evenly spaced) of every folder, and of at most
--max-pixels pixels.
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from medcodec.pipelines.subimage import DEFAULT_MODEL, FastMethod, SlowMethod  # noqa: E402
from medcodec.pipelines.base import unpack_side_info  # noqa: E402
from method_runs import first_planes, round_trip  # noqa: E402

# name -> (method, neighbour refinement, block-phase offsets, surprise offsets)
VARIANTS = {"fast": (FastMethod, False, False, False), "fast+refine": (FastMethod, True, False, False),
            "fast+refine+phase": (FastMethod, True, True, False),
            "fast+refine+phase+surprise": (FastMethod, True, True, True),
            "slow": (SlowMethod, False, False, False), "slow+refine": (SlowMethod, True, False, False),
            "slow+refine+phase": (SlowMethod, True, True, False),
            "slow+refine+phase+surprise": (SlowMethod, True, True, True)}
# each correction's ratio: (with it, without it), per path
STEPS = {"refine_ratio": ("+refine", ""), "phase_ratio": ("+refine+phase", "+refine"),
         "surprise_ratio": ("+refine+phase+surprise", "+refine+phase")}


def pick(corpus: Path, per_group: int, max_pixels: int):
    by_folder = collections.defaultdict(list)
    for path, plane, bits in first_planes(corpus):
        if plane.size <= max_pixels and min(plane.shape) >= 8:
            by_folder[path.parent].append((path, plane, bits))
    for folder in sorted(by_folder):
        items = by_folder[folder]
        for i in sorted(set(np.linspace(0, len(items) - 1, min(per_group, len(items))).round().astype(int))):
            yield items[i]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--corpus", type=Path, default=Path("../shared/corpus/test"))
    p.add_argument("--per-group", type=int, default=4)
    p.add_argument("--max-pixels", type=int, default=1 << 21)
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/refine_ablation.json"))
    args = p.parse_args()
    if not args.corpus.exists():
        raise SystemExit(f"{args.corpus} not found")
    torch.set_num_threads(1)
    methods = {name: cls(device="cpu", use_refinement=refined, use_block_phase=phase, use_surprise=surprise)
               for name, (cls, refined, phase, surprise) in VARIANTS.items()}
    start = time.perf_counter()
    images = []
    for path, plane, bits in pick(args.corpus, args.per_group, args.max_pixels):
        row = {"file": str(path.relative_to(args.corpus)), "group": f"{bits if bits > 8 else 8}-bit",
               "folder": str(path.parent.relative_to(args.corpus)), "pixels": int(plane.size)}
        for name, method in methods.items():
            streams, decoded, encode_s, decode_s = round_trip(method, plane, bits)
            if not np.array_equal(decoded, plane):
                raise SystemExit(f"{name} round trip failed on {path}")
            meta = unpack_side_info(streams[0].payload)
            row[name] = {"bpp": 8 * sum(len(s.payload) for s in streams) / plane.size,
                         "encode_s": round(encode_s, 3), "decode_s": round(decode_s, 3),
                         "refined_sets": sum(r is not None for r in meta.get("refine", [])),
                         "phase_sets": sum(o is not None for o in meta.get("phase", [])),
                         "surprise_sets": sum(o is not None for o in meta.get("surprise", []))}
        print(row["file"], " ".join(f"{n} {row[n]['bpp']:.4f}" for n in VARIANTS), flush=True)
        images.append(row)
    summary = []
    for key in ("folder", "group", None):
        for name in sorted({r[key] for r in images} if key else {"all"}):
            chosen = [r for r in images if key is None or r[key] == name]
            pixels = sum(r["pixels"] for r in chosen)
            bpp = {v: sum(r[v]["bpp"] * r["pixels"] for r in chosen) / pixels for v in VARIANTS}
            seconds = {v: {s: sum(r[v][s] for r in chosen) for s in ("encode_s", "decode_s")} for v in VARIANTS}
            summary.append({"by": key or "overall", "name": name, "images": len(chosen), "pixels": pixels,
                            "bpp": {v: round(b, 4) for v, b in bpp.items()},
                            **{step: {m: round(bpp[m + on] / bpp[m + off], 4) for m in ("fast", "slow")}
                               for step, (on, off) in STEPS.items()},
                            "seconds": seconds})
    out = {"command": " ".join(["python"] + sys.argv), "model": DEFAULT_MODEL, "seconds": round(time.perf_counter() - start, 1),
           "summary": summary, "images": images}
    args.out.write_text(json.dumps(out, indent=1) + "\n")
    for s in summary:
        print(f"{s['by']:8s} {s['name']:28s}" + "".join(
            f"  {m} {s['bpp'][m]:.4f}" + "".join(f" -> {step.split('_')[0]} {s['bpp'][m + on]:.4f} ({s[step][m]:.4f})"
                                                   for step, (on, _) in STEPS.items())
            for m in ("fast", "slow")))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
