"""Resampling-phase classes (format 2.16): a raster frame may class its inner pixels by where each falls
on the grid of the image the plane was resampled from, instead of by activity or by block.

Why: many 8-bit medical images were scaled by a non-integer factor before they reached us (train head CT
PNGs: 47 of 83; lung CT: 23 of 39). An interpolated pixel is a fixed mix of the original samples around
it, and the mix depends on its phase, the fractional position of its centre on the original grid, which
runs along each row and column with the period of the scale factor (2.6-6 pixels here). One set of
prediction weights for all phases averages mixes that differ; weights per phase class follow them.
First analyses of train head CTs that show it: 1.2-8.6 % smaller (the full fast-mode analysis 2.8-8.2 %);
planes without it 0.2-1.7 % larger, which the encoder then does not send.

The phase of column j is frac(fx j + cx) (row i: fy, cy), in fixed point of PHASE_BITS bits, cut into kx
(ky) equal bins; an inner pixel's class is ky-bin * kx + kx-bin, in the 12 slots the activity classes use.
The encoder finds fx and cx from the periodicity of the mean |second difference| along the rows (a
resampled plane's second differences peak where its pixels fall on the original samples): the strongest
frequency of that profile and its phase (``detect``); the decoder only evaluates ``labels``.
"""

from __future__ import annotations

import numpy as np

from medcodec.pipelines.raster.layout import ACTIVITY_CLASSES

PHASE_BITS = 20  # fixed point of frequencies and offsets: 1e-6 cycles a pixel
PHASE_ONE = 1 << PHASE_BITS
BINS = (4, 3)  # phase bins along the rows (kx) and down the columns (ky): 12 classes
# detection: the peak of the |second difference| profile's spectrum must hold this share of the profile's
# power (a plane resampled by 1.2-2.6x: 0.1-0.8 on both axes; plain CT, MR and radiographs 0.01-0.05)
MIN_STRENGTH = 0.1
MIN_FREQUENCY = 0.1  # periods longer than 10 pixels are anatomy, not resampling
OVERSAMPLE = 16  # the profile's spectrum is taken 16 x finer than its length to find the peak's frequency


def labels(length: int, frequency: int, offset: int, bins: int) -> np.ndarray:
    """int64 [length]: the phase bin of each index, floor(frac(frequency i + offset) bins) in fixed point."""
    phase = (np.arange(length, dtype=np.int64) * frequency + offset) & (PHASE_ONE - 1)
    return (phase * bins) >> PHASE_BITS


def row_and_column_parts(shape: tuple[int, int], phase: tuple[int, int, int, int, int, int]) -> tuple[np.ndarray,
                                                                                                      np.ndarray]:
    """The class of inner pixel (i, j) is rows[i] + cols[j]; phase = (kx, fx, cx, ky, fy, cy)."""
    kx, fx, cx, ky, fy, cy = phase
    return labels(shape[0], fy, cy, ky) * kx, labels(shape[1], fx, cx, kx)


def valid(phase) -> bool:
    """Whether side information's phase = (kx, fx, cx, ky, fy, cy) is within the format's bounds."""
    if not isinstance(phase, (list, tuple)) or len(phase) != 6 or any(type(v) is not int for v in phase):
        return False
    kx, fx, cx, ky, fy, cy = phase
    return (kx >= 1 and ky >= 1 and 2 <= kx * ky <= ACTIVITY_CLASSES
            and all(0 <= v < PHASE_ONE for v in (fx, cx, fy, cy)))


def _axis(plane: np.ndarray, axis: int) -> tuple[int, int, float]:
    """(frequency, offset, strength) of the resampling phase along the axis (1: along rows, 0: down columns)."""
    second = np.abs(np.diff(plane.astype(np.float64), n=2, axis=axis))
    profile = second.mean(axis=1 - axis)
    profile -= profile.mean()
    size = profile.size
    spectrum = np.fft.rfft(profile, OVERSAMPLE * size)
    frequencies = np.fft.rfftfreq(OVERSAMPLE * size)
    allowed = np.flatnonzero(frequencies > MIN_FREQUENCY)
    if not allowed.size:
        return 0, 0, 0.0
    peak = frequencies[allowed[np.argmax(np.abs(spectrum[allowed]))]]
    centres = np.arange(size) + 1  # second difference k is centred on index k + 1
    component = np.sum(profile * np.exp(-2j * np.pi * peak * centres))
    power = float(np.sum(profile ** 2))
    strength = float(np.abs(component) ** 2 / (power * size / 2)) if power > 0 else 0.0
    offset = (-np.angle(component) / (2 * np.pi)) % 1.0
    return int(round(peak * PHASE_ONE)) % PHASE_ONE, int(round(offset * PHASE_ONE)) % PHASE_ONE, strength


def detect(plane: np.ndarray) -> tuple[int, int, int, int, int, int] | None:
    """(kx, fx, cx, ky, fy, cy) where both axes show a resampling period, else None (the encoder's guess:
    it keeps the phase classes only where the coded plane estimates smaller with them)."""
    if min(plane.shape) < 16:
        return None
    fx, cx, along_rows = _axis(plane, 1)
    fy, cy, down_columns = _axis(plane, 0)
    if min(along_rows, down_columns) < MIN_STRENGTH:
        return None
    return (BINS[0], fx, cx, BINS[1], fy, cy)
