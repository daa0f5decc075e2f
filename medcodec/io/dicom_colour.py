"""Native 8-bit colour PixelData (RGB or YBR_FULL, either planar configuration) as three planes a frame.

Ultrasound, secondary captures, endoscopy and photographs are colour, and many are stored uncompressed.
RGB goes through the subtract-green transform (``io.colour``: G and the two differences from it, modulo
256, every plane 8-bit). YBR_FULL is already luma and chroma: its channels are the planes as they are.
Planes: per frame G and the two differences (or Y, Cb, Cr). Bytes after the frames are kept.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from medcodec.errors import CorruptStreamError
from medcodec.io.colour import forward, inverse

PHOTOMETRICS = {"RGB": "subtract-green", "YBR_FULL": "none"}


def planes_of(image: np.ndarray, transform: str) -> list[np.ndarray]:
    """The three planes (uint16) of an 8-bit colour image [rows, cols, 3]: subtract-green, or its channels."""
    if transform == "subtract-green":
        return forward(image)
    return [np.ascontiguousarray(image[..., k].astype(np.uint16)) for k in range(3)]


def image_of(planes: list[np.ndarray], transform: str) -> np.ndarray:
    """Inverse of planes_of: the image (uint8 [rows, cols, 3]) of three 8-bit planes."""
    first, second, third = planes
    if transform == "subtract-green":
        return inverse(first, second, third)
    return np.stack([first, second, third], axis=-1).astype(np.uint8)


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
    planes = [plane for image in images for plane in planes_of(image, transform)]
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
    images = [image_of(planes[3 * k:3 * k + 3], transform) for k in range(frames)]
    stacked = np.stack(images) if images else np.zeros((0, rows, cols, 3), np.uint8)
    if planar == 1:
        stacked = stacked.transpose(0, 3, 1, 2)
    return np.ascontiguousarray(stacked).tobytes() + tail
