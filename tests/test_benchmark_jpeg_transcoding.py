"""benchmarks/jpeg_transcoding.py: JPEG DICOMs made from images, recompressed and checked."""

import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import jpeg_transcoding  # noqa: E402


def test_main_writes_a_record_per_image_colour_and_quality(tmp_path):
    folder = tmp_path / "images" / "ct"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(3)
    smooth = np.cumsum(np.cumsum(rng.integers(-2, 3, (192, 160)), axis=0), axis=1)  # JPEG XL pays off from ~2 KB
    Image.fromarray((255 * (smooth - smooth.min()) // np.ptp(smooth)).astype(np.uint8)).save(folder / "a.png")
    out = tmp_path / "r.json"
    assert jpeg_transcoding.main(["--root", str(tmp_path / "images"), "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert len(result["files"]) == 2 * len(jpeg_transcoding.QUALITIES)
    assert all(r["jpeg_xl_bytes"] < r["jpeg_bytes"] and r["mlc_bytes"] < r["dicom_bytes"] for r in result["files"])
    assert set(result["totals"]) == {f"{c} q{q}" for c in ("grey", "colour") for q in jpeg_transcoding.QUALITIES}
