"""benchmarks/decoder_steps.py: it times the raster decoder's stages from outside, the decodes are the
codec's own (checked as usual), and it leaves the codec as it found it."""

from __future__ import annotations

import sys
from pathlib import Path

import constriction
import numpy as np
import pytest

from medcodec import codec
from medcodec.networks import raster_mlp
from medcodec.pipelines.raster import decoder, local_ls, wavefront

from planes import noisy_ramp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
decoder_steps = pytest.importorskip("decoder_steps")

EXAMPLES = Path(__file__).resolve().parent.parent / "medcodec" / "data" / "examples"


def _wrapped_functions():
    return (decoder.decode, wavefront.context, local_ls.RunningSums.predict, raster_mlp.RasterCorrection.output,
            constriction.stream.stack.AnsCoder)


def test_stages_are_timed_inside_the_raster_frames_and_the_codec_is_restored(tmp_path):
    np.save(tmp_path / "noisy.npy", noisy_ramp())
    paths = [tmp_path / "noisy.npy", EXAMPLES / "dicom16" / "MR_small.dcm"]
    expected = [len(codec.encode(path, mode="fast")) for path in paths]
    before = _wrapped_functions()

    result = decoder_steps.measure(paths, "fast")

    assert _wrapped_functions() == before
    assert [row["bytes"] for row in result["files"]] == expected
    stages = result["stages"]
    inner = {"neighbours, classes, two-stage predictions", "probability rows", "rANS decoding", "raw bits",
             "values and errors stored", "correction network", "learned scale network", "network features"}
    assert inner <= set(stages)
    assert all(stages[stage]["calls"] > 0 for stage in inner)
    # one context, one probability table and one rANS call per wavefront
    assert stages["probability rows"]["calls"] == stages["rANS decoding"]["calls"] \
        == stages["neighbours, classes, two-stage predictions"]["calls"]
    raster_s = stages[decoder_steps.RASTER]["seconds"]
    assert stages[decoder_steps.RASTER]["calls"] == len(paths)  # both planes are raster frames
    assert result["total"]["raster_pixels"] == 96 * 80 + 64 * 64
    assert stages[decoder_steps.RASTER]["mp_per_s"] > 0 and stages[decoder_steps.RASTER]["us_per_wavefront"] > 0
    timed = sum(row["seconds"] for stage, row in stages.items() if stage in inner or stage == "local least squares")
    assert 0 < timed <= raster_s + 0.05 <= result["total"]["decode_s"] + 0.1
    assert stages[decoder_steps.OWN]["seconds"] >= -0.05
    assert stages[decoder_steps.REST]["seconds"] >= -0.05


def test_the_two_networks_are_told_apart_by_their_inputs():
    correction, scale = raster_mlp.load("raster-nn-large-v1"), raster_mlp.load("raster-scale-v1")
    assert decoder_steps.network_stage(correction) == "correction network"
    assert decoder_steps.network_stage(scale) == "learned scale network"
