"""medcodec bench: discovery, verified round trips, grouping, and the JSON/CSV outputs."""

from __future__ import annotations

import csv
import dataclasses
import json
import sys
from pathlib import Path
from types import SimpleNamespace

import imagecodecs
import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from medcodec.bench import codecs as bench_codecs
from medcodec.bench.cli import bench_command, examples_folder
from medcodec.bench.report import render_group, summarise
from medcodec.bench.runner import BenchSettings, discover, run_bench
from medcodec.errors import ModelMismatchError


def _smooth(shape: tuple[int, int], bits: int, seed: int) -> np.ndarray:
    """A compressible test plane: a ramp plus a little noise, within `bits` bits."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[: shape[0], : shape[1]]
    ramp = (x * 3 + y * 2) * ((2**bits - 1) / (3 * shape[1] + 2 * shape[0]))
    noise = rng.integers(0, 4, size=shape)
    return np.clip(ramp + noise, 0, 2**bits - 1).astype(np.uint16)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("bench")
    (root / "eight").mkdir()
    (root / "deep" / "sixteen").mkdir(parents=True)
    Image.fromarray(_smooth((40, 48), 8, 1).astype(np.uint8), "L").save(root / "eight" / "a.png")
    np.save(root / "eight" / "b.npy", _smooth((33, 20), 8, 2).astype(np.uint8))
    (root / "deep" / "sixteen" / "c.png").write_bytes(imagecodecs.png_encode(_smooth((36, 44), 16, 3)))
    np.save(root / "deep" / "sixteen" / "d.npy", _smooth((30, 50), 12, 4))
    (root / "eight" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"not really a png" * 4)
    (root / "notes.txt").write_text("not an image: ignored")
    return root


@pytest.fixture(scope="module")
def records(folder: Path) -> list[dict]:
    """One real run (medcodec classical + JPEG-XL e9, PNG, WebP), shared by the tests that read it."""
    return run_bench([folder], _settings(), progress=False)


def _settings(modes: list[str] | None = None, codecs: list[str] | None = None) -> BenchSettings:
    return BenchSettings(modes=modes if modes is not None else ["classical"],
                         codecs=codecs if codecs is not None else ["jxl9", "png", "webp"])


def test_discover_finds_images_by_suffix_and_dicm_magic(folder: Path, tmp_path: Path) -> None:
    names = [p.relative_to(folder).as_posix() for _, p in discover([folder])]
    assert names == ["deep/sixteen/c.png", "deep/sixteen/d.npy", "eight/a.png", "eight/b.npy",
                     "eight/broken.png"]
    # An extension-less DICOM (as many PACS exports are) is found by its 'DICM' marker.
    dicm = tmp_path / "IM0001"
    dicm.write_bytes(b"\0" * 128 + b"DICM" + b"\0" * 16)
    (tmp_path / "README").write_bytes(b"\0" * 200)
    assert [p.name for _, p in discover([tmp_path])] == ["IM0001"]


def test_records_count_only_verified_exact_round_trips(folder: Path, records: list[dict]) -> None:
    by_name = {Path(r["path"]).name: r for r in records}
    assert by_name["broken.png"]["status"] == "error" and by_name["broken.png"]["reason"]
    benched = [r for r in records if r["status"] == "ok"]
    assert len(benched) == 4
    for r in benched:
        mlc = r["results"]["medcodec-classical"]
        assert mlc["status"] == "ok", mlc
        assert 0 <= mlc["overhead_bytes"] < mlc["bytes"]  # envelope + container, part of the size
        pixel_sections = {k: v for k, v in mlc["section_bytes"].items() if k != "envelope"}
        assert sum(pixel_sections.values()) + mlc["overhead_bytes"] == mlc["bytes"]
        assert mlc["learned_pixels"] == r["pixels"]  # classical mode: every frame is its own
        assert r["results"]["jxl9"]["status"] == "ok"
    # The JPEG-XL size is what imagecodecs gives for that very plane, fed as uint8/uint16.
    plane = np.load(folder / "deep" / "sixteen" / "d.npy")
    bits = by_name["d.npy"]["bits"]  # the io layer's bit depth for a uint16 array
    expected = len(imagecodecs.jpegxl_encode(plane, lossless=True, effort=9, bitspersample=bits))
    assert by_name["d.npy"]["results"]["jxl9"]["bytes"] == expected
    # WebP codes 8-bit planes only: deeper ones are "n/a", never "failed".
    assert by_name["d.npy"]["results"]["webp"]["status"] == "n/a"
    assert by_name["a.png"]["results"]["webp"]["status"] == "ok"


def test_a_codec_that_does_not_round_trip_is_marked_failed(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = bench_codecs.CODECS["png"]

    def off_by_one(data: bytes) -> np.ndarray:
        out = real.decode(data).copy()
        out[0, 0] ^= 1
        return out

    liar = dataclasses.replace(real, name="png", decode_fn=off_by_one)
    monkeypatch.setitem(bench_codecs.CODECS, "png", liar)
    records = run_bench([folder], _settings(modes=[], codecs=["jxl9", "png"]), progress=False)
    benched = [r for r in records if r["status"] == "ok"]
    assert all(r["results"]["png"]["status"] == "failed" for r in benched)
    overall = summarise(records)[-1]["codecs"]["png"]
    assert overall["images"] == 0 and overall["failed"] == 4 and overall["bpp"] is None


def test_medcodec_result_that_differs_is_failed_and_missing_mode_is_omitted(folder: Path) -> None:
    from medcodec.io.source import load

    def encode(raw: bytes, mode: str, device: str) -> bytes:
        if mode == "slow":
            raise ModelMismatchError("weights for 'slow' are not installed")
        return raw  # the "stream" is the file itself; decode_wrong reads it back one value off

    def decode_wrong(blob: bytes) -> SimpleNamespace:
        planes = [p.copy() for p in load(blob).planes]
        planes[0][-1, -1] ^= 1
        return SimpleNamespace(planes=planes, data=None)

    fake = SimpleNamespace(encode=encode, decode=decode_wrong)
    settings = _settings(modes=["fast", "slow"], codecs=["jxl9"])
    notes: list[str] = []
    records = run_bench([folder], settings, codec_module=fake, progress=False, echo=notes.append)
    benched = [r for r in records if r["status"] == "ok"]
    assert all(r["results"]["medcodec-fast"]["status"] == "failed" for r in benched)
    assert all("medcodec-slow" not in r["results"] for r in benched)
    assert any("'slow' unavailable" in n for n in settings.notes)
    assert notes == [f"note: {n}" for n in settings.notes]


def test_groups_by_folder_bits_and_overall_with_ratio_on_same_images(records: list[dict]) -> None:
    groups = summarise(records)
    names = [(g["by"], g["name"]) for g in groups]
    deep_bits = sorted({r["bits"] for r in records if r.get("folder") == "deep/sixteen"})
    assert names == [("folder", "deep/sixteen"), ("folder", "eight"), ("bits", "8-bit")] + [
        ("bits", f"{b}-bit") for b in deep_bits] + [("overall", "all images")]
    overall = groups[-1]
    assert overall["images"] == 4 and overall["unreadable"] == 1
    jxl = overall["codecs"]["jxl9"]
    assert jxl["ratio_to_jxl9"] == pytest.approx(1.0)
    pixels = sum(r["pixels"] for r in records if r["status"] == "ok")
    total_bytes = sum(r["results"]["jxl9"]["bytes"] for r in records if r["status"] == "ok")
    assert jxl["bpp"] == pytest.approx(8 * total_bytes / pixels)
    # WebP's ratio is over the 8-bit images it coded, against JPEG-XL on those same images.
    eight = [r for r in records if r["status"] == "ok" and r["bits"] == 8]
    webp = overall["codecs"]["webp"]
    assert webp["ratio_to_jxl9"] == pytest.approx(
        sum(r["results"]["webp"]["bytes"] for r in eight) / sum(r["results"]["jxl9"]["bytes"] for r in eight))
    # medcodec's pixel-stream ratio: its bytes less the envelope and container, over JPEG-XL's
    mlc = overall["codecs"]["medcodec-classical"]
    benched = [r for r in records if r["status"] == "ok"]
    own = sum(r["results"]["medcodec-classical"]["bytes"] - r["results"]["medcodec-classical"]["overhead_bytes"]
              for r in benched)
    assert mlc["pixel_ratio_to_jxl9"] == pytest.approx(own / sum(r["results"]["jxl9"]["bytes"] for r in benched))
    assert mlc["pixel_ratio_to_jxl9"] < mlc["ratio_to_jxl9"]
    assert "pixel_ratio_to_jxl9" not in jxl
    table = render_group(overall)
    assert "medcodec classical" in table and "JPEG-XL e9" in table and "×JXL-e9" in table
    assert f"pixel streams {mlc['pixel_ratio_to_jxl9']:.3f}×JXL-e9" in table


def test_cli_writes_table_json_and_csv(folder: Path, tmp_path: Path) -> None:
    json_path, csv_path = tmp_path / "out.json", tmp_path / "out.csv"
    result = CliRunner().invoke(bench_command, [
        str(folder), "--mode", "classical", "--codecs", "jxl7,jpegls,png", "--quiet",
        "--json", str(json_path), "--csv", str(csv_path)])
    assert result.exit_code == 0, result.output
    assert "== overall all images: 4 images" in result.output
    assert "broken.png: unreadable" in result.output
    assert "JPEG-XL e9" in result.output  # the reference runs even when not asked for
    payload = json.loads(json_path.read_text())
    assert {"machine", "settings", "groups", "images", "notes"} <= payload.keys()
    assert payload["machine"]["cpu_count"] >= 1 and payload["machine"]["versions"]["imagecodecs"]
    assert len(payload["images"]) == 5
    rows = list(csv.DictReader(csv_path.open()))
    ok_rows = [row for row in rows if row["status"] == "ok"]
    assert {row["codec"] for row in ok_rows} == {"medcodec-classical", "jxl9", "jxl7", "jpegls", "png"}
    assert len(ok_rows) == 4 * 5
    assert [row["image_status"] for row in rows if not row["codec"]] == ["error"]


def test_cli_limit_and_unknown_codec(folder: Path) -> None:
    result = CliRunner().invoke(bench_command, [str(folder), "--mode", "none", "--codecs", "jpegls",
                                                "--limit", "1", "--quiet"])
    assert result.exit_code == 0, result.output
    assert "== overall all images: 1 images" in result.output
    bad = CliRunner().invoke(bench_command, [str(folder), "--codecs", "gif"])
    assert bad.exit_code == 2 and "unknown codec" in bad.output


def test_plot_without_matplotlib_says_how_to_install(
    folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # makes `import matplotlib` fail
    plot = tmp_path / "p.png"
    result = CliRunner().invoke(bench_command, [str(folder), "--mode", "none", "--codecs", "png",
                                                "--limit", "2", "--quiet", "--plot", str(plot)])
    assert result.exit_code == 0, result.output
    assert "pip install 'medcodec[plot]'" in result.output and not plot.exists()


def test_bundled_examples_are_small_and_all_modelled() -> None:
    from medcodec.io.source import load

    files = [p for _, p in discover([examples_folder()])]
    assert 6 <= len(files) <= 10
    assert sum(p.stat().st_size for p in files) < 1.5e6
    assert (examples_folder() / "SOURCES.md").exists()
    assert all(load(p).planes for p in files)


def test_a_file_whose_compressed_pixel_data_was_kept_counts_when_its_bytes_come_back() -> None:
    """A JPEG 2000 DICOM that medcodec could not code smaller than its own codestream keeps it: no planes
    come back, and the file's sha256 is the check."""
    import hashlib

    from medcodec.bench.runner import _check_decoded

    data = b"the original DICOM file"
    source = SimpleNamespace(planes=[np.zeros((4, 4), np.uint16)], decompressed=True, kind="dicom",
                             original_sha256=hashlib.sha256(data).hexdigest())
    assert _check_decoded(source, SimpleNamespace(planes=[], data=data)) is None
    assert "differs" in _check_decoded(source, SimpleNamespace(planes=[], data=b"another file"))
    assert "no file" in _check_decoded(source, SimpleNamespace(planes=[], data=None))
    native = SimpleNamespace(**{**vars(source), "decompressed": False})  # a small file kept whole
    assert _check_decoded(native, SimpleNamespace(planes=[], data=data)) is None
    assert "differs" in _check_decoded(native, SimpleNamespace(planes=[], data=b"another file"))
    png = SimpleNamespace(**{**vars(source), "kind": "png"})
    assert _check_decoded(png, SimpleNamespace(planes=[], data=None)) == "decoded 0 planes, expected 1"


def test_a_file_without_planes_whose_pixel_data_is_recompressed_is_reported(tmp_path: Path) -> None:
    """A 12-bit lossy-JPEG DICOM has no planes to bench, but medcodec recompresses its coefficients: the
    record, its groups and the report say what that came to, verified byte for byte."""
    sys.path.insert(0, str(Path(__file__).parent))
    from encapsulated import encapsulated_dicom
    from jpegs import lossy_jpeg
    from pydicom.uid import JPEGExtended12Bit

    from medcodec.bench.report import render_report

    data = encapsulated_dicom([lossy_jpeg(12, 90)], JPEGExtended12Bit, bits_stored=12, unsigned=True)
    (tmp_path / "ct.dcm").write_bytes(data)
    (record,) = run_bench([tmp_path], _settings(codecs=["jxl9"]), progress=False)
    assert record["status"] == "skipped" and record["recompressed"]["status"] == "ok"
    assert record["recompressed"]["file_bytes"] == len(data) > record["recompressed"]["bytes"]
    overall = [g for g in summarise([record]) if g["by"] == "overall"][0]
    coded = record["recompressed"]["bytes"]
    assert overall["recompressed"] == {"files": 1, "file_bytes": len(data), "mlc_bytes": coded}
    assert "1 of them recompressed without planes" in render_group(overall)
    assert "recompressed" in render_report([record], [overall], []).split("Not benched:")[1]
    (none,) = run_bench([tmp_path], _settings(modes=[], codecs=["jxl9"]), progress=False)
    assert "recompressed" not in none  # no medcodec mode asked for: nothing measured


def test_stream_breakdown_counts_jpeg_crop_and_jpeg_dct_frames_as_jpeg_history():
    from medcodec.bench.runner import _stream_breakdown

    class FakeCodec:
        @staticmethod
        def info(blob):
            return {"section_bytes": {"envelope": 10, "method_stream": 50},
                    "frames": [{"method": "jpeg", "shape": [4, 5]}, {"method": "jpeg-crop", "shape": [2, 3]},
                               {"method": "jpeg-dct", "shape": [3, 3]},
                               {"method": "raster", "shape": [1, 7]}, {"method": "fast", "shape": [2, 2]}]}

    split = _stream_breakdown(FakeCodec, b"x" * 70, "fast")
    assert (split["jpeg_pixels"], split["raster_pixels"], split["learned_pixels"]) == (35, 7, 4)
    assert split["overhead_bytes"] == 20
