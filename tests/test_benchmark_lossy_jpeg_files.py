"""benchmarks/lossy_jpeg_files.py: the lossy-JPEG DICOMs of a folder, recompressed and checked."""

import json
import sys
from pathlib import Path

from pydicom.data import get_testdata_file

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import lossy_jpeg_files  # noqa: E402


def test_main_reports_the_lossy_jpeg_files_alone(tmp_path):
    for name in ("JPGExtended.dcm", "JPEG-lossy.dcm", "CT_small.dcm"):
        (tmp_path / name).write_bytes(Path(get_testdata_file(name)).read_bytes())
    (tmp_path / "notes.txt").write_text("not DICOM")
    out = tmp_path / "r.json"
    assert lossy_jpeg_files.main([str(tmp_path), "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    by_name = {r["file"]: r for r in result["files"]}
    assert set(by_name) == {"JPGExtended.dcm", "JPEG-lossy.dcm"}
    assert by_name["JPGExtended.dcm"]["coders"] == ["medcodec"] and by_name["JPGExtended.dcm"]["bits"] == 12
    assert by_name["JPEG-lossy.dcm"]["coders"] == ["medcodec"]  # its scan header says Se 0: coded all the same
    assert by_name["JPGExtended.dcm"]["mlc_bytes"] < by_name["JPGExtended.dcm"]["xz_bytes"]
    assert result["totals"]["all"]["dicom_bytes"] == sum(r["dicom_bytes"] for r in result["files"])


def test_pydicom_samples_are_its_test_files_and_exclude_a_folder(tmp_path, capsys):
    samples = lossy_jpeg_files.pydicom_samples()
    assert {"examples_ybr_color.dcm", "JPGExtended.dcm", "CT_small.dcm"} <= {p.name for p in samples}
    for argv in ([], [str(tmp_path), "--pydicom-samples"]):
        try:
            lossy_jpeg_files.main(argv)
        except SystemExit as exc:
            assert exc.code == 2
        else:
            raise AssertionError(f"{argv} accepted")
    assert "give a folder or --pydicom-samples" in capsys.readouterr().err
