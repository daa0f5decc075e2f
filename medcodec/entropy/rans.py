"""rANS coding of integer symbols under integer frequency tables, via constriction's AnsCoder.

A stream is a sequence of *segments*; every symbol of a segment is coded under the segment's table.
Tables are integer frequencies (all >= 1, sum <= 2**24) so that the coder's input is bit-identical on
every machine: the probabilities handed to constriction are ``freqs / freqs.sum()`` in float64, and
IEEE division is correctly rounded, so every platform feeds the same floats to the same (deterministic,
integer) quantiser. float32 would round differently and can make constriction 0.5 panic.

Wire format: the coder's compressed ``uint32`` words, little-endian, nothing else. The symbol counts and
tables are not stored: the caller re-derives them (they are part of the model, not of this stream).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import constriction

from medcodec.errors import CorruptStreamError

# Largest allowed table sum: constriction's default ANS coder quantises probabilities to 24 bits.
MAX_TABLE_SUM = 1 << 24

_Categorical = constriction.stream.model.Categorical
_AnsCoder = constriction.stream.stack.AnsCoder


@dataclass
class Segment:
    """A run of symbols that share one frequency table."""

    freqs: np.ndarray  # int64 1-D, all >= 1, sum <= 2**24
    symbols: np.ndarray  # int 1-D, values in [0, len(freqs))


def _checked_freqs(freqs: np.ndarray) -> np.ndarray:
    """The table as int64, or ValueError if it is not a valid table (a caller bug, not stream damage)."""
    f = np.asarray(freqs)
    if f.ndim != 1 or f.size == 0 or not np.issubdtype(f.dtype, np.integer):
        raise ValueError(f"frequency table must be a non-empty 1-D integer array, got {f.dtype} {f.shape}")
    f = f.astype(np.int64, copy=False)
    if int(f.min()) < 1:
        raise ValueError("frequency table entries must all be >= 1")
    total = int(f.sum())
    if total > MAX_TABLE_SUM:
        raise ValueError(f"frequency table sums to {total}, over the limit 2**24")
    return f


def _model(freqs: np.ndarray) -> "constriction.stream.model.Categorical":
    # float64 division of integers < 2**53 is exact-rounded, hence identical on every machine.
    return _Categorical(freqs / float(freqs.sum()), perfect=False)


def encode_segments(segments: Sequence[Segment]) -> bytes:
    """Code all segments into one rANS stream; decode_segments returns them in the same order."""
    prepared = []
    for seg in segments:
        f = _checked_freqs(seg.freqs)
        s = np.asarray(seg.symbols)
        if s.ndim != 1 or (s.size and not np.issubdtype(s.dtype, np.integer)):
            raise ValueError("symbols must be a 1-D integer array")
        if s.size and (int(s.min()) < 0 or int(s.max()) >= f.size):
            raise ValueError(f"symbols must lie in [0, {f.size})")
        prepared.append((f, s.astype(np.int32, copy=False)))
    coder = _AnsCoder()
    # ANS is a stack: push the last segment first so that decoding pops the first one first.
    for f, s in reversed(prepared):
        # A one-symbol alphabet carries no information (and constriction rejects it): nothing to code.
        if s.size and f.size > 1:
            coder.encode_reverse(s, _model(f))
    words = coder.get_compressed().astype("<u4", copy=False)
    return words.tobytes()


def decode_segments(data: bytes, tables: Sequence[tuple[np.ndarray, int]]) -> list[np.ndarray]:
    """Decode the segments (freqs, count) in the order they were encoded; int32 symbol arrays.

    Raises CorruptStreamError if the stream cannot be the coding of that many symbols under those tables
    (bad length, a final word constriction rejects, or words left over after the last symbol).
    """
    if len(data) % 4:
        raise CorruptStreamError(f"rANS stream length {len(data)} is not a multiple of 4 bytes")
    words = np.frombuffer(data, dtype="<u4").astype(np.uint32)
    checked = []
    for freqs, count in tables:
        count = int(count)
        if count < 0:
            raise ValueError("segment symbol count must be >= 0")
        checked.append((_checked_freqs(freqs), count))
    try:
        coder = _AnsCoder(words)
    except Exception as exc:  # constriction reports invalid data as ValueError; catch its whole family
        raise CorruptStreamError(f"rANS stream is damaged: {exc}") from None
    out: list[np.ndarray] = []
    for f, count in checked:
        if count == 0 or f.size == 1:
            out.append(np.zeros(count, dtype=np.int32))
            continue
        try:
            out.append(np.asarray(coder.decode(_model(f), count), dtype=np.int32))
        except Exception as exc:
            raise CorruptStreamError(f"rANS stream is damaged: {exc}") from None
    # The encoder started from an empty coder; a faithful decode returns to exactly that state.
    if not coder.is_empty():
        raise CorruptStreamError("rANS stream is damaged: data left over after the last symbol")
    return out


def encode_uniform_bits(values: np.ndarray, bits: int) -> Segment:
    """A segment that codes raw ``bits``-bit values at a flat 1/2**bits each (e.g. low bit planes)."""
    if not 1 <= bits <= 24:
        raise ValueError("bits must be in 1..24")
    return Segment(np.ones(1 << bits, dtype=np.int64), np.asarray(values))


def cost_bits(segments: Sequence[Segment]) -> float:
    """Ideal code length in bits, sum of -log2(freq[s] / sum(freq)): the target the coder approaches."""
    total = 0.0
    for seg in segments:
        f = _checked_freqs(seg.freqs)
        s = np.asarray(seg.symbols, dtype=np.int64)
        if s.size:
            total += float(s.size * np.log2(float(f.sum())) - np.log2(f[s].astype(np.float64)).sum())
    return total
