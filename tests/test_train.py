"""The training entry points end to end on a tiny folder: crops (never from a test split), a short
resumable run through the float and QAT phases, export into a models folder with its manifest, and a
fast-mode round trip with the exported weights (loaded by hash, as any shipped model)."""

import json

import numpy as np
import pytest
from PIL import Image

from medcodec.errors import ModelMismatchError
from medcodec.pipelines.subimage import FastMethod
from medcodec.train import crops as crops_module
from medcodec.train import export, trainer

from planes import smooth


@pytest.fixture(scope="module")
def crops_file(tmp_path_factory):
    folder = tmp_path_factory.mktemp("train_images")
    Image.fromarray(smooth((80, 72), 8).astype(np.uint8)).save(folder / "eight.png")
    Image.fromarray(smooth((64, 96), 16, seed=1)).save(folder / "sixteen.png")
    out = tmp_path_factory.mktemp("crops") / "crops.npz"
    crops_module.main([str(folder), "-o", str(out), "--size", "32", "--per-megapixel", "2000"])
    return out


def test_crops_keep_both_depths_and_a_data_manifest(crops_file):
    data = np.load(crops_file)
    assert data["crops"].shape[1:] == (32, 32) and len(data["crops"]) == len(data["lo"]) == len(data["shift"])
    manifest = json.loads(crops_file.with_suffix(".manifest.json").read_text())
    assert sorted(f["file"] for f in manifest["files"]) == ["eight.png", "sixteen.png"]
    assert all(len(f["sha256"]) == 64 and f["crops"] > 0 for f in manifest["files"])
    assert set(data["shift"].tolist()) == {0, 8}  # the 16-bit plane spans 16 bits: shift G = 8


def test_crops_refuse_a_test_split(tmp_path):
    (tmp_path / "test").mkdir()
    with pytest.raises(SystemExit):
        crops_module.main([str(tmp_path / "test"), "-o", str(tmp_path / "c.npz")])


def test_short_run_resumes_exports_and_codes_exactly(crops_file, tmp_path, monkeypatch):
    run = tmp_path / "run"
    common = ["--crops", str(crops_file), "--out", str(run), "--batch", "4", "--widths", "8,8,8,8",
              "--qat-fraction", "0.5", "--log-every", "2", "--save-every", "2", "--device", "cpu"]
    trainer.main(common + ["--steps", "4"])
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [2, 4] and {"float", "qat"} >= {r["phase"] for r in log}
    assert all(np.isfinite(r["bits_fast_D"]) for r in log)
    trainer.main(common + ["--steps", "6"])  # picks up the checkpoint at step 4
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [2, 4, 6] and log[-1]["phase"] == "qat"

    models = tmp_path / "models"
    models.mkdir()
    monkeypatch.setenv("MEDCODEC_MODELS", str(models))
    export.main([str(run / "checkpoint.pt"), "--id", "tiny-test", "--command", "pytest",
                 "--crops-manifest", str(crops_file.with_suffix(".manifest.json"))])
    entry = json.loads((models / "manifest.json").read_text())["models"]["tiny-test"]
    assert entry["checkpoint_step"] == 6 and entry["training_command"] == "pytest"
    assert entry["data_manifest"]["files"] and entry["networks"]["D"]["widths"] == [8, 8, 8, 8]

    method = FastMethod(device="cpu", model_id="tiny-test")
    plane = smooth((45, 38), 12, seed=4)
    assert np.array_equal(method.decode(method.encode(plane, 12), plane.shape, 12), plane)

    weights = models / entry["file"]
    weights.write_bytes(weights.read_bytes()[:-1] + bytes([weights.read_bytes()[-1] ^ 1]))
    with pytest.raises(ModelMismatchError):
        FastMethod(device="cpu", model_id="tiny-test")
