"""The process' thread budget, and running one job beside another within it.

When torch is loaded, its intra-op thread count is the budget: the CLI leaves torch's default (the
machine's cores), ``medcodec bench --threads N`` sets it so that medcodec is timed on as many threads
as the codecs it is compared with (one). Work medcodec runs in parallel (the classical JPEG-XL codings next to the learned
work, JPEG-XL's own decoding threads) stays within it, and with a budget of one runs in sequence.
Every result is deterministic, so the bytes never depend on the budget.
"""

from __future__ import annotations

import functools
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, TypeVar

from threadpoolctl import threadpool_limits

B = TypeVar("B")
F = TypeVar("F")
R = TypeVar("R")


def thread_budget() -> int:
    """torch's intra-op threads when torch is loaded (every learned method loads it, and the bench
    sets it), else the machine's CPUs (classical-only work, where torch is never imported)."""
    torch = sys.modules.get("torch")
    if torch is not None:
        return max(1, int(torch.get_num_threads()))
    return max(1, os.cpu_count() or 1)


def beside(background: Callable[[], B], foreground: Callable[[], F]) -> tuple[B, F]:
    """(background(), foreground()), the background job in a second thread when the budget allows
    (for jobs that release the GIL, like libjxl's), else one after the other."""
    if thread_budget() < 2:
        result = foreground()
        return background(), result
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="medcodec-beside") as pool:
        pending = pool.submit(background)
        try:
            result = foreground()
        except BaseException:
            pending.cancel()
            raise
        return pending.result(), result


def single_threaded_blas(function: Callable[..., R]) -> Callable[..., R]:
    """``function`` run with numpy's BLAS held to one thread (threadpoolctl; torch's threads untouched).

    Why: medcodec's matrix products are tall and thin (the raster correction: a few hundred pixels per
    wavefront times 38 -> 96 -> 96 -> 96 -> 1) and exact in any summation order, so BLAS threads only
    add hand-offs. On the 2-core CI machine OpenBLAS's two threads made them 2-4 x slower than one
    (0.37 vs 0.84 ms for a 200-pixel wavefront, 209 vs 552 ms for a 65,536-pixel encoder band), and
    more so beside torch's OpenMP threads. The bytes never depend on it."""

    @functools.wraps(function)
    def limited(*args, **kwargs):
        with threadpool_limits(limits=1, user_api="blas"):
            return function(*args, **kwargs)

    return limited
