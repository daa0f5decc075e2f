"""Local least-squares prediction for the raster coder: each pixel's own linear predictor, fitted on a
causal window of already coded pixels (in the spirit of Meyer and Tischer's TMW and of GLICBAWLS).

The raster coder's per-plane weights fit a plane as a whole (by activity class); the texture of a CT or
MR changes over tens of pixels, and a predictor fitted where the pixel is follows it. For every pixel,
the weights of its 11 neighbour differences (``OFFSETS[1:]`` minus the left neighbour, as the first
stage) are the ridge least-squares fit of (value - left neighbour) over the window: the RADIUS rows
above, RADIUS columns to the left to one to the right (what the wavefront order has decoded), and the
RADIUS pixels to the left in the pixel's row. The plane blends it into its prediction with a weight per
class (``shift`` and ``moved``), sent where it codes smaller. Train planes' raster frames: 16-bit CTs -3.5 and -3.8 %,
a 12-bit CT phantom -2.9 %, an MP-RAGE slice -2.7 %, head CT -0.9 %, lung CT -0.7 %, brain MRI -0.6 %.

Decodable anywhere: the window's sums of products are int64 (exact, any order); the 11x11 system is
solved in float64 with IEEE-754 basic operations only (+, -, *, / on elements, each correctly rounded,
in a fixed order per pixel; no reduction, BLAS, LAPACK or libm), so the same bits on every machine, for
a pixel alone or in any batch; the result is rounded to 1/16 sample with ``floor``. Both sides keep
running sums of the window's rows and columns over the last few rows and columns only (``RunningSums``):
the decoder fills them a wavefront at a time, the encoder in raster order; the loops are compiled
(``medcodec.compiled``), with the same operations a pixel as the numpy code that wrote streams 2.3-2.5.

Windows of other radii can be blended in as well, each with its own weights (format 2.5; the slow mode's
radii 4 and 14, ``codec.RASTER_LOCAL_RADII``).
"""

from __future__ import annotations

import numpy as np

from medcodec.compiled import kernel

RADIUS = 9  # 6: 0.3-0.5 % larger CT frames; 12: CTs 0.1 % larger, 8-bit CT 0.1 % smaller
RADIUS_LIMIT = 32  # the largest radius a stream may name (the decoder keeps radius + 2 rows of column sums)
FEATURES = 11
_PAIRS = [(i, j) for i in range(FEATURES) for j in range(i, FEATURES)]
_I = np.array([i for i, _ in _PAIRS])
_J = np.array([j for _, j in _PAIRS])
PAIRS = len(_PAIRS)
TERMS = PAIRS + FEATURES  # the products f_i f_j (i <= j), then f_i t
_DIAGONAL = np.array([k for k, (i, j) in enumerate(_PAIRS) if i == j])
RIDGE_SHIFT = 18  # ridge: trace / 2**18 + 1 added to the diagonal (a flat window: weights 0); 2**13: CTs
# 0.3-0.6 % larger
PREDICTION_LIMIT = float(1 << 20)  # |prediction - left neighbour|, samples, before rounding
WEIGHT_ONE = 64  # blend weights in 1/64
DELTA_LIMIT = 1 << 14  # |local - plane prediction| the blend takes (1/16 sample)


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
    symmetric positive definite: no pivoting). Compiled (``_solve_window``), a pixel at a time."""
    sums = np.ascontiguousarray(sums, dtype=np.int64)
    nb = np.ascontiguousarray(nb)
    out = np.empty(sums.shape[0], dtype=np.int64)
    _predict_rows(sums, nb, top, out)
    return out


@kernel
def _predict_rows(sums, nb, top, out):
    system = np.empty((FEATURES, FEATURES + 1), dtype=np.float64)
    weights = np.empty(FEATURES, dtype=np.float64)
    for p in range(sums.shape[0]):
        out[p] = _solve_window(sums[p], nb[p], top, system, weights)


@kernel(inline=True)
def _solve_window(sums, nb, top, system, weights):
    """One pixel's prediction from its window sums ([TERMS] int64) and neighbours ([12]).

    The operations, and their order, are part of the format (streams since 2.3 were written with them):
    the ridge and the system in integers, exact; then elimination, for k = 0..9 and each row i > k,
    factor = a[i, k] / a[k, k] and a[i, j] = a[i, j] - factor * a[k, j] for j > k (the right-hand side
    as column 11); back substitution, for k = 10..0, w[k] = b[k] / a[k, k] and b[i] = b[i] - a[i, k] *
    w[k] for i < k; q = ((0 + w[0] f[0]) + w[1] f[1]) + ... in that order. Each is one correctly rounded
    IEEE-754 operation (compiled without fast-math, so no fused multiply-add and no reordering): the
    same bits on every machine. A zero pivot gives inf or nan (numpy's error model, no exception), and
    such a prediction is the left neighbour's."""
    ridge = np.int64(0)
    for d in range(_DIAGONAL.size):
        ridge += sums[_DIAGONAL[d]]
    ridge = (ridge >> RIDGE_SHIFT) + 1
    for k in range(PAIRS):
        value = sums[k]
        if _I[k] == _J[k]:
            value += ridge
        system[_I[k], _J[k]] = value  # below 2**53: exact
        system[_J[k], _I[k]] = value
    for i in range(FEATURES):
        system[i, FEATURES] = sums[PAIRS + i]
    for k in range(FEATURES - 1):
        for i in range(k + 1, FEATURES):
            factor = system[i, k] / system[k, k]
            for j in range(k + 1, FEATURES + 1):
                system[i, j] = system[i, j] - factor * system[k, j]
    for k in range(FEATURES - 1, -1, -1):
        weights[k] = system[k, FEATURES] / system[k, k]
        for i in range(k):
            system[i, FEATURES] = system[i, FEATURES] - system[i, k] * weights[k]
    west = np.int64(nb[0])
    q = 0.0
    for k in range(FEATURES):
        q = q + weights[k] * np.float64(np.int64(nb[k + 1]) - west)
    if np.isfinite(q):
        q = min(max(q, -PREDICTION_LIMIT), PREDICTION_LIMIT)
    else:
        q = 0.0
    mu = (west << 4) + 8 + np.int64(np.floor(q * 16.0 + 0.5))
    return min(max(mu, np.int64(0)), np.int64(top))


def shift(mu: np.ndarray, local: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """How far (in 1/64 of 1/16 sample) weight / 64 moves mu towards the local prediction."""
    return weights * np.clip(local - mu, -DELTA_LIMIT, DELTA_LIMIT)


def moved(mu: np.ndarray, shifts: np.ndarray) -> np.ndarray:
    """mu moved by the sum of its shifts (one local prediction's or several radii's), rounded."""
    return mu + ((shifts + WEIGHT_ONE // 2) >> 6)


def plane_predictions(taps, values: np.ndarray, height: int, width: int, top: int,
                      band_rows: int, radius: int = RADIUS) -> np.ndarray:
    """The encoder's: every pixel's local prediction (1/16 sample) from the plane's values (row-major)
    and taps(first row, end row), the 12 neighbours [pixels, 12] of those rows; a band of rows at a time.
    The decoder's running sums, filled in raster order: each pixel is predicted from the pixels before
    it, which hold every pixel of its window (the rows above, and the row's pixels to the left), so it
    gets the decoder's integers and solve by construction."""
    out = np.empty(values.size, dtype=np.int64)
    sums = RunningSums(height, width, radius)
    values = np.ascontiguousarray(values, dtype=np.int64)
    for first in range(0, height, band_rows):
        end = min(height, first + band_rows)
        _raster_pass(sums.rows, sums.columns, radius, first, end, np.ascontiguousarray(taps(first, end)),
                     values[first * width:end * width], top, out[first * width:end * width])
    return out


class RunningSums:
    """The decoder's: the window sums kept as they grow, so a pixel's costs four lookups.

    For each row, its running sums over the last radius + 3 columns; for each column c, the running sum
    down the rows of the above-window's part of a row (columns c-radius..c+1), for the last
    radius + 2 rows. Row r's part for column c is known once (r, c+1) is decoded, which the wavefront
    order does before any pixel below reads it; a ring slot is overwritten only after its last reader
    (radius + 2 rows > radius + 1, radius + 3 columns > radius + 2 back). Integers: the encoder's sums."""

    def __init__(self, height: int, width: int, radius: int = RADIUS):
        self.width, self.height, self.radius = width, height, radius
        self.ROW_RING, self.COLUMN_RING = radius + 3, radius + 2
        # one more slot of zeros each: what a lookup left of column 0 or above row 0 reads
        self.rows = np.zeros((height, self.ROW_RING + 1, TERMS), dtype=np.int64)
        self.columns = np.zeros((self.COLUMN_RING + 1, width, TERMS), dtype=np.int64)

    def predict(self, rows: np.ndarray, cols: np.ndarray, nb: np.ndarray, top: int) -> np.ndarray:
        """The wavefront's pixels' local predictions (1/16 sample), from the sums of the pixels before."""
        out = np.empty(rows.size, dtype=np.int64)
        _running_predict(self.rows, self.columns, self.radius, rows, cols, np.ascontiguousarray(nb), top, out)
        return out

    def add(self, rows: np.ndarray, cols: np.ndarray, nb: np.ndarray, values: np.ndarray) -> None:
        """The wavefront's decoded pixels (their left neighbours' sums are in): their rows' running sums,
        then the column sums of the window parts they complete (column c - 1, and the last column too).
        No pixel of a wavefront reads what another one writes (other rows, other ring slots), so a
        pixel at a time is the same as all at once."""
        _running_add(self.rows, self.columns, self.radius, rows, cols, np.ascontiguousarray(nb), values)


@kernel(inline=True)
def _ring(index, size):
    """A ring slot: index % size, or the zero slot (size) for a negative index."""
    return index % size if index >= 0 else size


@kernel
def _running_predict(row_sums, column_sums, radius, rows, cols, nb, top, out):
    sums = np.empty(TERMS, dtype=np.int64)
    system = np.empty((FEATURES, FEATURES + 1), dtype=np.float64)
    weights = np.empty(FEATURES, dtype=np.float64)
    for p in range(rows.size):
        out[p] = _predict_pixel(row_sums, column_sums, radius, rows[p], cols[p], nb[p], top, sums, system, weights)


@kernel
def _running_add(row_sums, column_sums, radius, rows, cols, nb, values):
    running = np.empty(TERMS, dtype=np.int64)
    for p in range(rows.size):
        _add_pixel(row_sums, column_sums, radius, rows[p], cols[p], nb[p], values[p], running)


@kernel
def _raster_pass(row_sums, column_sums, radius, first, end, nb, values, top, out):
    """Rows first..end-1 in raster order: each pixel predicted, then added."""
    sums = np.empty(TERMS, dtype=np.int64)
    running = np.empty(TERMS, dtype=np.int64)
    system = np.empty((FEATURES, FEATURES + 1), dtype=np.float64)
    weights = np.empty(FEATURES, dtype=np.float64)
    width = column_sums.shape[1]
    for r in range(first, end):
        for c in range(width):
            p = (r - first) * width + c
            out[p] = _predict_pixel(row_sums, column_sums, radius, r, c, nb[p], top, sums, system, weights)
            _add_pixel(row_sums, column_sums, radius, r, c, nb[p], values[p], running)


@kernel(inline=True)
def _predict_pixel(row_sums, column_sums, radius, r, c, nb, top, sums, system, weights):
    """Pixel (r, c)'s prediction: its window's sums (columns c-radius..c+1 of rows r-radius..r-1, then
    columns c-radius..c-1 of row r), four lookups, and the solve."""
    row_ring, column_ring = row_sums.shape[1] - 1, column_sums.shape[0] - 1  # RunningSums' rings
    below, above = _ring(r - 1, column_ring), _ring(r - radius - 1, column_ring)
    right, left = _ring(c - 1, row_ring), _ring(c - radius - 1, row_ring)
    for k in range(TERMS):
        sums[k] = column_sums[below, c, k] - column_sums[above, c, k] + row_sums[r, right, k] - row_sums[r, left, k]
    return _solve_window(sums, nb, top, system, weights)


@kernel(inline=True)
def _add_pixel(row_sums, column_sums, radius, r, c, nb, value, running):
    """Pixel (r, c)'s products into its row's running sums, and the column sums of the window parts it
    completes: row r's part for column c - 1 (columns c-1-radius..c), and for the last column too."""
    row_ring, column_ring = row_sums.shape[1] - 1, column_sums.shape[0] - 1  # RunningSums' rings
    west = np.int64(nb[0])
    target = np.int64(value) - west
    previous = _ring(c - 1, row_ring)
    for k in range(PAIRS):
        running[k] = (np.int64(nb[_I[k] + 1]) - west) * (np.int64(nb[_J[k] + 1]) - west) + row_sums[r, previous, k]
    for i in range(FEATURES):
        running[PAIRS + i] = (np.int64(nb[i + 1]) - west) * target + row_sums[r, previous, PAIRS + i]
    row_sums[r, c % row_ring] = running
    slot, up = r % column_ring, _ring(r - 1, column_ring)
    if c > 0:
        gone = _ring(c - radius - 2, row_ring)
        for k in range(TERMS):
            column_sums[slot, c - 1, k] = column_sums[up, c - 1, k] + running[k] - row_sums[r, gone, k]
    if c == column_sums.shape[1] - 1:
        gone = _ring(c - radius - 1, row_ring)
        for k in range(TERMS):
            column_sums[slot, c, k] = column_sums[up, c, k] + running[k] - row_sums[r, gone, k]
