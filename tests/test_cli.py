"""The command line: round trips, folders, stdin/stdout, overwrite rules, one clear line per error."""

import json
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import imagecodecs
import numpy as np
import pytest
from click.testing import CliRunner
from pydicom.data import get_testdata_file

from medcodec import __version__, codec
from medcodec.cli import cli
from medcodec.container import format as container

CT_SMALL = get_testdata_file("CT_small.dcm")
ROOT = Path(__file__).resolve().parents[1]


def _image(shape, bits, seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    values = (yy * 7 + xx * 3) % (1 << bits) + rng.integers(0, 4, shape)
    return np.clip(values, 0, (1 << bits) - 1).astype(np.uint8 if bits <= 8 else np.uint16)


@pytest.fixture
def files(tmp_path):
    """A small study folder: PNG 8/16, .npy, a DICOM with and one without extension, and clutter."""
    d = tmp_path / "study"
    (d / "sub" / "deeper").mkdir(parents=True)
    (d / "xray8.png").write_bytes(imagecodecs.png_encode(_image((40, 56), 8)))
    (d / "sub" / "ct16.png").write_bytes(imagecodecs.png_encode(_image((33, 47), 16, 1)))
    np.save(d / "sub" / "vol.npy", _image((30, 20), 12, 2).astype(np.int16) - 900)
    shutil.copy(CT_SMALL, d / "ct.dcm")
    shutil.copy(CT_SMALL, d / "sub" / "deeper" / "IM0001")  # DICOM found by its DICM marker
    (d / "notes.txt").write_text("not an image")
    (d / ".hidden.png").write_bytes((d / "xray8.png").read_bytes())
    return d


def run(*args, input=None):
    return CliRunner().invoke(cli, [str(a) for a in args], input=input, catch_exceptions=False)


def _assert_clean_failure(result, code, folder):
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    errors = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and "error" in errors[0], result.stderr
    assert not [p for p in Path(folder).rglob(".*.tmp")], "temporary file left behind"


def _same_content(original: Path, restored: Path):
    if original.suffix == ".png":
        np.testing.assert_array_equal(imagecodecs.png_decode(restored.read_bytes()),
                                      imagecodecs.png_decode(original.read_bytes()))
    else:
        assert restored.read_bytes() == original.read_bytes(), restored


# ------------------------------------------------------------------------------------ round trips


def test_folder_roundtrip_mirrors_the_tree(files, tmp_path):
    result = run("encode", "--mode", "classical", "--out-dir", tmp_path / "mlc", files)
    assert result.exit_code == 0, result.output
    made = sorted(p.relative_to(tmp_path / "mlc").as_posix() for p in (tmp_path / "mlc").rglob("*.mlc"))
    assert made == ["ct.dcm.mlc", "sub/ct16.png.mlc", "sub/deeper/IM0001.mlc", "sub/vol.npy.mlc",
                    "xray8.png.mlc"]  # hidden files and notes.txt skipped
    result = run("decode", "--out-dir", tmp_path / "restored", tmp_path / "mlc")
    assert result.exit_code == 0, result.output
    for mlc in made:
        name = mlc[: -len(".mlc")]
        _same_content(files / name, tmp_path / "restored" / name)


def test_default_names_next_to_the_input(files, tmp_path):
    dcm = files / "ct.dcm"
    assert run("encode", "-m", "classical", "--verify", dcm).exit_code == 0
    assert (files / "ct.dcm.mlc").exists()
    dcm.rename(tmp_path / "moved.dcm")
    result = run("decode", files / "ct.dcm.mlc")
    assert result.exit_code == 0, result.output
    assert dcm.read_bytes() == (tmp_path / "moved.dcm").read_bytes()


def test_output_option_and_glob(files, tmp_path):
    out = tmp_path / "one.mlc"
    assert run("encode", "-m", "classical", "-o", out, files / "xray8.png").exit_code == 0
    assert run("decode", out).exit_code == 0
    _same_content(files / "xray8.png", tmp_path / "one")  # '.mlc' stripped, as IM0001.mlc -> IM0001
    out.rename(tmp_path / "stream")
    assert run("decode", tmp_path / "stream").exit_code == 0  # no '.mlc': the kind's extension is added
    _same_content(files / "xray8.png", tmp_path / "stream.png")
    result = run("encode", "-m", "classical", "--glob", "*.png", "--out-dir", tmp_path / "g", files)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "g").rglob("*.mlc")) == ["ct16.png.mlc", "xray8.png.mlc"]


def test_parallel_jobs(files, tmp_path):
    result = run("encode", "-m", "classical", "-j", "2", "-q", "--out-dir", tmp_path / "p", files)
    assert result.exit_code == 0, result.output
    assert len(list((tmp_path / "p").rglob("*.mlc"))) == 5


def test_threads_option_gives_the_same_files(tmp_path, torch_threads):
    # --threads sets this process' budget (torch's threads, OMP_NUM_THREADS): the fixture puts both back
    """A multi-frame file on one thread and on two (its frames side by side): the same stream, decoded."""
    import torch

    volume = tmp_path / "vol.npy"
    np.save(volume, np.stack([_image((36, 44), 12, seed) for seed in range(3)]))
    outputs = []
    for threads in (1, 2):
        out = tmp_path / f"vol{threads}.mlc"
        result = run("encode", "-q", "-t", threads, "-o", out, volume)
        assert result.exit_code == 0, result.output
        assert torch.get_num_threads() == threads
        outputs.append(out.read_bytes())
    assert outputs[0] == outputs[1]
    result = run("decode", "-q", "-t", 2, "-o", tmp_path / "back.npy", tmp_path / "vol2.mlc")
    assert result.exit_code == 0, result.output
    np.testing.assert_array_equal(np.load(tmp_path / "back.npy"), np.load(volume))


def test_keep_compressed_stores_compressed_pixel_data_as_it_is(tmp_path):
    rle = tmp_path / "mr_rle.dcm"
    rle.write_bytes(Path(get_testdata_file("MR_small_RLE.dcm")).read_bytes())
    for flag, name in (([], "recoded.mlc"), (["--keep-compressed"], "kept.mlc")):
        result = run("encode", "-m", "classical", *flag, "-q", "-o", tmp_path / name, rle)
        assert result.exit_code == 0, result.output
    recoded, kept = (codec.info((tmp_path / n).read_bytes()) for n in ("recoded.mlc", "kept.mlc"))
    assert len(recoded["frames"]) == 1 and kept["frames"] == []
    assert run("decode", "-o", tmp_path / "back.dcm", tmp_path / "kept.mlc").exit_code == 0
    assert (tmp_path / "back.dcm").read_bytes() == rle.read_bytes()


def test_stdin_to_stdout():
    original = Path(CT_SMALL).read_bytes()
    enc = subprocess.run([sys.executable, "-m", "medcodec", "encode", "-m", "classical", "-"], input=original,
                         capture_output=True, cwd=ROOT, check=True)
    assert enc.stdout[:4] == container.MAGIC[:4]
    dec = subprocess.run([sys.executable, "-m", "medcodec", "decode", "-q", "-"], input=enc.stdout,
                         capture_output=True, cwd=ROOT, check=True)
    assert dec.stdout == original and dec.stderr == b""


# ------------------------------------------------------------------------------- overwrite rules


def test_refuses_to_overwrite_without_force(files):
    src = files / "xray8.png"
    assert run("encode", "-m", "classical", src).exit_code == 0
    mlc = files / "xray8.png.mlc"
    mlc.write_bytes(b"keep me")
    result = run("encode", "-m", "classical", src)
    _assert_clean_failure(result, 5, files)
    assert "--force" in result.stderr and mlc.read_bytes() == b"keep me"
    assert run("encode", "-m", "classical", "--force", src).exit_code == 0
    assert mlc.read_bytes() != b"keep me"
    # Decoding next to the original must not replace it.
    before = src.read_bytes()
    _assert_clean_failure(run("decode", mlc), 5, files)
    assert src.read_bytes() == before


def test_never_overwrites_an_input_even_with_force(files):
    src = files / "ct.dcm"
    before = src.read_bytes()
    _assert_clean_failure(run("encode", "-m", "classical", "--force", "-o", src, src), 2, files)
    assert src.read_bytes() == before


def test_usage_errors():
    assert run("encode").exit_code == 2
    assert run("encode", "-m", "nonsense", "x").exit_code == 2
    assert run("encode", "-o", "a.mlc", "--out-dir", "d", "x").exit_code == 2


# ----------------------------------------------------------------------------- damaged streams


@pytest.fixture
def stream(files):
    assert run("encode", "-m", "classical", files / "ct.dcm").exit_code == 0
    (files / "ct.dcm").unlink()  # so a (wrong) decode would have somewhere to write
    return files / "ct.dcm.mlc"


def _damaged_versions(data: bytes):
    yield "truncated", data[: len(data) // 2]
    yield "empty", b""
    yield "wrong magic", b"GIF89a" + data[6:]
    major = bytearray(data)
    struct.pack_into("<H", major, 8, container.FORMAT_MAJOR + 1)
    yield "future version", bytes(major)
    _, sections = container.unpack(data)
    for s in sections:
        at = data.find(s.payload) + len(s.payload) // 2
        flipped = bytearray(data)
        flipped[at] ^= 0x01
        yield f"flipped byte in {s.kind.name}", bytes(flipped)
    header_flip = bytearray(data)
    header_flip[40] ^= 0x01
    yield "flipped byte in header", bytes(header_flip)


def test_damaged_streams_fail_with_one_line_and_no_output(stream):
    data = stream.read_bytes()
    for what, damaged in _damaged_versions(data):
        stream.write_bytes(damaged)
        for command in (["decode"], ["verify"]):
            result = run(*command, stream)
            _assert_clean_failure(result, 3, stream.parent)
            assert not (stream.parent / "ct.dcm").exists(), what
        if what == "future version":
            assert "upgrade" in run("decode", stream).stderr


def test_info_and_verify(stream, files):
    result = run("info", stream)
    assert result.exit_code == 0 and "dicom" in result.output and "classical" in result.output
    summary = json.loads(run("info", "--json", stream).stdout)
    assert summary["kind"] == "dicom" and summary["frames"][0]["method"] == "classical"
    shutil.copy(CT_SMALL, files / "original.dcm")
    result = run("verify", stream, files / "original.dcm")
    assert result.exit_code == 0 and "OK" in result.output
    _assert_clean_failure(run("verify", stream, files / "xray8.png"), 3, files)
    assert not (files / "ct.dcm").exists()  # verify writes nothing


def test_first_failure_decides_the_exit_code(stream, files):
    good = files / "good.png.mlc"
    assert run("encode", "-m", "classical", "-o", good, files / "xray8.png").exit_code == 0
    bad = files / "bad.mlc"
    bad.write_bytes(b"nonsense")
    exists = files / "exists.dcm.mlc"
    shutil.copy(stream, exists)
    shutil.copy(CT_SMALL, files / "exists.dcm")
    result = run("decode", bad, exists, good)
    assert result.exit_code == 3 and (files / "good.png").exists()  # later files still processed
    assert len([line for line in result.stderr.splitlines() if "error" in line]) == 2
    assert run("decode", exists, bad).exit_code == 5


def test_internal_errors_are_reported_not_dumped(files, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(codec, "encode", broken)
    result = run("encode", "-m", "classical", files / "xray8.png")
    _assert_clean_failure(result, 1, files)
    assert "internal error" in result.stderr and "please report" in result.stderr
    result = run("--debug", "encode", "-m", "classical", files / "xray8.png")
    assert result.exit_code == 1 and "Traceback" in result.stderr


def test_unreadable_inputs(files, tmp_path):
    _assert_clean_failure(run("encode", "-m", "classical", tmp_path / "missing.dcm"), 2, tmp_path)
    _assert_clean_failure(run("encode", "-m", "classical", files / "notes.txt"), 2, files)


def test_fast_mode_works_or_names_the_missing_model(files, tmp_path):
    result = run("encode", "-o", tmp_path / "f.mlc", files / "sub" / "ct16.png")
    if result.exit_code == 0:
        assert run("decode", tmp_path / "f.mlc").exit_code == 0
        _same_content(files / "sub" / "ct16.png", tmp_path / "f")
    else:
        _assert_clean_failure(result, 4, tmp_path)
        assert "fast" in result.stderr and "--mode classical" in result.stderr


# ------------------------------------------------------------------------------------ help texts


@pytest.mark.parametrize("command", [[], ["encode"], ["decode"], ["info"], ["verify"]])
def test_help_teaches_with_examples(command):
    result = run(*command, "--help")
    assert result.exit_code == 0 and "Examples:" in result.output and "medcodec " in result.output


def test_exit_codes_documented_and_version():
    assert "refused to overwrite" in run("encode", "--help").output
    assert __version__ in run("--version").output


def test_reliability_options_are_documented():
    encode_help = run("encode", "--help").output
    for option in ("--verify", "--resume", "--max-pixels"):
        assert option in encode_help
    assert "--max-pixels" in run("decode", "--help").output and "--max-pixels" in run("verify", "--help").output
    assert "skipped by --resume" in encode_help and "disk full" in encode_help


def test_encode_says_when_the_learned_mode_was_not_smaller(tmp_path):
    noise = np.random.default_rng(3).integers(0, 256, (24, 24)).astype(np.uint8)  # nothing to predict
    src = tmp_path / "noise.npy"
    np.save(src, noise)
    result = run("encode", src, "-o", tmp_path / "noise.mlc")
    assert result.exit_code == 0 and "classical: fast was not smaller" in result.output
    result = run("encode", "--mode", "classical", src, "-o", tmp_path / "plain.mlc")
    assert result.exit_code == 0 and "not smaller" not in result.output


def test_info_names_the_frames_that_use_ensembles():
    """The slow mode's test-time ensembles cost decode time, so `info` says where a frame has them."""
    from medcodec.cli import format_info

    summary = {"format_major": 1, "kind": "dicom", "integrity": "ok", "stream_size": 100, "frames": [
        {"frame": 0, "shape": [64, 64], "bits": 12, "method": "slow", "bytes": 90,
         "side_info": {"ensemble": [[8, 2], [1, 1], [8, 1]]}},
        {"frame": 1, "shape": [64, 64], "bits": 12, "method": "fast", "bytes": 90, "side_info": {"lo": 0}}]}
    lines = format_info("x.mlc", summary).splitlines()
    assert lines[-2].endswith("slow, 90 bytes (ensembles on D, C)")
    assert lines[-1].endswith("fast, 90 bytes")


def test_info_names_a_latent_frames_class_offsets():
    from medcodec.cli import format_info

    summary = {"format_major": 2, "kind": "dicom", "integrity": "ok", "stream_size": 100, "frames": [
        {"frame": 0, "shape": [64, 64], "bits": 12, "method": "latent", "bytes": 90,
         "section_bytes": {"latent_z": 10, "residual": 70},
         "side_info": {"class_offsets": [[0, 0]] * 18, "hi": 4000, "requires": ["classes"]}},
        {"frame": 1, "shape": [64, 64], "bits": 12, "method": "latent", "bytes": 90, "side_info": {"lo": 0}}]}
    lines = format_info("x.mlc", summary).splitlines()
    assert lines[-2].endswith("latent, 90 bytes [z 80 bits, residuals 560 bits] (per-class offsets)")
    assert lines[-1].endswith("latent, 90 bytes")


def test_info_names_the_raster_options_a_frame_uses():
    from medcodec.cli import format_info

    summary = {"format_major": 1, "kind": "png", "integrity": "ok", "stream_size": 100, "frames": [
        {"frame": 0, "shape": [64, 64], "bits": 8, "method": "raster", "bytes": 90,
         "side_info": {"raster": {"nb": [16, 16], "lt": [3, 24], "pad": 3}}},
        {"frame": 1, "shape": [64, 64], "bits": 16, "method": "raster", "bytes": 90,
         "side_info": {"raster": {"pal": [7, 3, 2, 1], "ph": [4, 1, 2, 3, 4, 5],
                                  "ko": [1] + [0] * 11, "dw": [1] * 228}}},
        {"frame": 2, "shape": [64, 64], "bits": 16, "method": "raster", "bytes": 90, "side_info": None},
        {"frame": 3, "shape": [64, 64], "bits": 16, "method": "raster", "bytes": 90,
         "side_info": {"raster": {"nn": "raster-nn-large-v1/43307bc3595e11cf", "sn": "raster-scale-v1/f722761cff3b41c9"}}}]}
    lines = format_info("x.mlc", summary).splitlines()
    assert lines[-1].endswith("raster, 90 bytes (raster-order prediction, per-plane weights, learned correction "
                              "raster-nn-large-v1/43307bc3595e11cf, learned scale raster-scale-v1/f722761cff3b41c9)")
    lines = lines[:-1]
    assert lines[-3].endswith("raster, 90 bytes (raster-order prediction, per-plane weights, neighbour-value boost, "
                              "value lattice of step 3)")
    assert lines[-2].endswith("raster, 90 bytes (raster-order prediction, per-plane weights, palette, "
                              "resampling-phase classes, per-class scale offsets, tap-difference weights)")
    assert lines[-1].endswith("raster, 90 bytes (raster-order prediction, per-plane weights)")


def test_info_names_the_local_least_squares_radii():
    """The local blend about doubles a frame's decoding time, so `info` says which windows it uses."""
    from medcodec.cli import format_info

    summary = {"format_major": 2, "kind": "png", "integrity": "ok", "stream_size": 100, "frames": [
        {"frame": 0, "shape": [64, 64], "bits": 16, "method": "raster", "bytes": 90,
         "side_info": {"raster": {"lw": [16] * 17}}},
        {"frame": 1, "shape": [64, 64], "bits": 16, "method": "raster", "bytes": 90,
         "side_info": {"raster": {"lw": [16] * 17, "lx": [[4] + [8] * 17, [14] + [8] * 17]}}}]}
    lines = format_info("x.mlc", summary).splitlines()
    assert lines[-2].endswith("per-plane weights, local least squares (radius 9))")
    assert lines[-1].endswith("per-plane weights, local least squares (radius 9, 4, 14))")


def test_info_says_a_jpeg_frame_is_a_recovered_jpeg_and_a_jpeg_crop_frame_a_cut_one():
    from medcodec.cli import format_info

    summary = {"format_major": 2, "kind": "png", "integrity": "ok", "stream_size": 100, "frames": [
        {"frame": 0, "shape": [64, 64], "bits": 8, "method": "jpeg", "bytes": 90},
        {"frame": 1, "shape": [64, 64], "bits": 8, "method": "jpeg-crop", "bytes": 90},
        {"frame": 2, "shape": [64, 64], "bits": 8, "method": "jpeg-dct", "bytes": 80}]}
    lines = format_info("x.mlc", summary).splitlines()
    assert lines[-3].endswith("(the JPEG it was decoded from, recovered)")
    assert lines[-2].endswith("(cut from a decoded JPEG off its block grid; that JPEG recovered)")
    assert lines[-1].endswith("(the JPEG it was decoded from, recovered; its coefficients coded by medcodec)")


def test_bands_option_codes_a_large_plane_in_bands_that_decode_whole(tmp_path, monkeypatch):
    from medcodec import bands

    monkeypatch.setattr(bands, "BAND_PIXELS", 1500)  # so that a small test plane is cut in two
    from planes import smooth

    source = tmp_path / "large.npy"
    np.save(source, smooth((70, 48), 12, seed=5))
    assert run("encode", "--bands", "-m", "fast", "-o", tmp_path / "large.mlc", source).exit_code == 0
    shown = run("info", tmp_path / "large.mlc").output
    assert "frames   : 2 (bands of 1 plane(s), decoded side by side)" in shown and "(plane 0, band 1)" in shown
    assert run("decode", "-o", tmp_path / "back.npy", tmp_path / "large.mlc").exit_code == 0
    assert (tmp_path / "back.npy").read_bytes() == source.read_bytes()
