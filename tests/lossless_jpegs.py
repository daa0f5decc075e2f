"""Lossless JPEG files for the tests: a single scan whose segment ``entropy.jpeg_lossless`` writes."""

import struct

import numpy as np

from medcodec.entropy import jpeg_lossless as jl

# a DC table with a code for every size category 0..16: 17 codes of 5 bits (00000 .. 10000)
COUNTS = (0, 0, 0, 0, 17) + (0,) * 11
SYMBOLS = tuple(range(17))


def _segment(marker: int, payload: bytes) -> bytes:
    return struct.pack(">HH", 0xFF00 | marker, len(payload) + 2) + payload


def lossless_jpeg(samples: np.ndarray, precision: int, predictor: int, point_transform: int = 0,
                  restart: int = 0) -> bytes:
    """A single-scan SOF3 file, its segment written by ``jpeg_lossless.segment`` (padded as the standard says)."""
    height, width = samples.shape
    scan = jl.Scan(precision, height, width, predictor, point_transform, COUNTS, SYMBOLS, 0, 0)
    out = b"\xff\xd8"
    out += _segment(0xC3, struct.pack(">BHHB", precision, height, width, 1) + b"\x01\x11\x00")
    out += _segment(0xC4, bytes([0x00]) + bytes(COUNTS) + bytes(SYMBOLS))
    if restart:
        out += _segment(0xDD, struct.pack(">H", restart))
    out += _segment(0xDA, b"\x01\x01\x00" + bytes([predictor, 0, point_transform]))
    return out + jl.segment(samples, scan) + b"\xff\xd9"
