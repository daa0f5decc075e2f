"""What the slow path's test-time ensemble (``medcodec/pipelines/ensemble.py``) buys: every learned
path's stream bytes and times with its passes as one network run or as the integer mean over flips
(and, for D, transposes) of the context.

Variants ``fast`` / ``slow`` with (first pass, LC-L pass) ensemble sizes, e.g. ``slow 8x2``: slow's
first passes over 8 transforms for D (4 for B and C: their transposes would swap roles), its LC-L
passes over identity and the up-down flip; each subimage keeps its ensemble where it saves at least
0.1 % of its bytes, or the share named (``slow 8x2 >=1%``: the shipped slow mode). Per plane the smaller of the method's alternatives (the slow
path also offers its fast layout, as the codec does), each verified by decoding it; stream bytes only
(methods driven directly, so no classical fallback hides a learned stream). Defaults to the train
split: it decides a design.

    python benchmarks/ensemble_ablation.py [--corpus ../shared/corpus/train] [--per-group 2]
        [--out benchmarks/results/ensemble_ablation.json]
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
from method_runs import pick  # noqa: E402

# name -> (method, (first pass, LC-L pass) ensemble sizes, least share of a subimage's bytes it must save)
VARIANTS = {"fast 1": (FastMethod, (1, 1), 0.001), "fast 4": (FastMethod, (4, 1), 0.001),
            "fast 8": (FastMethod, (8, 1), 0.001), "slow 1x1": (SlowMethod, (1, 1), 0.001),
            "slow 4x2": (SlowMethod, (4, 2), 0.001), "slow 8x2": (SlowMethod, (8, 2), 0.001),
            "slow 8x2 >=0.3%": (SlowMethod, (8, 2), 0.003), "slow 8x2 >=1%": (SlowMethod, (8, 2), 0.01)}


def build(name: str):
    cls, sizes, min_gain = VARIANTS[name]
    method = cls(device="cpu", ensemble_sizes=sizes)
    method.ensemble_min_gain = min_gain
    return method


def smallest_round_trip(method, decoders: dict, plane: np.ndarray, bits: int):
    """(bytes, encode s, decode s) of the method's smallest alternative, decoded (by the decoder of that
    alternative's layout: the ensemble sizes are in the streams) and compared."""
    start = time.perf_counter()
    alternatives = method.encode_alternatives(plane, bits)
    encode_s = time.perf_counter() - start
    layout, streams = min(alternatives, key=lambda a: sum(len(s.payload) for s in a[1]))
    start = time.perf_counter()
    decoded = decoders[layout].decode(streams, plane.shape, bits)
    decode_s = time.perf_counter() - start
    if not np.array_equal(decoded, plane):
        raise SystemExit("round trip failed")
    return sum(len(s.payload) for s in streams), encode_s, decode_s


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--corpus", type=Path, default=ROOT.parent / "shared" / "corpus" / "train")
    p.add_argument("--per-group", type=int, default=2)
    p.add_argument("--max-pixels", type=int, default=1 << 19)
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "ensemble_ablation.json")
    args = p.parse_args()
    if not args.corpus.exists():
        raise SystemExit(f"{args.corpus} not found")
    torch.set_num_threads(1)
    methods = {name: build(name) for name in args.variants}
    decoders = {"fast": FastMethod(device="cpu"), "slow": SlowMethod(device="cpu")}
    start = time.perf_counter()
    images = []
    totals = collections.defaultdict(collections.Counter)
    for path, plane, bits in pick(args.corpus, args.per_group, args.max_pixels):
        folder = str(path.parent.relative_to(args.corpus))
        row = {"file": str(path.relative_to(args.corpus)), "bits": bits, "pixels": int(plane.size), "results": {}}
        for name, method in methods.items():
            size, encode_s, decode_s = smallest_round_trip(method, decoders, plane, bits)
            row["results"][name] = {"bytes": size, "encode_s": round(encode_s, 3), "decode_s": round(decode_s, 3)}
            for group in (folder.split("/")[0] if not folder.startswith("png8") else folder,
                          f"{bits if bits > 8 else 8}-bit", "all"):
                totals[group].update({f"{name} bytes": size, f"{name} encode_s": encode_s,
                                      f"{name} decode_s": decode_s})
                totals[group]["pixels"] += plane.size if name == args.variants[0] else 0
        images.append(row)
        print(row["file"], " ".join(f"{n} {r['bytes']}" for n, r in row["results"].items()), flush=True)
    single = {n: "fast 1" if n.startswith("fast") else "slow 1x1" for n in args.variants}  # each one's plain pass
    summary = {}
    for group, t in sorted(totals.items()):
        summary[group] = {"pixels": t["pixels"], "bpp": {n: round(8 * t[f"{n} bytes"] / t["pixels"], 4) for n in args.variants},
                          "ratio": {n: round(t[f"{n} bytes"] / t[f"{single[n]} bytes"], 4)
                                    for n in args.variants if single[n] in args.variants},
                          "decode_mp_s": {n: round(t["pixels"] / 1e6 / max(t[f"{n} decode_s"], 1e-9), 3) for n in args.variants},
                          "encode_mp_s": {n: round(t["pixels"] / 1e6 / max(t[f"{n} encode_s"], 1e-9), 3) for n in args.variants}}
    out = {"command": " ".join(["python"] + sys.argv), "corpus": str(args.corpus), "model": DEFAULT_MODEL,
           "seconds": round(time.perf_counter() - start, 1), "summary": summary, "images": images}
    args.out.write_text(json.dumps(out, indent=1) + "\n")
    for group, s in summary.items():
        print(f"{group:22s}", "  ".join(f"{n}: {s['bpp'][n]:.4f} ({s['ratio'].get(n, float('nan')):.4f}, "
                                        f"dec {s['decode_mp_s'][n]:.2f} MP/s)" for n in args.variants))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
