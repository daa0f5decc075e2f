"""Quantised DCT coefficients of a JPEG component, coded with context-modelled binary arithmetic coding.

Why: a JPEG codes each coefficient with a Huffman code that knows nothing of its neighbours, yet a
block's coefficients are much like those of the blocks above and to its left (the same edges and
texture cross block borders), and the DC is close to a prediction from the neighbouring DCs. Coding
every coefficient as a few binary decisions, each with an adaptive probability chosen by those
neighbours (the approach of packJPG and Lepton, written here from that idea), takes a fifth or more off
the Huffman-coded scan. ``jpeg_dct`` turns the coefficients back into the JPEG's own bytes.

Per block, in raster order: the number of non-zero AC coefficients (six binary decisions along a tree,
in the context of the neighbours' counts); the AC coefficients in zigzag order until that many are
coded: zero or not (context: the position, how many are still to come, the neighbours' magnitudes at
the position), the magnitude as "more than one", then an exponent in unary and the bits below its top
one, and the sign (context: the neighbours' signs at the position); last the DC, as its difference
from the DC that makes the block's left and top edges meet its neighbours' (the block's own first-row
and first-column coefficients, dequantised, say how its edges differ from its mean: Lepton's idea, in
integers), in the context of how much the left and the upper estimate differ. That takes a quarter of
the DC's bits on 8-bit JPEGs against the median of the neighbouring DCs, half as much on 12-bit ones.

In a multi-frame file (an ultrasound cine loop) the frame before may be a reference: a block that repeats
its co-located block costs one decision (two thirds of the luma blocks of pydicom's 30-frame ultrasound
do), and the others take its co-located block into their contexts (its count, its magnitudes at each
position weighted 3:1 against the neighbours', its DC halfway into the DC prediction): that loop's
frames 4.7 % smaller than with the repeat decision alone, which halved them; frames that are not alike
(a CT's slices) code larger that way, and ``io.dicom_jpeg_lossy`` codes them alone.

Decodable anywhere: integer arithmetic only (a 32-bit range coder as LZMA's, 16-bit probabilities
adapted by integer shifts); the encoder and the decoder run the same function, which codes a decision
when encoding and reads it when decoding, so their models cannot drift apart.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from medcodec.compiled import kernel
from medcodec.entropy.jpeg_baseline import ZIGZAG
from medcodec.entropy.jpeg_dct import size_category
from medcodec.errors import CorruptStreamError
from medcodec.pinned_data import read_pinned

_PROB_BITS = 16
_HALF = 1 << (_PROB_BITS - 1)
PROB_MIN, PROB_MAX = 32, (1 << _PROB_BITS) - 32  # a decision costs at most 11 bits
_TOP = 1 << 24
_MASK32 = (1 << 32) - 1
# coder state slots: low, range, cache, pending 0xFF bytes (+1), write/read position, code (decoding)
_LOW, _RANGE, _CACHE, _PENDING, _POS, _CODE, _STATE = 0, 1, 2, 3, 4, 5, 6
# adaptation: each context keeps two probabilities of a 0 and codes with their mean; after each decision
# one moves towards it by 1/2^_RATE_LIMIT, the other by 1/2^_FAST_LIMIT (a context's first decisions
# move both faster: 1/2, 1/4, ...; their count is the table's second column). Two rates beat either
# alone: 8-bit JPEGs' statistics drift across an image more than 12-bit ones'.
_RATE_LIMIT = 7
_FAST_LIMIT = 5
# magnitudes as context: their bit length, 0..12 (12: 2048 and above)
_MAG_BUCKETS = 13
# how many non-zero coefficients are still to come: 1, 2, 3-4, 5-8, 9+
_LEFT_BUCKETS = 5
# count of non-zero AC coefficients as context: 0, 1, 2, 3, 4, 5-6, 7-8, 9-11, 12-15, 16-23, 24-31, 32+
_COUNT_BUCKETS = 12
_EXPONENTS = 20  # magnitudes below 2^20; 12-bit JPEG coefficients are below 2^15
_LIMIT = 1 << (_EXPONENTS - 1)  # coefficients (and DC predictions) below 2^19 keep DC differences below 2^20

# zigzag positions of the coefficients (0, u) (horizontal frequency u, the block's first row) and (u, 0)
# (vertical frequency u, its first column), u = 0..7
_ZIGZAG_POSITION = np.argsort(ZIGZAG)  # natural (row-major) index -> zigzag position
_FIRST_ROW = _ZIGZAG_POSITION[0:8].astype(np.int64)
_FIRST_COLUMN = _ZIGZAG_POSITION[0:64:8].astype(np.int64)
_SQRT2_Q12 = 5793  # sqrt(2) in 1/4096

# context layout: each kind of decision has its own range of rows in the probability table
_COUNT_BASE = 0
_ZERO_BASE = _COUNT_BASE + _COUNT_BUCKETS * 64
_ONE_BASE = _ZERO_BASE + 64 * _LEFT_BUCKETS * _MAG_BUCKETS
_EXP_BASE = _ONE_BASE + 64 * _MAG_BUCKETS * _LEFT_BUCKETS
_EXP_GROUPS = 8  # zigzag positions grouped for the exponent and mantissa: 1, 2, 3-5, 6-9, 10-14, 15-27, 28-63, DC
_MANT_BASE = _EXP_BASE + _EXP_GROUPS * _MAG_BUCKETS * _EXPONENTS * _LEFT_BUCKETS
_SIGN_BASE = _MANT_BASE + _EXP_GROUPS * _EXPONENTS * 2
_DC_ZERO_BASE = _SIGN_BASE + 64 * 9
_DC_SIGN_BASE = _DC_ZERO_BASE + 24
CONTEXTS = _DC_SIGN_BASE + 3  # the contexts the priors cover
# after them, with a reference frame (the frame before, in a multi-frame file): "the block is the
# reference's co-located block", in the context of whether the left and upper blocks were, and whether the
# reference block has AC coefficients; these start at one half (no priors: single frames never use them)
_SAME_BASE = CONTEXTS
_ALL_CONTEXTS = _SAME_BASE + 8

# every context starts from a probability learnt on the train split (``train.jpeg_priors``), trusted
# as much as PRIOR_COUNT decisions: a small image has too few blocks to learn them from one half
PRIORS_FILE = Path(__file__).resolve().parent.parent / "data" / "jpeg_coefficient_priors_v1.u16"
PRIORS_SHA256 = "c8259299ee79c7a5b0ec714d74bae79e5c859066ce8461bd189e6c4c698b3c35"
PRIOR_COUNT = 1


@kernel(inline=True)
def _mag_bucket(m):
    return min(size_category(m), _MAG_BUCKETS - 1)


@kernel(inline=True)
def _count_bucket(n):
    if n <= 4:
        return n
    if n <= 6:
        return 5
    if n <= 8:
        return 6
    if n <= 11:
        return 7
    if n <= 15:
        return 8
    if n <= 23:
        return 9
    if n <= 31:
        return 10
    return 11


@kernel(inline=True)
def _left_bucket(n):
    if n <= 2:
        return n - 1
    if n <= 4:
        return 2
    if n <= 8:
        return 3
    return 4


@kernel(inline=True)
def _exp_group(k):
    if k == 0:
        return 7
    if k <= 2:
        return k - 1
    if k <= 5:
        return 2
    if k <= 9:
        return 3
    if k <= 14:
        return 4
    if k <= 27:
        return 5
    return 6


@kernel
def _shift_low(state, buf):
    """LZMA's carry-aware byte output: a byte waits (with any 0xFF after it) until a carry can no longer
    change it."""
    low = state[_LOW]
    if low < 0xFF000000 or low > _MASK32:
        carry = low >> 32
        byte = state[_CACHE]
        while True:
            if state[_POS] >= len(buf):
                state[_POS] = len(buf) + 1  # overflow: seen by the caller
                break
            buf[state[_POS]] = (byte + carry) & 0xFF
            state[_POS] += 1
            byte = 0xFF
            state[_PENDING] -= 1
            if state[_PENDING] == 0:
                break
        state[_CACHE] = (low >> 24) & 0xFF
    state[_PENDING] += 1
    state[_LOW] = (low << 8) & _MASK32


@kernel(inline=True)
def _adapted(p, bit, shift):
    if bit:
        p -= p >> shift
    else:
        p += ((1 << _PROB_BITS) - p) >> shift
    return min(max(p, PROB_MIN), PROB_MAX)


@kernel
def _code(state, buf, probs, context, bit, decoding):
    """Code one binary decision (bit, when encoding) in a context; returns the bit (read, when decoding)."""
    p = (probs[context, 0] + probs[context, 4]) >> 1
    bound = (state[_RANGE] >> _PROB_BITS) * p
    if decoding:
        if state[_CODE] < bound:
            bit = 0
            state[_RANGE] = bound
        else:
            bit = 1
            state[_CODE] -= bound
            state[_RANGE] -= bound
        while state[_RANGE] < _TOP:
            state[_RANGE] <<= 8
            byte = 0
            if state[_POS] < len(buf):
                byte = buf[state[_POS]]
            state[_POS] += 1  # past the end: zeros, and the caller sees how far it read
            state[_CODE] = ((state[_CODE] << 8) | byte) & _MASK32
    else:
        if bit == 0:
            state[_RANGE] = bound
        else:
            state[_LOW] += bound
            state[_RANGE] -= bound
        while state[_RANGE] < _TOP:
            state[_RANGE] <<= 8
            _shift_low(state, buf)
    probs[context, 2 + bit] += 1  # what was coded in this context (``statistics``)
    # adapt: the probability (of a 0) moves towards what was coded by 1/2^(count + 1), at least 1/2^limit
    count = probs[context, 1]
    if count < _RATE_LIMIT:
        probs[context, 1] = count + 1
    probs[context, 0] = _adapted(probs[context, 0], bit, min(count + 1, _RATE_LIMIT))
    probs[context, 4] = _adapted(probs[context, 4], bit, min(count + 1, _FAST_LIMIT))
    return bit


@kernel
def _code_magnitude(state, buf, probs, magnitude, one_context, group, bucket, decoding):
    """A non-zero magnitude: "more than 1" in one_context; if so, the exponent e = bit length of
    (magnitude - 1), 1.., in unary, then the e - 1 bits below its top bit (the first in a context of its
    own, the rest in one per exponent). Returns the magnitude (read, when decoding)."""
    if not _code(state, buf, probs, one_context, 1 if magnitude > 1 else 0, decoding):
        return 1
    value = magnitude - 1 if magnitude > 1 else 1  # decoding: not known yet, and not used
    exponent = size_category(value)
    e = 1
    base = _EXP_BASE + (group * _MAG_BUCKETS * _LEFT_BUCKETS + bucket) * _EXPONENTS
    while e < _EXPONENTS:
        more = _code(state, buf, probs, base + e, 1 if exponent > e else 0, decoding)
        if not more:
            break
        e += 1
    result = 1
    mant = _MANT_BASE + (group * _EXPONENTS + e) * 2
    for i in range(e - 2, -1, -1):
        bit = _code(state, buf, probs, mant + (1 if i < e - 2 else 0), (value >> i) & 1, decoding)
        result = (result << 1) | bit
    return result + 1


@kernel(inline=True)
def _edge(block, positions, quant, far):
    """The dequantised first-row (or first-column) AC coefficients' sum at the block's near edge (far 0:
    each basis function is 1 there) or far edge (far 1: (-1)^u), the DCT extended half a pixel out."""
    total = 0
    for u in range(1, 8):
        term = np.int64(block[positions[u]]) * quant[positions[u]]
        total += -term if far and (u & 1) else term
    return total


@kernel(inline=True)
def _across_edge(before, block, positions, quant):
    """The dequantised DC that makes block's near edge (left, or top: positions the first row, or column)
    meet the far edge of the block before it (a row average of the 2-D DCT at a vertical edge is DC/8 +
    the first row's terms over 4 sqrt 2)."""
    return (np.int64(before[0]) * quant[0]
            + ((_SQRT2_Q12 * (_edge(before, positions, quant, 1) - _edge(block, positions, quant, 0))) >> 12))


@kernel(inline=True)
def _dc_prediction(blocks, y, x, quant):
    """The DC that makes the block's left edge meet its left neighbour's and its top edge the upper
    neighbour's (the mean of the two where both exist), rounded to a quantised DC; and how much the two
    disagree, in quantised DC steps (-2: one neighbour, -1: none)."""
    q0 = quant[0]
    left = _across_edge(blocks[y, x - 1], blocks[y, x], _FIRST_ROW, quant) if x else np.int64(0)
    above = _across_edge(blocks[y - 1, x], blocks[y, x], _FIRST_COLUMN, quant) if y else np.int64(0)
    if x and y:
        return _clamped((left + above + q0) // (2 * q0)), abs(left - above) // q0
    if x or y:
        return _clamped(((left + above) * 2 + q0) // (2 * q0)), -2  # the one that exists (the other is 0)
    return np.int64(0), -1


@kernel(inline=True)
def _clamped(dc):
    """A predicted DC within the coefficients' range (below 2^19), so the difference stays below 2^20."""
    return min(max(dc, -_LIMIT + 1), _LIMIT - 1)


@kernel
def _run(blocks, buf, decoding, probs, quant, reference):
    """Code (or, decoding, fill) blocks [rows, cols, 64] with the stream in buf, starting from the
    contexts' probabilities probs [contexts, 5] (probability of a 0, adaptation count, the counts of 0s
    and 1s coded, which it adds to, the fast-adapting probability of a 0); reference: the blocks of the
    frame before (the same shape), or none (an empty array); returns the stream's length (encoding), or
    how many bytes the decoder read; len(buf) + 1 or more: buf was too small."""
    rows, cols = blocks.shape[0], blocks.shape[1]
    referenced = reference.shape[0] == rows and reference.shape[1] == cols and rows * cols > 0
    same = np.zeros((rows, cols), np.int64)
    state = np.zeros(_STATE, np.int64)
    state[_RANGE] = _MASK32
    state[_PENDING] = 1
    if decoding:
        for _ in range(5):
            byte = buf[state[_POS]] if state[_POS] < len(buf) else 0
            state[_POS] += 1
            state[_CODE] = ((state[_CODE] << 8) | byte) & _MASK32
    counts = np.zeros((rows, cols), np.int64)
    for y in range(rows):
        for x in range(cols):
            # neighbours: above and left (a missing one stands in for the other; none: zeros)
            ya, xa = (y - 1, x) if y else (y, x - 1)
            yl, xl = (y, x - 1) if x else (y - 1, x)
            has = y > 0 or x > 0
            reference_count = 0
            if referenced:
                # a static region of a cine loop: the block as it was in the frame before
                for k in range(1, 64):
                    if reference[y, x, k] != 0:
                        reference_count += 1
                flat = 1 if reference_count == 0 else 0
                identical = 1
                if not decoding:
                    for k in range(64):
                        if blocks[y, x, k] != reference[y, x, k]:
                            identical = 0
                            break
                context = _SAME_BASE + (same[y, x - 1] if x else 1) * 4 + (same[y - 1, x] if y else 1) * 2 + flat
                if _code(state, buf, probs, context, identical, decoding):
                    same[y, x] = 1
                    if decoding:
                        for k in range(64):
                            blocks[y, x, k] = reference[y, x, k]
                    counts[y, x] = reference_count  # the reference block's, counted above
                    continue
            if has:
                predicted = (counts[ya, xa] + counts[yl, xl] + 1) >> 1
            else:
                predicted = 0
            if referenced:  # the count of the co-located block of the frame before, weighted 3:1
                predicted = (predicted + 3 * reference_count + 2) >> 2
            # the count of non-zero AC coefficients: six decisions down a binary tree
            n = 0
            if not decoding:
                for k in range(1, 64):
                    if blocks[y, x, k] != 0:
                        n += 1
            base = _COUNT_BASE + _count_bucket(predicted) * 64
            node = 1
            for i in range(5, -1, -1):
                bit = _code(state, buf, probs, base + node, (n >> i) & 1, decoding)
                node = (node << 1) | bit
            n = node - 64
            counts[y, x] = n
            left = n
            for k in range(1, 64):
                if left == 0:
                    if decoding:
                        blocks[y, x, k] = 0
                    continue
                if y and x:
                    neighbour = (13 * abs(blocks[y - 1, x, k]) + 13 * abs(blocks[y, x - 1, k])
                                 + 6 * abs(blocks[y - 1, x - 1, k]) + 16) >> 5
                elif has:
                    neighbour = (abs(blocks[ya, xa, k]) + abs(blocks[yl, xl, k]) + 1) >> 1
                else:
                    neighbour = 0
                if referenced:  # the co-located block of the frame before, weighted 3:1
                    neighbour = (neighbour + 3 * abs(reference[y, x, k]) + 2) >> 2
                bucket = _mag_bucket(neighbour)
                coefficient = blocks[y, x, k] if not decoding else 0
                if left == 64 - k:  # every position left is non-zero
                    nonzero = 1
                else:
                    context = _ZERO_BASE + (k * _LEFT_BUCKETS + _left_bucket(left)) * _MAG_BUCKETS + bucket
                    nonzero = _code(state, buf, probs, context, 1 if coefficient != 0 else 0, decoding)
                if not nonzero:
                    if decoding:
                        blocks[y, x, k] = 0
                    continue
                # the magnitude's contexts: the neighbours' and how many non-zero ones are still to come
                scale = bucket * _LEFT_BUCKETS + _left_bucket(left)
                left -= 1
                magnitude = _code_magnitude(state, buf, probs, abs(coefficient),
                                            _ONE_BASE + k * _MAG_BUCKETS * _LEFT_BUCKETS + scale, _exp_group(k),
                                            scale, decoding)
                signs = 0
                if has:
                    sa = blocks[ya, xa, k]
                    sl = blocks[yl, xl, k]
                    signs = (0 if sa == 0 else (1 if sa > 0 else 2)) * 3 + (0 if sl == 0 else (1 if sl > 0 else 2))
                negative = _code(state, buf, probs, _SIGN_BASE + k * 9 + signs, 1 if coefficient < 0 else 0,
                                 decoding)
                if decoding:
                    blocks[y, x, k] = -magnitude if negative else magnitude
            # DC: where the block's own first-row (first-column) coefficients make its left (top) edge
            # meet the right (bottom) edge of the block before it, each neighbour's DC dequantised
            prediction, activity = _dc_prediction(blocks, y, x, quant)
            if referenced:  # halfway to the co-located block's DC in the frame before
                prediction = (prediction + np.int64(reference[y, x, 0]) + 1) >> 1
            residual = 0 if decoding else np.int64(blocks[y, x, 0]) - prediction
            if activity >= 0:
                context = min(size_category(activity), 21)
            else:
                context = 22 if activity == -2 else 23
            nonzero = _code(state, buf, probs, _DC_ZERO_BASE + context, 1 if residual != 0 else 0, decoding)
            if nonzero:
                scale = (_mag_bucket(activity) if activity >= 0 else _MAG_BUCKETS - 1) * _LEFT_BUCKETS
                magnitude = _code_magnitude(state, buf, probs, abs(residual), _ONE_BASE + scale, 7, scale, decoding)
                negative = _code(state, buf, probs, _DC_SIGN_BASE, 1 if residual < 0 else 0, decoding)
                residual = -magnitude if negative else magnitude
            if decoding:
                blocks[y, x, 0] = prediction + residual
            if state[_POS] > len(buf) + 8:
                return state[_POS]
    if not decoding:
        for _ in range(5):
            _shift_low(state, buf)
    return state[_POS]


def _probabilities(priors: np.ndarray | None) -> np.ndarray:
    """int64 [contexts, 5]: the coder's starting state: each context's probability of a 0 (the priors',
    adapting from the count PRIOR_COUNT on; without priors one half, from count 0), no counts of 0s and
    1s yet, and the fast-adapting probability, the same as the first."""
    probs = np.zeros((_ALL_CONTEXTS, 5), np.int64)
    probs[:, 0] = _HALF
    if priors is not None:
        probs[:CONTEXTS, 0] = priors
        probs[:CONTEXTS, 1] = PRIOR_COUNT
    probs[:, 4] = probs[:, 0]
    return probs


@functools.lru_cache(maxsize=1)
def shipped_priors() -> np.ndarray:
    """The contexts' starting probabilities every stream uses (``PRIORS_FILE``, checked against its
    pinned sha256: they are part of the format)."""
    raw = read_pinned(PRIORS_FILE, PRIORS_SHA256, "JPEG coefficient priors")
    return check_priors(np.frombuffer(raw, "<u2").astype(np.int64))


def check_priors(priors: np.ndarray) -> np.ndarray:
    """The priors, if they are one probability (of a 0, in 1/65536) per context within the coder's range."""
    priors = np.asarray(priors, np.int64)
    if priors.shape != (CONTEXTS,) or priors.min() < PROB_MIN or priors.max() > PROB_MAX:
        raise ValueError(f"JPEG coefficient priors must be {CONTEXTS} values in [{PROB_MIN}, {PROB_MAX}]")
    return priors


def statistics(blocks: np.ndarray, quant: Sequence[int] | None = None) -> np.ndarray:
    """int64 [contexts, 2]: how many 0s and 1s coding these blocks puts in each context (what the
    priors are built from, ``train.jpeg_priors``)."""
    blocks = _checked(blocks)
    probs = _probabilities(None)
    _run(blocks, np.zeros(blocks.size * 4 + 64, np.uint8), False, probs, _quant(quant), _NO_REFERENCE)
    return probs[:CONTEXTS, 2:4].copy()


def _quant(quant: Sequence[int] | None) -> np.ndarray:
    """The quantisation table (zigzag order) as the coder takes it: 64 steps of 1 to 65535 (None: ones)."""
    if quant is None:
        return np.ones(64, np.int64)
    table = np.asarray(quant, np.int64)
    if table.shape != (64,) or table.min() < 1 or table.max() > 65535:
        raise ValueError("a quantisation table is 64 steps of 1 to 65535")
    return table


def _checked(blocks: np.ndarray) -> np.ndarray:
    blocks = np.ascontiguousarray(blocks, np.int32)
    if blocks.ndim != 3 or blocks.shape[2] != 64:
        raise ValueError(f"coefficient blocks must be [rows, cols, 64], got {blocks.shape}")
    # below 2^19, so that a DC's difference from its prediction (clamped to the same range) is below
    # 2^20, the largest magnitude the exponent code reaches
    if blocks.size and np.abs(blocks.astype(np.int64)).max() >= _LIMIT:
        raise ValueError("a coefficient beyond 2^19 in magnitude")
    return blocks


def encode(blocks: np.ndarray, quant: Sequence[int] | None = None, priors: np.ndarray | None = None,
           reference: np.ndarray | None = None) -> bytes:
    """The coefficients [block rows, block columns, 64] (zigzag order, as ``jpeg_dct.coefficients``) of
    a JPEG with this quantisation table (zigzag order; the DC prediction needs it) as a stream ``decode``
    reads back with the same table, priors (None: the shipped ones) and reference (the same component's
    blocks in the frame before, of the same shape: blocks equal to theirs cost a fraction of a bit; None:
    no reference)."""
    blocks = _checked(blocks)
    size = blocks.size * 4 + 64
    buf = np.zeros(size, np.uint8)
    n = _run(blocks, buf, False, _probabilities(shipped_priors() if priors is None else check_priors(priors)),
             _quant(quant), _reference(reference, blocks.shape))
    if n > size:
        raise ValueError("coefficient stream larger than its bound")
    return buf[:n].tobytes()


def decode(stream: bytes, rows: int, cols: int, quant: Sequence[int] | None = None,
           priors: np.ndarray | None = None, reference: np.ndarray | None = None) -> np.ndarray:
    """The coefficient blocks [rows, cols, 64] from ``encode``'s stream (the same quantisation table,
    priors and reference); CorruptStreamError where the stream ends early or has bytes left over."""
    if rows < 0 or cols < 0:
        raise CorruptStreamError("negative block counts")
    blocks = np.zeros((rows, cols, 64), np.int32)
    buf = np.frombuffer(stream, np.uint8).copy()  # writable: the encoder's and decoder's code is one function
    probs = _probabilities(shipped_priors() if priors is None else check_priors(priors))
    read = _run(blocks, buf, True, probs, _quant(quant), _reference(reference, blocks.shape))
    if read != len(buf):
        raise CorruptStreamError(f"JPEG coefficient stream of {len(buf)} bytes decodes {read} of them")
    return blocks


_NO_REFERENCE = np.zeros((0, 0, 64), np.int32)


def _reference(reference: np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray:
    """A reference frame's blocks as the coder takes them (none: an empty array); ValueError where their
    shape is not the blocks'."""
    if reference is None:
        return _NO_REFERENCE
    reference = np.ascontiguousarray(reference, np.int32)
    if reference.shape != tuple(shape):
        raise ValueError(f"reference blocks {reference.shape} for blocks {tuple(shape)}")
    return reference
