"""Per-set (scale, mean) offsets by how wrong the network was at a pixel's already-coded neighbours.

Why: the network sees pixel values, never its own errors. Where it was more (or less) wrong than it
expected on the neighbouring pixels of subimages already coded, it is likely to be so here too: noise
that varies across the image (CT streaks, MR coil falloff, detector regions), textures it under- or
over-rates. The decoder knows those errors exactly, so a pixel's *surprise class* is

    class = clip(floor((log8(sum_k e_k) - ell - log8(K)) / 4) + 12, 0, 23)

with e_k = |16 v_k + 8 - mu_k| the error (in 1/16 sample) of the network's first, single pass at the
coded neighbour k (from the previous subimages: D for B; D and B for C; for D, whose neighbours are
all in A and carry no network prediction, 4 |4 a - sum of a's 4 neighbours| at those A pixels), K the
number of those neighbours, ell the pixel's scale index as coded so far (8 steps an octave, the scale
in 1/16 sample being 2**(ell / 8)), and log8(x) = floor(8 log2 max(x, 1)) computed on integers. So the
class is the ratio of the neighbours' mean error to the pixel's own predicted scale, in half octaves
over twelve octaves.

The errors are the single first pass's, before any calibration, refinement or ensemble, so they do not
depend on which of its codings the encoder keeps for a subimage; the encoder fits one offset per
class (``class_offsets``) and sends them only where they pay. Measured on 26 train planes (ideal code
length of D / B / C after every other correction, a first 16-class form): 0.43 / 1.3 / 0.3 % fewer bits
(16-bit CT and MR up to 6 % on B; chest X-rays ~0). Coded, fast path, the same 26 planes: 0.9954 x with
16 classes over 8 octaves (the ratio's two floors taken apart), 0.9927 x with this form (0.9931 x
with the encoder's shorter fit below).
"""

from __future__ import annotations

import math

import numpy as np

from ..compiled import kernel
from ..entropy import residual_model as rm
from . import class_offsets
from .class_offsets import Offsets

CLASSES = 24  # half octaves; 16 (eight octaves) clipped often enough to cost 0.2 %, 32 gained 0.01 %
# the encoder's fit, on an even stride through the set: with 24 classes the search costs nearly every
# scale offset in its range, so it is the surprise offsets' main encoder cost; 2**15 pixels and two
# octaves give up 0.03 % of their saving (26 train planes) for a sixth of the fast encoder's extra time
SAMPLE = 1 << 15
SCALE_LIMIT = 16  # largest scale-index offset searched (two octaves)
KEY = "surprise"

# (subimage, drow, dcol) on the subimage grid: the nearest coded pixels that carry an error, symmetric
# about the target (see split.NEIGHBOURS for the geometry: B(i,j) lies between D(i-1,j) and D(i,j),
# C(i,j) between D(i,j-1) and D(i,j), with B's four diagonal to it)
NEIGHBOURS = {
    "D": (("A", 0, 0), ("A", 0, 1), ("A", 1, 0), ("A", 1, 1)),
    "B": (("D", -1, 0), ("D", 0, 0), ("D", -1, -1), ("D", 0, -1), ("D", -1, 1), ("D", 0, 1)),
    "C": (("D", 0, -1), ("D", 0, 0), ("B", 0, -1), ("B", 0, 0), ("B", 1, -1), ("B", 1, 0)),
}
PAD = 1  # the farthest offset above
ERROR_LIMIT = (1 << 31) - 1  # errors are clamped here (int32 grids), and so are their sums




def _eighth_octave_thresholds() -> np.ndarray:
    """ceil(2**(30 + i/8)) for i = 1..7, by integer roots (no floating point, so the same everywhere):
    the i-th eighth of the octave [2**30, 2**31)."""
    out = []
    for i in range(1, 8):
        power = 1 << (240 + i)
        root = math.isqrt(math.isqrt(math.isqrt(power)))  # floor of the 8th root, exactly
        out.append(root if root**8 == power else root + 1)
    return np.array(out, dtype=np.int64)


EIGHTHS = _eighth_octave_thresholds()


def log8(x: np.ndarray) -> np.ndarray:
    """floor(8 log2 max(x, 1)) for int64 x < 2**31, exactly: with b the bit length of x and m = x shifted
    to 31 bits (2**30 <= m < 2**31), 8 (b - 1) + the number of EIGHTHS that m reaches."""
    x = np.maximum(np.asarray(x), 1).astype(np.int64)
    bit_length = np.frexp(x.astype(np.float64))[1].astype(np.int64)  # exact for integers below 2**53
    mantissa = np.left_shift(x, 31 - bit_length)
    # how many thresholds m reaches: one binary search each (half the time of seven comparisons on a
    # raster decoder's wavefront, which calls this four times)
    return 8 * (bit_length - 1) + np.searchsorted(EIGHTHS, mantissa, side="right")


@kernel(inline=True)
def log8_of(x):
    """``log8`` of one int64 x < 2**31, in compiled loops: the same integers."""
    x = max(x, np.int64(1))
    bit_length = 0
    while (x >> bit_length) > 0:
        bit_length += 1
    mantissa = x << (31 - bit_length)
    reached = 0
    for threshold in EIGHTHS:
        if mantissa >= threshold:
            reached += 1
    return 8 * (bit_length - 1) + reached


def a_errors(a: np.ndarray) -> np.ndarray:
    """Subimage A's stand-in errors (it has no network prediction): 4 |4 a - its four neighbours|, edges
    replicated, in 1/16 sample like the others (4 a - the sum is about four times a prediction error)."""
    a = np.asarray(a, dtype=np.int64)
    p = np.pad(a, 1, mode="edge")
    lap = 4 * a - p[:-2, 1:-1] - p[2:, 1:-1] - p[1:-1, :-2] - p[1:-1, 2:]
    return np.minimum(4 * np.abs(lap), ERROR_LIMIT).astype(np.int32)


def errors(shape: tuple[int, int], pixels: np.ndarray, values: np.ndarray, first_mu: np.ndarray) -> np.ndarray:
    """A subimage's error grid: |16 v + 8 - mu| at its coded pixels (first_mu: the first pass's mean at
    those pixels, in the same row-major order as values), 0 elsewhere; int32 (the errors are clamped)."""
    grid = np.zeros(shape, dtype=np.int32)
    grid[pixels] = np.minimum(np.abs(rm.MEAN_ONE * np.asarray(values, np.int64) + rm.MEAN_ONE // 2 - first_mu),
                              ERROR_LIMIT)
    return grid


def classes(target: str, error_grids: dict[str, np.ndarray], pixels: np.ndarray, ell: np.ndarray) -> np.ndarray:
    """Surprise class of each pixel of a set (boolean mask on the subimage grid, row-major order)."""
    rows, cols = np.nonzero(pixels)
    total = np.zeros(rows.size, dtype=np.int64)
    padded = {}
    for name, dr, dc in NEIGHBOURS[target]:
        if name not in padded:
            padded[name] = np.pad(error_grids[name], PAD, mode="edge")
        total += padded[name][rows + PAD + dr, cols + PAD + dc]
    total = np.minimum(total, ERROR_LIMIT)
    count = int(log8(np.array(len(NEIGHBOURS[target]))))
    return np.clip(np.floor_divide(log8(total) - ell - count, 4) + CLASSES // 2, 0, CLASSES - 1)


def fit(values: np.ndarray, mu: np.ndarray, ell: np.ndarray, pixel_classes: np.ndarray,
        always: bool = False) -> Offsets | None:
    """The per-class offsets for a set coded with (mu, ell), or None when they do not pay for themselves."""
    sample = np.arange(0, values.size, max(1, values.size // SAMPLE))
    return class_offsets.fit(values, mu, ell, pixel_classes, CLASSES, sample, KEY, SCALE_LIMIT, always)


apply = class_offsets.apply
to_json = class_offsets.to_json


def side_bytes(offsets: Offsets) -> int:
    return class_offsets.side_bytes(KEY, offsets)


def from_json(data) -> Offsets:
    return class_offsets.from_json(data, CLASSES, "surprise")
