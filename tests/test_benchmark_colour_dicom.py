"""benchmarks/colour_dicom.py: colour DICOMs made from grey images, coded and checked."""

import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import colour_dicom  # noqa: E402


def test_main_writes_a_record_per_image(tmp_path):
    folder = tmp_path / "images" / "us"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(5)
    smooth = np.cumsum(np.cumsum(rng.integers(-2, 3, (48, 40)), axis=0), axis=1)
    Image.fromarray((255 * (smooth - smooth.min()) // np.ptp(smooth)).astype(np.uint8)).save(folder / "a.png")
    out = tmp_path / "r.json"
    assert colour_dicom.main(["--root", str(tmp_path / "images"), "--folders", "us", "--out", str(out)]) == 0
    (record,) = json.loads(out.read_text())["files"]
    assert record["mlc_colour"] < record["colour_file"] and record["pixels"] == 48 * 40
    assert record["mlc_ljpeg"] < record["ljpeg_file"] and record["mlc_jls"] < record["jls_file"]  # scans written again


def test_the_overlay_tints_part_of_the_image_only():
    grey = np.full((60, 60), 100, np.uint8)
    rgb = colour_dicom.with_overlay(grey)
    grey_pixels = (rgb[..., 0] == rgb[..., 1]) & (rgb[..., 1] == rgb[..., 2])
    assert 0.7 < grey_pixels.mean() < 0.95
