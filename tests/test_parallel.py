"""parallel: the thread budget, and beside() giving the same results whether it runs in sequence or not."""

import threading

import pytest
import torch

from medcodec import parallel


@pytest.fixture
def torch_threads():
    before = torch.get_num_threads()
    yield torch.set_num_threads
    torch.set_num_threads(before)


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
