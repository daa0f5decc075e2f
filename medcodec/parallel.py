"""The process' thread budget, and running one job beside another within it.

When torch is loaded, its intra-op thread count is the budget: the CLI leaves torch's default (the
machine's cores), ``medcodec bench --threads N`` sets it so that medcodec is timed on as many threads
as the codecs it is compared with (one). Work medcodec runs in parallel (the classical JPEG-XL codings next to the learned
work, JPEG-XL's own decoding threads) stays within it, and with a budget of one runs in sequence.
Every result is deterministic, so the bytes never depend on the budget.
"""

from __future__ import annotations

import os
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, TypeVar

B = TypeVar("B")
F = TypeVar("F")


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
