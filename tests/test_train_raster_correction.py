"""Training the raster correction: samples from the raster analysis of train images, a short fit, an
export under models/ that the raster method then loads, uses and decodes exactly."""

import json
from pathlib import Path

import numpy as np
import pytest

from medcodec.networks import raster_mlp
from medcodec.pipelines import raster
from medcodec.train import raster_correction

EXAMPLES = Path(__file__).resolve().parent.parent / "medcodec" / "data" / "examples"


def test_a_test_split_is_refused(tmp_path):
    (tmp_path / "test").mkdir()
    with pytest.raises(SystemExit, match="test split"):
        raster_correction.training_files([tmp_path / "test"], 10, 0)


def test_files_are_capped_per_folder_and_chosen_reproducibly():
    first = raster_correction.training_files([EXAMPLES], 2, 3)
    assert first == raster_correction.training_files([EXAMPLES], 2, 3)
    assert len([f for f in first if f.parent.name == "dicom16"]) == 2


def test_an_unreadable_training_file_is_skipped_with_a_message(tmp_path, capsys):
    damaged = tmp_path / "damaged.png"
    damaged.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    assert raster_correction.first_plane(damaged) is None
    assert raster_correction.image_samples(damaged, 10, 0) is None
    assert f"skip {damaged}" in capsys.readouterr().err
    plane, bits = raster_correction.first_plane(EXAMPLES / "dicom16" / "ct_philips_phantom_12bit.dcm")
    assert plane.ndim == 2 and bits == 12


def test_samples_match_what_the_raster_encoder_computes():
    part = raster_correction.image_samples(EXAMPLES / "dicom16" / "ct_philips_phantom_12bit.dcm", 500, 0)
    assert part["features"].shape == (500, raster_mlp.FEATURES) and part["error"].shape == (500,)
    assert np.abs(part["features"]).max() <= raster_mlp.FEATURE_LIMIT and part["scale"].min() >= raster_mlp.MIN_SCALE


def test_export_is_loaded_used_and_decoded_exactly(monkeypatch, scratch_models):
    models = scratch_models
    raster_correction.main([str(EXAMPLES / "dicom16"), "--per-folder", "3", "--samples", "300", "--epochs", "1",
                            "--hidden", "8", "--export", raster.method.CORRECTION_MODEL])
    entry = json.loads((models / "manifest.json").read_text())["models"][raster.method.CORRECTION_MODEL]
    assert entry["architecture"] == raster_mlp.ARCHITECTURE and entry["config"]["hidden"] == 8
    assert len(entry["data_manifest"]["files"]) == 3 and entry["training"]["minutes"] < 15
    raster.method.shipped_correction.cache_clear()
    monkeypatch.setattr(raster.analysis, "CORRECTION_MIN_GAIN", -1e9)  # used whatever it saves
    monkeypatch.setattr(raster.analysis.Analysis, "without_correction", lambda self: None)
    try:
        net = raster.method.shipped_correction()
        assert net is not None and net.tag.endswith(entry["sha256"][:16])
        plane = np.random.default_rng(0).normal(900, 30, (40, 48)).clip(0, 4095).astype(np.uint16)
        method = raster.RasterMethod()
        streams = method.encode(plane, 12)
        assert np.array_equal(method.decode(streams, plane.shape, 12), plane)
    finally:
        raster.method.shipped_correction.cache_clear()


def test_gathered_samples_survive_the_cache_file(tmp_path):
    data, manifest = raster_correction.gather([EXAMPLES / "dicom16"], 2, 200, 0)
    raster_correction.save_samples(tmp_path / "samples.npz", data, manifest)
    again, manifest_again = raster_correction.load_samples(tmp_path / "samples.npz")
    assert manifest_again == manifest and len(manifest) == 2
    assert all(np.array_equal(again[key], data[key]) for key in data)


def test_depth_sets_the_hidden_layers_and_the_integer_network_accepts_them():
    net = raster_correction.build(16, 3)
    layers = raster_correction.integer_layers(net)
    assert [w.shape for w, _ in layers] == [(16, raster_mlp.FEATURES), (16, 16), (16, 16), (1, 16)]
    exact = raster_mlp.from_integer_layers("deep", b"", layers)
    feats = np.zeros((4, raster_mlp.FEATURES), dtype=np.int64)
    assert exact.correction(feats, np.full(4, 64)).shape == (4,)


def test_a_fit_returns_the_network_on_the_cpu_with_the_same_result_as_before():
    """fit on device=cpu is the fit it always was (the same random permutations), and the network comes back
    on the CPU, where the integer export and the held-out evaluation read it."""
    import torch

    x = np.random.default_rng(1).integers(-300, 300, (256, raster_mlp.FEATURES))
    target = np.random.default_rng(2).normal(0, 1, 256)
    first, second = raster_correction.build(8, 1), raster_correction.build(8, 1)
    second.load_state_dict(first.state_dict())
    explicit = raster_correction.fit(first, x, target, 2, 64, 1e-3, 5, torch.device("cpu"))
    default = raster_correction.fit(second, x, target, 2, 64, 1e-3, 5)
    assert explicit == default and all(p.device.type == "cpu" for p in first.parameters())
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), second.state_dict().values()))
