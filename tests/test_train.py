"""The training entry point end to end on a tiny folder, for every method: crops (never from a test
split), a short resumable run through the float and QAT phases, export into a models folder with its
manifest, and a round trip with the exported weights (loaded by hash, as any shipped model)."""

import hashlib
import json

import numpy as np
import pytest
from PIL import Image

from medcodec.errors import ModelMismatchError
from medcodec.pipelines.latent import LatentMethod
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
    # the published warm start lets a fresh machine continue training from these weights
    warm = models / entry["warm_start"]["file"]
    assert hashlib.sha256(warm.read_bytes()).hexdigest() == entry["warm_start"]["sha256"]
    trainer.main(common[:2] + ["--out", str(tmp_path / "continued"), "--init", str(warm), "--steps", "1",
                               "--batch", "2", "--widths", "8,8,8,8", "--device", "cpu"])

    method = FastMethod(device="cpu", model_id="tiny-test")
    plane = smooth((45, 38), 12, seed=4)
    assert np.array_equal(method.decode(method.encode(plane, 12), plane.shape, 12), plane)

    weights = models / entry["file"]
    weights.write_bytes(weights.read_bytes()[:-1] + bytes([weights.read_bytes()[-1] ^ 1]))
    with pytest.raises(ModelMismatchError):
        FastMethod(device="cpu", model_id="tiny-test")


def test_latent_method_trains_resumes_and_exports_through_the_same_entry_point(crops_file, tmp_path, monkeypatch):
    run = tmp_path / "latent"
    models = tmp_path / "models"
    models.mkdir()
    monkeypatch.setenv("MEDCODEC_MODELS", str(models))
    common = ["--method", "latent", "--crops", str(crops_file), "--out", str(run), "--batch", "2",
              "--widths", "8,8,8,8", "--qcm-blocks", "1", "--qat-fraction", "0.5", "--log-every", "1",
              "--save-every", "2", "--device", "cpu"]
    trainer.main(common + ["--steps", "2"])
    trainer.main(common + ["--steps", "4", "--export", "tiny-latent",
                           "--crops-manifest", str(crops_file.with_suffix(".manifest.json"))])
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2, 3, 4] and log[-1]["phase"] == "qat"
    assert all(np.isfinite(r["bpp_total"]) and r["bpp_z"] >= 0 for r in log)

    entry = json.loads((models / "manifest.json").read_text())["models"]["tiny-latent"]
    assert entry["checkpoint_step"] == 4 and entry["config"]["widths"] == [8, 8, 8, 8]
    assert entry["training_command"].startswith("python -m medcodec.train --method latent")
    method = LatentMethod(device="cpu", model_id="tiny-latent")
    plane = smooth((40, 33), 10, seed=6)
    assert np.array_equal(method.decode(method.encode(plane, 10), plane.shape, 10), plane)


def test_a_run_folder_keeps_its_method(crops_file, tmp_path):
    run = tmp_path / "run"
    trainer.main(["--crops", str(crops_file), "--out", str(run), "--batch", "2", "--widths", "8,8,8,8",
                  "--steps", "1", "--device", "cpu"])
    with pytest.raises(SystemExit, match="subimage run"):
        trainer.main(["--method", "latent", "--crops", str(crops_file), "--out", str(run), "--steps", "2"])


def test_the_device_option_picks_where_the_float_training_runs():
    import torch

    assert trainer.training_device("cpu") == torch.device("cpu")
    assert trainer.training_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(SystemExit, match="no CUDA device"):
            trainer.training_device("cuda")

