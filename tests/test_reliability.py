"""Reliability and security (docs/RELIABILITY.md): interrupted and faulty batches, --resume, --verify,
pixel limits on both directions, `verify`, tampered weights, temporaries, and the envelope's lzma settings."""

import errno
import hashlib
import lzma
import os
import pickle
import shutil
import signal
import struct
import subprocess
import sys
import time
import tracemalloc
import zlib
from pathlib import Path

import imagecodecs
import numpy as np
import pytest
from click.testing import CliRunner
from pydicom.data import get_testdata_file

import medcodec.models
import medcodec.pipelines
from medcodec import codec, fileio
from medcodec.cli import cli
from medcodec.container import envelope as envelope_coding
from medcodec.container import format as container
from medcodec.errors import CorruptStreamError, ModelMismatchError, ResourceLimitError

ROOT = Path(__file__).resolve().parents[1]
CT_SMALL = get_testdata_file("CT_small.dcm")


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def _plane(shape, seed):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[: shape[0], : shape[1]]
    return (2000 + 500 * np.sin(x / 7 + seed) + rng.normal(0, 30, shape)).clip(0, 65535).astype(np.uint16)


def _study(folder: Path, count: int, shape=(64, 64)) -> list[Path]:
    """count small images, PNG and .npy alternating, two folder levels."""
    paths = []
    for i in range(count):
        path = folder / f"s{i % 3}" / (f"im{i:02d}.png" if i % 2 else f"im{i:02d}.npy")
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix == ".png":
            path.write_bytes(imagecodecs.png_encode(_plane(shape, i)))
        else:
            np.save(path, _plane(shape, i))
        paths.append(path)
    return paths


def _errors(result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("medcodec: error")]


def _temporaries(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if fileio.is_temporary(p.name) or p.name.endswith(".tmp")]


def _assert_outputs_exact(inputs: list[Path], src_root: Path, out_root: Path) -> None:
    for src in inputs:
        mlc = out_root / src.relative_to(src_root).with_name(src.name + ".mlc")
        codec.verify(mlc.read_bytes(), original=src, same_source=True)


def _dead_pid() -> int:
    """The pid of a process that has exited (and, in all likelihood, not been reused yet)."""
    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                           text=True, check=True)
    return int(child.stdout)


# ------------------------------------------------------------------------------ interrupted batch


def test_killed_batch_leaves_only_complete_outputs_and_resume_finishes(tmp_path):
    inputs = _study(tmp_path / "in", 30, shape=(256, 256))
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "medcodec", "encode", "--mode", "classical", "--out-dir", str(out)]
    proc = subprocess.Popen(cmd + ["-q", str(tmp_path / "in")], cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while len(list(out.rglob("*.mlc"))) < 4 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.002)
    assert proc.poll() is None, "the batch finished before it could be killed: " + proc.stderr.read().decode()
    proc.send_signal(signal.SIGKILL)
    proc.wait()

    done = list(out.rglob("*.mlc"))
    assert 4 <= len(done) < 30
    for mlc in done:  # whatever carries a final name is complete and exact
        src = tmp_path / "in" / mlc.relative_to(out).with_name(mlc.name[: -len(".mlc")])
        codec.verify(mlc.read_bytes(), original=src, same_source=True)
    leftovers = _temporaries(out)
    assert all(fileio.is_temporary(p.name) and p.name.startswith(".") for p in leftovers), leftovers

    planted = out / "s0" / f".im99.png.mlc.medcodec-{_dead_pid()}-k1ll.tmp"  # as a kill mid-write leaves
    planted.write_bytes(b"partial")
    result = subprocess.run(cmd + ["--resume", str(tmp_path / "in")], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert f"{30 - len(done)} ok, 0 failed, {len(done)} skipped" in result.stderr
    assert not _temporaries(out), "resume removes temporaries of the killed run"
    _assert_outputs_exact(inputs, tmp_path / "in", out)


def test_sigterm_removes_the_temporary_and_exits_130(tmp_path):
    _study(tmp_path / "in", 30, shape=(256, 256))
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "medcodec", "encode", "-m", "classical", "-q",
                             "--out-dir", str(out), str(tmp_path / "in")],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not list(out.rglob("*.mlc")) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.002)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "--resume" in stderr, stderr
    assert not _temporaries(out)


# -------------------------------------------------------------------------------- batch faults


def test_resume_skips_verified_outputs_and_replaces_stale_ones(tmp_path):
    inputs = _study(tmp_path / "in", 6)
    out = tmp_path / "out"
    assert run("encode", "-m", "classical", "--out-dir", out, tmp_path / "in").exit_code == 0
    outputs = sorted(out.rglob("*.mlc"))  # s0/im00.npy, s0/im03.png, s1/im01.png, s1/im04.npy, s2/...
    outputs[0].write_bytes(outputs[0].read_bytes()[:-7])  # a truncated file
    shutil.copy(outputs[2], outputs[1])  # a valid stream, but of another input
    orphan = out / "s2" / "im05.png.mlc"
    orphan_bytes = orphan.read_bytes()
    (tmp_path / "in" / "s2" / "im05.png").unlink()  # an output whose input is gone: left alone

    result = run("encode", "-m", "classical", "--out-dir", out, tmp_path / "in")
    assert result.exit_code == 5  # without --resume existing outputs are refused
    result = run("encode", "-m", "classical", "--resume", "--out-dir", out, tmp_path / "in")
    assert result.exit_code == 0, result.output
    assert "2 ok, 0 failed, 3 skipped (5 files)" in result.stderr
    assert result.stderr.count("replaced an output that did not verify") == 2
    assert orphan.read_bytes() == orphan_bytes
    _assert_outputs_exact(inputs[:5], tmp_path / "in", out)


def test_resume_never_replaces_an_input(tmp_path):
    src = _study(tmp_path, 1)[0]
    before = src.read_bytes()
    result = run("encode", "-m", "classical", "--resume", "-o", src, src)
    assert result.exit_code == 2 and src.read_bytes() == before


def test_write_error_fails_that_file_only(tmp_path, monkeypatch):
    _study(tmp_path / "in", 5)
    real = fileio._write_fully

    def disk_full_for_one(fd, data):
        if os.readlink(f"/proc/self/fd/{fd}").rsplit("/", 1)[-1].startswith(".im03.png.mlc."):
            os.close(fd)
            raise OSError(errno.ENOSPC, "No space left on device")
        real(fd, data)

    if not os.path.exists("/proc/self/fd"):
        pytest.skip("needs /proc to name the file being written")
    monkeypatch.setattr(fileio, "_write_fully", disk_full_for_one)
    result = run("encode", "-m", "classical", "--out-dir", tmp_path / "out", tmp_path / "in")
    assert result.exit_code == 2
    errors = _errors(result)
    assert len(errors) == 1 and "im03.png" in errors[0] and "No space left" in errors[0], result.stderr
    assert "4 ok, 1 failed, 0 skipped" in result.stderr
    assert len(list((tmp_path / "out").rglob("*.mlc"))) == 4 and not _temporaries(tmp_path / "out")


def test_unreadable_input_fails_that_file_only(tmp_path):
    _study(tmp_path / "in", 4)
    (tmp_path / "in" / "s1" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 30)
    result = run("encode", "-m", "classical", "--out-dir", tmp_path / "out", tmp_path / "in")
    assert result.exit_code == 2
    assert len(_errors(result)) == 1 and "broken.png" in _errors(result)[0]
    assert "4 ok, 1 failed, 0 skipped" in result.stderr


def test_verify_catches_a_wrong_stream_and_writes_nothing(tmp_path, monkeypatch):
    a, b = _study(tmp_path, 2)
    wrong = codec.encode(str(b), mode="classical")  # a perfectly valid stream, of the other file
    monkeypatch.setattr(codec, "encode", lambda *args, **kwargs: wrong)
    result = run("encode", "-m", "classical", "--verify", a)
    assert result.exit_code == 1
    assert "internal error" in result.stderr and "please report" in result.stderr
    assert not Path(str(a) + ".mlc").exists() and not _temporaries(tmp_path)
    assert run("encode", "-m", "classical", a).exit_code == 0  # without --verify it would go unnoticed


def test_verify_checks_the_recorded_source_hash(tmp_path):
    png = _study(tmp_path, 2)[1]
    data = codec.encode(str(png), mode="classical")
    resaved = imagecodecs.png_encode(imagecodecs.png_decode(png.read_bytes()), level=1)
    assert resaved != png.read_bytes()
    assert codec.verify(data, original=resaved)["matches_original"] == "pixels"
    with pytest.raises(CorruptStreamError, match="not made from this original"):
        codec.verify(data, original=resaved, same_source=True)


# -------------------------------------------------------------------------------- pixel limits


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose IHDR declares width x height 16-bit gray, with no image data at all."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    ihdr = struct.pack(">IIBBBBB", width, height, 16, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


def _npy_header_only(shape) -> bytes:
    header = repr({"descr": "<u2", "fortran_order": False, "shape": tuple(shape)}).encode()
    header += b" " * (-(10 + len(header) + 1) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header


@pytest.mark.parametrize("name, blob", [("huge.png", _png_header_only(60000, 60000)),
                                        ("huge.npy", _npy_header_only((3, 40000, 40000)))])
def test_encode_refuses_declared_huge_inputs_before_allocating(tmp_path, name, blob):
    (tmp_path / name).write_bytes(blob)
    tracemalloc.start()
    result = run("encode", "-m", "classical", tmp_path / name)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert result.exit_code == 2 and "--max-pixels" in result.stderr, result.stderr
    assert peak < 64 << 20
    assert not list(tmp_path.glob("*.mlc"))


def test_max_pixels_is_configurable_both_ways(tmp_path):
    shutil.copy(CT_SMALL, tmp_path / "ct.dcm")  # 128 x 128
    result = run("encode", "-m", "classical", "--max-pixels", 128 * 128 - 1, tmp_path / "ct.dcm")
    assert result.exit_code == 2 and "--max-pixels" in result.stderr
    assert run("encode", "-m", "classical", "--max-pixels", 128 * 128, tmp_path / "ct.dcm").exit_code == 0
    (tmp_path / "ct.dcm").rename(tmp_path / "original.dcm")
    mlc = tmp_path / "ct.dcm.mlc"
    for command in ("decode", "verify"):
        result = run(command, "--max-pixels", 1000, mlc)
        assert result.exit_code == 2 and "--max-pixels" in result.stderr and "16,384" in result.stderr
    assert not (tmp_path / "ct.dcm").exists()
    assert run("decode", "--max-pixels", 0, mlc).exit_code == 0  # 0: no limit
    assert (tmp_path / "ct.dcm").read_bytes() == (tmp_path / "original.dcm").read_bytes()


def test_decode_refuses_a_stream_declaring_a_huge_plane(tmp_path):
    header, sections = container.unpack(codec.encode(CT_SMALL, mode="classical"))
    header.height = header.width = 1 << 16  # 2**32 pixels: 8 GiB as uint16, valid CRCs
    mlc = tmp_path / "huge.mlc"
    mlc.write_bytes(container.pack(header, sections))
    tracemalloc.start()
    with pytest.raises(ResourceLimitError, match="over the limit"):
        codec.decode(mlc.read_bytes())
    assert tracemalloc.get_traced_memory()[1] < 64 << 20
    tracemalloc.stop()
    result = run("decode", mlc)
    assert result.exit_code == 2 and "--max-pixels" in result.stderr and not (tmp_path / "huge").exists()


# ------------------------------------------------------------------------------------- verify


def test_verify_command_compares_and_writes_nothing(tmp_path):
    shutil.copy(CT_SMALL, tmp_path / "ct.dcm")
    png = _study(tmp_path, 2)[1]
    for src in (tmp_path / "ct.dcm", png):
        assert run("encode", "-m", "classical", src).exit_code == 0
    listing = sorted(tmp_path.rglob("*"))

    assert run("verify", tmp_path / "ct.dcm.mlc").exit_code == 0
    result = run("verify", tmp_path / "ct.dcm.mlc", tmp_path / "ct.dcm")
    assert result.exit_code == 0 and "identical" in result.output
    changed = bytearray((tmp_path / "ct.dcm").read_bytes())
    changed[200] ^= 1  # one header byte: pixels equal, bytes not
    (tmp_path / "changed.dcm").write_bytes(bytes(changed))
    result = run("verify", tmp_path / "ct.dcm.mlc", tmp_path / "changed.dcm")
    assert result.exit_code == 3 and "byte" in result.stderr
    (tmp_path / "changed.dcm").unlink()

    # PNG: another file with the same pixels verifies; one pixel off does not.
    pixels = imagecodecs.png_decode(png.read_bytes())
    (tmp_path / "same.png").write_bytes(imagecodecs.png_encode(pixels, level=1))
    assert run("verify", str(png) + ".mlc", tmp_path / "same.png").exit_code == 0
    pixels[3, 5] ^= 1
    (tmp_path / "off.png").write_bytes(imagecodecs.png_encode(pixels))
    assert run("verify", str(png) + ".mlc", tmp_path / "off.png").exit_code == 3
    result = run("verify", str(png) + ".mlc", tmp_path / "missing.png")
    assert result.exit_code == 2 and "missing.png" in result.stderr
    for p in ("same.png", "off.png"):
        (tmp_path / p).unlink()
    assert sorted(tmp_path.rglob("*")) == listing  # verify wrote nothing


# ------------------------------------------------------------------------------------- weights


@pytest.fixture
def fresh_model_caches():
    medcodec.models._load_verified.cache_clear()
    medcodec.pipelines.get_method.cache_clear()
    yield
    medcodec.models._load_verified.cache_clear()
    medcodec.pipelines.get_method.cache_clear()


def _weight_files() -> list[Path]:
    files = sorted((ROOT / "models").glob("*.safetensors"))
    if not files or "lch-v2" not in medcodec.models.manifest()["models"]:
        pytest.skip("no shipped weights (models/lch-v2) in this checkout")
    return files


def test_tampered_weights_are_refused_by_hash(tmp_path, monkeypatch, fresh_model_caches):
    _weight_files()
    models = tmp_path / "models"
    shutil.copytree(ROOT / "models", models)
    entry = medcodec.models.manifest()["models"]["lch-v2"]
    weights = bytearray((models / entry["file"]).read_bytes())
    weights[-1] ^= 0x01  # one bit of the last tensor: safetensors itself would not notice
    (models / entry["file"]).write_bytes(bytes(weights))
    monkeypatch.setenv(medcodec.models.MODELS_ENV, str(models))

    with pytest.raises(ModelMismatchError, match="manifest hash"):
        medcodec.models.load_model("lch-v2")
    with pytest.raises(ModelMismatchError):
        codec.encode(_plane((32, 32), 0), mode="fast", device="cpu")
    np.save(tmp_path / "x.npy", _plane((32, 32), 0))
    result = run("encode", "-m", "fast", "--device", "cpu", tmp_path / "x.npy")
    assert result.exit_code == 4 and "tampered" in result.stderr


def test_weights_load_through_safetensors_without_pickle(monkeypatch, fresh_model_caches):
    import torch

    for path in _weight_files():
        blob = path.read_bytes()
        (header_len,) = struct.unpack_from("<Q", blob)
        assert blob[8:9] == b"{" and 8 + header_len <= len(blob)  # safetensors: JSON header, raw tensors
        assert not blob.startswith(b"PK") and b"\x80\x02" != blob[:2]  # not a zip/pickle checkpoint

    def no_pickle(*args, **kwargs):
        raise AssertionError("weights must not be unpickled")

    for module, name in ((pickle, "load"), (pickle, "loads"), (torch, "load")):
        monkeypatch.setattr(module, name, no_pickle)
    for model_id, entry in medcodec.models.manifest()["models"].items():
        assert medcodec.models.load_model(model_id).sha256.hex() == entry["sha256"]
    model = medcodec.models.load_model("lch-v2")  # the integer-exact networks hold integers only
    assert all(t.dtype.kind in "iu"
               for layers in model.params.values() for tensors in layers.values() for t in tensors.values())
    assert all(t.dtype in (torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8)
               for layers in model.torch_params().values() for tensors in layers.values() for t in tensors.values())


def test_published_warm_starts_match_their_manifest_hashes():
    """Training continues on a fresh machine from models/<id>.warm-start.pt (python -m medcodec.train
    --init): each shipped model names its warm start, which is there, intact and pickle-free."""
    import torch

    for model_id, entry in medcodec.models.manifest()["models"].items():
        if "warm_start" not in entry:  # trained from scratch in minutes (the raster correction): nothing to resume
            assert entry["training"]["minutes"] < 15, model_id
            continue
        path = medcodec.models.models_dir() / entry["warm_start"]["file"]
        assert hashlib.sha256(path.read_bytes()).hexdigest() == entry["warm_start"]["sha256"], model_id
        state = torch.load(path, map_location="cpu", weights_only=True)
        assert state["step"] == entry["checkpoint_step"] and state["nets"]


# ------------------------------------------------------------------------------- temporaries


def test_stale_temporaries_of_dead_processes_are_removed(tmp_path):
    dead_pid = _dead_pid()
    stale = tmp_path / f".a.dcm.mlc.medcodec-{dead_pid}-x1y2.tmp"
    live = tmp_path / f".b.dcm.mlc.medcodec-{os.getpid()}-z3w4.tmp"
    other = tmp_path / ".c.tmp"  # not ours: never touched
    for p in (stale, live, other):
        p.write_bytes(b"partial")
    assert fileio.is_temporary(stale.name) and not fileio.is_temporary(other.name)
    assert not fileio.is_temporary("a.dcm.mlc")
    try:
        os.kill(dead_pid, 0)
        pytest.skip("pid reused already")
    except ProcessLookupError:
        pass
    assert fileio.remove_stale_temporaries(tmp_path) == [stale]
    assert live.exists() and other.exists() and not stale.exists()


# ----------------------------------------------------------------------------------- envelope


def test_envelope_lzma_is_cheap_and_old_settings_still_decode():
    src = open(CT_SMALL, "rb").read()
    data = codec.encode(src, mode="classical")
    header, sections = container.unpack(data)
    envelope = next(s for s in sections if s.kind == container.SectionKind.ENVELOPE)
    assert envelope.index == envelope_coding.DEFLATE_DICOM_V1  # a DICOM header: the dictionary wins
    io_envelope = envelope_coding.unpack(envelope.index, envelope.payload)
    filters = envelope_coding.lzma_filters(len(io_envelope))
    assert filters[0]["dict_size"] <= 1 << 16  # not the 64 MiB of preset 9 for a ~7 KB header

    # A file written before the dictionary (1.3: LZMA, preset 9 | EXTREME, 64 MiB dictionary) still decodes.
    old = lzma.compress(io_envelope, format=lzma.FORMAT_RAW,
                        filters=[{"id": lzma.FILTER_LZMA2, "preset": 9 | lzma.PRESET_EXTREME}])
    envelope.index, envelope.payload = envelope_coding.LZMA, old
    assert codec.decode(container.pack(header, sections)).data == src
    assert len(old) == len(envelope_coding.lzma_pack(io_envelope))  # same ratio: the data is shorter than either dict
    assert len(old) > len(envelope_coding.pack(io_envelope)[1])
    assert hashlib.sha256(codec.decode(data).data).digest() == hashlib.sha256(src).digest()


@pytest.mark.parametrize("coding", [envelope_coding.LZMA, envelope_coding.DEFLATE_DICOM_V1])
def test_envelope_decompression_is_bounded_by_the_limit(coding):
    data = codec.encode(CT_SMALL, mode="classical")
    header, sections = container.unpack(data)
    envelope = next(s for s in sections if s.kind == container.SectionKind.ENVELOPE)
    zeros = bytes(8 << 20)  # 8 MiB of zeros in ~1 KB (LZMA) or ~8 KB (deflate)
    envelope.index = coding
    envelope.payload = (lzma.compress(zeros, format=lzma.FORMAT_RAW, filters=[{"id": lzma.FILTER_LZMA2, "preset": 1}])
                        if coding == envelope_coding.LZMA else
                        envelope_coding.deflate_pack(zeros, envelope_coding.dicom_dictionary()))
    bomb = container.pack(header, sections)
    tracemalloc.start()
    with pytest.raises(ResourceLimitError, match="envelope"):
        codec.decode(bomb, max_pixels=128 * 128)  # 32 KB of envelope allowed
    assert tracemalloc.get_traced_memory()[1] < 4 << 20
    tracemalloc.stop()
    with pytest.raises(CorruptStreamError):  # within the limit it inflates, and the checks refuse it
        codec.decode(bomb)
    envelope.index, envelope.payload = envelope_coding.pack(b"x" * 100)
    envelope.payload = envelope.payload[:-3]
    with pytest.raises(CorruptStreamError, match="envelope"):
        codec.decode(container.pack(header, sections))
