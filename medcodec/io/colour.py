"""8-bit RGB as three planes a method codes: the subtract-green transform, for colour DICOM and RGB PNG.

Coding R, G and B apart would code the same picture three times (most of an ultrasound is grey: R = G
= B), so RGB goes through the subtract-green transform (as WebP lossless and JPEG-LS's colour
transforms do), modulo 256 so every plane stays 8-bit:

    G,   (R - G + 128) mod 256,   (B - G + 128) mod 256

back: R = (plane 1 + G - 128) mod 256, B likewise. Grey pixels give two constant planes (128), which the
methods code in almost nothing, and the G plane of a grey picture is that picture, coded as the same
8-bit plane would be (the 8-bit methods, JPEG history included). Measured against JPEG 2000's
reversible colour transform (RCT: no wrap-around, but its chroma needs 9 bits, so every plane of the
file is 9-bit), fast mode, ``benchmarks/colour_dicom.py``'s files (train images with a tinted region)
run once with each: 0.65-0.66x the RCT's bytes on two JPEG-derived ultrasounds (whose G plane gets the
8-bit JPEG-history coding), 1.00-1.02x on two radiographs, 1.05x on a head CT whose tint wraps around.
"""

from __future__ import annotations

import numpy as np

GREY = 128  # the difference planes' value where R = G = B


def forward(rgb: np.ndarray) -> list[np.ndarray]:
    """[G, R - G, B - G] (uint16, each difference + 128 mod 256) of an RGB image [rows, cols, 3] (uint8)."""
    r, g, b = (rgb[..., k].astype(np.int32) for k in range(3))
    return [np.ascontiguousarray(p.astype(np.uint16)) for p in (g, (r - g + GREY) & 255, (b - g + GREY) & 255)]


def inverse(g: np.ndarray, dr: np.ndarray, db: np.ndarray) -> np.ndarray:
    """The RGB image (uint8 [rows, cols, 3]) of the three planes forward gives."""
    g, dr, db = (p.astype(np.int32) for p in (g, dr, db))
    return np.stack([(dr + g - GREY) & 255, g, (db + g - GREY) & 255], axis=-1).astype(np.uint8)
