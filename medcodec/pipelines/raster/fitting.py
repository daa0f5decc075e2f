"""The encoder's weight fits: least squares through the normal equations, a robust (least absolute
deviations) variant by reweighting, strided pixel samples, and the local blends' weights. Floating
point, encoder only: what they produce is rounded to integers and sent."""

from __future__ import annotations

import numpy as np

from medcodec.networks import raster_mlp
from medcodec.pipelines.raster import local_ls
from medcodec.pipelines.raster.layout import CLASSES

# Robust (IRLS, robust_lstsq) weight fits on planes of more than 8 bits: every stage's (the first
# stage's, the second's and the scale's). Estimated size on train planes: five of 10-16 bits (CR, XA, CT,
# MR) 0.27-0.97 % smaller (the second stage and scale alone: 0.22-0.74 %); fast-mode files of 26 train
# 10-16-bit files 0.41 % smaller in total (XA 1.2 %, CR 1.0 %, a 19-frame MR 0.8 %; the worst, a
# 12-bit CT and a phantom slice, 0.07-0.08 % larger); on 8-bit planes it is
# mixed (chest radiographs and a lung CT 0.01-0.17 % larger, a head CT and a breast US ~0.3 % smaller),
# so there it is only one of the slow mode's alternatives (codec.RASTER_TRIES).
ROBUST_ABOVE_BITS = 8
ROBUST_EPSILON = 16.0  # 1/16 sample: residuals under one sample weigh as one sample
FIRST_STAGE_EPSILON = 1.0  # the same floor for the first stage, whose targets are in whole samples
ROBUST_ITERATIONS = 4


def lstsq(features: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Least-squares weights through the normal equations (the encoder's fits solve hundreds of these on
    up to 2**18 pixels: 4x faster than an SVD of the pixels; the weights are rounded to 1/256 anyway)."""
    if target.size < 2 * features.shape[1]:
        return np.zeros(features.shape[1])
    return np.linalg.lstsq(features.T @ features, features.T @ target, rcond=None)[0]


def output_delta_of(solution: np.ndarray, weights: np.ndarray, bias: int) -> np.ndarray:
    """A fitted output-layer change (float: weights, then bias, in the layer's integer units) rounded to
    integers that keep the adjusted layer within the network's exactness bounds."""
    delta = np.round(solution).astype(np.int64)
    limit, bias_limit = raster_mlp.WEIGHT_LIMIT, raster_mlp.BIAS_LIMIT
    delta[:-1] = np.clip(delta[:-1], -limit - weights, limit - weights)
    delta[-1] = int(np.clip(delta[-1], -bias_limit - bias, bias_limit - bias))
    return delta


def default_robustness(bits: int) -> int:
    """Which of the encoder's fits are robust on a plane coded with this many bits (Analysis.robust)."""
    return 2 if bits > ROBUST_ABOVE_BITS else 0


def robust_lstsq(features: np.ndarray, target: np.ndarray, epsilon: float = ROBUST_EPSILON,
                  ridge: float | None = None) -> np.ndarray:
    """Weights near the least-absolute-deviations fit: iteratively reweighted least squares from the
    least-squares start, each pixel weighted 1 / max(|residual|, epsilon) (one sample, in the target's
    units). Why: a few large errors (edges, text, the collimator's rim) pull a squared-error fit away
    from what the many ordinary pixels need, and the coder pays by code length, closer to |error| than
    to its square.

    With a ridge, every solve adds ridge times the mean diagonal of its Gram matrix to the diagonal
    (shrinking towards 0) and is solved directly: the output-layer fit's (``Analysis._output_delta``),
    whose hidden units move together and would otherwise take large opposite weights whose rounding to
    integers no longer cancels.

    Each solve's Gram matrix X^T S X is taken as R^T R with R = sqrt(S) X: numpy hands a product of an
    array with its own transpose to BLAS's symmetric rank-k update, which does half the work of a general
    product (the output-layer fits, ~130 columns on 2**16 pixels: 2.5x faster). The weights are rounded
    to integers or 1/256 afterwards; the two forms differ in the last bits of the float sums only."""
    if ridge is None and target.size < 2 * features.shape[1]:
        return lstsq(features, target)
    weights = lstsq(features, target) if ridge is None else None
    root = np.ones(target.size)
    for _ in range(ROBUST_ITERATIONS + (ridge is not None)):
        if weights is not None:
            root = np.sqrt(1.0 / np.maximum(np.abs(target - features @ weights), epsilon))
        weighted = features * root[:, None]
        gram = weighted.T @ weighted
        moment = weighted.T @ (target * root)
        if ridge is None:
            weights = np.linalg.lstsq(gram, moment, rcond=None)[0]
        else:
            gram[np.diag_indices_from(gram)] += ridge * np.diag(gram).mean() + 1e-12
            weights = np.linalg.solve(gram, moment)
    return weights


def strided_sample(count: int, limit: int, width: int) -> np.ndarray:
    """About ``limit`` of ``count`` pixels at an even stride that is coprime with the plane's width, so
    the sample visits every column (a stride of 8 on a 512-wide plane would see only the columns of
    8x8 block edges of a once-JPEG image)."""
    stride = max(1, count // limit)
    while stride > 1 and np.gcd(stride, width) > 1:
        stride += 1
    return np.arange(0, count, stride, dtype=np.int64)


def blend_weights(deltas: list[np.ndarray], target: np.ndarray, cls: np.ndarray) -> list[np.ndarray]:
    """Per class, the least-squares weights (1/64, clipped to 0..64) of the local predictions' moves
    (deltas, one per radius) that best explain the errors (target): one weight is a ratio of sums, as
    the decoder needs nothing of this; several are solved together, a singular class getting none."""
    if len(deltas) == 1:
        moved = np.bincount(cls, deltas[0] * target, CLASSES)
        power = np.bincount(cls, deltas[0] * deltas[0], CLASSES)
        ratios = np.divide(moved, power, out=np.zeros(CLASSES), where=power > 0)[None]
    else:
        k = len(deltas)
        gram = np.array([[np.bincount(cls, a * b, CLASSES) for b in deltas] for a in deltas]).transpose(2, 0, 1)
        moved = np.array([np.bincount(cls, a * target, CLASSES) for a in deltas]).T
        ratios = np.zeros((k, CLASSES))
        for c in range(CLASSES):
            if np.linalg.matrix_rank(gram[c]) == k:
                ratios[:, c] = np.linalg.solve(gram[c], moved[c])
    return list(np.clip(np.round(ratios * local_ls.WEIGHT_ONE), 0, local_ls.WEIGHT_ONE).astype(np.int64))
