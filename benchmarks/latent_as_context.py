"""Would the latent z pay as extra context for the subimage path? (issue 5's "using z as extra context
for the subimage path"), measured before building it.

The fast path codes D, B and C with per-pixel (mu, ell) from LC-H, calibrated, refined from the
neighbours and offset by block phase (``FastMethod.model_set``). z would add LVPNet's prediction of
every pixel from z alone (``LatentPredictor.predict``). This measures, per coded set, the ideal code
length of the fast path's own model against two ways of using that prediction on top of it, each
fitted on the set it codes (optimistic: no side information counted but 16 offset pairs for the bins):

* blend: mu + floor(w * (mu_z - mu) / 256), the best w of 1..64 (per set),
* bins: scale and mean offsets per bit length of |mu_z - mu| (the two predictions' disagreement as a
  confidence signal; ``residual_model.search_class_adjustments``),

and the bits z itself would cost (its Huffman stream, as the latent mode codes it). Defaults to the
train split: it decides a design, it does not report a result.

    python benchmarks/latent_as_context.py [--corpus ../shared/corpus/train] [--per-group 2]
        [--out benchmarks/results/latent_as_context.json]
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from medcodec.entropy import huffman  # noqa: E402
from medcodec.entropy import residual_model as rm  # noqa: E402
from medcodec.pipelines import split as sp  # noqa: E402
from medcodec.pipelines.latent import LatentMethod  # noqa: E402
from medcodec.pipelines.subimage import FastMethod  # noqa: E402
from method_runs import pick  # noqa: E402

BLEND_WEIGHTS = (1, 2, 4, 8, 16, 32, 64)  # in 1/256
BINS = 16
BIN_SIDE_BITS = BINS * 12  # about what 16 offset pairs add to the packed side information


def fast_set_models(fast: FastMethod, plane: np.ndarray):
    """(target, valid mask, SetModel) of D, B, C as the fast path codes them."""
    height, width = plane.shape
    norm = sp.Normalisation.of(int(plane.min()), int(plane.max()))
    subs = sp.split(torch.from_numpy(plane.astype(np.int64)), fill=norm.lo)
    normalised = {k: sp.normalise(v, norm.lo, norm.shift) for k, v in subs.items()}
    for target in sp.PREDICTED:
        valid = sp.valid_mask(height, width, target).numpy()
        first = fast.predictor.predict(target, normalised, norm)
        yield target, valid, fast.model_set(target, subs, subs[target].numpy(), valid, [(None, first)], None)


def latent_prediction(latent: LatentMethod, plane: np.ndarray) -> tuple[np.ndarray, int]:
    """(LVPNet's mu of every pixel from z alone, [H, W] in 1/16 samples; bits of z's Huffman stream)."""
    norm = sp.Normalisation.of(int(plane.min()), int(plane.max()))
    z = latent.predictor.latent(sp.normalise(torch.from_numpy(plane.astype(np.int64)), norm.lo, norm.shift))
    mu, _ = latent.predictor.predict(z, plane.shape, norm)
    return mu.reshape(plane.shape).astype(np.int64), 8 * len(huffman.huffman_encode(z))


def set_bits(model, mu_z: np.ndarray) -> dict[str, float]:
    base = rm.ideal_cost_bits(model.values, rm.pixel_params(model.mu, model.ell))
    blend = min([base] + [rm.ideal_cost_bits(model.values, rm.pixel_params(
        model.mu + np.floor_divide(w * (mu_z - model.mu), 256), model.ell)) for w in BLEND_WEIGHTS])
    disagreement = np.minimum(np.frexp(np.abs(mu_z - model.mu).astype(np.float64))[1], BINS - 1).astype(np.int64)
    found = rm.search_class_adjustments(model.values, model.mu, model.ell, disagreement, BINS)
    bins = min(base, sum(a.bits for a in found) + BIN_SIDE_BITS)
    return {"fast": base, "blend": blend, "bins": bins}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--corpus", type=Path, default=ROOT.parent / "shared" / "corpus" / "train")
    p.add_argument("--per-group", type=int, default=2)
    p.add_argument("--max-pixels", type=int, default=1 << 21)
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/latent_as_context.json"))
    args = p.parse_args()
    if not args.corpus.exists():
        raise SystemExit(f"{args.corpus} not found")
    torch.set_num_threads(1)
    fast, latent = FastMethod(device="cpu"), LatentMethod(device="cpu")
    rows = []
    for path, plane, _bits in pick(args.corpus, args.per_group, args.max_pixels):
        mu_z, z_bits = latent_prediction(latent, plane)
        totals = collections.Counter()
        for target, valid, model in fast_set_models(fast, plane):
            rows_, cols = np.nonzero(valid)
            r0, c0 = sp.PHASE[target]
            totals.update(set_bits(model, mu_z[2 * rows_ + r0, 2 * cols + c0]))
        row = {"file": str(path.relative_to(args.corpus)), "group": str(path.parent.relative_to(args.corpus)),
               "pixels": int(plane.size), "z_bits": z_bits, **{k: round(v, 1) for k, v in totals.items()}}
        rows.append(row)
        print(f"{row['file'][:48]:<48} D+B+C {row['fast'] / plane.size:.3f} bpp; saved: blend "
              f"{1 - row['blend'] / row['fast']:.2%}, bins {1 - row['bins'] / row['fast']:.2%}; "
              f"z costs {row['z_bits'] / row['fast']:.2%}", flush=True)
    summary = {}
    for key in sorted({r["group"] for r in rows}) + ["all"]:
        rs = [r for r in rows if key in ("all", r["group"])]
        fast_bits = sum(r["fast"] for r in rs)
        summary[key] = {"images": len(rs), "saving_blend": 1 - sum(r["blend"] for r in rs) / fast_bits,
                        "saving_bins": 1 - sum(r["bins"] for r in rs) / fast_bits,
                        "z_cost": sum(r["z_bits"] for r in rs) / fast_bits}
    print(f"{'group':<32}{'images':>7}{'blend':>9}{'bins':>9}{'z costs':>9}   (share of the D+B+C bits)")
    for key, s in summary.items():
        print(f"{key:<32}{s['images']:>7}{s['saving_blend']:>9.2%}{s['saving_bins']:>9.2%}{s['z_cost']:>9.2%}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"command": " ".join(["python"] + sys.argv), "summary": summary,
                                    "images": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
