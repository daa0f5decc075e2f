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

import json
import sys
import time
from pathlib import Path


ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from medcodec.pipelines.subimage import DEFAULT_MODEL, FastMethod, SlowMethod  # noqa: E402
from medcodec.pipelines.base import unpack_side_info  # noqa: E402
from method_runs import coded_planes, groupings, plane_ablation_arguments  # noqa: E402

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


def main() -> None:
    args = plane_ablation_arguments(__doc__, Path("benchmarks/results/refine_ablation.json"))
    methods = {name: cls(device="cpu", use_refinement=refined, use_block_phase=phase, use_surprise=surprise)
               for name, (cls, refined, phase, surprise) in VARIANTS.items()}
    start = time.perf_counter()
    images = []
    for row, plane, bits, coded in coded_planes(args, methods):
        for name, (streams, encode_s, decode_s) in coded.items():
            meta = unpack_side_info(streams[0].payload)
            row[name] = {"bpp": 8 * sum(len(s.payload) for s in streams) / plane.size,
                         "encode_s": round(encode_s, 3), "decode_s": round(decode_s, 3),
                         "refined_sets": sum(r is not None for r in meta.get("refine", [])),
                         "phase_sets": sum(o is not None for o in meta.get("phase", [])),
                         "surprise_sets": sum(o is not None for o in meta.get("surprise", []))}
        print(row["file"], " ".join(f"{n} {row[n]['bpp']:.4f}" for n in VARIANTS), flush=True)
        images.append(row)
    summary = []
    for by, name, chosen in groupings(images):
        pixels = sum(r["pixels"] for r in chosen)
        bpp = {v: sum(r[v]["bpp"] * r["pixels"] for r in chosen) / pixels for v in VARIANTS}
        seconds = {v: {s: sum(r[v][s] for r in chosen) for s in ("encode_s", "decode_s")} for v in VARIANTS}
        summary.append({"by": by, "name": name, "images": len(chosen), "pixels": pixels,
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
