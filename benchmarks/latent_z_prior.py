"""How much a better model for the latent z could save, measured before building one (issue 5's
"learned prior for z instead of static Huffman").

z is coded by the spine's canonical Huffman coder, its code lengths in the stream. On the latent
ablation's subset of the test corpus (first plane, evenly spaced files per folder), for the shipped
latent model, this prints per image and per folder:

* huffman: bits of the LATENT_Z stream as coded (table included),
* iid: the empirical order-0 entropy of the image's own z, times its size - no memoryless model of z,
  learned or adapted, codes it in fewer bits (and this bound pays no table),
* per_channel: the same per latent channel (the bound for a per-channel factorised prior such as
  CompressAI's EntropyBottleneck),
* context: the empirical entropy of z given (channel, left neighbour, upper neighbour), each neighbour
  clipped to [-4, 4] - an optimistic stand-in for a learned context model (fitted on the image it
  codes, no cost for its parameters),
* residual: the residual streams' bits; every share is of the plane's latent-mode bits (z + residual).

    python benchmarks/latent_z_prior.py [--corpus ../shared/corpus/test] [--per-group 3] [--out JSON]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from medcodec.container.format import SectionKind
from medcodec.io.source import load
from medcodec.pipelines import split as sp
from medcodec.pipelines.latent import DEFAULT_MODEL, LatentMethod
from latent_ablation import CORPUS, pick_images

CONTEXT_CLIP = 4


def empirical_bits(symbols: np.ndarray) -> float:
    """Code length of symbols under their own empirical distribution (bits)."""
    _, counts = np.unique(symbols, return_counts=True)
    return float(-(counts * np.log2(counts / symbols.size)).sum())


def conditional_bits(symbols: np.ndarray, contexts: np.ndarray) -> float:
    """sum over contexts of the empirical entropy of the symbols seen in that context (bits)."""
    total = 0.0
    order = np.argsort(contexts, kind="stable")
    ctx, sym = contexts[order], symbols[order]
    bounds = np.flatnonzero(np.diff(ctx)) + 1
    for part in np.split(sym, bounds):
        total += empirical_bits(part)
    return total


def z_bounds(z: np.ndarray) -> dict[str, float]:
    """Bits of z [C, h, w] under the bounds listed in the module docstring."""
    channels = z.shape[0]
    left = np.clip(np.pad(z, ((0, 0), (0, 0), (1, 0)))[:, :, :-1], -CONTEXT_CLIP, CONTEXT_CLIP) + CONTEXT_CLIP
    up = np.clip(np.pad(z, ((0, 0), (1, 0), (0, 0)))[:, :-1, :], -CONTEXT_CLIP, CONTEXT_CLIP) + CONTEXT_CLIP
    span = 2 * CONTEXT_CLIP + 1
    channel = np.broadcast_to(np.arange(channels)[:, None, None], z.shape)
    context = (channel * span + left) * span + up
    return {"iid": empirical_bits(z.ravel()),
            "per_channel": sum(empirical_bits(z[c].ravel()) for c in range(channels)),
            "context": conditional_bits(z.ravel(), context.ravel())}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--per-group", type=int, default=3)
    p.add_argument("--max-pixels", type=int, default=1 << 20)
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/latent_z_prior.json"))
    p.add_argument("--corpus", type=Path, default=CORPUS)
    args = p.parse_args()
    if not args.corpus.exists():
        raise SystemExit(f"{args.corpus} not found")
    torch.set_num_threads(1)
    method = LatentMethod(device="cpu")
    rows = []
    for group, path in pick_images(args.per_group, args.max_pixels, args.corpus):
        src = load(path)
        plane, bits = src.planes[0], src.bits
        streams = method.encode(plane, bits)
        # the z the encoder sent, recomputed as LatentMethod.encode computes it
        norm = sp.Normalisation.of(int(plane.min()), int(plane.max()))
        z = method.predictor.latent(sp.normalise(torch.from_numpy(plane.astype(np.int64)), norm.lo, norm.shift))
        row = {"group": group, "file": str(path.relative_to(args.corpus)), "pixels": int(plane.size), "z_values": int(z.size),
               "huffman": 8 * sum(len(s.payload) for s in streams if s.kind == SectionKind.LATENT_Z),
               "residual": 8 * sum(len(s.payload) for s in streams if s.kind == SectionKind.RESIDUAL),
               **z_bounds(z)}
        rows.append(row)
        print(json.dumps(row), flush=True)
    summary = {}
    for key in sorted({r["group"] for r in rows}) + ["all"]:
        rs = [r for r in rows if key in ("all", r["group"])]
        total = sum(r["huffman"] + r["residual"] for r in rs)
        summary[key] = {"images": len(rs), "z_share": sum(r["huffman"] for r in rs) / total,
                        **{f"saving_{k}": sum(r["huffman"] - r[k] for r in rs) / total
                           for k in ("iid", "per_channel", "context")}}
    print(f"{'group':<18}{'images':>7}{'z share':>9}{'iid':>9}{'channel':>9}{'context':>9}   (saving, share of latent bits)")
    for key, s in summary.items():
        print(f"{key:<18}{s['images']:>7}{s['z_share']:>9.2%}{s['saving_iid']:>9.2%}"
              f"{s['saving_per_channel']:>9.2%}{s['saving_context']:>9.2%}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"command": " ".join(["python"] + sys.argv), "model": DEFAULT_MODEL,
                                    "summary": summary, "images": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
