"""Which way round a raster frame codes its plane (format 2.16): as it is, transposed, or flipped top to
bottom or left to right. The decoder codes the oriented plane and turns it back; the side information's
``or`` names the orientation.

Why: the raster coder's context is causal in raster order, so where an object starts (the top of a head
rising out of an MR's background) and which neighbours it sees depend on the orientation. On 24 train
planes the best of the four coded 0.9964 x the plane as it is in total, all of it on MR (MP-RAGE flipped
0.6-2.3 % smaller, a 12-bit MR transposed 0.8 %), for a raster analysis per orientation: the slow mode's
price, not the fast mode's (``codec.RASTER_ORIENTATIONS``). The choice is made once per plane on the
first analysis' estimate (``choose``), before the mode's raster tries, which all code that orientation.
"""

from __future__ import annotations

import numpy as np

AS_IS, TRANSPOSED, FLIPPED_ROWS, FLIPPED_COLUMNS = range(4)
ORIENTATIONS = (AS_IS, TRANSPOSED, FLIPPED_ROWS, FLIPPED_COLUMNS)
TURNED = {TRANSPOSED: "transposed", FLIPPED_ROWS: "flipped top to bottom", FLIPPED_COLUMNS: "flipped left to right"}
# A turned orientation must beat the plane as it is by this share of its estimate (the first analysis'
# estimate: the coded streams are within ~0.2 % of it, and the tries after it may move further): a
# frame coded the other way round on a promise within the estimate's error is no smaller.
MARGIN = 0.003


def oriented(plane: np.ndarray, orientation: int) -> np.ndarray:
    """The plane as the frame codes it (a view where numpy gives one)."""
    if orientation == TRANSPOSED:
        return plane.T
    if orientation == FLIPPED_ROWS:
        return plane[::-1]
    if orientation == FLIPPED_COLUMNS:
        return plane[:, ::-1]
    return plane


def restored(coded: np.ndarray, orientation: int) -> np.ndarray:
    """The plane from the oriented one (each orientation is its own inverse)."""
    return np.ascontiguousarray(oriented(coded, orientation))


def shape_of(shape: tuple[int, int], orientation: int) -> tuple[int, int]:
    """The oriented plane's shape."""
    return (shape[1], shape[0]) if orientation == TRANSPOSED else (shape[0], shape[1])


def choose(plane: np.ndarray, estimate) -> int:
    """The orientation whose estimate (``estimate(oriented plane)``, in bytes) is smallest, as it is unless
    another beats it by MARGIN. A one-row or one-column plane stays as it is."""
    if min(plane.shape) < 2:
        return AS_IS
    costs = {k: estimate(np.ascontiguousarray(oriented(plane, k))) for k in ORIENTATIONS}
    best = min(costs, key=costs.get)
    return best if costs[best] < (1 - MARGIN) * costs[AS_IS] else AS_IS
