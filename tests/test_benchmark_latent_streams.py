"""benchmarks/latent_streams.py: a file's LVPNet streams split into z, residual and side bits that add up to
the streams, beside JPEG-XL e9; group totals are ratios of sums."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import latent_streams  # noqa: E402

from medcodec.pipelines.latent import LatentMethod  # noqa: E402

EXAMPLES = Path(__file__).resolve().parent.parent / "medcodec" / "data" / "examples"


@pytest.fixture(scope="module")
def method():
    return LatentMethod(device="cpu")


def test_a_file_is_split_into_z_residual_and_side_bits(method):
    row = latent_streams.code_file(method, EXAMPLES / "dicom16" / "MR_small.dcm", EXAMPLES)
    assert row["file"] == "dicom16/MR_small.dcm" and row["folder"] == "dicom16" and row["group"] == "16-bit"
    assert row["planes"] == 1 and row["pixels"] == 64 * 64
    assert row["z_bits"] > 0 and row["residual_bits"] > row["z_bits"] and row["side_bits"] > 0
    assert row["jxl9_bits"] > 0 and row["encode_s"] > 0 and row["jxl9_decode_s"] > 0


def test_an_unreadable_file_is_passed_over(method, tmp_path):
    (tmp_path / "notes.dcm").write_bytes(b"not an image")
    assert latent_streams.code_file(method, tmp_path / "notes.dcm", tmp_path) is None


def test_group_totals_are_ratios_of_sums():
    def row(folder, pixels, z, residual, jxl):
        return {"file": f"{folder}/x", "folder": folder, "group": "8-bit", "pixels": pixels, "z_bits": z,
                "residual_bits": residual, "side_bits": 0, "jxl9_bits": jxl, "encode_s": 1.0, "decode_s": 1.0,
                "jxl9_encode_s": 2.0, "jxl9_decode_s": 0.5}
    summary = latent_streams.summarise([row("a", 100, 10, 90, 50), row("b", 300, 30, 270, 250)])
    overall = next(s for s in summary if s["by"] == "overall")
    assert overall["bpp"] == 400 / 400 and overall["z_bpp"] == 40 / 400
    assert overall["ratio_to_jxl9"] == 400 / 300 and overall["encode_mps"] == 400 / 1e6 / 2.0
    assert next(s for s in summary if s["name"] == "a")["ratio_to_jxl9"] == 100 / 50
