"""A baseline JPEG bitstream (one 8-bit grey component) written from quantised DCT coefficients.

Why: an 8-bit image that was once a JPEG (decoded, then archived "losslessly") is, block by block,
the inverse DCT of a few quantised coefficients. ``pipelines.jpeg_history`` recovers them; this module
writes them as the JPEG file they came from, which JPEG-XL then recompresses losslessly (its JPEG
transcoding) and libjpeg-turbo decodes back to the same pixels. Huffman tables are those of the JPEG
standard (ITU T.81 Annex K.3, luminance); the stream is a plain baseline, sequential, 4:0:0 file.
"""

from __future__ import annotations

import struct

import numpy as np

# zigzag scan: ZIGZAG[i] is the natural (row-major) index of the i-th coefficient in the stream
ZIGZAG = np.array([
    0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5,
    12, 19, 26, 33, 40, 48, 41, 34, 27, 20, 13, 6, 7, 14, 21, 28,
    35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51,
    58, 59, 52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63,
])

# Annex K.3: code counts per length 1..16, then the symbols in code order
DC_COUNTS = (0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0)
DC_SYMBOLS = tuple(range(12))
AC_COUNTS = (0, 2, 1, 3, 3, 2, 4, 3, 5, 5, 4, 4, 0, 0, 1, 0x7D)
AC_SYMBOLS = (
    0x01, 0x02, 0x03, 0x00, 0x04, 0x11, 0x05, 0x12, 0x21, 0x31, 0x41, 0x06, 0x13, 0x51, 0x61, 0x07,
    0x22, 0x71, 0x14, 0x32, 0x81, 0x91, 0xA1, 0x08, 0x23, 0x42, 0xB1, 0xC1, 0x15, 0x52, 0xD1, 0xF0,
    0x24, 0x33, 0x62, 0x72, 0x82, 0x09, 0x0A, 0x16, 0x17, 0x18, 0x19, 0x1A, 0x25, 0x26, 0x27, 0x28,
    0x29, 0x2A, 0x34, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3A, 0x43, 0x44, 0x45, 0x46, 0x47, 0x48, 0x49,
    0x4A, 0x53, 0x54, 0x55, 0x56, 0x57, 0x58, 0x59, 0x5A, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69,
    0x6A, 0x73, 0x74, 0x75, 0x76, 0x77, 0x78, 0x79, 0x7A, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89,
    0x8A, 0x92, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9A, 0xA2, 0xA3, 0xA4, 0xA5, 0xA6, 0xA7,
    0xA8, 0xA9, 0xAA, 0xB2, 0xB3, 0xB4, 0xB5, 0xB6, 0xB7, 0xB8, 0xB9, 0xBA, 0xC2, 0xC3, 0xC4, 0xC5,
    0xC6, 0xC7, 0xC8, 0xC9, 0xCA, 0xD2, 0xD3, 0xD4, 0xD5, 0xD6, 0xD7, 0xD8, 0xD9, 0xDA, 0xE1, 0xE2,
    0xE3, 0xE4, 0xE5, 0xE6, 0xE7, 0xE8, 0xE9, 0xEA, 0xF1, 0xF2, 0xF3, 0xF4, 0xF5, 0xF6, 0xF7, 0xF8,
    0xF9, 0xFA,
)
MAX_DC = 2047  # a DC difference of size category 11
MAX_AC = 1023  # an AC coefficient of size category 10 (baseline)


def huffman_codes(counts: tuple[int, ...], symbols: tuple[int, ...]) -> dict[int, tuple[int, int]]:
    """symbol -> (code, length) of a canonical JPEG Huffman table (Annex C)."""
    table, code, k = {}, 0, 0
    for length, count in enumerate(counts, start=1):
        for _ in range(count):
            table[symbols[k]] = (code, length)
            code, k = code + 1, k + 1
        code <<= 1
    return table


DC_CODES = huffman_codes(DC_COUNTS, DC_SYMBOLS)
AC_CODES = huffman_codes(AC_COUNTS, AC_SYMBOLS)


class _BitWriter:
    """Bits, most significant first, with a 0x00 stuffed after every 0xFF byte (F.1.2.3)."""

    def __init__(self) -> None:
        self.out = bytearray()
        self.acc = 0
        self.count = 0

    def put(self, value: int, length: int) -> None:
        self.acc = (self.acc << length) | (value & ((1 << length) - 1))
        self.count += length
        while self.count >= 8:
            self.count -= 8
            byte = (self.acc >> self.count) & 0xFF
            self.out.append(byte)
            if byte == 0xFF:
                self.out.append(0)
        self.acc &= (1 << self.count) - 1

    def flush(self) -> bytes:
        if self.count:
            self.put((1 << (8 - self.count)) - 1, 8 - self.count)  # pad with ones
        return bytes(self.out)


def _category(value: int) -> int:
    return abs(value).bit_length()


def _put_value(bits: _BitWriter, value: int, size: int) -> None:
    """The value's extra bits: itself if positive, its ones' complement if negative (F.1.2.1)."""
    if size:
        bits.put(value if value > 0 else value + (1 << size) - 1, size)


def _segment(marker: int, payload: bytes) -> bytes:
    return struct.pack(">HH", 0xFF00 | marker, len(payload) + 2) + payload


def _huffman_segment(table_class: int, counts: tuple[int, ...], symbols: tuple[int, ...]) -> bytes:
    return _segment(0xC4, bytes([table_class << 4]) + bytes(counts) + bytes(symbols))


def write(coefficients: np.ndarray, quant: np.ndarray, height: int, width: int) -> bytes:
    """A baseline JPEG of one grey component.

    coefficients: int [block rows, block columns, 64], quantised, natural (row-major) order within a
    block, covering ceil(height / 8) x ceil(width / 8) blocks. quant: int [64] in 1..255, natural
    order. Raises ValueError for a coefficient outside the baseline ranges.
    """
    rows, cols = -(-height // 8), -(-width // 8)
    coefficients = np.asarray(coefficients, dtype=np.int64)
    if coefficients.shape != (rows, cols, 64):
        raise ValueError(f"coefficients of shape {coefficients.shape}, expected {(rows, cols, 64)}")
    quant = np.asarray(quant, dtype=np.int64)
    if quant.shape != (64,) or quant.min() < 1 or quant.max() > 255:
        raise ValueError("quantisation table must be 64 values in 1..255")
    zigzag = coefficients.reshape(-1, 64)[:, ZIGZAG]
    dc_diff = np.diff(zigzag[:, 0], prepend=0)
    if np.abs(dc_diff).max(initial=0) > MAX_DC or np.abs(zigzag[:, 1:]).max(initial=0) > MAX_AC:
        raise ValueError("coefficient outside the baseline JPEG range")
    bits = _BitWriter()
    dc_codes, ac_codes = DC_CODES, AC_CODES
    for block, diff in zip(zigzag.tolist(), dc_diff.tolist()):
        size = _category(diff)
        bits.put(*dc_codes[size])
        _put_value(bits, diff, size)
        run = 0
        last = 63
        while last > 0 and block[last] == 0:
            last -= 1
        for k in range(1, last + 1):
            value = block[k]
            if value == 0:
                run += 1
                continue
            while run > 15:
                bits.put(*ac_codes[0xF0])  # ZRL: sixteen zeros
                run -= 16
            size = _category(value)
            bits.put(*ac_codes[(run << 4) | size])
            _put_value(bits, value, size)
            run = 0
        if last < 63:
            bits.put(*ac_codes[0x00])  # EOB
    header = (
        b"\xff\xd8"
        + _segment(0xDB, bytes([0]) + bytes(quant[ZIGZAG].tolist()))
        + _segment(0xC0, struct.pack(">BHHB", 8, height, width, 1) + bytes([1, 0x11, 0]))
        + _huffman_segment(0, DC_COUNTS, DC_SYMBOLS)
        + _huffman_segment(1, AC_COUNTS, AC_SYMBOLS)
        + _segment(0xDA, bytes([1, 1, 0x00, 0, 63, 0]))
    )
    return header + bits.flush() + b"\xff\xd9"
