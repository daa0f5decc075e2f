"""The process' thread budget, and running jobs side by side within it.

When torch is loaded, its intra-op thread count is the budget: the CLI leaves torch's default (the
machine's cores), ``medcodec bench --threads N`` sets it so that medcodec is timed on as many threads
as the codecs it is compared with (one), and ``--jobs N`` gives each worker process its share. Work
medcodec runs in parallel (the classical JPEG-XL codings next to the learned work, the encoding of a
multi-frame file's frames, a plane's own and raster codings, JPEG-XL's own decoding threads) stays
within it, and with a budget of one runs in sequence. Every result is deterministic, so the bytes
never depend on the budget. Decoding does not use threads: its wavefront loops hold the GIL between
their compiled pieces, and two threads were no faster (benchmarks/results/threads.json); the CLI decodes
a large multi-frame file's frames in processes instead (``map_in_processes``).
"""

from __future__ import annotations

import functools
import multiprocessing
import os
import sys
import threading
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Callable, Sequence, TypeVar

from threadpoolctl import threadpool_limits

B = TypeVar("B")
F = TypeVar("F")
R = TypeVar("R")
T = TypeVar("T")

MEMORY_SHARE = 0.5  # jobs run at once (map_in_threads) may take at most this share of the memory available
_job = threading.local()  # .running: this thread runs a map_in_threads job


def thread_budget() -> int:
    """torch's intra-op threads when torch is loaded (every learned method loads it, and the bench
    sets it), else OMP_NUM_THREADS where set (what torch will take when it loads), else the machine's
    CPUs (classical-only work, where torch is never imported)."""
    torch = sys.modules.get("torch")
    if torch is not None:
        return max(1, int(torch.get_num_threads()))
    try:
        return max(1, int(os.environ["OMP_NUM_THREADS"]))
    except (KeyError, ValueError):
        return max(1, os.cpu_count() or 1)


def set_budget(threads: int) -> None:
    """This process' thread budget (``--threads``): torch's intra-op threads, now where torch is loaded,
    else through OMP_NUM_THREADS, which torch reads when it loads."""
    threads = max(1, int(threads))
    os.environ["OMP_NUM_THREADS"] = str(threads)
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(threads)


def share_cores(processes: int, threads: int | None = None) -> None:
    """Run first in each of ``processes`` worker processes (``medcodec encode -j N``): its budget becomes
    its share of ``threads`` in all (None: the machine's cores), so that N workers, each coding a
    multi-frame file's frames in threads with torch's own threads too, do not start N times the cores.
    Without threads, an OMP_NUM_THREADS the user set is kept as each worker's."""
    if threads is None and "OMP_NUM_THREADS" in os.environ:
        return
    total = threads if threads is not None else (os.cpu_count() or 1)
    set_budget(max(1, total // max(1, processes)))


def available_memory() -> int | None:
    """Bytes this process can still allocate: the system's available memory (Linux /proc/meminfo),
    or what is left under a cgroup's memory limit (containers) where that is less; None if unknown."""
    found = []
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                found.append(int(line.split()[1]) * 1024)
    except (OSError, ValueError, IndexError):
        pass
    for limit_file, usage_file in (("memory.max", "memory.current"),  # cgroup v2, then v1
                                   ("memory/memory.limit_in_bytes", "memory/memory.usage_in_bytes")):
        try:
            limit = Path("/sys/fs/cgroup", limit_file).read_text().strip()
            usage = Path("/sys/fs/cgroup", usage_file).read_text().strip()
            if limit.isdigit() and usage.isdigit():
                found.append(max(0, int(limit) - int(usage)))
                break
        except OSError:
            continue
    return min(found) if found else None


def thread_workers(items: int, bytes_each: int) -> int:
    """How many of ``items`` independent jobs to run at once: the thread budget, at most the items,
    and at most as many as MEMORY_SHARE of the available memory holds at bytes_each (one job's working
    memory; where the memory is unknown, the budget alone). One inside a job of another
    ``map_in_threads``: the outer one already spends the budget."""
    if getattr(_job, "running", False):
        return 1
    return within_memory(thread_budget(), items, bytes_each)


def within_memory(wanted: int, items: int, bytes_each: int) -> int:
    """How many of ``items`` jobs of bytes_each working memory to run at once: at most wanted and the
    items, and at most as many as MEMORY_SHARE of the available memory holds (where it is unknown,
    wanted alone); never fewer than one. Threads (``thread_workers``) and the decoder's processes."""
    workers = min(wanted, items)
    memory = available_memory()
    if memory is not None and bytes_each > 0:
        workers = min(workers, int(MEMORY_SHARE * memory) // bytes_each)
    return max(1, workers)


def map_in_threads(function: Callable[[T], R], items: Sequence[T], bytes_each: int) -> list[R]:
    """[function(item) for item in items], the items in threads (``thread_workers``) when there are
    several and the budget allows.

    Why threads: the encoding jobs given here (the frames of a multi-frame CT, MR or tomosynthesis
    file; a plane's own and raster codings) are independent, and their heavy parts release the
    GIL (numba's compiled loops are built nogil, numpy's BLAS, torch, libjxl), so one file uses the
    machine's cores the way ``--jobs`` does for many files. Each job's result depends only on its
    item: the bytes are the same in any order and with any number of threads. Errors: the first
    failing item's, in item order (as the sequential loop would raise), after the running jobs finish;
    the jobs not started are dropped."""
    workers = thread_workers(len(items), bytes_each)
    if workers < 2:
        return [function(item) for item in items]

    def job(item: T) -> R:
        _job.running = True
        try:
            return function(item)
        finally:
            _job.running = False

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="medcodec-job") as pool:
        futures = [pool.submit(job, item) for item in items]
        try:
            return [future.result() for future in futures]
        except BaseException:
            for future in futures:
                future.cancel()
            raise


def map_in_processes(function: Callable[[T], R], items: Sequence[T], processes: int) -> list[R]:
    """[function(item) for item in items], taken in turn by this process and by processes - 1 spawned
    worker processes (each with its share of the thread budget); the results in item order.

    Why processes: decoding is what this is for (the frames of a multi-frame file), and its wavefront
    loops hold the GIL between their compiled pieces, so threads do not help there
    (benchmarks/results/threads.json). This process takes items from the start while the workers start
    and import what the items need (~2-3 s for medcodec's decoders), so a short job is not held up by
    them (it waits only for their start, ~0.2 s). function and the items
    must pickle (a module-level function; bytes, arrays, dataclasses). Each result depends only on its
    item, so the results are the same with any count. Errors: the first failing item's, in item order,
    after the running items finish; items not started are dropped. A worker that dies (killed, out of
    memory) is not an error: its item runs again in this process, and so do the rest if no worker is
    left. Spawned, not forked: a parent that already ran torch would deadlock forked children in its
    OpenMP pool."""
    items = list(items)
    processes = min(processes, len(items))
    if processes < 2:
        return [function(item) for item in items]
    results: list = [None] * len(items)
    errors: list[tuple[int, BaseException]] = []
    lock = threading.Lock()
    taken = iter(range(len(items)))

    def take() -> int | None:
        with lock:
            return None if errors else next(taken, None)

    def lane(run: Callable[[T], R]) -> None:
        while (index := take()) is not None:
            try:
                results[index] = run(items[index])
            except BaseException as exc:  # noqa: B036 - re-raised below, the earliest item's first
                with lock:
                    errors.append((index, exc))

    budget = thread_budget()
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=processes - 1, mp_context=spawn, initializer=share_cores,
                             initargs=(processes, budget)) as pool, \
            ThreadPoolExecutor(max_workers=processes - 1, thread_name_prefix="medcodec-lane") as lanes:
        def in_worker(item: T) -> R:
            try:
                return pool.submit(function, item).result()
            except BrokenProcessPool:  # a worker died (killed, out of memory): the item again, here
                return function(item)

        def remote_lane() -> None:
            try:
                pool.submit(os.getpid).result()  # take items only once a worker has started
            except BrokenProcessPool:
                return  # no worker could start: this process takes every item
            lane(in_worker)

        remote = [lanes.submit(remote_lane) for _ in range(processes - 1)]
        saved = os.environ.get("OMP_NUM_THREADS")
        set_budget(max(1, budget // processes))  # this process' share while the workers run
        try:
            lane(function)
            for future in remote:
                future.result()
        finally:
            set_budget(budget)
            if saved is None:
                os.environ.pop("OMP_NUM_THREADS", None)
            else:
                os.environ["OMP_NUM_THREADS"] = saved
    if errors:
        raise min(errors, key=lambda error: error[0])[1]
    return results


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
