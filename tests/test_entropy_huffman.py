"""Canonical Huffman for the latent z: round trips, code properties, damage detection."""

import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from medcodec.entropy import huffman as hf
from medcodec.entropy.huffman import huffman_decode, huffman_encode
from medcodec.errors import CorruptStreamError


def round_trip(values) -> bytes:
    data = huffman_encode(values)
    out = huffman_decode(data)
    assert out.dtype == np.int64
    np.testing.assert_array_equal(out, np.asarray(values).ravel())
    return data


int_arrays = st.one_of(
    hnp.arrays(st.sampled_from([np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16]),
               hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=20)),
    hnp.arrays(np.int64, st.integers(0, 300), elements=st.integers(-2**63, 2**63 - 1)),
    hnp.arrays(np.int32, st.integers(0, 2000), elements=st.integers(-6, 6)),
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(int_arrays)
def test_round_trip_property(values):
    round_trip(values)


def test_empty_and_single_value():
    assert len(round_trip(np.zeros(0, dtype=np.int16))) == 2
    data = round_trip(np.full(100000, -7, dtype=np.int32))
    assert len(data) < 12  # one distinct value: no payload at all
    round_trip(np.array([2**63 - 1]))
    round_trip(np.array([-2**63]))


def test_large_sparse_alphabet():
    rng = np.random.default_rng(0)
    round_trip(rng.integers(-2**62, 2**62, 20000))
    round_trip(np.array([-2**63, 2**63 - 1, 0, 0, 0]))


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(1, 10**6), min_size=2, max_size=300))
def test_code_lengths_are_complete_and_limited(counts):
    counts = np.array(counts, dtype=np.int64)
    lengths = hf._limit_lengths(hf._huffman_lengths(counts), counts, hf.MAX_CODE_BITS)
    assert lengths.max() <= hf.MAX_CODE_BITS
    assert np.sum(2.0 ** -lengths) == 1.0  # Kraft equality: a complete prefix code
    codes, _, _ = hf._canonical_codes(lengths)
    words = {format(int(c), f"0{int(n)}b") for c, n in zip(codes, lengths)}
    assert not any(a != b and b.startswith(a) for a in words for b in words)  # prefix-free


def test_length_limit_is_enforced_on_fibonacci_counts():
    fib = [1, 1]
    while len(fib) < 30:
        fib.append(fib[-1] + fib[-2])
    counts = np.array(fib, dtype=np.int64)
    assert hf._huffman_lengths(counts).max() > hf.MAX_CODE_BITS  # unlimited Huffman would exceed 24
    limited = hf._limit_lengths(hf._huffman_lengths(counts), counts, hf.MAX_CODE_BITS)
    assert limited.max() == hf.MAX_CODE_BITS and np.sum(2.0 ** -limited) == 1.0
    values = np.repeat(np.arange(26), fib[:26])  # 26 values already give a 25-bit code unlimited
    assert hf._huffman_lengths(np.array(fib[:26])).max() == 25
    data = huffman_encode(values)
    np.testing.assert_array_equal(huffman_decode(data), values)


def test_size_close_to_entropy():
    rng = np.random.default_rng(1)
    values = np.round(rng.laplace(0, 3, 50000)).astype(np.int64)
    _, counts = np.unique(values, return_counts=True)
    p = counts / counts.sum()
    entropy_bytes = -(counts * np.log2(p)).sum() / 8
    assert len(huffman_encode(values)) < entropy_bytes * 1.03 + 64


def test_speed_1e5_symbols():
    values = np.round(np.random.default_rng(2).laplace(0, 4, 100000)).astype(np.int64)
    t0 = time.perf_counter()
    round_trip(values)
    assert time.perf_counter() - t0 < 3.0


def test_truncation_and_garbage_are_corrupt():
    values = np.round(np.random.default_rng(3).laplace(0, 2, 3000)).astype(np.int64)
    data = huffman_encode(values)
    for n in range(len(data)):
        with pytest.raises(CorruptStreamError):
            huffman_decode(data[:n])
    with pytest.raises(CorruptStreamError):
        huffman_decode(data + b"\0")
    rng = np.random.default_rng(4)
    for _ in range(300):
        junk = rng.integers(0, 256, rng.integers(0, 300), dtype=np.uint8).tobytes()
        try:
            huffman_decode(b"\x01" + junk)
        except CorruptStreamError:
            pass  # the only acceptable failure; a lucky junk stream may also decode to something


def test_flipped_bytes_never_leak_other_exceptions():
    data = huffman_encode(np.round(np.random.default_rng(5).laplace(0, 2, 500)).astype(np.int64))
    for i in range(len(data)):
        for xor in (0x01, 0x10, 0xFF):
            damaged = bytearray(data)
            damaged[i] ^= xor
            try:
                out = huffman_decode(bytes(damaged))
            except CorruptStreamError:
                continue
            assert out.dtype == np.int64  # a flip in the payload may still decode: the container CRC catches it


def test_declared_count_is_bounded_before_allocation():
    # count = 2**40 with one distinct value would allocate 8 TiB if trusted.
    data = bytes([1]) + hf._varint(2**40) + hf._varint(0) + hf._varint(0) + bytes([0])
    with pytest.raises(CorruptStreamError, match="over the limit"):
        huffman_decode(data)
    assert huffman_decode(bytes([1]) + hf._varint(5) + hf._varint(0) + hf._varint(0) + bytes([0])).size == 5


def test_non_integer_input_rejected():
    with pytest.raises(ValueError):
        huffman_encode(np.array([0.5, 1.0]))
    with pytest.raises(ValueError):
        huffman_encode(np.array([2**64 - 1], dtype=np.uint64))
