"""Local least-squares prediction for the raster coder: each pixel's own linear predictor, fitted on a
causal window of already coded pixels (in the spirit of Meyer and Tischer's TMW and of GLICBAWLS).

The raster coder's per-plane weights fit a plane as a whole (by activity class); the texture of a CT or
MR changes over tens of pixels, and a predictor fitted where the pixel is follows it. For every pixel,
the weights of its 11 neighbour differences (``OFFSETS[1:]`` minus the left neighbour, as the first
stage) are the ridge least-squares fit of (value - left neighbour) over the window: the RADIUS rows
above, RADIUS columns to the left to one to the right (what the wavefront order has decoded), and the
RADIUS pixels to the left in the pixel's row. The plane blends it into its prediction with a weight per
class (``blend``), sent where it codes smaller. Train planes' raster frames: 16-bit CTs -3.5 and -3.8 %,
a 12-bit CT phantom -2.9 %, an MP-RAGE slice -2.7 %, head CT -0.9 %, lung CT -0.7 %, brain MRI -0.6 %.

Decodable anywhere: the window's sums of products are int64 (exact, any order); the 11x11 system is
solved in float64 with IEEE-754 basic operations only (+, -, *, / on elements, each correctly rounded,
in a fixed order per pixel; no reduction, BLAS, LAPACK or libm), so the same bits on every machine, for
a pixel alone or in any batch; the result is rounded to 1/16 sample with ``floor``. The decoder keeps
each row's running sums for the last RING columns only (RING covers the columns any later window reads).
"""

from __future__ import annotations

import numpy as np

RADIUS = 9  # 6: 0.3-0.5 % larger CT frames; 12: CTs 0.1 % larger, 8-bit CT 0.1 % smaller
RING = 3 * RADIUS + 4  # columns of running sums a decoder keeps per row (a window reads 3 RADIUS + 1 back)
FEATURES = 11
_PAIRS = [(i, j) for i in range(FEATURES) for j in range(i, FEATURES)]
_I = np.array([i for i, _ in _PAIRS])
_J = np.array([j for _, j in _PAIRS])
TERMS = len(_PAIRS) + FEATURES  # the products f_i f_j (i <= j), then f_i t
_DIAGONAL = np.array([k for k, (i, j) in enumerate(_PAIRS) if i == j])
RIDGE_SHIFT = 18  # ridge: trace / 2**18 + 1 added to the diagonal (a flat window: weights 0); 2**13: CTs
# 0.3-0.6 % larger
PREDICTION_LIMIT = float(1 << 20)  # |prediction - left neighbour|, samples, before rounding
WEIGHT_ONE = 64  # blend weights in 1/64
DELTA_LIMIT = 1 << 14  # |local - plane prediction| the blend takes (1/16 sample)
CHUNK = 2048  # pixels whose window sums the encoder gathers at once


def features(nb: np.ndarray) -> np.ndarray:
    """int64 [pixels, 11]: the neighbour differences (12 neighbours in OFFSETS order, the left one first)."""
    nb = nb.astype(np.int64, copy=False)
    return nb[:, 1:] - nb[:, :1]


def products(nb: np.ndarray, values: np.ndarray) -> np.ndarray:
    """int64 [pixels, TERMS]: what a coded pixel adds to the windows that hold it."""
    f = features(nb)
    target = values.astype(np.int64) - nb[:, 0].astype(np.int64)
    return np.concatenate([f[:, _I] * f[:, _J], f * target[:, None]], axis=1)


def predict(sums: np.ndarray, nb: np.ndarray, top: int) -> np.ndarray:
    """Each pixel's local prediction in 1/16 sample, clamped to [0, top], from its window's int64 sums
    of products and its neighbours: the ridge fit, solved by Gaussian elimination (the matrix is
    symmetric positive definite: no pivoting)."""
    n = sums.shape[0]
    ridge = (sums[:, _DIAGONAL].sum(axis=1) >> RIDGE_SHIFT) + 1  # int64: exact
    system = np.zeros((n, FEATURES, FEATURES + 1), dtype=np.float64)
    quad = sums[:, :len(_PAIRS)].copy()
    quad[:, _DIAGONAL] += ridge[:, None]
    quad = quad.astype(np.float64)  # below 2**53: exact
    system[:, _I, _J] = quad
    system[:, _J, _I] = quad
    system[:, :, FEATURES] = sums[:, len(_PAIRS):].astype(np.float64)
    # rounding can leave a near-singular system a zero or negative pivot: its weights, infinite or not a
    # number, are the same on every machine, and such a prediction is replaced by the left neighbour's
    with np.errstate(all="ignore"):
        for k in range(FEATURES - 1):
            factor = system[:, k + 1:, k] / system[:, k:k + 1, k]
            system[:, k + 1:, k:] -= factor[:, :, None] * system[:, None, k, k:]
        weights = np.zeros((n, FEATURES), dtype=np.float64)
        rhs = system[:, :, FEATURES].copy()
        for k in range(FEATURES - 1, -1, -1):
            weights[:, k] = rhs[:, k] / system[:, k, k]
            rhs[:, :k] -= system[:, :k, k] * weights[:, k:k + 1]
        f = features(nb).astype(np.float64)
        q = np.zeros(n, dtype=np.float64)
        for k in range(FEATURES):  # in order: no pairwise summation
            q = q + weights[:, k] * f[:, k]
    q = np.where(np.isfinite(q), np.clip(q, -PREDICTION_LIMIT, PREDICTION_LIMIT), 0.0)
    mu = (nb[:, 0].astype(np.int64) << 4) + 8 + np.floor(q * 16.0 + 0.5).astype(np.int64)
    return np.clip(mu, 0, top)


def blend(mu: np.ndarray, local: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """mu moved towards the local prediction by weight / 64 (per pixel, 0..64), in integers."""
    delta = np.clip(local - mu, -DELTA_LIMIT, DELTA_LIMIT)
    return mu + ((weights * delta + WEIGHT_ONE // 2) >> 6)


# The window's running-sum lookups, as (rows back, which column): a row above's right end (+) and left
# end (-), the pixel's row's left neighbour (+) and left end (-)
_LAG = np.r_[np.arange(1, RADIUS + 1), 0, np.arange(1, RADIUS + 1), 0]
_PLUS = RADIUS + 1  # the first _PLUS lookups add, the rest subtract


def _window_sums(prefix, rows: np.ndarray, cols: np.ndarray, width: int, zero_row: int) -> np.ndarray:
    """int64 [pixels, TERMS]: the window sums from row running sums, prefix(r, c) = sum of row r's
    products in columns 0..c for arrays of rows and columns, where row zero_row holds zeros (what a
    lookup above the plane or left of column 0 reads). Integers: exact in any order."""
    r = rows[:, None] - _LAG[None, :]
    right = np.minimum(cols + 1, width - 1)[:, None]
    left = (cols - RADIUS - 1)[:, None]
    c = np.concatenate([np.repeat(right, RADIUS, axis=1), cols[:, None] - 1,
                        np.repeat(left, RADIUS + 1, axis=1)], axis=1)
    gathered = prefix(np.where((r >= 0) & (c >= 0), r, zero_row), np.maximum(c, 0))
    return gathered[:, :_PLUS].sum(axis=1) - gathered[:, _PLUS:].sum(axis=1)


def plane_predictions(taps, values: np.ndarray, height: int, width: int, top: int,
                      band_rows: int) -> np.ndarray:
    """The encoder's: every pixel's local prediction (1/16 sample) from the plane's values (row-major)
    and taps(first row, end row), the 12 neighbours [pixels, 12] of those rows; a band of rows at a time."""
    out = np.empty(values.size, dtype=np.int64)
    for first in range(0, height, band_rows):
        end = min(height, first + band_rows)
        top_row = max(0, first - RADIUS)
        nb = taps(top_row, end)
        prefix = np.zeros((end - top_row + 1, width, TERMS), dtype=np.int64)  # and a row of zeros
        prefix[:-1] = np.cumsum(products(nb, values[top_row * width:end * width]).reshape(end - top_row, width, TERMS),
                                axis=1)
        own = nb[(first - top_row) * width:]
        for start in range(0, own.shape[0], CHUNK):  # [CHUNK, 2 RADIUS + 2, TERMS] gathered at a time
            at = np.arange(first * width + start, min(end * width, first * width + start + CHUNK))
            rows, cols = np.divmod(at, width)
            sums = _window_sums(lambda r, c: prefix[r - top_row, c], rows, cols, width, end)
            out[at] = predict(sums, own[start:start + at.size], top)
    return out


class RunningSums:
    """The decoder's: each row's running sums of products over its last RING columns."""

    def __init__(self, height: int, width: int):
        self.width, self.height = width, height
        self.prefix = np.zeros((height + 1, RING, TERMS), dtype=np.int64)  # the last row stays 0

    def _at(self, r: np.ndarray, c: np.ndarray) -> np.ndarray:
        return self.prefix[r, c % RING]

    def predict(self, rows: np.ndarray, cols: np.ndarray, nb: np.ndarray, top: int) -> np.ndarray:
        return predict(_window_sums(self._at, rows, cols, self.width, self.height), nb, top)

    def add(self, rows: np.ndarray, cols: np.ndarray, nb: np.ndarray, values: np.ndarray) -> None:
        """The wavefront's decoded pixels (their left neighbours' running sums are in)."""
        row_sums = products(nb, values)
        has_left = cols > 0
        row_sums[has_left] += self.prefix[rows[has_left], (cols[has_left] - 1) % RING]
        self.prefix[rows, cols % RING] = row_sums
