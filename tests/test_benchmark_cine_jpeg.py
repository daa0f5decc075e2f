"""benchmarks/cine_jpeg.py: multi-frame DICOMs as 12-bit JPEG files, frames coded alone and against the
frame before, each file checked."""

import json
import sys
from pathlib import Path

import numpy as np
import pydicom

from encapsulated import CT_SMALL, saved

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import cine_jpeg  # noqa: E402


def test_main_reports_multi_frame_files_only(tmp_path):
    ds = pydicom.dcmread(CT_SMALL)
    words = np.frombuffer(ds.PixelData, "<i2").reshape(ds.Rows, ds.Columns)
    ds.NumberOfFrames = 3
    ds.PixelData = np.stack([np.roll(words, k, axis=0) for k in (0, 0, 1)]).astype("<i2").tobytes()
    (tmp_path / "loop.dcm").write_bytes(saved(ds))
    (tmp_path / "single.dcm").write_bytes(Path(CT_SMALL).read_bytes())
    out = tmp_path / "r.json"
    assert cine_jpeg.main(["--root", str(tmp_path), "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert {r["file"] for r in result["files"]} == {"loop.dcm"} and len(result["files"]) == 2
    for record in result["files"]:
        assert record["frames_against_the_frame_before"] >= 1  # the second frame repeats the first
        assert record["coded_chosen"] < record["coded_alone"] and record["mlc_bytes"] < record["dicom_bytes"]
    assert set(result["totals"]) == {"q75", "q90"}
