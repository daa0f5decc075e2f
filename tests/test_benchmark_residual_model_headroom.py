"""benchmarks/residual_model_headroom.py: the frames it measures are the ones the codec coded, the
shipped tables' bits are the codec's own estimate of the main symbols, the causal variants behave as
described, and the codec is left as it was found."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from medcodec.entropy import residual_model as rm
from medcodec.pipelines import raster

from planes import noisy_ramp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
headroom = pytest.importorskip("residual_model_headroom")

EXAMPLES = Path(__file__).resolve().parent.parent / "medcodec" / "data" / "examples"


def _noisy_plane(tmp_path) -> Path:
    np.save(tmp_path / "noisy.npy", noisy_ramp())
    return tmp_path / "noisy.npy"


def test_every_way_is_measured_on_the_coded_frames_and_the_codec_is_restored(tmp_path):
    streams = raster.analysis.Analysis.streams
    result = headroom.measure([_noisy_plane(tmp_path), EXAMPLES / "dicom16" / "MR_small.dcm"])

    assert raster.analysis.Analysis.streams is streams
    assert len(result["frames"]) == 2  # one raster frame each
    ways = {f"bias cancellation ({name})" for name in headroom.BIAS_CONTEXTS} \
        | {f"adaptive tables (k = {k})" for k in headroom.PRIOR_STRENGTHS}
    for frame in result["frames"]:
        assert set(frame["ratio"]) == ways
        assert all(0.5 < ratio < 2 for ratio in frame["ratio"].values())
    assert set(result["groups"]) == {"all"}


def test_shipped_bits_are_the_frames_main_symbols_and_a_strong_prior_is_the_table(tmp_path):
    coded: list = []
    with headroom.coded_frames(coded):
        from medcodec import codec
        codec.encode(_noisy_plane(tmp_path), mode="fast")
    frame = coded[0]
    costs = headroom.frame_costs(frame)
    params = rm.pixel_params(frame.mu.astype(np.int64), frame.plain_ell[frame.buckets])
    symbols, escaped = rm.coded_symbols(frame.values, params)
    raw = np.where(escaped, 2 * rm.RAW_BITS, params.low_bits).sum()  # escapes: two raw bytes
    assert costs["shipped"] + raw == pytest.approx(rm.ideal_cost_bits(frame.values, params), rel=1e-9)
    # an adaptive table with a prior of 10**9 pixels is the shipped table to within rounding
    strong = headroom._adaptive_bits(params.table, symbols, frame.order.astype(np.int64), frame.width, rm.tables(),
                                     float(rm.TOTAL), 1e9, rm.ALPHABET)
    assert strong == pytest.approx(costs["shipped"], rel=1e-4)


def test_bias_cancellation_removes_a_constant_bias():
    # a plane predicted 3 samples too low everywhere: after a few wavefronts the running mean takes it out
    values = np.full(32 * 32, 100, dtype=np.int64)
    mu = np.full(values.size, 16 * 97 + 8, dtype=np.int64)
    rows, cols = np.divmod(np.arange(values.size), 32)
    order = np.lexsort((rows, 2 * rows + cols)).astype(np.int64)
    moved = np.empty_like(mu)
    headroom._bias_cancelled(values, mu, np.zeros_like(mu), np.zeros_like(mu), order, 32, 1 << 20, False, moved)
    late = order[values.size // 2:]
    assert np.all(moved[late] == 16 * 100 + 8)
    assert moved[order[0]] == mu[order[0]]  # nothing known yet
