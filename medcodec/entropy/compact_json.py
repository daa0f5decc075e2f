"""Compact binary coding of small JSON objects: the methods' side information (a PLANE_META payload) and,
from format 2, the container's header meta.

Why: a raster frame's side information is about a hundred small integers (weights, scale indices); as
JSON text, zlib-packed, it took 250-600 bytes, 5-16 % of the file of a 64x64 EPI or a mostly-background
256x256 MR slice (where it decided whether the frame beat JPEG-XL). Here each list of integers is coded
in Exp-Golomb codes (zigzag ones when a value is negative) of the order that suits the list, and keys
(and string values such as the ``requires`` names) are indices into a fixed table of the names the
methods use: about half the size.

Layout: the byte MARKER, then a bit string (most significant bit first, zero-padded to a whole byte)
holding one value::

    value = tag (3 bits), then by tag:
            0 null | 1 false | 2 true
            3 integer       eg(zigzag(v), 4)
            4 list          eg(n, 0), then n values
            5 integer list  eg(n - 1, 0), m (5 bits), then n codes: for m < 16 eg(zigzag(v), m),
                            for m >= 16 eg(v, m - 16) (every v >= 0)                  (n >= 1)
            6 string        name
            7 object        eg(n, 0), then n pairs (name, value), keys distinct
    name  = eg(i, 2): NAMES[i - 1] for i >= 1; for i = 0, eg(length, 2) then that many UTF-8 bytes
    eg(u, k) = Exp-Golomb of order k: with x = u + 2**k, bit_length(x) - k - 1 zeros, then x in binary
    zigzag(v) = 2 v for v >= 0, -2 v - 1 for v < 0

Everything JSON has but floats (no side information holds one; ``encode`` returns None for them and
for integers of 2**62 or more, and the writer keeps the JSON text). The reader refuses (ValueError)
a wrong marker, a code of more than 64 leading zeros, a name index beyond NAMES, invalid UTF-8,
repeated keys, nesting deeper than MAX_DEPTH, bits missing, and anything but zero padding after the
value.
"""

from __future__ import annotations

from typing import Any

import numpy as np

MARKER = 0xB1  # neither "{" (JSON text) nor a zlib header's first byte (compression method 8)
# The names of side-information keys and values, in a fixed order: append only (the index is the code).
NAMES = ("raster", "pad", "cs", "g", "first", "second", "w", "blo", "ell", "step", "nb", "pal",
         "lo", "shift", "requires", "refine", "bins", "phase", "ensemble", "surprise", "left_pass",
         "mean_adjust", "scale_adjust", "latent", "residual_bits", "z_bits", "whole_set",
         # format 2: the header meta (container.format) and the raster frames' correction network names
         "frames", "method", "modality", "description", "fallback", "shape", "classical", "jpeg", "fast",
         "slow", "nn", "bc", "raster-nn-v1/575b2b961130ba04", "raster-nn-large-v1/43307bc3595e11cf",
         "raster-nn-xl-v1/5889accea96285a9",
         # format 2.1: the raster frames' learned scale
         "sn", "raster-scale-v1/f722761cff3b41c9",
         # format 2.2: the learned scale that also sees a wide window
         "raster-scale-v2/0b53cc3c2b5beb3a",
         # format 2.3: the raster frames' value range
         "vr",
         # format 2.4: the raster frames' local least-squares blend
         "lw",
         # format 2.5: the blend's windows of other radii
         "lx",
         # format 2.6: the raster frames' fit of the correction's output layer
         "od",
         # format 2.7: the raster frames' second correction and the stacking weights
         "n2", "sk",
         # format 2.8: the raster frames' lattice boost
         "lt")
_INDEX = {name: i + 1 for i, name in enumerate(NAMES)}
MAX_DEPTH = 16
_MAX_ZEROS = 64
_LIMIT = 1 << 62  # |integer| below this: every code fits the reader's bound
_TAG_NULL, _TAG_FALSE, _TAG_TRUE, _TAG_INT, _TAG_LIST, _TAG_INTS, _TAG_STRING, _TAG_OBJECT = range(8)
_INT_ORDER = 4
_UNSIGNED = 16  # an integer list's mode field: below, the order of zigzag codes; from it, 16 + the order of plain ones


def _zigzag(v: int) -> int:
    return 2 * v if v >= 0 else -2 * v - 1


def _unzigzag(u: int) -> int:
    return u >> 1 if u % 2 == 0 else -((u + 1) >> 1)


def _eg_length(u: int, k: int) -> int:
    return 2 * (u + (1 << k)).bit_length() - k - 1


_VECTOR_BELOW = 1 << 52  # codes below this, plus 2**15, convert to float64 exactly: numpy finds their lengths


def _list_mode(values: list[int], signed: list[int]) -> int:
    """An integer list's mode field: the order 0-15 of the zigzag codes, or 16 + the order of the values
    themselves when none is negative, whose codes are the shortest in all (the first such on a tie).

    Why numpy: the raster frames' block classes are lists of hundreds to thousands of integers, and the
    encoder sizes its side information for every analysis it compares (32 orders x every value: ~4 % of
    its time in Python). The lengths are integers either way, so the same mode is chosen."""
    options = [signed] + ([values] if min(values) >= 0 else [])
    if max(signed) >= _VECTOR_BELOW:
        return min(range(_UNSIGNED * len(options)),
                   key=lambda m: sum(_eg_length(u, m % _UNSIGNED) for u in options[m // _UNSIGNED]))
    orders = np.arange(_UNSIGNED, dtype=np.int64)
    totals = []
    for codes in options:
        shifted = np.asarray(codes, dtype=np.int64)[:, None] + (np.int64(1) << orders)[None, :]
        bit_lengths = np.frexp(shifted.astype(np.float64))[1].astype(np.int64)  # exact below 2**53
        totals.append((2 * bit_lengths - orders[None, :] - 1).sum(axis=0))
    return int(np.argmin(np.concatenate(totals)))


class _Unsupported(Exception):
    """A value this coding does not hold (a float, a huge integer): the writer keeps JSON text."""


class _Writer:
    def __init__(self) -> None:
        self.parts: list[str] = []

    def bits(self, value: int, width: int) -> None:
        if width:
            self.parts.append(format(value, f"0{width}b"))

    def eg(self, u: int, k: int) -> None:
        x = u + (1 << k)
        self.parts.append("0" * (x.bit_length() - k - 1) + format(x, "b"))

    def name(self, text: str) -> None:
        if text in _INDEX:
            self.eg(_INDEX[text], 2)
            return
        raw = text.encode("utf-8")
        self.eg(0, 2)
        self.eg(len(raw), 2)
        for byte in raw:
            self.bits(byte, 8)

    def value(self, v: Any, depth: int = 0) -> None:
        if depth > MAX_DEPTH:
            raise _Unsupported("nested too deep")
        if v is None or isinstance(v, bool):
            self.bits({None: _TAG_NULL, False: _TAG_FALSE, True: _TAG_TRUE}[v], 3)
        elif isinstance(v, int):
            self.bits(_TAG_INT, 3)
            self.eg(_zigzag(_checked(v)), _INT_ORDER)
        elif isinstance(v, str):
            self.bits(_TAG_STRING, 3)
            self.name(v)
        elif isinstance(v, (list, tuple)):
            if v and all(isinstance(x, int) and not isinstance(x, bool) for x in v):
                signed = [_zigzag(_checked(x)) for x in v]
                mode = _list_mode(v, signed)
                codes = signed if mode < _UNSIGNED else list(v)
                self.bits(_TAG_INTS, 3)
                self.eg(len(codes) - 1, 0)
                self.bits(mode, 5)
                for u in codes:
                    self.eg(u, mode % _UNSIGNED)
            else:
                self.bits(_TAG_LIST, 3)
                self.eg(len(v), 0)
                for x in v:
                    self.value(x, depth + 1)
        elif isinstance(v, dict):
            if not all(isinstance(key, str) for key in v):
                raise _Unsupported("object key is not a string")
            self.bits(_TAG_OBJECT, 3)
            self.eg(len(v), 0)
            for key in sorted(v):  # one coding per object, whatever order it was built in
                self.name(key)
                self.value(v[key], depth + 1)
        else:
            raise _Unsupported(f"{type(v).__name__} values")

    def payload(self) -> bytes:
        text = "".join(self.parts)
        text += "0" * (-len(text) % 8)
        return bytes([MARKER]) + (int(text, 2).to_bytes(len(text) // 8, "big") if text else b"")


def _checked(v: int) -> int:
    if not -_LIMIT < v < _LIMIT:
        raise _Unsupported("integer too large")
    return v


def encode(meta: Any) -> bytes | None:
    """The compact coding of a JSON value, or None when it holds what this coding does not (floats)."""
    writer = _Writer()
    try:
        writer.value(meta)
    except _Unsupported:
        return None
    return writer.payload()


class _Reader:
    def __init__(self, payload: bytes) -> None:
        self.text = "".join(format(byte, "08b") for byte in payload)
        self.pos = 0

    def bits(self, width: int) -> int:
        if self.pos + width > len(self.text):
            raise ValueError("compact side information is truncated")
        out = int(self.text[self.pos:self.pos + width], 2) if width else 0
        self.pos += width
        return out

    def eg(self, k: int) -> int:
        one = self.text.find("1", self.pos, self.pos + _MAX_ZEROS + 1)
        if one < 0:
            raise ValueError("compact side information holds an overlong or truncated code")
        zeros = one - self.pos
        self.pos = one
        return self.bits(zeros + k + 1) - (1 << k)

    def name(self) -> str:
        index = self.eg(2)
        if index:
            if index > len(NAMES):
                raise ValueError(f"compact side information names entry {index} of a table of {len(NAMES)}")
            return NAMES[index - 1]
        length = self.eg(2)
        if 8 * length > len(self.text) - self.pos:
            raise ValueError("compact side information is truncated")
        raw = bytes(self.bits(8) for _ in range(length))
        return raw.decode("utf-8")  # UnicodeDecodeError is a ValueError

    def count(self, low: int = 0) -> int:
        n = self.eg(0) + low
        if n > len(self.text) - self.pos:  # every item takes at least a bit: a damaged count stops here
            raise ValueError("compact side information is truncated")
        return n

    def value(self, depth: int = 0) -> Any:
        if depth > MAX_DEPTH:
            raise ValueError("compact side information is nested too deep")
        tag = self.bits(3)
        if tag <= _TAG_TRUE:
            return (None, False, True)[tag]
        if tag == _TAG_INT:
            return _unzigzag(self.eg(_INT_ORDER))
        if tag == _TAG_LIST:
            return [self.value(depth + 1) for _ in range(self.count())]
        if tag == _TAG_INTS:
            n = self.count(1)
            mode = self.bits(5)
            if mode >= _UNSIGNED:
                return [self.eg(mode - _UNSIGNED) for _ in range(n)]
            return [_unzigzag(self.eg(mode)) for _ in range(n)]
        if tag == _TAG_STRING:
            return self.name()
        out: dict[str, Any] = {}
        for _ in range(self.count()):
            key = self.name()
            if key in out:
                raise ValueError(f"compact side information repeats the key {key!r}")
            out[key] = self.value(depth + 1)
        return out


def decode(payload: bytes) -> Any:
    """The JSON value of a compact payload (starting with MARKER); ValueError when it is damaged."""
    if payload[:1] != bytes([MARKER]):
        raise ValueError("not compact side information")
    reader = _Reader(payload[1:])
    value = reader.value()
    rest = reader.text[reader.pos:]
    if len(rest) >= 8 or "1" in rest:
        raise ValueError("compact side information has data after its value")
    return value
