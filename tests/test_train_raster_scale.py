"""Training the raster method's learned scale: samples from the raster analysis of train images, a short
fit on the code length, an export under models/ that the raster method then loads, uses and decodes
exactly."""

import json
from pathlib import Path

import numpy as np
import torch

from medcodec.networks import raster_mlp
from medcodec.pipelines import raster
from medcodec.pipelines.base import unpack_side_info
from medcodec.train import raster_correction, raster_scale

EXAMPLES = Path(__file__).resolve().parent.parent / "medcodec" / "data" / "examples"


def test_samples_are_the_scale_networks_inputs():
    part = raster_scale.image_samples(EXAMPLES / "dicom16" / "ct_philips_phantom_12bit.dcm", 500, 0)
    assert part["inputs"].shape == (500, raster_mlp.WINDOW_SCALE_FEATURES) and part["error"].shape == (500,)
    assert np.abs(part["inputs"]).max() <= raster_mlp.FEATURE_LIMIT and part["scale_sum"].min() >= 0


def test_code_length_is_smallest_near_the_errors_spread():
    rng = np.random.default_rng(0)
    error = torch.from_numpy(16 * rng.logistic(0, 4.0, 20000))  # logistic of scale 4 samples, in 1/16
    log2_sum = torch.zeros(error.shape)  # s = 1/16 sample: the output alone sets the scale
    bits = {o: float(raster_scale.code_length(torch.full(error.shape, float(o)), log2_sum, error).mean())
            for o in (4, 6, 8)}  # scale 2**o / 16 samples: 1, 4, 16
    assert bits[6] < bits[4] and bits[6] < bits[8]


def test_export_is_loaded_used_and_decoded_exactly(tmp_path, monkeypatch, scratch_models):
    models = scratch_models
    cache = tmp_path / "samples.npz"
    raster_scale.main([str(EXAMPLES / "dicom16"), "--per-folder", "3", "--samples", "300", "--epochs", "1",
                       "--hidden", "8", "--depth", "2", "--cache", str(cache), "--log", str(tmp_path / "loss.tsv"),
                       "--export", raster.method.SCALE_MODEL])
    entry = json.loads((models / "manifest.json").read_text())["models"][raster.method.SCALE_MODEL]
    assert entry["architecture"] == raster_mlp.WINDOW_SCALE_ARCHITECTURE and entry["config"]["hidden"] == 8
    assert entry["config"]["features"] == raster_mlp.WINDOW_SCALE_FEATURES
    assert len(entry["data_manifest"]["files"]) == 3 and entry["training"]["minutes"] < 15
    assert (tmp_path / "loss.tsv").read_text().count("\n") == 1
    data, manifest = raster_correction.load_samples(cache)
    assert set(data) == {"inputs", "scale_sum", "error", "validation"} and len(manifest) == 3
    raster.method.shipped_scale.cache_clear()
    monkeypatch.setattr(raster.analysis, "SCALE_MIN_SAVING", -1e12)  # used whatever it saves
    try:
        net = raster.method.shipped_scale()
        assert net is not None and net.tag.endswith(entry["sha256"][:16])
        plane = np.random.default_rng(0).normal(900, 30, (40, 48)).clip(0, 4095).astype(np.uint16)
        method = raster.RasterMethod()
        streams = method.encode(plane, 12)
        assert unpack_side_info(streams[0].payload)["raster"]["sn"] == net.tag
        assert np.array_equal(method.decode(streams, plane.shape, 12), plane)
    finally:
        raster.method.shipped_scale.cache_clear()


def test_no_window_trains_the_first_architecture(scratch_models):
    models = scratch_models
    raster_scale.main([str(EXAMPLES / "dicom16"), "--per-folder", "1", "--samples", "200", "--epochs", "1",
                       "--hidden", "4", "--depth", "1", "--no-window", "--export", "scale-test-v1"])
    entry = json.loads((models / "manifest.json").read_text())["models"]["scale-test-v1"]
    assert entry["architecture"] == raster_mlp.SCALE_ARCHITECTURE
    assert entry["config"]["features"] == raster_mlp.SCALE_FEATURES
    assert raster_mlp.load("scale-test-v1").inputs == raster_mlp.SCALE_FEATURES
