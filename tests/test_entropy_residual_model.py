"""Residual model: pinned integer tables, and values -> symbols -> values for every coding case."""

import hashlib

import numpy as np
import pytest

from medcodec.entropy import rans
from medcodec.entropy import residual_model as rm


def test_shipped_tables_equal_their_definition_and_hash():
    computed = rm.compute_tables()
    assert hashlib.sha256(computed.tobytes()).hexdigest() == rm.TABLES_SHA256
    assert np.array_equal(rm.tables(), computed)


def test_tables_are_valid_frequency_tables():
    t = rm.tables()
    assert t.shape == (rm.SPLIT_ELL * rm.FRACTIONS, rm.ALPHABET)
    assert t.min() >= 1
    assert (t.sum(axis=1) == rm.TOTAL).all()


def _roundtrip(values, mu, ell):
    params = rm.pixel_params(mu, ell)
    main, extra = rm.encode_segments(values, params)
    main_bytes, extra_bytes = rans.encode_segments(main), rans.encode_segments(extra)
    tables, order = rm.decode_main_tables(params)
    decoded_main = rans.decode_segments(main_bytes, tables)
    out = rm.decode_values(decoded_main, order, params, lambda t: rans.decode_segments(extra_bytes, t))
    return out, len(main_bytes) + len(extra_bytes)


@pytest.mark.parametrize("bits", [1, 8, 12, 16])
def test_random_values_and_parameters_roundtrip(bits):
    rng = np.random.default_rng(bits)
    n = 5000
    values = rng.integers(0, 1 << bits, n)
    mu = rng.integers(-16 * 100, 16 * ((1 << bits) + 100), n)
    ell = rng.integers(-10, rm.MAX_ELL + 10, n)  # out-of-range indices are clamped, not trusted
    out, _ = _roundtrip(values, mu, ell)
    assert np.array_equal(out, values)


def test_good_predictions_cost_little_and_escapes_still_decode():
    rng = np.random.default_rng(0)
    values = rng.integers(1000, 1010, 20000)
    mu = values * 16 + 8  # centre of the right bin
    out, size = _roundtrip(values, mu, np.zeros_like(values))
    assert np.array_equal(out, values)
    assert size * 8 / values.size < 0.01
    # a confident but wrong prediction: every value escapes and is still exact
    out, _ = _roundtrip(values, (values + 500) * 16, np.zeros_like(values))
    assert np.array_equal(out, values)


def test_extremes_of_16_bits():
    values = np.array([0, 65535, 0, 65535, 32768], dtype=np.int64)
    for mu in (np.zeros(5, np.int64), np.full(5, 65535 * 16, np.int64)):
        for ell in (0, 60, rm.MAX_ELL - 1):
            out, _ = _roundtrip(values, mu, np.full(5, ell, np.int64))
            assert np.array_equal(out, values)


def test_empty_input():
    out, _ = _roundtrip(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64))
    assert out.size == 0
