"""Native 8-bit colour PixelData (RGB or YBR_FULL, either planar configuration; YBR_FULL_422) as three
planes a frame.

Ultrasound, secondary captures, endoscopy and photographs are colour, and many are stored uncompressed.
RGB goes through the subtract-green transform (``io.colour``: G and the two differences from it, modulo
256, every plane 8-bit). YBR_FULL is already luma and chroma: its channels are the planes as they are.
YBR_FULL_422 holds chroma at half the horizontal resolution, each pair of pixels as Y Y Cb Cr (PS3.3
C.7.6.3.1.2): its planes are Y and the two half-width chroma planes. Planes: per frame G and the two
differences (or Y, Cb, Cr). Bytes after the frames are kept.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from medcodec.errors import CorruptStreamError
from medcodec.io.colour import forward, inverse

PHOTOMETRICS = {"RGB": "subtract-green", "YBR_FULL": "none"}
# native only (a compressed frame's YBR_FULL_422 is its codec's business, not its samples' layout)
SUBSAMPLED = {"YBR_FULL_422": "422"}


def native_bytes(rows: int, cols: int, frames: int, photometric: str) -> int:
    """The bytes of native colour frames: three a pixel, two in YBR_FULL_422."""
    return rows * cols * frames * (2 if photometric in SUBSAMPLED else 3)


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
    count = native_bytes(rows, cols, frames, photometric)
    samples = np.frombuffer(pixel, dtype=np.uint8, count=count)
    if photometric in SUBSAMPLED:  # planar 0, an even width (the caller checked): Y0 Y1 Cb Cr a pair of pixels
        pairs = samples.reshape(frames, rows, cols // 2, 4)
        planes = [np.ascontiguousarray(p, dtype=np.uint16) for frame in pairs
                  for p in (frame[..., :2].reshape(rows, cols), frame[..., 2], frame[..., 3])]
        meta = {"rows": rows, "cols": cols, "frames": frames, "planar": 0, "transform": SUBSAMPLED[photometric]}
        return planes, 8, meta, pixel[count:]
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
    if transform in SUBSAMPLED.values():
        return _join_subsampled(rows, cols, frames, planes, tail)
    if planar not in (0, 1) or transform not in PHOTOMETRICS.values():
        raise CorruptStreamError("colour DICOM envelope has a damaged description")
    if len(planes) != 3 * frames or any(p.shape != (rows, cols) for p in planes):
        raise CorruptStreamError(f"colour DICOM needs {3 * frames} planes of {rows}x{cols}")
    _check_samples(planes)
    images = [image_of(planes[3 * k:3 * k + 3], transform) for k in range(frames)]
    stacked = np.stack(images) if images else np.zeros((0, rows, cols, 3), np.uint8)
    if planar == 1:
        stacked = stacked.transpose(0, 3, 1, 2)
    return np.ascontiguousarray(stacked).tobytes() + tail


def _join_subsampled(rows: int, cols: int, frames: int, planes: list[np.ndarray], tail: bytes) -> bytes:
    """YBR_FULL_422 frames from their Y, Cb and Cr planes (``split``), Y Y Cb Cr a pair of pixels."""
    shapes = [(rows, cols), (rows, cols // 2), (rows, cols // 2)]
    if cols % 2 or len(planes) != 3 * frames or any(p.shape != shapes[k % 3] for k, p in enumerate(planes)):
        raise CorruptStreamError(f"YBR_FULL_422 DICOM needs {3 * frames} planes: Y {rows}x{cols}, Cb and Cr "
                                 f"{rows}x{cols // 2}")
    _check_samples(planes)
    out = np.empty((frames, rows, cols // 2, 4), np.uint8)
    for k in range(frames):
        y, cb, cr = planes[3 * k:3 * k + 3]
        out[k, ..., :2] = y.reshape(rows, cols // 2, 2)
        out[k, ..., 2] = cb
        out[k, ..., 3] = cr
    return out.tobytes() + tail


def _check_samples(planes: list[np.ndarray]) -> None:
    """Decoded planes of a colour file must fit its 8-bit samples (a damaged stream may say otherwise)."""
    if max((int(p.max(initial=0)) for p in planes), default=0) > 255:
        raise CorruptStreamError("colour DICOM planes do not fit its 8-bit samples")
