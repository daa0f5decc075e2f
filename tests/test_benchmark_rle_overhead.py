"""benchmarks/rle_overhead.py: RLE versions of a DICOM file, each recompressed and checked."""

import io
import json
import sys
from pathlib import Path

import pydicom
from pydicom.data import get_testdata_file

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import rle_overhead  # noqa: E402

from medcodec.io import dicom  # noqa: E402


def test_the_other_encoders_segments_decode_to_the_samples():
    data = rle_overhead.other_encoder(pydicom.dcmread(get_testdata_file("CT_small.dcm")), 3, 9)
    ds = pydicom.dcmread(io.BytesIO(data))
    native = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    assert (ds.pixel_array == native.pixel_array).all()  # pydicom's own RLE decoder reads it
    assert dicom.read_dicom(data).meta["layout"] == "rle"


def test_main_writes_a_record_per_file_and_encoder(tmp_path):
    out = tmp_path / "r.json"
    assert rle_overhead.main([get_testdata_file("MR_small.dcm"), "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    (record,) = result["files"]
    assert [r["encoder"] for r in record["rle"]] == ["pydicom", "runs of 3, whole segment, no-op bytes"]
    pydicom_rle = record["rle"][0]
    assert pydicom_rle["nonzero_kept_bytes"] < 20 and pydicom_rle["mlc"] < pydicom_rle["rle_file"]
    assert record["rle"][1]["nonzero_kept_bytes"] > 20  # the no-op bytes are not predicted
    assert set(result["totals"]) == {"pydicom", "runs of 3, whole segment, no-op bytes"}
