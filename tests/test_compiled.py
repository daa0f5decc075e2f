"""The compiled-loop decorator: numpy's IEEE results and error model, and a fallback where numba cannot
write its cache."""

import math

import numba
import numpy as np

from medcodec import compiled


def _ratios(a, b, out):
    for i in range(a.size):
        out[i] = a[i] / b[i] - a[i] * b[i]


def test_kernels_give_numpys_bits_and_no_exceptions_on_zero_divisors():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal(10_000), rng.standard_normal(10_000)
    a[:3], b[:3] = (1.0, 0.0, -1.0), 0.0  # inf, nan, -inf, as numpy gives them
    out = np.empty_like(a)
    compiled.kernel(_ratios)(a, b, out)
    with np.errstate(all="ignore"):
        want = a / b - a * b
    assert np.array_equal(out, want, equal_nan=True)
    assert math.isinf(out[0]) and math.isnan(out[1])


def test_a_kernel_compiles_without_a_cache_where_none_can_be_written(monkeypatch):
    real = numba.njit

    def no_cache(*args, cache=False, **options):
        if cache:
            raise RuntimeError("cannot cache function: no locator available")
        return real(*args, **options)

    monkeypatch.setattr(compiled.numba, "njit", no_cache)
    out = np.empty(2)
    compiled.kernel(_ratios)(np.array([1.0, 2.0]), np.array([2.0, 4.0]), out)
    assert out.tolist() == [0.5 - 2.0, 0.5 - 8.0]
