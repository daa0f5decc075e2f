"""Bands: a large plane coded as horizontal bands, each an independent frame (format 2.22; ``medcodec
encode --bands``, ``codec.encode(in_bands=True)``).

Why: the learned decoders are sequential within a plane (one rANS stream, one wavefront after another),
so a 7-megapixel mammogram decodes on one core however many the machine has. Cut into bands of at least
BAND_PIXELS, each band is analysed, fitted and coded on its own and becomes a frame of the file, so the
decoder's processes and the encoder's threads take the bands side by side, as they take a multi-frame
file's frames. Measured on the four train planes of 3 megapixels or more (``benchmarks/bands.py``, fast
mode, 2026-12-06): the same bytes (1.0002 x; -0.7 % to +0.4 % a file, each band fitting its own options),
decoding on two cores 1.26 x faster than the whole plane (one core: 1.05 x slower), encoding on one core
1.27 x slower (each band pays the analysis' fixed costs; on two cores about the same time). Not the default: on
the one-core benchmark it is slower, and the bytes only move about.

Band boundaries lie on multiples of ROW_MULTIPLE rows, so a plane that was a JPEG once keeps its 8x8
(and 16x16 chroma) block grid in every band. The header keeps the whole planes' shape and pixel
checksum; its meta "bands" lists how many frames each plane was cut into, and the decoder stacks them
back before any checksum is taken.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from medcodec.errors import CorruptStreamError

BAND_PIXELS = 3 << 19  # 1.5 Mi pixels: a plane of fewer is one band
MAX_BANDS = 64
ROW_MULTIPLE = 16


def band_count(shape: tuple[int, int]) -> int:
    """How many bands a plane of this shape is coded in: a power of two (bands of about equal work keep 2,
    4, 8 cores busy to the end, where three on two cores leave one idle a third of the time), as many as
    give bands of at least BAND_PIXELS and ROW_MULTIPLE rows, at most MAX_BANDS."""
    height, width = shape
    most = min(height * width // BAND_PIXELS, height // ROW_MULTIPLE, MAX_BANDS)
    return 1 << (max(most, 1).bit_length() - 1)


def boundaries(height: int, count: int) -> list[int]:
    """The first row of each band and, last, the height: equal bands, cut on multiples of ROW_MULTIPLE."""
    cuts = [ROW_MULTIPLE * round(height * k / count / ROW_MULTIPLE) for k in range(1, count)]
    return [0, *cuts, height]


def split(planes: Sequence[np.ndarray]) -> tuple[list[np.ndarray], list[int]]:
    """The frames to code (each plane, or its bands top to bottom) and how many each plane became."""
    frames, counts = [], []
    for plane in planes:
        count = band_count(plane.shape)
        if count == 1:
            frames.append(plane)
        else:
            rows = boundaries(plane.shape[0], count)
            frames.extend(np.ascontiguousarray(plane[top:bottom]) for top, bottom in zip(rows, rows[1:]))
        counts.append(count)
    return frames, counts


def merge(frames: Sequence[np.ndarray], counts: Sequence[int]) -> list[np.ndarray]:
    """The planes back from their decoded frames (``split``'s inverse)."""
    planes, at = [], 0
    for count in counts:
        parts = frames[at:at + count]
        planes.append(parts[0] if count == 1 else np.concatenate(parts, axis=0))
        at += count
    return planes


def counts_of(meta: dict, frames: int) -> list[int]:
    """The header meta's bands per plane, checked against the frame count (one band a frame without
    it); raises CorruptStreamError: the header is untrusted input."""
    counts = meta.get("bands")
    if counts is None:
        return [1] * frames
    if (not isinstance(counts, list) or not counts
            or not all(isinstance(c, int) and not isinstance(c, bool) and 1 <= c <= MAX_BANDS for c in counts)
            or sum(counts) != frames):
        raise CorruptStreamError(f"corrupt medcodec file: bands {counts!r} do not match the {frames} frames")
    return counts


def check_shapes(shapes: Sequence[tuple[int, int]], counts: Sequence[int]) -> None:
    """The bands of each plane share its width (stacking them must give a plane)."""
    at = 0
    for plane, count in enumerate(counts):
        widths = {shape[1] for shape in shapes[at:at + count]}
        if len(widths) != 1:
            raise CorruptStreamError(f"corrupt medcodec file: the bands of plane {plane} differ in width")
        at += count


def plane_of_frame(counts: Sequence[int]) -> list[tuple[int, int]]:
    """(plane, band) of each frame."""
    return [(plane, band) for plane, count in enumerate(counts) for band in range(count)]
