"""The raster decoder's per-wavefront arithmetic, compiled: from the grids of decoded values and errors,
each pixel's neighbours, activity, class, two stage predictions and linear scale (``context``); and,
once its value is decoded, its entries in the grids (``store``).

Why: these are a dozen small numpy calls per wavefront of a few hundred pixels, whose overhead costs more
than the arithmetic. The definitions are ``prediction``'s numpy functions, which the encoder runs on whole
planes (``activity``, ``classes``, ``first_stage``, ``second_stage``, ``scale_sum``,
``linear_keys``, ``error``); this is the same integer arithmetic a pixel at a time, and every file's
decoding checks that the two agree (a pixel that differed would decode to garbage and fail the
checksums); the tests also compare them directly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from medcodec.compiled import kernel
from medcodec.pipelines.surprise import log8_of


@dataclass(frozen=True)
class Plane:
    """What every wavefront of a plane shares: the padded grid's geometry and the plane's weights, in the
    units of ``layout`` (which ``decoder.wavefront_plane`` builds it in)."""

    stride: int  # of the padded grids
    width: int
    offsets: np.ndarray  # int64 [12]: the template's flat offsets
    pad_top: int
    pad_left: int  # also the border columns on the left
    pad_right: int  # also the border columns on the right
    class_shift: int
    blocks: np.ndarray | None  # int64 block classes (row-major), or None: classes by activity
    block_size: int
    # int64 [height], [width]: inner pixel (i, j)'s class is by_row[i] + by_column[j] (raster.phase), or None
    phase_rows: np.ndarray | None
    phase_columns: np.ndarray | None
    first: np.ndarray  # int64 [classes, 12]
    second: np.ndarray  # int64 [classes, 12]
    scale_weights: np.ndarray  # int64 [9]
    activity_classes: int
    flat_class: int
    coef_shift: int
    top: int  # predictions are clamped to 0..top
    error_limit: int  # errors are clamped to +-error_limit


@dataclass
class Context:
    """One wavefront's pixels: flat grid index; the 12 neighbours' values, first-stage errors, final errors
    and uncorrected second-stage errors (int64 [pixels, 12]; the last only where the grid is kept);
    activity, class, first- and second-stage predictions, linear scale sum and scale key (int64)."""

    index: np.ndarray
    nb: np.ndarray
    errors1: np.ndarray
    errors2: np.ndarray
    errors_pre: np.ndarray | None
    activity: np.ndarray
    cls: np.ndarray
    mu1: np.ndarray
    mu2: np.ndarray
    scale_sum: np.ndarray
    keys: np.ndarray


def context(plane: Plane, grids: tuple, rows: np.ndarray, cols: np.ndarray) -> Context:
    """grids: (values, first-stage errors, final errors, uncorrected second-stage errors or None), the
    padded flat grids of ``decoder.decode``."""
    count = rows.size
    grid, errors1, errors2, errors_pre = grids
    taps = len(plane.offsets)
    out = Context(index=np.empty(count, np.int64), nb=np.empty((count, taps), np.int64),
                  errors1=np.empty((count, taps), np.int64), errors2=np.empty((count, taps), np.int64),
                  errors_pre=np.empty((count, taps), np.int64) if errors_pre is not None else None,
                  activity=np.empty(count, np.int64), cls=np.empty(count, np.int64), mu1=np.empty(count, np.int64),
                  mu2=np.empty(count, np.int64), scale_sum=np.empty(count, np.int64), keys=np.empty(count, np.int64))
    use_blocks = plane.blocks is not None
    use_phase = plane.phase_rows is not None
    none = np.zeros(0, np.int64)
    _context(grid, errors1, errors2, errors_pre if errors_pre is not None else errors2, errors_pre is not None,
             plane.stride, plane.width, plane.offsets, plane.pad_top, plane.pad_left, plane.pad_right,
             np.ascontiguousarray(rows), np.ascontiguousarray(cols), plane.class_shift,
             plane.blocks if use_blocks else none, use_blocks, max(plane.block_size, 1),
             -(-plane.width // max(plane.block_size, 1)), plane.phase_rows if use_phase else none,
             plane.phase_columns if use_phase else none, use_phase, plane.first, plane.second, plane.scale_weights,
             plane.activity_classes, plane.flat_class, plane.coef_shift, plane.top,
             out.index, out.nb, out.errors1, out.errors2,
             out.errors_pre if out.errors_pre is not None else out.errors2, out.activity, out.cls, out.mu1,
             out.mu2, out.scale_sum, out.keys)
    return out


@kernel
def _context(grid, errors1, errors2, errors_pre, want_pre, stride, width, offsets, pad_top, pad_left, pad_right,
             rows, cols, class_shift, blocks, use_blocks, block_size, blocks_per_row, phase_rows, phase_columns,
             use_phase, first, second,
             scale_weights, activity_classes, flat_class, coef_shift, top,
             index, nb, e1, e2, epre, activity, cls, mu1, mu2, scale_sum, keys):
    taps = offsets.size
    for p in range(rows.size):
        r, c = rows[p], cols[p]
        here = (r + pad_top) * stride + c + pad_left
        index[p] = here
        for k in range(offsets.size):
            at = here + offsets[k]
            nb[p, k] = grid[at]
            e1[p, k] = errors1[at]
            e2[p, k] = errors2[at]
            if want_pre:
                epre[p, k] = errors_pre[at]
        w, n, nw, ne, ww, nn = nb[p, 0], nb[p, 1], nb[p, 2], nb[p, 3], nb[p, 4], nb[p, 5]
        a = abs(w - nw) + abs(n - nw) + abs(n - ne) + abs(w - ww) + abs(n - nn)
        activity[p] = a
        # the class: border rows and columns, else flat, else by activity (or the pixel's block or phase)
        if r == 0:
            k = activity_classes
        elif r == 1:
            k = activity_classes + 1
        elif c < pad_left:
            k = activity_classes + 2
        elif c >= width - pad_right:
            k = activity_classes + 3
        elif a == 0:
            k = flat_class
        elif use_blocks:
            k = blocks[(r // block_size) * blocks_per_row + c // block_size]
        elif use_phase:
            k = phase_rows[r] + phase_columns[c]
        else:
            bit_length = 0
            while (a >> bit_length) > 0:
                bit_length += 1
            k = min(max(bit_length - class_shift, 0), activity_classes - 1)
        cls[p] = k
        acc = first[k, taps - 1]
        for t in range(taps - 1):
            acc += (nb[p, t + 1] - w) * first[k, t]
        m1 = min(max((w << 4) + (acc >> (coef_shift - 4)), 0), top)
        mu1[p] = m1
        acc = 0
        for t in range(taps):
            acc += e1[p, t] * second[k, t]
        mu2[p] = min(max(m1 + (acc >> coef_shift), 0), top)
        total = scale_weights[scale_weights.size - 1] * (a << 4)
        for t in range(scale_weights.size - 1):
            total += abs(e2[p, t]) * scale_weights[t]
        s = total >> 4
        scale_sum[p] = s
        keys[p] = log8_of(min(s, (1 << 31) - 2) + 1) >> 1


def store(plane: Plane, grids: tuple, ctx: Context, values: np.ndarray, mu: np.ndarray) -> None:
    """The wavefront's decoded values into the value grid, and their errors (16 v + 8 - prediction,
    clamped to +-error_limit) against the first-stage, final (mu) and uncorrected second-stage
    predictions into the error grids."""
    grid, errors1, errors2, errors_pre = grids
    _store(grid, errors1, errors2, errors_pre if errors_pre is not None else errors2, errors_pre is not None,
           ctx.index, np.ascontiguousarray(values, dtype=np.int64), ctx.mu1, np.ascontiguousarray(mu, dtype=np.int64),
           ctx.mu2, plane.error_limit)


@kernel
def _store(grid, errors1, errors2, errors_pre, want_pre, index, values, mu1, mu, mu2, limit):
    for p in range(index.size):
        at = index[p]
        centre = (values[p] << 4) + 8
        grid[at] = values[p]
        errors1[at] = min(max(centre - mu1[p], -limit), limit)
        errors2[at] = min(max(centre - mu[p], -limit), limit)
        if want_pre:
            errors_pre[at] = min(max(centre - mu2[p], -limit), limit)
