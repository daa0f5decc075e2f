"""benchmarks/jpeg_transcoding.py: JPEG DICOMs made from images, recompressed and checked."""

import json
import sys
from pathlib import Path

import numpy as np
import pydicom
from PIL import Image
from pydicom.data import get_testdata_file

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import jpeg_transcoding  # noqa: E402


def test_main_writes_a_record_per_image_colour_and_quality(tmp_path):
    folder = tmp_path / "images" / "ct"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(3)
    smooth = np.cumsum(np.cumsum(rng.integers(-2, 3, (192, 160)), axis=0), axis=1)  # JPEG XL pays off from ~2 KB
    Image.fromarray((255 * (smooth - smooth.min()) // np.ptp(smooth)).astype(np.uint8)).save(folder / "a.png")
    deep = tmp_path / "deep"
    deep.mkdir()
    words = (smooth - smooth.min()) * 4095 // np.ptp(smooth)
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ds.Rows, ds.Columns = words.shape
    ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 12, 11, 0
    ds.PixelData = words.astype("<u2").tobytes()
    ds.save_as(deep / "ct.dcm", enforce_file_format=True)
    out = tmp_path / "r.json"
    assert jpeg_transcoding.main(["--root", str(tmp_path / "images"), "--deep", str(deep), "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert len(result["files"]) == 3 * len(jpeg_transcoding.QUALITIES)
    assert all(r["coded_bytes"] < r["coded_jpeg_bytes"] <= r["jpeg_bytes"] and r["mlc_bytes"] < r["dicom_bytes"]
               for r in result["files"])
    assert all(r["coder"] == "medcodec" for r in result["files"] if r["kind"] == "grey 12-bit")
    assert set(result["totals"]) == {f"{c} q{q}" for c in ("grey", "colour", "grey 12-bit")
                                     for q in jpeg_transcoding.QUALITIES}
