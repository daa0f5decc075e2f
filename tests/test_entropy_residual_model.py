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


def _reference_params(mu: np.ndarray, ell: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """pixel_params spelled out with floor division (its definition), to pin the shift-based version."""
    ell = np.clip(ell, 0, rm.MAX_ELL - 1)
    low_bits = np.where(ell < rm.SPLIT_ELL, 0, (ell - rm.SPLIT_ELL) // rm.STEPS_PER_OCTAVE + 1)
    unit = np.left_shift(np.int64(rm.MEAN_ONE), low_bits)
    base = np.floor_divide(mu, unit)
    frac = np.floor_divide((mu - base * unit) * rm.FRACTIONS, unit)
    return (ell - low_bits * rm.STEPS_PER_OCTAVE) * rm.FRACTIONS + frac, low_bits, base


def _reference_cost(values: np.ndarray, mu: np.ndarray, ell: np.ndarray) -> float:
    table, low_bits, base = _reference_params(mu, ell)
    symbols = np.right_shift(values, low_bits) - base + rm.SUPPORT
    escaped = (symbols < 0) | (symbols >= 2 * rm.SUPPORT + 1)
    symbols = np.where(escaped, rm.ESCAPE, symbols)
    costs = np.log2(rm.TOTAL) - np.log2(rm.tables().astype(np.float64))
    return float(costs[table, symbols].sum()) + 2 * rm.RAW_BITS * int(escaped.sum()) + float(low_bits[~escaped].sum())


@pytest.mark.parametrize("seed", range(4))
def test_parameters_of_buckets_are_those_of_their_clamped_scale_indices(seed):
    rng = np.random.default_rng(seed)
    n = 5000
    ell = rng.integers(-20, rm.MAX_ELL + 20, int(rng.integers(1, 130)))
    buckets = rng.integers(-10, ell.size + 10, n)
    mu = rng.integers(-(1 << 21), 1 << 21, n) if seed % 2 else rng.integers(0, 4096, n)
    got = rm.pixel_params_of_buckets(mu, buckets, ell)
    want = _reference_params(mu, ell[np.clip(buckets, 0, ell.size - 1)])
    assert all(np.array_equal(g, w) for g, w in zip((got.table, got.low_bits, got.base), want))


@pytest.mark.parametrize("seed", range(12))
def test_fast_parameter_and_cost_routes_equal_their_definition(seed):
    # the encoder's choices (calibration, refinement, block phase) compare these floats: a route that
    # summed other elements, or in another order, could flip a near-tie and change the file
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 5000))
    low, span = int(rng.integers(-30, 150)), int(rng.integers(1, 120))
    ell = rng.integers(low, low + span, n)
    mu = rng.integers(-(1 << 21), 1 << 21, n) if seed % 2 else rng.integers(0, 4096, n)
    values = np.clip((mu >> 4) + rng.integers(-200, 200, n), 0, (1 << 16) - 1)
    params = rm.pixel_params(mu, ell)
    for got, want in zip((params.table, params.low_bits, params.base), _reference_params(mu, ell)):
        np.testing.assert_array_equal(got, want)
    assert rm.ideal_cost_bits(values, params) == _reference_cost(values, mu, ell)
    found = rm.search_adjustment(values, mu, ell)
    d_ell, d_mu = found.offsets
    assert found.bits == _reference_cost(values, mu + d_mu, ell + d_ell)
    assert found.bits_unadjusted == _reference_cost(values, mu, ell)
    assert rm.best_adjustment(values, mu, ell) == found.offsets


@pytest.mark.parametrize("seed", range(6))
def test_search_costs_every_offset_as_the_definition_does(seed):
    rng = np.random.default_rng(100 + seed)
    n = int(rng.integers(1, 3000))
    ell = rng.integers(20, 80, n) if seed % 3 else rng.integers(-10, 200, n)  # around SPLIT_ELL: mixed routes
    mu = rng.integers(-(1 << 18), 1 << 18, n)
    values = np.clip((mu >> 4) + rng.integers(-300, 300, n), 0, (1 << 16) - 1)
    cost = rm._SampleCost(values, mu, ell)
    for d_ell in range(-24, 25, 5):
        for d_mu in (-8, -2, 0, 6):
            assert cost(d_ell, d_mu) == _reference_cost(values, mu + d_mu, ell + d_ell)


def _reference_class_costs(values, mu, ell, classes, d_ell, d_mu, n_classes):
    """The per-pixel definition: each pixel's table entry under pixel_params (its class's scale offset,
    the mean offset), escapes costing their raw bytes, plus its raw low bits; summed per class by
    np.bincount (pixel order), as the class search summed them before its loop was compiled."""
    params = rm.pixel_params(mu + d_mu, ell + d_ell[classes])
    symbols, escaped = rm.coded_symbols(values, params)
    terms = np.take(rm._flat_costs_with_raw_bytes(), params.table * rm.ALPHABET + symbols)
    if params.low_bits.any():
        terms = terms + np.where(escaped, 0, params.low_bits)
    return np.bincount(classes, weights=terms, minlength=n_classes)


@pytest.mark.parametrize("seed", range(8))
def test_class_cost_sums_are_the_definitions_floats(seed):
    # the search's choices depend on these floats: the compiled sums must be numpy's, bit for bit
    rng = np.random.default_rng(300 + seed)
    n, n_classes = int(rng.integers(1, 5000)), int(rng.integers(1, 20))
    bits = (8, 12, 16)[seed % 3]
    values = rng.integers(0, 1 << bits, n)
    mu = values * 16 + rng.integers(-16 * 300, 16 * 300, n) * (50 if seed % 4 == 3 else 1)
    ell = rng.integers(-5, rm.MAX_ELL + 5, n)  # beyond both ends: clamped
    classes = rng.integers(0, n_classes, n)
    for d_mu in (-8, 0, 6):
        for d_ell in (np.full(n_classes, -24), np.zeros(n_classes, np.int64), rng.integers(-30, 30, n_classes)):
            out = np.zeros(n_classes)
            rm._class_cost_sums(values, mu, ell, classes, d_ell, d_mu, rm._flat_costs_with_raw_bytes(), out)
            want = _reference_class_costs(values, mu, ell, classes, d_ell, d_mu, n_classes)
            assert out.tobytes() == want.tobytes()


@pytest.mark.parametrize("seed", range(6))
def test_class_search_chooses_what_each_class_alone_would(seed):
    # the refinement's activity bins and the block-phase classes are searched at once; each class must
    # get the offsets (and, up to summation order, the code lengths) of a search on its pixels alone
    rng = np.random.default_rng(200 + seed)
    n_classes = 16
    n = int(rng.integers(200, 6000))
    classes = rng.integers(0, n_classes - 2, n)  # the last two classes stay empty
    ell = rng.integers(20, 90, n) + 3 * classes  # classes differ in calibration
    mu = rng.integers(0, 1 << 18, n)
    noise = rng.laplace(0, 1 + classes, n).astype(np.int64) + (classes % 3) - 1
    values = np.clip((mu >> 4) + noise, 0, (1 << 16) - 1)
    found = rm.search_class_adjustments(values, mu, ell, classes, n_classes, limit=8)
    assert len(found) == n_classes
    for k in range(n_classes):
        chosen = classes == k
        if not chosen.any():
            assert found[k] == rm.Adjustment((0, 0), 0.0, 0.0)
            continue
        alone = rm.search_adjustment(values[chosen], mu[chosen], ell[chosen], limit=8)
        assert found[k].offsets == alone.offsets
        assert found[k].bits == pytest.approx(alone.bits, rel=1e-12)
        assert found[k].bits_unadjusted == pytest.approx(alone.bits_unadjusted, rel=1e-12)
