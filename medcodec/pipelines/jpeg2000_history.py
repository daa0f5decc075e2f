"""JPEG 2000 history: does a plane look like a decoded lossy JPEG 2000 codestream of the reversible kind?

Why: lossy JPEG 2000 is the lossy compression of DICOM archives (transfer syntax .91), and a plane that
went through it and was stored decompressed afterwards (an export, a migration) is, band by band, a few
quantised wavelet coefficients. Where the codestream used the reversible 5/3 wavelet and was cut short
(a lossless codestream truncated, or coded at a rate, as quality layers and rate-limited reversible
encoders do), its decoder put each dequantised coefficient at one point of its step (commonly the
middle of it), so the plane's own 5/3 coefficients on the same grid keep low bits no other plane has:
the train split's 16-bit DX (pylibjpeg-data's JPEG2KLossless_1s_1f_u_16_16) has almost no coefficient
divisible by 4 among its large ones, and a lossless JPEG 2000 codestream of it is 7.43 bits a pixel
against 8.96 for the raster coder and 9.41 for JPEG-XL. Moved by one row or column the grid no longer
matches and JPEG 2000 codes it at 9.47. A predictor in raster order does not see those bits; a lossless
JPEG 2000 coder on the same grid codes them for almost nothing. So the classical method also tries JPEG
2000 on a plane whose coefficients show it.

Not seen here: the irreversible 9/7 wavelet (the usual lossy choice), whose coefficients are not integers;
recovering them would take an exact 9/7 decoder of medcodec's own (OpenJPEG's is floating point), as JPEG
history rests on libjpeg's integer IDCT.

The test is cheap (three wavelet levels on at most 512 x 512 pixels, ~4 ms) and errs towards trying: a
plane it flags and JPEG 2000 does not make smaller costs only that encoding's time (~0.17 s a megapixel).
"""

from __future__ import annotations

import numpy as np

LEVELS = 3  # wavelet levels looked at: a coarse quantiser may have left level 1 without a coefficient
LOW_BITS = 6  # residues modulo 2, 4, ..., 64
MIN_COEFFICIENTS = 500  # large coefficients needed before a residue's share is trusted
# A plane shows history where some residue's share of coefficients divisible by 2^k, times 2^k (1 for a
# plane that never saw a quantiser), is below LOW (dequantised to the step's middle: the train DX 0.04)
# or above HIGH (to its bottom). The train split's other first planes (benchmarks/jpeg2000_history.py): 0.45
# .. 4.0, but for a flat 12-bit OT at 34 (its few large coefficients are multiples of its value steps), which
# JPEG 2000 is then tried on and loses (JPEG-XL's codestream kept, the file unchanged).
LOW, HIGH = 0.25, 8.0
CROP = 512  # the test looks at the plane's middle, at most CROP x CROP, cut on the wavelet grid


def _lift(x: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """JPEG 2000's reversible 5/3 lifting along axis (0 or 1; at least 2 samples, symmetric extension):
    (low-pass, high-pass) halves, as ITU T.800 Annex F computes them."""
    if axis == 1:
        low, high = _lift(x.T, 0)
        return low.T, high.T
    even, odd = x[0::2], x[1::2]
    right = np.concatenate([even[1:], even[-1:]]) if len(x) % 2 == 0 else even[1:]  # x[n] mirrors x[n - 2]
    high = odd - ((even[:len(odd)] + right[:len(odd)]) >> 1)
    left_high = np.concatenate([high[:1], high])[:len(even)]  # d[-1] mirrors d[0]
    right_high = high if len(high) == len(even) else np.concatenate([high, high[-1:]])
    return even + ((left_high + right_high + 2) >> 2), high


def detail_coefficients(plane: np.ndarray, levels: int = LEVELS) -> np.ndarray:
    """The high-pass coefficients (HL, LH, HH) of the plane's first levels, flat, on the grid whose origin
    is the plane's (0, 0), as a JPEG 2000 codestream of the plane would have them. int32: 16-bit samples
    give details within +-2^19 after three levels."""
    low = plane.astype(np.int32)
    details = []
    for _ in range(levels):
        if min(low.shape) < 8:
            break
        row_low, row_high = _lift(low, 1)
        low, low_high = _lift(row_low, 0)
        high_low, high_high = _lift(row_high, 0)
        details += [low_high.ravel(), high_low.ravel(), high_high.ravel()]
    return np.concatenate(details) if details else np.zeros(0, np.int32)


def residue_ratios(plane: np.ndarray) -> list[float]:
    """For k = 1 .. LOW_BITS: of the detail coefficients of magnitude 2^(k+1) or more, the share divisible
    by 2^k, times 2^k (about 1 for a plane no quantiser touched; 1.0 where there are too few)."""
    magnitude = np.abs(detail_coefficients(_middle(plane)))
    magnitude = magnitude[magnitude > 0]
    # one pass: each coefficient's octave (2^m <= |c| < 2^(m+1)) and trailing zero bits, both capped
    octave = np.minimum(np.frexp(magnitude)[1] - 1, LOW_BITS + 1)
    zeros = np.minimum(np.frexp(magnitude & -magnitude)[1] - 1, LOW_BITS)
    counts = np.bincount(octave * (LOW_BITS + 1) + zeros, minlength=(LOW_BITS + 2) * (LOW_BITS + 1))
    counts = counts.reshape(LOW_BITS + 2, LOW_BITS + 1)
    ratios = []
    for k in range(1, LOW_BITS + 1):
        large = counts[k + 1:]
        total = int(large.sum())
        ratios.append(float(large[:, k:].sum()) / total * (1 << k) if total >= MIN_COEFFICIENTS else 1.0)
    return ratios


def carries_history(plane: np.ndarray) -> bool:
    """Whether the plane's wavelet coefficients keep the low bits of a lossy JPEG 2000 decoder (see the
    module doc): worth trying a JPEG 2000 codestream of it."""
    return shows_history(residue_ratios(plane))


def shows_history(ratios: list[float]) -> bool:
    """Whether residue_ratios this far from 1 flag a plane (below LOW or above HIGH)."""
    return min(ratios) < LOW or max(ratios) > HIGH


def _middle(plane: np.ndarray) -> np.ndarray:
    """At most CROP x CROP from the plane's middle, its corner on a multiple of 2^LEVELS (the grid kept)."""
    step = 1 << LEVELS
    top = max(0, (plane.shape[0] - CROP) // 2) // step * step
    left = max(0, (plane.shape[1] - CROP) // 2) // step * step
    return plane[top:top + CROP, left:left + CROP]
