"""Canonical Huffman coding of small signed integer arrays (the latent z), self-describing.

Only code lengths go into the stream (as in DEFLATE); both sides rebuild the same canonical code from
them. Codes are limited to 24 bits. The byte layout is documented in docs/FORMAT.md ("LATENT_Z"):

    u8      version (1)
    varint  count                      number of values; nothing follows when 0
    zvarint min_value                  smallest value (zigzag LEB128)
    varint  k - 1                      number of distinct values minus one
    u8      w                          bits per gap field (0..64)
    bytes   (k-1) fields of w bits     value[i] - value[i-1] - 1, MSB first, zero-padded to a byte
    bytes   k fields of 5 bits         code length per distinct value (1..24), only when k > 1
    bytes   payload                    codes MSB first, zero-padded to a byte; empty when k == 1

Decoding is vectorised: the canonical symbol that would start at *every* bit position is found with one
``searchsorted`` on 24-bit windows, then the chain of real code starts is followed by pointer doubling.
"""

from __future__ import annotations

import heapq

import numpy as np

from medcodec.errors import CorruptStreamError

VERSION = 1
MAX_CODE_BITS = 24
_LEN_BITS = 5  # a code length 1..24 fits in 5 bits
DEFAULT_MAX_COUNT = 1 << 24  # decode refuses to allocate more values than this unless told otherwise
_I64_MIN, _I64_MAX = -(1 << 63), (1 << 63) - 1


# ---------------------------------------------------------------- small byte-level helpers

def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _zigzag(v: int) -> int:
    return 2 * v if v >= 0 else -2 * v - 1


class _Reader:
    """Bounds-checked cursor: every read past the end is a CorruptStreamError."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise CorruptStreamError("Huffman stream is truncated")
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return chunk

    def varint(self) -> int:
        value, shift = 0, 0
        while True:
            byte = self.take(1)[0]
            value |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                return value
            if shift > 70:  # no field we write needs more than 10 bytes
                raise CorruptStreamError("Huffman stream has an over-long varint")


def _expect_end(r: _Reader) -> None:
    if r.pos != len(r.data):
        raise CorruptStreamError("Huffman stream has bytes after its end")


def _pack_fields(values: np.ndarray, width: int) -> bytes:
    """Fixed-width unsigned fields (width <= 64), MSB first, zero-padded to a byte."""
    if width == 0 or values.size == 0:
        return b""
    shifts = np.arange(width - 1, -1, -1, dtype=np.uint64)
    bits = (values.astype(np.uint64)[:, None] >> shifts[None, :]) & np.uint64(1)
    return np.packbits(bits.astype(np.uint8).ravel()).tobytes()


def _unpack_fields(data: bytes, n: int, width: int) -> np.ndarray:
    if width == 0 or n == 0:
        return np.zeros(n, dtype=np.uint64)
    bits = np.unpackbits(np.frombuffer(data, dtype=np.uint8))[: n * width].reshape(n, width)
    shifts = np.arange(width - 1, -1, -1, dtype=np.uint64)
    return (bits.astype(np.uint64) << shifts[None, :]).sum(axis=1, dtype=np.uint64)


# ---------------------------------------------------------------- code construction

def _huffman_lengths(counts: np.ndarray) -> np.ndarray:
    """Optimal (unlimited) Huffman code lengths for k >= 2 positive counts."""
    k = counts.size
    parent = [0] * (2 * k - 1)
    # (weight, node id) makes ties deterministic, so the same input always gives the same code.
    heap = [(int(c), i) for i, c in enumerate(counts)]
    heapq.heapify(heap)
    node = k
    while len(heap) > 1:
        w1, a = heapq.heappop(heap)
        w2, b = heapq.heappop(heap)
        parent[a] = parent[b] = node
        heapq.heappush(heap, (w1 + w2, node))
        node += 1
    depth = [0] * (2 * k - 1)
    # Parents are created after their children, so walking ids downwards sees every parent first.
    for i in range(2 * k - 3, -1, -1):
        depth[i] = depth[parent[i]] + 1
    return np.array(depth[:k], dtype=np.int64)


def _limit_lengths(lengths: np.ndarray, counts: np.ndarray, limit: int) -> np.ndarray:
    """Cap code lengths at ``limit`` keeping the code complete (Kraft sum exactly 1).

    Works on the number of codes per length: a pair of codes at the deepest level moves up one level
    (their former parent becomes a leaf) and a shorter leaf is split to host the displaced code.
    The lengths are then re-dealt, shortest to the most frequent values.
    """
    if lengths.max() <= limit:
        return lengths
    per_len = np.bincount(lengths, minlength=int(lengths.max()) + 1).tolist()
    for deep in range(len(per_len) - 1, limit, -1):
        while per_len[deep] > 0:
            j = deep - 2
            while per_len[j] == 0:
                j -= 1
            per_len[deep] -= 2
            per_len[deep - 1] += 1
            per_len[j + 1] += 2
            per_len[j] -= 1
    new_sorted = np.repeat(np.arange(len(per_len)), per_len)  # ascending lengths
    order = np.argsort(-counts, kind="stable")  # most frequent first
    out = np.empty_like(lengths)
    out[order] = new_sorted
    return out


def _canonical_codes(lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Canonical codes (DEFLATE order: by length, then by symbol), that order, and the codes of that
    order left-justified to the longest length (ascending, which is what makes canonical codes easy
    to decode)."""
    order = np.lexsort((np.arange(lengths.size), lengths))
    sorted_len = lengths[order].astype(np.int64)
    max_len = int(sorted_len[-1])
    # Left-justified to max_len bits, consecutive canonical codes are spaced by 2**(max_len - len).
    step = np.left_shift(np.int64(1), max_len - sorted_len)
    left = np.concatenate(([0], np.cumsum(step)[:-1]))
    codes = np.empty(lengths.size, dtype=np.int64)
    codes[order] = left >> (max_len - sorted_len)
    return codes, order, left


def _kraft_is_complete(lengths: np.ndarray) -> bool:
    # Sum of 2**-len == 1, checked exactly in integers scaled by 2**MAX_CODE_BITS.
    return int(np.left_shift(np.int64(1), MAX_CODE_BITS - lengths.astype(np.int64)).sum()) == 1 << MAX_CODE_BITS


# ---------------------------------------------------------------- public API

def huffman_encode(values: np.ndarray) -> bytes:
    """Code an integer array (any shape, signed ok, flattened in C order) into a self-describing stream."""
    arr = np.asarray(values)
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"huffman_encode needs integers, got {arr.dtype}")
    if arr.dtype == np.uint64 and arr.size and int(arr.max()) > _I64_MAX:
        raise ValueError("values above 2**63-1 are not supported")
    flat = arr.astype(np.int64, copy=False).ravel()
    out = bytearray([VERSION])
    out += _varint(flat.size)
    if flat.size == 0:
        return bytes(out)
    uniq, inverse, counts = np.unique(flat, return_inverse=True, return_counts=True)
    k = uniq.size
    # Gaps computed as Python ints: a span up to 2**64-1 overflows int64 arithmetic.
    gaps_m1 = np.array([int(b) - int(a) - 1 for a, b in zip(uniq[:-1], uniq[1:])], dtype=np.uint64) \
        if k > 1 else np.zeros(0, dtype=np.uint64)
    width = int(gaps_m1.max()).bit_length() if k > 1 else 0
    out += _varint(_zigzag(int(uniq[0])))
    out += _varint(k - 1)
    out.append(width)
    out += _pack_fields(gaps_m1, width)
    if k == 1:
        return bytes(out)  # one value: its count says everything
    lengths = _limit_lengths(_huffman_lengths(counts), counts, MAX_CODE_BITS)
    out += _pack_fields(lengths.astype(np.uint64), _LEN_BITS)
    codes, _, _ = _canonical_codes(lengths)
    out += _pack_codes(codes[inverse], lengths[inverse])
    return bytes(out)


def _pack_codes(codes: np.ndarray, lengths: np.ndarray) -> bytes:
    """Concatenate variable-length codes MSB first; one vectorised pass per bit position of a code."""
    ends = np.cumsum(lengths)
    starts = ends - lengths
    bits = np.zeros(int(ends[-1]), dtype=np.uint8)
    for j in range(int(lengths.max())):
        has = lengths > j
        bits[starts[has] + j] = (codes[has] >> (lengths[has] - 1 - j)) & 1
    return np.packbits(bits).tobytes()


def huffman_decode(data: bytes, *, max_count: int = DEFAULT_MAX_COUNT) -> np.ndarray:
    """Decode a huffman_encode stream to a 1-D int64 array; CorruptStreamError on any inconsistency.

    ``max_count`` bounds the number of values a stream may declare (so garbage cannot make us allocate).
    """
    r = _Reader(bytes(data))
    if r.take(1)[0] != VERSION:
        raise CorruptStreamError("Huffman stream has an unknown version byte")
    count = r.varint()
    if count == 0:
        _expect_end(r)
        return np.zeros(0, dtype=np.int64)
    if count > max_count:
        raise CorruptStreamError(f"Huffman stream declares {count} values, over the limit {max_count}")
    zz = r.varint()
    min_value = zz >> 1 if not zz & 1 else -((zz + 1) >> 1)
    k = r.varint() + 1
    if k > count or k > 1 << MAX_CODE_BITS:
        raise CorruptStreamError("Huffman stream declares more distinct values than values")
    width = r.take(1)[0]
    if width > 64:
        raise CorruptStreamError("Huffman stream has a gap width over 64 bits")
    gaps_m1 = _unpack_fields(r.take(((k - 1) * width + 7) // 8), k - 1, width)
    if min_value < _I64_MIN:
        raise CorruptStreamError("Huffman stream values fall outside the int64 range")
    symbols = _symbol_values(min_value, gaps_m1)
    if k == 1:
        _expect_end(r)
        return np.full(count, symbols[0], dtype=np.int64)
    lengths = _unpack_fields(r.take((k * _LEN_BITS + 7) // 8), k, _LEN_BITS).astype(np.int64)
    if lengths.min() < 1 or lengths.max() > MAX_CODE_BITS or not _kraft_is_complete(lengths):
        raise CorruptStreamError("Huffman stream has invalid code lengths")
    payload = r.data[r.pos:]
    if count > 8 * len(payload):  # every value costs at least one bit when k > 1
        raise CorruptStreamError("Huffman stream is truncated")
    idx, used_bits = _decode_payload(payload, lengths, count)
    if (used_bits + 7) // 8 != len(payload):
        raise CorruptStreamError("Huffman stream has bytes after its last code")
    if used_bits % 8 and payload[-1] & ((1 << (8 - used_bits % 8)) - 1):
        raise CorruptStreamError("Huffman stream has non-zero padding bits")
    return symbols[idx]


def _symbol_values(min_value: int, gaps_m1: np.ndarray) -> np.ndarray:
    """The sorted distinct values, checked exactly to fit in int64 before any wrapping arithmetic."""
    # Exact span in Python ints: 32-bit halves summed in uint64 cannot overflow for k <= 2**24.
    hi = int((gaps_m1 >> np.uint64(32)).sum(dtype=np.uint64))
    lo = int((gaps_m1 & np.uint64(0xFFFFFFFF)).sum(dtype=np.uint64))
    span = (hi << 32) + lo + gaps_m1.size
    if min_value + span > _I64_MAX:
        raise CorruptStreamError("Huffman stream values fall outside the int64 range")
    offsets = np.concatenate((np.zeros(1, np.uint64), np.cumsum(gaps_m1 + np.uint64(1), dtype=np.uint64)))
    # min_value + offset is in range (checked above), so the modular uint64 sum is the exact value.
    base = np.array([min_value], dtype=np.int64).view(np.uint64)
    return (offsets + base).view(np.int64)


def _decode_payload(payload: bytes, lengths: np.ndarray, count: int) -> tuple[np.ndarray, int]:
    """Canonical indices of ``count`` codes at the start of ``payload`` and the bits they occupy."""
    _, order, left = _canonical_codes(lengths)
    max_len = int(lengths.max())
    nbits = 8 * len(payload)
    # A 32-bit big-endian word at every byte, so every bit position has >= 25 following bits at hand.
    padded = np.frombuffer(payload + b"\0\0\0", dtype=np.uint8).astype(np.uint64)
    words = (padded[:-3] << 24) | (padded[1:-2] << 16) | (padded[2:-1] << 8) | padded[3:]
    pos = np.arange(nbits, dtype=np.int64)
    shifted = words[pos >> 3] << (pos & 7).astype(np.uint64)
    window = (shifted >> np.uint64(32 - max_len)) & np.uint64((1 << max_len) - 1)
    # The code starting at each bit position: the last canonical code whose left-justified value is
    # <= the window (a complete code covers every window, so rank >= 0).
    rank = np.searchsorted(left, window.astype(np.int64), side="right") - 1
    step = lengths[order][rank]
    # Node graph: bit positions 0..nbits-1, END = nbits (all data used), BAD = nbits+1 (overran data).
    end, bad = nbits, nbits + 1
    nxt = np.empty(nbits + 2, dtype=np.int64)
    nxt[:nbits] = np.where(pos + step <= nbits, pos + step, bad)
    nxt[end] = bad  # a code cannot start where the data ends
    nxt[bad] = bad
    # Pointer doubling: starts holds the first 2**j code starts; jump is nxt applied 2**j times.
    starts = np.zeros(1, dtype=np.int64)
    jump = nxt
    while starts.size < count:
        starts = np.concatenate((starts, jump[starts]))
        jump = jump[jump]
    last = int(starts[count - 1])
    if last >= nbits or nxt[last] == bad:  # positions only grow along the chain: checking the last is enough
        raise CorruptStreamError("Huffman stream is truncated")
    return order[rank[starts[:count]]], int(nxt[last])
