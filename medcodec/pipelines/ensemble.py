"""Test-time ensembles of the subimage networks: the integer mean of one network's predictions over
flips (and, for D, transposes) of its context, as the slow path uses them.

The networks were trained with flip and transpose augmentation, so a flipped context gives a valid
prediction of the flipped target; the mean of several is an ensemble without new weights. It stays
exact on every machine: every pass is integer-exact, the sums are int64 and the mean is a floor
division.

A flip must keep the 2x2 split's geometry. Flipping the full-resolution plane left-right sends even
columns to odd ones, so the grids of even full-resolution columns (A, C; ``split.PHASE``) are flipped
and shifted one column (the edge column repeated), those of odd columns (B, D) only flipped; likewise
for rows. A transpose keeps D's neighbourhood (the four diagonal A pixels) but swaps the roles of B and
C, so only D gets the transposed variants. The slow path's LC-L pass (even columns of the target known)
takes only the up-down flip: a left-right flip would move its known columns.

Measured (``benchmarks/ensemble_ablation.py``, train split): 8 variants of the first pass and 2 of
the LC-L pass code the slow path's learned streams in 0.8 % fewer bytes (12-16-bit: about 2 %) for
3-7 more network passes per subimage; the slow path keeps them where they save >= 1 %.
"""

from __future__ import annotations

from typing import Callable

import torch

from . import split as sp

Transform = tuple[bool, bool, bool]  # (left-right flip, up-down flip, transpose), applied transpose first

FLIPS: tuple[Transform, ...] = ((False, False, False), (True, False, False), (False, True, False), (True, True, False))
TRANSPOSED: tuple[Transform, ...] = tuple((lr, ud, True) for lr, ud, _ in FLIPS)
UP_DOWN: tuple[Transform, ...] = ((False, False, False), (False, True, False))

FIRST_PASS_SIZES = (1, 2, 4, 8)  # variants of a first (LC-H) pass: 8 adds the transposes, for D only
LEFT_PASS_SIZES = (1, 2)  # variants of an LC-L pass: identity, up-down


def transforms(target: str, variants: int, left_pass: bool) -> tuple[Transform, ...]:
    """The transforms of an ensemble of ``variants`` passes, identity first."""
    if left_pass:
        if variants not in LEFT_PASS_SIZES:
            raise ValueError(f"an LC-L ensemble has {LEFT_PASS_SIZES} passes, not {variants}")
        return UP_DOWN[:variants]
    if variants not in FIRST_PASS_SIZES:
        raise ValueError(f"a first-pass ensemble has {FIRST_PASS_SIZES} passes, not {variants}")
    return FLIPS[:min(variants, 4)] + (TRANSPOSED if target == "D" and variants == 8 else ())


def check_sizes(first: int, left: int) -> None:
    """ValueError unless (first, left) are ensemble sizes of a first pass and an LC-L pass."""
    if first not in FIRST_PASS_SIZES or left not in LEFT_PASS_SIZES:
        raise ValueError(f"ensemble sizes ({first}, {left}): a first pass has {FIRST_PASS_SIZES}, "
                         f"an LC-L pass {LEFT_PASS_SIZES}")


def _even(name: str) -> tuple[bool, bool]:
    """Whether subimage ``name`` sits on even full-resolution (rows, columns)."""
    row, column = sp.PHASE[name]
    return row == 0, column == 0


def _shift(grid: torch.Tensor, dim: int, forward: bool) -> torch.Tensor:
    """One step along dim, the edge repeated: forward x[i] <- x[i-1], backward x[i] <- x[i+1]."""
    n = grid.shape[dim]
    if n < 2:
        return grid
    if forward:
        return torch.cat([grid.narrow(dim, 0, 1), grid.narrow(dim, 0, n - 1)], dim)
    return torch.cat([grid.narrow(dim, 1, n - 1), grid.narrow(dim, n - 1, 1)], dim)


def apply(name: str, grid: torch.Tensor, transform: Transform) -> torch.Tensor:
    """Subimage ``name``'s grid as it lies in the flipped / transposed full-resolution plane."""
    left_right, up_down, transpose = transform
    even_row, even_column = _even(name)
    if transpose:
        grid = grid.transpose(-1, -2)
    if left_right:
        grid = grid.flip(-1)
        grid = _shift(grid, -1, True) if even_column else grid
    if up_down:
        grid = grid.flip(-2)
        grid = _shift(grid, -2, True) if even_row else grid
    return grid.contiguous()


def undo(name: str, grid: torch.Tensor, transform: Transform) -> torch.Tensor:
    """The inverse of ``apply`` (up to the repeated edge, which the shift back drops)."""
    left_right, up_down, transpose = transform
    even_row, even_column = _even(name)
    if up_down:
        grid = _shift(grid, -2, False) if even_row else grid
        grid = grid.flip(-2)
    if left_right:
        grid = _shift(grid, -1, False) if even_column else grid
        grid = grid.flip(-1)
    if transpose:
        grid = grid.transpose(-1, -2)
    return grid.contiguous()


def apply_channels(names: tuple[str, ...], window: torch.Tensor, transform: Transform) -> torch.Tensor:
    """A network input window [C, h, w] transformed channel by channel, each as its subimage's grid
    (``names[c]``: which subimage channel c shows)."""
    if transform == FLIPS[0]:
        return window
    return torch.stack([apply(name, window[c], transform) for c, name in enumerate(names)])


def summed_passes(target: str, names: tuple[str, ...], window: torch.Tensor, chosen: tuple[Transform, ...],
                  run: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]):
    """(first pass's (delta, ell), the sums over every pass) of ``run`` (an input window [C, h, w] ->
    integer (delta, ell) of the target, [h, w]) on each transform of the window, transformed back.

    The ensemble is taken window by window, inside the predictor's tiling, so it needs no more memory
    than one tile's pass; the caller divides (exact integers throughout). A single pass is its own
    sum (no copy: the fast path's hot loop)."""
    if len(chosen) == 1 and chosen[0] == FLIPS[0]:
        first = run(window)
        return first, first
    first = delta_sum = ell_sum = None
    for t in chosen:
        delta, ell = run(apply_channels(names, window, t))
        if t != FLIPS[0]:
            delta, ell = undo(target, delta, t), undo(target, ell, t)
        if first is None:
            first = (delta, ell)
            delta_sum, ell_sum = delta.clone(), ell.clone()
        else:
            delta_sum += delta
            ell_sum += ell
    return first, (delta_sum, ell_sum)
