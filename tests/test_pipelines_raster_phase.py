"""Resampling-phase classes: the fixed-point bins a decoder computes, and the encoder's detection of a
resampling period (found on scaled planes, not on plain noise or small planes)."""

import numpy as np
import pytest

from medcodec.pipelines.raster import phase

from planes import smooth, upscaled


def test_labels_are_the_fixed_point_phase_bins():
    quarter = phase.PHASE_ONE // 4
    # a period of 4 pixels from phase 0, in 4 bins: 0 1 2 3 0 1 ...
    assert phase.labels(9, quarter, 0, 4).tolist() == [0, 1, 2, 3, 0, 1, 2, 3, 0]
    # the offset shifts it; 2 bins halve it
    assert phase.labels(5, quarter, 3 * quarter, 4).tolist() == [3, 0, 1, 2, 3]
    assert phase.labels(5, quarter, 0, 2).tolist() == [0, 0, 1, 1, 0]
    # a non-integer period (frequency 0.375): the bin of frac(0.375 j) in thirds, computed exactly
    frequency = 3 * phase.PHASE_ONE // 8
    expected = [int((0.375 * j) % 1 * 3) for j in range(40)]
    assert phase.labels(40, frequency, 0, 3).tolist() == expected
    # huge planes stay in int64: the product wraps only in the phase's fixed point
    assert phase.labels(1 << 16, phase.PHASE_ONE - 1, phase.PHASE_ONE - 1, 12).max() < 12


def test_row_and_column_parts_make_kx_ky_classes():
    resampling = (4, phase.PHASE_ONE // 4, 0, 3, phase.PHASE_ONE // 3 + 1, 0)
    by_row, by_column = phase.row_and_column_parts((7, 9), resampling)
    classes = by_row[:, None] + by_column[None, :]
    assert by_row.shape == (7,) and by_column.shape == (9,)
    assert set(np.unique(classes)) == set(range(12))
    assert by_row.tolist() == [0, 4, 8, 0, 4, 8, 0]


@pytest.mark.parametrize("factor", [1.3, 1.6, 2.6])
def test_a_scaled_plane_shows_its_period_on_both_axes(factor):
    found = phase.detect(upscaled(factor=factor))
    assert found is not None
    kx, fx, cx, ky, fy, cy = found
    assert (kx, ky) == phase.BINS and phase.valid(list(found))
    # the profile repeats every `factor` pixels: frequency 1 / factor, seen folded into 0..0.5
    folded = min(1 / factor % 1, 1 - 1 / factor % 1)
    for frequency in (fx, fy):
        assert abs(frequency / phase.PHASE_ONE - folded) < 0.01


def test_plain_planes_show_no_period():
    assert phase.detect(np.random.default_rng(0).integers(0, 256, (100, 120))) is None
    assert phase.detect(smooth((96, 80), 12)) is None
    assert phase.detect(upscaled((12, 200))) is None  # too small to tell


@pytest.mark.parametrize("resampling", [
    [4, 1, 2, 3, 4, 5], (1, 0, 0, 2, 0, 0), [12, 0, 0, 1, 0, 0]])
def test_valid_phase_classes(resampling):
    assert phase.valid(resampling)


@pytest.mark.parametrize("resampling", [
    [4, 1, 2, 3, 4], [1, 0, 0, 1, 0, 0], [4, 0, 0, 4, 0, 0], [0, 0, 0, 12, 0, 0], [4, -1, 0, 3, 0, 0],
    [4, 0, phase.PHASE_ONE, 3, 0, 0], [4, 0.5, 0, 3, 0, 0], [4, True, 0, 3, 0, 0], "x", None])
def test_invalid_phase_classes(resampling):
    assert not phase.valid(resampling)
