"""What every raster frame shares, fixed by the format: the causal template, the padded plane's layout,
the pixel classes, and the units and bounds of the weights the side information carries (a change to
any of them is a format change)."""

from __future__ import annotations

import numpy as np

# (dy, dx) of the causal template; W first (the reference the others are differenced against).
OFFSETS = ((0, -1), (-1, 0), (-1, -1), (-1, 1), (0, -2), (-2, 0), (-1, -2), (-2, -1), (-2, 1), (-2, -2),
           (-2, 2), (0, -3))
ERROR_TAPS = 12  # second stage: first-stage errors of all 12 neighbours (6: 0.3 % larger)
SCALE_TAPS = 8  # scale: final errors of OFFSETS[:8]
PAD_TOP, PAD_LEFT, PAD_RIGHT = 2, 3, 2
COEF_SHIFT = 8  # weights in 1/256 (1/1024 sent 15 % more side information for no smaller residuals)
COEF_LIMIT = 1 << 15  # second-stage weights (128 in 1/256)
FIRST_LIMIT = 1 << 21  # first-stage weights and intercepts (an intercept may be a whole 16-bit range)
ACTIVITY_CLASSES = 12
BORDER_CLASSES = 4  # row 0, row 1, columns 0-2, the last two columns
FLAT_CLASS = ACTIVITY_CLASSES + BORDER_CLASSES  # inside, activity 0: padding, air, saturated regions
CLASSES = FLAT_CLASS + 1
WEIGHT_LIMIT = 1 << 10  # scale weights in 1/16, 0..this
ERROR_LIMIT = 1 << 24  # errors (1/16 sample) are clamped to +-this before they feed a later pixel
RAW_ESCAPE_BITS = 16  # bits of an escaped value in the raw-bit stream
BOOST_LIMIT = 64  # neighbour-value boost weights (1/16)
# the boost's lattice (format 2.8): its step, 2..LATTICE_MAX_STEP, and weight, 1..LATTICE_LIMIT
LATTICE_MAX_STEP = 16
LATTICE_LIMIT = 256  # its weight (1/16 per neighbour): entries stay below 2**31, as the boost's
# per-class offsets of the scale key (format 2.17), quarter octaves: a class's scale 4x up or down at most
KEY_OFFSET_LIMIT = 8
KEY_MAX = 127  # scale keys with their class's offset stay in 0..KEY_MAX: at most 128 buckets, as sent
# the two stacked corrections' weights per activity class (format 2.7): 1/64, within +-STACK_LIMIT
STACK_SHIFT = 6
STACK_LIMIT = 4 << STACK_SHIFT

# A border class, or the flat class, without its own weights predicts its left neighbour (the intercept
# centres the mean): in a flat region every error is then 0, so is the scale sum, and bucket 0 codes
# such pixels in hundredths of a bit (pooled with the lowest-activity class they cost 0.75 bit on CT
# padding).
BORDER_DEFAULT = np.array([0] * (len(OFFSETS) - 1) + [1 << (COEF_SHIFT - 1)], dtype=np.int64)


class Layout:
    """Flat indices into the padded plane: PAD_TOP rows above, PAD_LEFT / PAD_RIGHT columns beside."""

    def __init__(self, shape: tuple[int, int]):
        self.height, self.width = shape
        self.stride = self.width + PAD_LEFT + PAD_RIGHT
        self.padded_shape = (self.height + PAD_TOP, self.stride)
        self.offsets = np.array([dy * self.stride + dx for dy, dx in OFFSETS], dtype=np.int64)

    def flat(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        return (rows + PAD_TOP) * self.stride + cols + PAD_LEFT

    def border(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """-1 inside, else the border class offset 0..3 (row 0, row 1, left columns, right columns)."""
        out = np.full(rows.shape, -1, dtype=np.int64)
        out[cols >= self.width - PAD_RIGHT] = 3
        out[cols < PAD_LEFT] = 2
        out[rows == 1] = 1
        out[rows == 0] = 0
        return out

    def wavefront(self, t: int) -> tuple[np.ndarray, np.ndarray]:
        """Rows and columns of the pixels with 2 i + j == t, by row."""
        low = max(0, -(-(t - self.width + 1) // 2))
        high = min(self.height - 1, t // 2)
        rows = np.arange(low, high + 1, dtype=np.int64)
        return rows, t - 2 * rows

    @property
    def wavefronts(self) -> int:
        return 2 * (self.height - 1) + self.width


def block_count(shape: tuple[int, int], size: int) -> int:
    """Blocks of size x size covering a plane (the last row and column of blocks may be partial)."""
    return -(-shape[0] // size) * -(-shape[1] // size)


def block_index(rows: np.ndarray, cols: np.ndarray, width: int, size: int) -> np.ndarray:
    """The row-major index of each pixel's block: the order of the side information's block classes."""
    return (rows // size) * -(-width // size) + cols // size
