"""parallel: the thread budget, and beside() and map_in_threads() giving the same results whether they run in
sequence or not."""

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch

from medcodec import parallel


@pytest.mark.parametrize("threads", [1, 2])
def test_beside_returns_both_results_in_order(torch_threads, threads):
    torch_threads(threads)
    assert parallel.thread_budget() == threads
    seen = []

    def background():
        seen.append(threading.current_thread().name)
        return "b"

    assert parallel.beside(background, lambda: "f") == ("b", "f")
    # with one thread the background job runs in the caller's thread, after the foreground one
    assert (seen[0] == threading.current_thread().name) == (threads == 1)


@pytest.mark.parametrize("threads", [1, 2])
def test_beside_raises_the_foreground_error(torch_threads, threads):
    torch_threads(threads)

    def fail():
        raise ValueError("foreground")

    with pytest.raises(ValueError, match="foreground"):
        parallel.beside(lambda: None, fail)


def test_background_error_reaches_the_caller(torch_threads):
    torch_threads(2)

    def fail():
        raise KeyError("background")

    with pytest.raises(KeyError):
        parallel.beside(fail, lambda: None)


def test_single_threaded_blas_holds_blas_to_one_thread_and_restores_it():
    from threadpoolctl import threadpool_info

    def blas_threads():
        return [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]

    before = blas_threads()

    @parallel.single_threaded_blas
    def inside(x):
        return x, blas_threads()

    value, during = inside(7)
    assert value == 7 and all(n == 1 for n in during)
    assert blas_threads() == before


@pytest.mark.parametrize("threads", [1, 2])
def test_map_in_threads_gives_the_loop_results_in_order(torch_threads, threads, monkeypatch):
    torch_threads(threads)
    monkeypatch.setattr(parallel, "available_memory", lambda: None)
    names = set()

    def square(x):
        names.add(threading.current_thread().name)
        return x * x

    assert parallel.map_in_threads(square, list(range(9)), bytes_each=1) == [x * x for x in range(9)]
    # with two threads the frames run in the pool's threads, with one in the caller's
    assert (threading.current_thread().name in names) == (threads == 1)


def test_map_in_threads_raises_the_first_failing_item_in_order(torch_threads, monkeypatch):
    torch_threads(2)
    monkeypatch.setattr(parallel, "available_memory", lambda: None)
    started = threading.Event()

    def frame(n):
        if n == 1:
            started.wait(5)  # frame 3 fails first in time; frame 1's error is still the one raised
            raise ValueError("frame 1")
        if n == 3:
            started.set()
            raise KeyError("frame 3")
        return n

    with pytest.raises(ValueError, match="frame 1"):
        parallel.map_in_threads(frame, [0, 1, 2, 3], bytes_each=1)


def _process_of(seconds: float) -> int:
    """The process that ran this item, after a pause (long enough for a spawned worker to start)."""
    import time

    time.sleep(seconds)
    return os.getpid()


def test_map_in_processes_gives_the_loop_results_in_order_and_restores_the_budget(torch_threads):
    torch_threads(2)
    omp_before = os.environ.get("OMP_NUM_THREADS")
    items = [-3, 2, -1, 5, -8, 13, -21]
    assert parallel.map_in_processes(abs, items, processes=2) == [abs(x) for x in items]
    assert parallel.thread_budget() == 2 and os.environ.get("OMP_NUM_THREADS") == omp_before
    # the caller takes items from the start and a worker process joins once it has started
    ran_in = parallel.map_in_processes(_process_of, [0.3] * 12, processes=2)
    assert ran_in[0] == os.getpid() and len(set(ran_in)) == 2
    assert parallel.map_in_processes(abs, items, processes=1) == [abs(x) for x in items]
    assert parallel.map_in_processes(abs, [4], processes=8) == [4]


def _dies_in_a_worker(seconds: float) -> int:
    """Kills the worker process that runs it (as the out-of-memory killer would); in the test's own
    process (MEDCODEC_TEST_PARENT) it returns the item's process after a pause."""
    if os.getpid() != int(os.environ["MEDCODEC_TEST_PARENT"]):
        os._exit(9)
    return _process_of(seconds)


def test_map_in_processes_survives_workers_that_die(torch_threads, monkeypatch):
    torch_threads(2)
    monkeypatch.setenv("MEDCODEC_TEST_PARENT", str(os.getpid()))
    ran_in = parallel.map_in_processes(_dies_in_a_worker, [0.3] * 12, processes=2)
    assert ran_in == [os.getpid()] * 12  # every item, here, in order


def test_map_in_processes_raises_the_first_failing_item_in_order(torch_threads):
    torch_threads(2)
    with pytest.raises(ValueError, match="'x'"):
        parallel.map_in_processes(int, ["1", "x", "3", "y", "5"], processes=2)


def test_thread_workers_are_bounded_by_items_budget_and_memory(torch_threads, monkeypatch):
    torch_threads(4)
    monkeypatch.setattr(parallel, "available_memory", lambda: None)
    assert parallel.thread_workers(items=8, bytes_each=10**9) == 4  # memory unknown: the budget
    assert parallel.thread_workers(items=2, bytes_each=1) == 2
    monkeypatch.setattr(parallel, "available_memory", lambda: 3000)
    assert parallel.thread_workers(items=8, bytes_each=500) == 3  # half of 3000 holds three jobs
    assert parallel.thread_workers(items=8, bytes_each=10**6) == 1  # never fewer than one


def test_available_memory_is_read_on_linux():
    memory = parallel.available_memory()
    if not Path("/proc/meminfo").exists():
        pytest.skip("no /proc/meminfo on this system: the memory is unknown (None) and the budget alone counts")
    assert memory is not None and memory > 0


def test_share_cores_sets_a_worker_budget_and_keeps_the_users(torch_threads, monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(parallel.os, "cpu_count", lambda: 16)
    parallel.share_cores(4)
    assert parallel.os.environ["OMP_NUM_THREADS"] == "4" and torch.get_num_threads() == 4
    monkeypatch.delenv("OMP_NUM_THREADS")
    parallel.share_cores(64)
    assert parallel.os.environ["OMP_NUM_THREADS"] == "1"  # never fewer than one
    parallel.share_cores(2, threads=6)  # --threads 6 -j 2: three each
    assert parallel.os.environ["OMP_NUM_THREADS"] == "3" and parallel.thread_budget() == 3
    monkeypatch.setenv("OMP_NUM_THREADS", "5")
    parallel.share_cores(2)  # the user's own setting, without --threads, is each worker's
    assert parallel.os.environ["OMP_NUM_THREADS"] == "5"


def test_set_budget_sets_torch_threads_and_the_environment(torch_threads, monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    parallel.set_budget(3)
    assert torch.get_num_threads() == 3 and parallel.os.environ["OMP_NUM_THREADS"] == "3"
    assert parallel.thread_budget() == 3


def test_budget_without_torch_follows_omp_num_threads():
    """Classical-only work never loads torch: the budget is OMP_NUM_THREADS (what share_cores sets)."""
    code = ("import sys; from medcodec import parallel; assert 'torch' not in sys.modules; "
            "print(parallel.thread_budget())")
    env = dict(os.environ, OMP_NUM_THREADS="3")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "3"


def test_a_job_inside_a_job_runs_in_sequence(torch_threads, monkeypatch):
    """Nested maps (a frame's raster codings inside the frames' map) do not multiply the threads."""
    torch_threads(2)
    monkeypatch.setattr(parallel, "available_memory", lambda: None)

    def inner_workers(_):
        return parallel.thread_workers(items=4, bytes_each=1)

    assert parallel.map_in_threads(inner_workers, [0, 1], bytes_each=1) == [1, 1]
    assert parallel.thread_workers(items=4, bytes_each=1) == 2  # outside any job: the budget again
