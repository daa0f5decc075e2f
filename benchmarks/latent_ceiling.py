"""How far can LVPNet's scheme go? Its ceiling, with JPEG-XL's own lossy coder standing in for the latent.

LVPNet codes an image as a latent z (at some rate) plus every pixel coded independently given z: the
pixels' code length is that of the residual x - x_hat under per-pixel distributions computed from z
alone, with no pixel's neighbours as context. Whatever z is, the scheme pays

    bits(z) + bits(x | x_hat), each pixel coded on its own

for the reconstruction x_hat a latent of that rate allows. This puts a far stronger latent than a 2-core
CPU can train in z's place - JPEG-XL's VarDCT lossy coder (effort 7) at a sweep of distances - and codes
x - x_hat as generously as a factorised coder could: a discretised Laplace of mean 0 whose scale is the
best of a fine grid for each 8 x 8 block (as if z had told it exactly), its index costed at the chosen
indices' order-0 entropy. The least total over the sweep, against JPEG-XL e9 lossless on the same plane,
says whether a better-trained or larger latent network (GPU scale) could make the latent mode beat
JPEG-XL, or whether the scheme itself stops short of it. It is an estimate, not a bound: a learned latent
could spend fewer bits than VarDCT on the same reconstruction, so the summary also gives the total were
the latent's bits LATENT_DISCOUNT of JPEG-XL's (the best trade recomputed over the sweep), and what the
shipped latent model (LVPNet, models/latent-v2) itself codes each plane in (its z and residual streams,
round trip checked). Defaults to the train split: it decides a design, it does not report a result.

    python benchmarks/latent_ceiling.py [--corpus ../shared/corpus/train] [--per-group 3]
        [--out benchmarks/results/latent_ceiling.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import imagecodecs
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from latent_ablation import code_latent, latent_method  # noqa: E402
from medcodec.bench.codecs import CODECS, REFERENCE, as_codec_dtype  # noqa: E402
from method_runs import groupings, pick  # noqa: E402

DISTANCES = (0.01, 0.02, 0.035, 0.05, 0.1, 0.15, 0.2, 0.3, 0.45, 0.6, 0.8, 1.0, 1.4, 2.0, 3.0, 4.5, 6.0)
BLOCK = 8
SHIPPED_LATENT = "models/latent-v2.warm-start.pt"  # the latent mode's weights, in training form
SCALES = np.exp(np.linspace(np.log(0.05), np.log(2000.0), 64))  # Laplace b, in samples
LATENT_DISCOUNT = 0.75  # a learned lossy coder a quarter cheaper than VarDCT at equal reconstruction
TAIL_BITS = 60.0  # cost cap for a residual the table's probability floor cannot express


def laplace_bits(scale: float, values: np.ndarray) -> np.ndarray:
    """-log2 P(r) of integers r under a Laplace of mean 0 and scale b discretised to unit bins."""
    lower = np.abs(values) - 0.5
    # P(r) = (exp(-(|r| - 0.5) / b) - exp(-(|r| + 0.5) / b)) / 2 for r != 0, 1 - exp(-0.5 / b) for r == 0
    mass = np.where(values == 0, -np.expm1(-0.5 / scale),
                    0.5 * np.exp(-np.maximum(lower, 0) / scale) * -np.expm1(-1.0 / scale))
    return np.minimum(-np.log2(np.maximum(mass, 1e-300)), TAIL_BITS)


def entropy_bits(symbols: np.ndarray) -> float:
    counts = np.bincount(symbols.ravel())
    counts = counts[counts > 0].astype(float)
    return float(-(counts * np.log2(counts / counts.sum())).sum())


def factorised_residual_bits(residual: np.ndarray) -> tuple[float, float]:
    """(bits of the residual under the best Laplace scale per 8 x 8 block, bits of the scale indices)."""
    height, width = residual.shape
    pad_h, pad_w = -height % BLOCK, -width % BLOCK
    valid = np.pad(np.ones_like(residual, dtype=bool), ((0, pad_h), (0, pad_w)))
    padded = np.pad(residual, ((0, pad_h), (0, pad_w)))
    values, inverse = np.unique(padded, return_inverse=True)
    inverse = inverse.reshape(padded.shape)
    blocks_h, blocks_w = padded.shape[0] // BLOCK, padded.shape[1] // BLOCK
    mask = valid.reshape(blocks_h, BLOCK, blocks_w, BLOCK)
    best = np.full((blocks_h, blocks_w), np.inf)
    index = np.zeros((blocks_h, blocks_w), dtype=np.int64)
    for s, scale in enumerate(SCALES):
        per_pixel = laplace_bits(scale, values)[inverse].reshape(blocks_h, BLOCK, blocks_w, BLOCK)
        cost = (per_pixel * mask).sum(axis=(1, 3))
        better = cost < best
        best[better], index[better] = cost[better], s
    return float(best.sum()), entropy_bits(index)


def lossy_point(plane: np.ndarray, bits: int, distance: float) -> dict:
    kwargs = {} if bits <= 8 else {"bitspersample": bits}
    stream = imagecodecs.jpegxl_encode(as_codec_dtype(plane, bits), distance=distance, effort=7, **kwargs)
    decoded = imagecodecs.jpegxl_decode(stream).astype(np.int64).reshape(plane.shape)
    residual = plane.astype(np.int64) - np.clip(decoded, 0, (1 << bits) - 1)
    residual_bits, scale_bits = factorised_residual_bits(residual)
    return {"distance": distance, "latent_bits": 8 * len(stream), "residual_bits": residual_bits,
            "scale_bits": scale_bits, "rms": float(np.sqrt(np.mean(residual.astype(float) ** 2))),
            "total_bits": 8 * len(stream) + residual_bits + scale_bits}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=ROOT.parent / "shared" / "corpus" / "train")
    parser.add_argument("--per-group", type=int, default=3)
    parser.add_argument("--max-pixels", type=int, default=1 << 21)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "latent_ceiling.json")
    args = parser.parse_args()
    started = time.time()
    lvpnet, lvpnet_info = latent_method(ROOT / SHIPPED_LATENT)
    lvpnet_info["checkpoint"] = SHIPPED_LATENT
    images = []
    for path, plane, bits in pick(args.corpus, args.per_group, args.max_pixels):
        shipped = code_latent(lvpnet, plane, bits)
        # JPEG-XL's distance is relative to the nominal range: code the plane from its least value in the
        # bits its span needs (as medcodec normalises a plane), lossless reference and lossy latent alike
        plane = plane.astype(np.int64) - int(plane.min())
        group = f"{bits if bits > 8 else 8}-bit"
        bits = max(8, int(plane.max()).bit_length())
        reference = len(CODECS[REFERENCE].encode(plane, bits))  # the bench's JPEG-XL e9 adapter
        points = [lossy_point(plane, bits, d) for d in DISTANCES]
        best = min(points, key=lambda p: p["total_bits"])
        row = {"file": str(path.relative_to(args.corpus)), "folder": str(path.parent.relative_to(args.corpus)),
               "group": group, "span_bits": bits, "pixels": int(plane.size),
               "jxl9_lossless_bits": 8 * reference, "lvpnet_bits": shipped["total_bpp"] * plane.size,
               "lvpnet_z_bits": shipped["z_bpp"] * plane.size, "best": best, "sweep": points}
        images.append(row)
        print(f"{row['file'][:48]:48s} {bits:2d} bit  JPEG-XL e9 {8 * reference / plane.size:6.3f} bpp  "
              f"ceiling {best['total_bits'] / plane.size:6.3f} bpp at d={best['distance']} "
              f"({best['total_bits'] / (8 * reference):.3f} x)  LVPNet {shipped['total_bpp']:6.3f}", flush=True)
    summary = []
    for by, name, rows in groupings(images):
        pixels = sum(r["pixels"] for r in rows)
        ceiling = sum(r["best"]["total_bits"] for r in rows)
        reference = sum(r["jxl9_lossless_bits"] for r in rows)
        discounted = sum(min(LATENT_DISCOUNT * p["latent_bits"] + p["residual_bits"] + p["scale_bits"]
                             for p in r["sweep"]) for r in rows)
        summary.append({"by": by, "name": name, "images": len(rows), "ceiling_bpp": ceiling / pixels,
                        "jxl9_bpp": reference / pixels, "ratio": ceiling / reference,
                        "ratio_latent_discounted": discounted / reference,
                        "lvpnet_ratio": sum(r["lvpnet_bits"] for r in rows) / reference,
                        "latent_share": sum(r["best"]["latent_bits"] for r in rows) / ceiling})
        print(f"{by:8s} {name:24s} {len(rows):3d} images  ceiling {ceiling / pixels:6.3f} bpp  "
              f"JPEG-XL e9 {reference / pixels:6.3f}  ratio {ceiling / reference:.3f} "
              f"({discounted / reference:.3f} at {LATENT_DISCOUNT} x the latent's bits)  "
              f"LVPNet {sum(r['lvpnet_bits'] for r in rows) / reference:.3f}")
    args.out.write_text(json.dumps({
        "command": "python benchmarks/latent_ceiling.py " + " ".join(sys.argv[1:]),
        "corpus": str(args.corpus), "lvpnet": lvpnet_info, "distances": list(DISTANCES), "block": BLOCK,
        "latent_discount": LATENT_DISCOUNT,
        "scales": [float(SCALES[0]), float(SCALES[-1]), len(SCALES)], "seconds": round(time.time() - started, 1),
        "summary": summary, "images": images}, indent=1) + "\n")


if __name__ == "__main__":
    main()
