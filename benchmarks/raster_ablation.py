"""Raster-order coding (medcodec/pipelines/raster/) against the fast path's own streams and JPEG-XL
effort 9, plane by plane: where each wins, and what raster costs in time; and raster without its
learned correction (raster.method.CORRECTION_MODEL), what the network saves; raster without its learned scale
(raster.method.SCALE_MODEL: the linear scale sum's buckets only), what that network saves; raster with the learned
scale that also sees a wide window (raster.method.WINDOW_SCALE_MODEL) instead, what it saves more and costs to decode;
and raster with the slow mode's larger correction (codec.raster_corrections("slow")[0]), what it saves more and
costs. Stream bytes only (no
container; methods driven directly, so no fallback hides a coding), every coding verified by decoding it.

    python benchmarks/raster_ablation.py [--corpus ../shared/corpus/test] [--per-group 4]
        [--out benchmarks/results/raster_ablation.json]

Planes: the first plane of up to --per-group files (evenly spaced) of every folder, of at most
--max-pixels pixels (as benchmarks/refine_ablation.py picks them). Run it on the train split to design,
on the test split to report.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path


ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from medcodec.codec import raster_corrections  # noqa: E402
from medcodec.pipelines.classical import jpegxl_encode_plane  # noqa: E402
from medcodec.pipelines.raster.method import WINDOW_SCALE_MODEL, RasterMethod  # noqa: E402
from medcodec.pipelines.subimage import DEFAULT_MODEL, FastMethod  # noqa: E402
from method_runs import coded_planes, groupings, plane_ablation_arguments  # noqa: E402

CODINGS = ("raster", "raster-plain", "raster-linear", "raster-window", "raster-slow", "fast", "jxl9")
VARIANTS = ("raster-plain", "raster-linear", "raster-window", "raster-slow")  # not candidates for the fast mode's winner


def main() -> None:
    args = plane_ablation_arguments(__doc__, Path("benchmarks/results/raster_ablation.json"))
    methods = {"raster": RasterMethod(), "raster-plain": RasterMethod(use_correction=False),
               "raster-linear": RasterMethod(use_scale=False),
               "raster-window": RasterMethod(scale_models=(WINDOW_SCALE_MODEL,)),
               "raster-slow": RasterMethod(correction_model=raster_corrections("slow")[0]),
               "fast": FastMethod(device="cpu")}
    start = time.perf_counter()
    images = []
    for row, plane, bits, coded in coded_planes(args, methods):
        for name, (streams, encode_s, decode_s) in coded.items():
            row[name] = {"bytes": sum(len(s.payload) for s in streams),
                         "encode_s": round(encode_s, 3), "decode_s": round(decode_s, 3)}
        t = time.perf_counter()
        row["jxl9"] = {"bytes": len(jpegxl_encode_plane(plane, bits, 9)), "encode_s": round(time.perf_counter() - t, 3)}
        row["winner"] = min((c for c in CODINGS if c not in VARIANTS), key=lambda c: row[c]["bytes"])
        print(row["file"], " ".join(f"{c} {8 * row[c]['bytes'] / plane.size:.4f}" for c in CODINGS), row["winner"],
              flush=True)
        images.append(row)
    summary = []
    for by, name, chosen in groupings(images):
        pixels = sum(r["pixels"] for r in chosen)
        size = {c: sum(r[c]["bytes"] for r in chosen) for c in CODINGS}
        summary.append({"by": by, "name": name, "images": len(chosen), "pixels": pixels,
                        "bpp": {c: round(8 * size[c] / pixels, 4) for c in CODINGS},
                        "raster_vs_jxl9": round(size["raster"] / size["jxl9"], 4),
                        "raster_vs_fast": round(size["raster"] / size["fast"], 4),
                        "correction": round(size["raster"] / size["raster-plain"], 4),
                        "learned_scale": round(size["raster"] / size["raster-linear"], 4),
                        "window_scale": round(size["raster-window"] / size["raster"], 4),
                        "slow_correction": round(size["raster-slow"] / size["raster-plain"], 4),
                        "raster_wins": sum(r["winner"] == "raster" for r in chosen),
                        "raster_mp_per_s": {s: round(pixels / 1e6 / sum(r["raster"][s] for r in chosen), 3)
                                            for s in ("encode_s", "decode_s")},
                        **{f"{c.replace('-', '_')}_mp_per_s": {s: round(pixels / 1e6 / sum(r[c][s] for r in chosen), 3)
                                                                for s in ("encode_s", "decode_s")} for c in VARIANTS}})
    out = {"command": " ".join(["python"] + sys.argv), "model": DEFAULT_MODEL,
           "seconds": round(time.perf_counter() - start, 1), "summary": summary, "images": images}
    args.out.write_text(json.dumps(out, indent=1) + "\n")
    for s in summary:
        print(f"{s['by']:8s} {s['name']:28s} n={s['images']:2d} " + " ".join(f"{c} {s['bpp'][c]:.4f}" for c in CODINGS)
              + f"  raster/jxl9 {s['raster_vs_jxl9']:.3f} raster/fast {s['raster_vs_fast']:.3f}"
              f" correction {s['correction']:.4f} learned scale {s['learned_scale']:.4f}"
              f" window scale {s['window_scale']:.4f} slow correction {s['slow_correction']:.4f}"
              f" wins {s['raster_wins']}  raster enc/dec MP/s {s['raster_mp_per_s']['encode_s']}"
              f"/{s['raster_mp_per_s']['decode_s']}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
