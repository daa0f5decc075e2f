"""Native 8-bit colour PixelData (RGB or YBR_FULL, either planar configuration) as three planes a frame.

Ultrasound, secondary captures, endoscopy and photographs are colour, and many are stored uncompressed.
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
YBR_FULL is already luma and chroma: its channels are the planes as they are.
Planes: per frame G and the two differences (or Y, Cb, Cr). Bytes after the frames are kept.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from medcodec.errors import CorruptStreamError

PHOTOMETRICS = {"RGB": "subtract-green", "YBR_FULL": "none"}
GREY = 128  # the difference planes' value where R = G = B


def forward(rgb: np.ndarray) -> list[np.ndarray]:
    """[G, R - G, B - G] (uint16, each difference + 128 mod 256) of an RGB image [rows, cols, 3] (uint8)."""
    r, g, b = (rgb[..., k].astype(np.int32) for k in range(3))
    return [np.ascontiguousarray(p.astype(np.uint16)) for p in (g, (r - g + GREY) & 255, (b - g + GREY) & 255)]


def inverse(g: np.ndarray, dr: np.ndarray, db: np.ndarray) -> np.ndarray:
    """The RGB image (uint8 [rows, cols, 3]) of the three planes forward gives."""
    g, dr, db = (p.astype(np.int32) for p in (g, dr, db))
    return np.stack([(dr + g - GREY) & 255, g, (db + g - GREY) & 255], axis=-1).astype(np.uint8)


def split(pixel: bytes, rows: int, cols: int, frames: int, planar: int,
          photometric: str) -> tuple[list[np.ndarray], int, dict[str, Any], bytes]:
    """(planes, bits, meta, tail) of a native 8-bit colour PixelData value (the caller checked its size)."""
    count = rows * cols * frames * 3
    samples = np.frombuffer(pixel, dtype=np.uint8, count=count)
    # [frames, rows, cols, 3] whatever the planar configuration
    if planar == 1:
        images = samples.reshape(frames, 3, rows, cols).transpose(0, 2, 3, 1)
    else:
        images = samples.reshape(frames, rows, cols, 3)
    transform = PHOTOMETRICS[photometric]
    planes = []
    for image in images:
        if transform == "subtract-green":
            planes += forward(image)
        else:
            planes += [np.ascontiguousarray(image[..., k].astype(np.uint16)) for k in range(3)]
    meta = {"rows": rows, "cols": cols, "frames": frames, "planar": planar, "transform": transform}
    return planes, 8, meta, pixel[count:]


def join(meta: dict[str, Any], planes: list[np.ndarray], tail: bytes) -> bytes:
    """Inverse of split: the PixelData value from the planes and the tail."""
    rows, cols, frames, planar, transform = (meta[k] for k in ("rows", "cols", "frames", "planar", "transform"))
    if planar not in (0, 1) or transform not in PHOTOMETRICS.values():
        raise CorruptStreamError("colour DICOM envelope has a damaged description")
    if len(planes) != 3 * frames or any(p.shape != (rows, cols) for p in planes):
        raise CorruptStreamError(f"colour DICOM needs {3 * frames} planes of {rows}x{cols}")
    if max(int(p.max(initial=0)) for p in planes) > 255:
        raise CorruptStreamError("colour DICOM planes do not fit its 8-bit samples")
    images = []
    for k in range(frames):
        first, second, third = planes[3 * k:3 * k + 3]
        images.append(inverse(first, second, third) if transform == "subtract-green"
                      else np.stack([first, second, third], axis=-1).astype(np.uint8))
    stacked = np.stack(images) if images else np.zeros((0, rows, cols, 3), np.uint8)
    if planar == 1:
        stacked = stacked.transpose(0, 3, 1, 2)
    return np.ascontiguousarray(stacked).tobytes() + tail
