"""Compiled per-pixel loops (numba), with the options that keep their bits the same everywhere.

Why: the raster decoder works a wavefront, a few hundred pixels, at a time; numpy runs such work as
dozens of small calls per wavefront, whose overhead costs more than the arithmetic. A compiled loop
over the pixels does the same integer and IEEE-754 operations in one call.

Decodable anywhere: no fast-math (so no fused multiply-add, no reordering of floating-point sums: each
operation is correctly rounded, as numpy's elementwise ones are), numpy's error model (a division by
zero gives inf or nan, as numpy's did, instead of an exception), no parallel loops. The loops are
cached on disk next to their module, or in the user's cache; where neither can be written (a
read-only installation) they are compiled at each start instead, with the same result.
"""

from __future__ import annotations

import numba

_OPTIONS = {"nogil": True, "error_model": "numpy", "fastmath": False}


def kernel(function=None, *, inline: bool = False):
    """numba.njit with the options above; ``@kernel`` or ``@kernel(inline=True)`` (a helper inlined
    into the loops that call it)."""
    def build(function):
        options = dict(_OPTIONS, inline="always" if inline else "never")
        try:
            return numba.njit(cache=True, **options)(function)
        except RuntimeError:  # numba found nowhere to write its cache
            return numba.njit(cache=False, **options)(function)

    return build(function) if function is not None else build
