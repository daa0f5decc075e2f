"""benchmarks/context_headroom.py: each probe is measured on the frame the codec coded, and each is the
bound it says it is (an oracle never costs bits, per-bin offsets never more than one offset)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from medcodec.pipelines import raster

from planes import drifting_step_lattice, noisy_ramp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
headroom = pytest.importorskip("context_headroom")


def _frame(tmp_path, plane: np.ndarray):
    np.save(tmp_path / "plane.npy", plane)
    streams = raster.analysis.Analysis.streams
    frame = headroom.frame_of(tmp_path / "plane.npy")
    assert raster.analysis.Analysis.streams is streams  # the codec is left as it was found
    return frame


def test_far_taps_and_intensity_offsets_are_measured_against_the_frames_own_bits(tmp_path):
    frame = _frame(tmp_path, noisy_ramp((96, 112)))
    assert frame is not None and frame.values.size == 96 * 112
    far = headroom.far_taps(frame)
    assert set(far) == set(headroom.TAP_SETS) and all(-0.5 < v < 0.5 for v in far.values())
    offsets = headroom.intensity_scale(frame)
    assert set(offsets) == {f"{b} bins" for b in headroom.INTENSITY_BINS} | {"bucket x quartile"}
    assert all(v <= 1e-12 for v in offsets.values())  # each bin's own best offset: never worse than one


def test_a_value_set_oracle_never_costs_bits(tmp_path):
    frame = _frame(tmp_path, drifting_step_lattice((96, 112)))
    sets = headroom.value_sets(frame)
    assert set(sets) == {f"{b}x{b}" for b in headroom.BLOCKS}
    for row in sets.values():
        assert row["oracle"] <= 1e-12 and row["price"] > 0
