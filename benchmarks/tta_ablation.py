"""Would test-time augmentation pay? The fast path's D, B and C predicted as the mean of the integer
network's (mu, scale index) over flips (and, for D, transposes) of the context, measured before
building it.

A convolutional predictor trained with flip/transpose augmentation gives a valid prediction on a
flipped input; averaging them is an ensemble without new weights (integer sums, floor division: it
would stay exact). The flips must keep the 2x2 split's geometry: flipping the full-resolution plane
left-right sends even columns to odd ones, so the planes of even full-resolution columns (A, C) are
flipped and shifted one column, those of odd columns (B, D) only flipped; likewise for rows. A
transpose keeps D's neighbourhood (the four diagonal A pixels) but swaps the roles of B and C, so only
D gets the transposed variants. The slow path's LC-L pass is left alone (a flip moves its known
columns).

Per plane, the residual streams' bytes of the fast encoder with the plain prediction and with the
mean over 2 (identity, left-right), 4 (all flips) and 8 (D: flips x transpose) variants; the rest of
the path (calibration, refinement, block-phase offsets) unchanged. Encoder streams only: the shipped
decoder does not implement the averaging. Defaults to the train split: it decides a design.

    python benchmarks/tta_ablation.py [--corpus ../shared/corpus/train] [--per-group 3]
        [--out benchmarks/results/tta_ablation.json]
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

from medcodec.container.format import SectionKind  # noqa: E402
from medcodec.pipelines.subimage import FastMethod, SubimagePredictor  # noqa: E402
from refine_ablation import pick  # noqa: E402

# which subimage planes sit on even full-resolution columns / rows (split.PHASE)
EVEN_COLUMN = {"A": True, "C": True, "B": False, "D": False}
EVEN_ROW = {"A": True, "B": True, "C": False, "D": False}
FLIPS = ((False, False, False), (True, False, False), (False, True, False), (True, True, False))
TRANSPOSED = tuple((h, v, True) for h, v, _ in FLIPS)


def _shift(grid: torch.Tensor, dim: int, forward: bool) -> torch.Tensor:
    """One step along dim, the edge replicated: forward x[i] <- x[i-1], backward x[i] <- x[i+1]."""
    n = grid.shape[dim]
    if forward:
        return torch.cat([grid.narrow(dim, 0, 1), grid.narrow(dim, 0, n - 1)], dim)
    return torch.cat([grid.narrow(dim, 1, n - 1), grid.narrow(dim, n - 1, 1)], dim)


def transform(name: str, grid: torch.Tensor, transform_: tuple[bool, bool, bool]) -> torch.Tensor:
    """Subimage ``name``'s grid as it lies in the flipped / transposed full-resolution plane."""
    left_right, up_down, transpose = transform_
    if transpose:
        grid = grid.transpose(-1, -2)
    if left_right:
        grid = grid.flip(-1)
        grid = _shift(grid, -1, True) if EVEN_COLUMN[name] else grid
    if up_down:
        grid = grid.flip(-2)
        grid = _shift(grid, -2, True) if EVEN_ROW[name] else grid
    return grid.contiguous()


def untransform(name: str, grid: torch.Tensor, transform_: tuple[bool, bool, bool]) -> torch.Tensor:
    left_right, up_down, transpose = transform_
    if up_down:
        grid = _shift(grid, -2, False) if EVEN_ROW[name] else grid
        grid = grid.flip(-2)
    if left_right:
        grid = _shift(grid, -1, False) if EVEN_COLUMN[name] else grid
        grid = grid.flip(-1)
    if transpose:
        grid = grid.transpose(-1, -2)
    return grid.contiguous()


class AveragingPredictor(SubimagePredictor):
    """The shipped predictor, its first pass averaged over ``variants`` transforms of the context."""

    def __init__(self, model_id: str, variants: int):
        super().__init__(model_id, "cpu")
        self.variants = variants

    def transforms(self, target: str) -> tuple:
        chosen = FLIPS[:min(self.variants, 4)]
        return chosen + (TRANSPOSED if target == "D" and self.variants >= 8 else ())

    def predict(self, target, normalised, norm, left=None):
        if left is not None:
            return super().predict(target, normalised, norm, left)
        mus, ells = [], []
        for t in self.transforms(target):
            mu, ell = super().predict(target, {k: transform(k, x, t) for k, x in normalised.items()}, norm)
            mus.append(untransform(target, torch.from_numpy(mu), t))
            ells.append(untransform(target, torch.from_numpy(ell), t))
        count = len(mus)
        return (torch.div(sum(mus), count, rounding_mode="floor").numpy(),
                torch.div(sum(ells), count, rounding_mode="floor").numpy())


def residual_bytes(method: FastMethod, plane: np.ndarray, bits: int) -> int:
    return sum(len(s.payload) for s in method.encode(plane, bits) if s.kind == SectionKind.RESIDUAL)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--corpus", type=Path, default=ROOT.parent / "shared" / "corpus" / "train")
    p.add_argument("--per-group", type=int, default=3)
    p.add_argument("--max-pixels", type=int, default=1 << 20)
    p.add_argument("--variants", type=int, nargs="+", default=[2, 4, 8])
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "tta_ablation.json")
    args = p.parse_args()
    if not args.corpus.exists():
        raise SystemExit(f"{args.corpus} not found")
    torch.set_num_threads(1)
    methods = {1: FastMethod(device="cpu")}
    for n in args.variants:
        methods[n] = FastMethod(device="cpu")
        methods[n].predictor = AveragingPredictor(methods[n].model_id, n)
    start = time.perf_counter()
    images, by_group = [], collections.defaultdict(lambda: collections.Counter())
    for path, plane, bits in pick(args.corpus, args.per_group, args.max_pixels):
        row = {str(n): residual_bytes(m, plane, bits) for n, m in methods.items()}
        group = path.relative_to(args.corpus).parts[0]
        group = "/".join(path.relative_to(args.corpus).parts[:2]) if group == "png8" else group
        by_group[group].update(row)
        by_group["all"].update(row)
        images.append({"file": str(path.relative_to(args.corpus)), "bits": bits, "residual_bytes": row})
        print(images[-1]["file"], {n: round(b / row["1"], 4) for n, b in row.items()}, flush=True)
    summary = {g: {"residual_bytes": dict(c), "ratio_to_plain": {n: round(b / c["1"], 4) for n, b in c.items()}}
               for g, c in sorted(by_group.items())}
    result = {"command": " ".join(sys.argv), "corpus": str(args.corpus), "model": methods[1].model_id,
              "seconds": round(time.perf_counter() - start, 1), "summary": summary, "images": images}
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    for group, s in summary.items():
        print(f"{group:24s}", "  ".join(f"{n}: {r:.4f}" for n, r in s["ratio_to_plain"].items()))


if __name__ == "__main__":
    main()
