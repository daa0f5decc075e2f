"""rANS under integer tables: exact round trips, stable bytes, near-ideal size, garbage rejected."""

import hashlib
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from medcodec.entropy.rans import (MAX_TABLE_SUM, Segment, cost_bits, decode_segments, encode_segments,
                                   encode_uniform_bits)
from medcodec.errors import CorruptStreamError


def random_segment(rng: np.random.Generator, size: int, count: int, max_sum: int = MAX_TABLE_SUM) -> Segment:
    # Table entries >= 1 with a random sum up to max_sum; symbols drawn from the table's own law.
    total = int(rng.integers(size, max(size, max_sum) + 1))
    weights = rng.random(size) ** 4
    freqs = 1 + np.floor(weights / weights.sum() * (total - size)).astype(np.int64)
    symbols = rng.choice(size, count, p=freqs / freqs.sum())
    return Segment(freqs, symbols)


def tables_of(segments):
    return [(s.freqs, len(s.symbols)) for s in segments]


def assert_round_trip(segments):
    data = encode_segments(segments)
    decoded = decode_segments(data, tables_of(segments))
    assert len(decoded) == len(segments)
    for got, seg in zip(decoded, segments):
        np.testing.assert_array_equal(got, seg.symbols)
    return data


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 2**32 - 1), st.lists(st.tuples(st.integers(1, 5000), st.integers(0, 300)),
                                           min_size=0, max_size=8))
def test_round_trip_random_tables(seed, shapes):
    rng = np.random.default_rng(seed)
    segments = [random_segment(rng, size, count) for size, count in shapes]
    data = assert_round_trip(segments)
    assert encode_segments(segments) == data  # same input, same bytes


def test_extreme_tables():
    rng = np.random.default_rng(1)
    # All mass on one symbol but the rest at the smallest representable probability 2**-24.
    skewed = np.ones(5000, dtype=np.int64)
    skewed[17] = MAX_TABLE_SUM - 4999
    segments = [Segment(skewed, np.array([0, 4999, 17, 17, 3])),
                Segment(np.array([1]), np.zeros(10, dtype=np.int64)),  # one-symbol alphabet: no bits
                Segment(np.array([1, 1]), np.array([], dtype=np.int64)),
                Segment(np.ones(2**16, dtype=np.int64), rng.integers(0, 2**16, 100)),
                encode_uniform_bits(rng.integers(0, 8, 50), 3)]
    assert_round_trip(segments)
    assert decode_segments(encode_segments([]), []) == []


def golden_segments():
    # Built by arithmetic only (no RNG), so the input itself cannot drift with numpy versions.
    segments = []
    for size in (3, 40, 400, 4000):
        i = np.arange(size, dtype=np.int64)
        freqs = 1 + (i * i * 7919 + 13) % 997 + 5000 // (1 + i)
        n = np.arange(700, dtype=np.int64)
        symbols = ((n * 2654435761) % 4294967296) % size
        segments.append(Segment(freqs, np.minimum(symbols, (symbols * symbols) % size)))
    return segments


def test_golden_bytes_are_pinned():
    """A constriction upgrade (or a float32 slip) that changes the bytes must fail here."""
    digest = hashlib.sha256(assert_round_trip(golden_segments())).hexdigest()
    assert digest == "e13a14f58d1b147cf84aa2b1aee81099301c51524c328de9888381f51e12e033"


def test_size_close_to_ideal_for_large_inputs():
    rng = np.random.default_rng(3)
    segments = [random_segment(rng, 400, 20000) for _ in range(10)]
    data = encode_segments(segments)
    ideal = cost_bits(segments)
    assert 8 * len(data) <= ideal * 1.01 + 64


def test_speed_1m_symbols_300_tables():
    rng = np.random.default_rng(4)
    segments = [random_segment(rng, 400, 3334, max_sum=2**16) for _ in range(300)]
    t0 = time.perf_counter()
    assert_round_trip(segments)
    assert time.perf_counter() - t0 < 5.0


def test_garbage_is_corrupt_stream():
    rng = np.random.default_rng(5)
    segments = [random_segment(rng, 300, 2000) for _ in range(3)]
    data = encode_segments(segments)
    tables = tables_of(segments)
    with pytest.raises(CorruptStreamError):
        decode_segments(data[:-1], tables)  # not whole words
    with pytest.raises(CorruptStreamError):
        decode_segments(data[:-4] + b"\0\0\0\0", tables)  # a final zero word is never valid
    with pytest.raises(CorruptStreamError):
        decode_segments(data + data[-4:], tables)  # left-over data
    caught = 0
    for _ in range(50):
        junk = rng.integers(0, 256, len(data), dtype=np.uint8).tobytes()
        try:
            decode_segments(junk, tables)
        except CorruptStreamError:
            caught += 1
    assert caught == 50  # random words never leave the coder exactly empty


def test_invalid_tables_and_symbols_are_caller_errors():
    with pytest.raises(ValueError):
        encode_segments([Segment(np.array([0, 1]), np.array([0]))])
    with pytest.raises(ValueError):
        encode_segments([Segment(np.array([MAX_TABLE_SUM, 1]), np.array([0]))])
    with pytest.raises(ValueError):
        encode_segments([Segment(np.array([1, 1]), np.array([2]))])


def test_cost_bits_matches_definition():
    seg = Segment(np.array([1, 3]), np.array([0, 1, 1]))
    assert cost_bits([seg]) == pytest.approx(2 - 2 * np.log2(0.75))
