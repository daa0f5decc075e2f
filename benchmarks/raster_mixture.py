"""Would a per-pixel mixture of raster codings pay? A design question, asked on the train split.

The raster encoder tries several codings of a plane (with the large or the xl correction network, with
none, with robust or plain fits) and keeps the smallest whole. A mixture would code every pixel with a
blend of their distributions instead, p(x) = sum_k w_k p_k(x), the weights from how well each coding did
on the pixel's causal neighbours (w_k ~ 2 ** (-beta * their code length): TMW- or PAQ-style switching),
which the decoder can compute too. Its cost needs only each coding's code length of every pixel's own
value: -log2 sum_k w_k 2 ** (-ell_k). Printed per plane, relative to the best single coding: the mixture
for a few beta, a hard switch (the coding with the shortest neighbour sum), the uniform blend and the
per-pixel oracle (min_k ell_k, which no decoder can reach).

    python benchmarks/raster_mixture.py [--corpus ../shared/corpus/train] [--per-group 2] \
        [--out benchmarks/results/raster_mixture.json]
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
from medcodec.pipelines.raster import analysis, coding  # noqa: E402
from medcodec.pipelines.raster.method import shipped_correction, shipped_scale  # noqa: E402

BETAS = (0.1, 0.25, 0.5, 1.0)
# the causal neighbours whose code lengths weigh the codings (all decoded before the pixel in wavefront order)
CONTEXT = ((0, -1), (-1, 0), (-1, -1), (-1, 1), (0, -2), (-2, 0), (-1, -2), (-1, 2))


def codings(plane: np.ndarray, bits: int) -> dict[str, analysis.Analysis]:
    """The whole-plane codings the encoder chooses among, each as ``analysis.analyse`` settles it."""
    scales = [shipped_scale("raster-scale-v1"), shipped_scale("raster-scale-v2")]
    large, xl = shipped_correction("raster-nn-large-v1"), shipped_correction("raster-nn-xl-v1")
    flipped = 2 if bits == 8 else 0  # the robustness the encoder does not default to at this depth
    return {"large": analysis.analyse(plane, bits, large, scale_nets=scales),
            "xl": analysis.analyse(plane, bits, xl, scale_nets=scales),
            "none": analysis.analyse(plane, bits, None, scale_nets=scales),
            "robust-flipped": analysis.analyse(plane, bits, large, robust=flipped, scale_nets=scales)}


def pixel_bits(coded: analysis.Analysis) -> np.ndarray:
    """Each pixel's code length (bits) under the coding's tables, boost and value range included."""
    params = coding.pixel_params(coded.model, coded.mu, coded.buckets)
    nb = coded._neighbour_values(np.arange(coded.values.size))
    return coding.cost_bits(coded.values, params, nb, coded.model.boost_terms, coded.model.value_range)


def neighbour_sums(ell: np.ndarray) -> np.ndarray:
    """[K, H, W]: each coding's code lengths summed over every pixel's CONTEXT (0 outside the plane)."""
    out = np.zeros_like(ell)
    _, height, width = ell.shape
    for dy, dx in CONTEXT:
        out[:, max(-dy, 0):height, max(-dx, 0):width + min(-dx, 0)] += \
            ell[:, :height - max(-dy, 0), max(dx, 0):width + min(dx, 0)]
    return out


def mixture_bits(ell: np.ndarray) -> dict[str, float]:
    """Total bits of each scheme on one plane, ell [K, H, W] the codings' code lengths."""
    sums = neighbour_sums(ell)
    out = {"best single": float(ell.reshape(len(ell), -1).sum(axis=1).min()), "oracle": float(ell.min(axis=0).sum())}
    for beta in BETAS:
        log_weights = -beta * sums
        weights = 2.0 ** (log_weights - log_weights.max(axis=0))
        out[f"mixture beta {beta}"] = float(-np.log2((weights * 2.0 ** -ell).sum(axis=0) / weights.sum(axis=0)).sum())
    switched = np.take_along_axis(ell, sums.argmin(axis=0)[None], axis=0)
    out["switch"] = float(switched.sum())
    out["uniform"] = float(-np.log2((2.0 ** -ell).mean(axis=0)).sum())
    return out


def main() -> None:
    args = method_runs.plane_ablation_arguments(__doc__, ROOT / "benchmarks/results/raster_mixture.json", per_group=2,
                                                corpus=Path("../shared/corpus/train"))
    records = []
    for path, plane, bits in method_runs.pick(args.corpus, args.per_group, args.max_pixels):
        start = time.perf_counter()
        coded = codings(plane, bits)
        ell = np.stack([pixel_bits(c).reshape(plane.shape) for c in coded.values()])
        row = {"file": str(path.relative_to(args.corpus)), "folder": str(path.parent.relative_to(args.corpus)),
               "pixels": int(plane.size), "bits": bits, "seconds": round(time.perf_counter() - start, 1),
               "codings bpp": {name: round(float(e.sum()) / plane.size, 4) for name, e in zip(coded, ell)},
               **{name: round(v, 1) for name, v in mixture_bits(ell).items()}}
        records.append(row)
        best = row["best single"]
        print(row["file"], " ".join(f"{k} {row[k] / best:.4f}" for k in row if k.startswith(("mix", "sw", "un", "or"))),
              flush=True)
    fields = tuple(k for k in records[0] if k in ("best single", "oracle", "switch", "uniform") or k.startswith("mix"))
    summary = result_files.totals(records, lambda r: r["folder"].split("/")[0], fields)
    summary["all"] = result_files.totals(records, lambda r: "all", fields)["all"]
    result_files.ratios(summary, **{f"{k} / best": (k, "best single") for k in fields if k != "best single"})
    result_files.write(args.out, records, summary)


if __name__ == "__main__":
    main()
