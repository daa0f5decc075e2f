"""The library API: exact round trips, the never-larger-than-classical rule, and refusing damaged streams."""

import concurrent.futures
import hashlib
import multiprocessing
from pathlib import Path

import imagecodecs
import numpy as np
import pytest
from pydicom.data import get_testdata_file

import medcodec
from medcodec import codec
from medcodec.container import envelope as envelope_coding
from medcodec.container import format as container
from medcodec.container.format import SectionKind
from medcodec.errors import CorruptStreamError, InvalidInputError, ModelMismatchError, UnsupportedVersionError
from medcodec.io import source as io_source
from medcodec.pipelines import Stream, get_method
from medcodec.pipelines.classical import ClassicalMethod
from medcodec.pipelines.jpeg_history import JpegCoefficientsMethod, JpegHistoryMethod

RNG = np.random.default_rng(7)
CT_SMALL = get_testdata_file("CT_small.dcm")


def _smooth(shape, bits, seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: shape[-2], : shape[-1]]
    base = (np.sin(yy / 9.0) + np.cos(xx / 13.0) + 2) / 4 * ((1 << bits) - 1)
    noisy = base + rng.normal(0, (1 << bits) / 200, shape)
    return np.clip(noisy, 0, (1 << bits) - 1).astype(np.uint16 if bits > 8 else np.uint8)


@pytest.mark.parametrize("array", [
    _smooth((40, 50), 8),
    _smooth((33, 17), 16),
    (_smooth((3, 20, 24), 12).astype(np.int16) - 2048).astype(np.int16),  # signed, several frames
    np.array([[0, 65535]], np.uint16),
])
def test_array_roundtrip(array):
    data = codec.encode(array, mode="classical")
    decoded = codec.decode(data)
    assert decoded.kind == "npy"
    restored = np.load(__import__("io").BytesIO(decoded.data))
    assert restored.dtype == array.dtype
    np.testing.assert_array_equal(restored, array)
    assert len(decoded.planes) == (array.shape[0] if array.ndim == 3 else 1)


def test_dicom_byte_identical_from_path_and_bytes():
    original = open(CT_SMALL, "rb").read()
    for source in (CT_SMALL, original):
        data = codec.encode(source, mode="classical")
        assert len(data) < len(original)
        decoded = codec.decode(data)
        assert decoded.kind == "dicom" and decoded.fidelity == "bytes"
        assert decoded.data == original
    summary = codec.verify(data, original=CT_SMALL)
    assert summary["matches_original"] == "bytes"


def _synthetic_dicom(tmp_path: Path) -> tuple[Path, bytes]:
    """CT_small with its pixels replaced by one block of noise repeated: the file LZMA'd (which finds the
    repeats) beats any coding of the plane."""
    import pydicom

    ds = pydicom.dcmread(CT_SMALL)
    block = np.random.default_rng(3).integers(-1000, 1000, (16, 16))
    words = np.tile(block, (ds.Rows // 16, ds.Columns // 16)).astype(np.int16)
    ds.PixelData = words.tobytes()
    path = tmp_path / "bands.dcm"
    ds.save_as(path, enforce_file_format=True)
    return path, path.read_bytes()


def test_a_small_dicom_file_is_kept_whole_where_that_is_smaller(tmp_path, monkeypatch):
    path, original = _synthetic_dicom(tmp_path)
    for source in (path, original):
        data = codec.encode(source, mode="classical")
        assert codec.info(data)["frames"] == [] and "kept whole" in codec.info(data)["description"]
        assert codec.decode(data).data == original
    src = io_source.load(original)
    classical = get_method("classical")
    assert len(data) < len(codec._pack_file(src, envelope_coding.pack(src.envelope), classical,
                                            [(classical.encode(p, 16), {"method": "classical"}) for p in src.planes]))
    monkeypatch.setattr(codec, "WHOLE_FILE_BOUND", len(original) - 1)  # larger files are not tried
    assert codec.info(codec.encode(original, mode="classical"))["frames"] != []


FORMAT_1_4 = Path(__file__).parent / "data" / "format_1_4"


@pytest.mark.parametrize("name, original", [
    ("MR_small.fast.mlc", Path(medcodec.__file__).parent / "data" / "examples" / "dicom16" / "MR_small.dcm"),
    ("us_64.fast.mlc", FORMAT_1_4 / "us_64.png"),
    ("textures_64.fast.mlc", FORMAT_1_4 / "textures_64.png"),
])
def test_format_1_4_files_still_decode(name, original):
    """Files an older medcodec wrote (format 1.4: 30-byte section entries, JSON header meta) decode
    exactly with this one; info reads them too."""
    data = (FORMAT_1_4 / name).read_bytes()
    assert data[8:12] == b"\x01\x00\x04\x00"  # major 1, minor 4
    _assert_decodes_to(data, original)
    assert codec.info(data)["integrity"] == "ok"


def _assert_decodes_to(data, original):
    """A DICOM stream gives the original's bytes back, a PNG one its pixels."""
    decoded = codec.decode(data)
    source = original.read_bytes()
    if decoded.kind == "dicom":
        assert decoded.data == source
    else:
        np.testing.assert_array_equal(imagecodecs.png_decode(decoded.data), imagecodecs.png_decode(source))


FORMAT_2_5 = Path(__file__).parent / "data" / "format_2_5"


@pytest.mark.parametrize("name, original", [
    ("CT_small.fast.mlc", Path(medcodec.__file__).parent / "data" / "examples" / "dicom16" / "CT_small.dcm"),
    ("phantom_160.slow.mlc", FORMAT_2_5 / "phantom_160.png"),
])
def test_format_2_5_files_still_decode(name, original):
    """Files written before the local least squares were compiled (format 2.5, numpy's solves, the blend
    sent: radius 9 in fast, 9, 4 and 14 in slow) decode to the same bits with this reader."""
    data = (FORMAT_2_5 / name).read_bytes()
    assert data[8:12] == b"\x02\x00\x05\x00"  # major 2, minor 5
    _assert_decodes_to(data, original)


@pytest.mark.parametrize("bits", [8, 16])
def test_png_pixel_identical(bits):
    pixels = _smooth((48, 64), bits, seed=bits)
    png = imagecodecs.png_encode(pixels)
    decoded = codec.decode(codec.encode(png, mode="classical"))
    assert decoded.kind == "png"
    np.testing.assert_array_equal(imagecodecs.png_decode(decoded.data), pixels)
    assert codec.verify(codec.encode(png, mode="classical"), original=png)["matches_original"] in ("bytes", "pixels")


def test_header_records_checksums_and_version():
    original = open(CT_SMALL, "rb").read()
    data = codec.encode(original, mode="classical")
    header, sections = container.unpack(data)
    assert header.original_sha256 == hashlib.sha256(original).digest()
    assert header.encoder_version == medcodec.__version__
    assert header.meta["frames"] == [{"method": "classical"}]
    assert header.model_id == "" and header.model_sha256 == b""
    kinds = [s.kind for s in sections]
    assert kinds.count(SectionKind.ENVELOPE) == 1 and SectionKind.PLANE in kinds


def test_info_describes_without_decoding():
    data = codec.encode(CT_SMALL, mode="classical")
    summary = codec.info(data)
    assert summary["kind"] == "dicom" and summary["integrity"] == "ok"
    assert summary["frames"][0]["method"] == "classical"
    assert summary["frames"][0]["shape"] == [128, 128]
    assert summary["section_bytes"]["envelope"] > 0 and summary["section_bytes"]["plane"] > 0
    assert summary["envelope_coding"] == "deflate+dicom-v1"
    assert summary["bpp"] == pytest.approx(8 * len(data) / (128 * 128))
    damaged = codec.info(data[:-10])
    assert damaged["integrity"].startswith("damaged") and damaged["kind"] == "dicom"


def test_info_reports_latent_bits_per_frame():
    """info --json splits a latent frame's bytes into z and residuals (and shows the method's side info)."""
    from medcodec.io import source as io_source

    src = io_source.load(_smooth((96, 112), 8))
    method = get_method("latent", "cpu")
    streams = method.encode(src.planes[0], src.bits)  # kept even if larger: this test is about reporting
    data = codec._pack_file(src, envelope_coding.pack(src.envelope), method, [(streams, {"method": "latent"})])
    frame = codec.info(data)["frames"][0]
    z_bytes = sum(len(s.payload) for s in streams if s.kind == SectionKind.LATENT_Z)
    residual_bytes = sum(len(s.payload) for s in streams if s.kind == SectionKind.RESIDUAL)
    assert frame["section_bytes"]["latent_z"] == z_bytes > 0
    assert frame["section_bytes"]["residual"] == residual_bytes > 0
    assert frame["side_info"]["z_bits"] == 8 * z_bytes
    assert frame["side_info"]["residual_bits"] == 8 * residual_bytes
    assert np.array_equal(codec.decode(data).planes[0], src.planes[0])


def test_unreadable_input():
    with pytest.raises(InvalidInputError):
        codec.encode(b"this is not an image", mode="classical")


# ----------------------------------------------------------------- learned methods and the size rule


class _PaddedMethod(ClassicalMethod):
    """A 'learned' method that is always worse than classical: classical streams plus padding."""

    name = "fast"
    model_id = "padded-test"
    model_sha256 = bytes(32)

    def encode(self, plane, bits):
        return super().encode(plane, bits) + [Stream(SectionKind.METHOD_STREAM, 0, bytes(5000))]

    def decode(self, streams, shape, bits):
        return super().decode([s for s in streams if s.kind == SectionKind.PLANE], shape, bits)


class _BetterMethod(ClassicalMethod):
    """A 'learned' method that beats the (low-effort) classical coding: JPEG-XL at a higher effort."""

    name = "fast"
    model_id = "better-test"
    model_sha256 = bytes(range(32))

    def __init__(self):
        super().__init__(effort=9)


class _NoRaster(ClassicalMethod):
    """The raster method's slot, offering nothing: these tests are about the learned-vs-classical choice
    (tests/test_pipelines_raster.py has the codec keeping real raster streams)."""

    name = "raster"

    def encode_alternatives(self, plane, bits, beaten_by=None):
        return []


@pytest.fixture
def fake_registry(monkeypatch):
    methods = {"classical": ClassicalMethod(effort=1), "jpeg": JpegHistoryMethod(),
               "jpeg-dct": JpegCoefficientsMethod(), "raster": _NoRaster()}

    def fake_get_method(name, device="auto", effort=None, **raster_options):
        if name not in methods:
            raise ModelMismatchError(f"method {name!r} is not installed")
        return methods[name]

    monkeypatch.setattr(codec, "get_method", fake_get_method)
    return methods


def test_learned_file_larger_than_classical_is_the_classical_file(fake_registry):
    fake_registry["fast"] = _PaddedMethod(effort=1)
    array = _smooth((2, 32, 32), 12)
    data = codec.encode(array, mode="fast")
    assert data == codec.encode(array, mode="classical")  # not one byte larger, and no model needed
    del fake_registry["fast"]
    np.testing.assert_array_equal(np.stack(codec.decode(data).planes), array)


def test_frames_that_fall_back_are_recoded_at_the_fallback_effort(fake_registry, monkeypatch):
    fake_registry["fast"] = _PaddedMethod(effort=1)
    choose = codec.get_method
    monkeypatch.setattr(codec, "get_method", lambda name, device="auto", effort=None, **options: (
        ClassicalMethod(effort=effort) if name == "classical" and effort is not None else choose(name, device, effort)))
    array = _smooth((1, 64, 64), 12)
    bits = io_source.load(array).bits  # what the codec codes the array's planes as
    planes = {e: ClassicalMethod(effort=e).encode(array[0], bits)[0].payload for e in (1, codec.FALLBACK_EFFORT)}
    assert len(planes[codec.FALLBACK_EFFORT]) < len(planes[1])

    def plane_payload(data):
        return [s.payload for s in container.unpack(data)[1] if s.kind == SectionKind.PLANE]

    data = codec.encode(array, mode="fast")  # fast loses; its frame falls back, at effort 1 and 9
    assert container.unpack(data)[0].meta["frames"][0]["method"] == "classical"
    assert plane_payload(data) == [planes[codec.FALLBACK_EFFORT]]
    np.testing.assert_array_equal(np.stack(codec.decode(data).planes), array)
    assert plane_payload(codec.encode(array, mode="fast", effort=1)) == [planes[1]]  # a chosen effort stays


class _SelectiveMethod(_BetterMethod):
    """Better than classical on busy frames, much worse on flat ones: the codec must mix per frame."""

    def encode(self, plane, bits):
        streams = super().encode(plane, bits)
        if plane.max() == plane.min():
            streams.append(Stream(SectionKind.METHOD_STREAM, 0, bytes(5000)))
        return streams

    def decode(self, streams, shape, bits):
        return super().decode([s for s in streams if s.kind == SectionKind.PLANE], shape, bits)


def test_frames_fall_back_one_by_one_with_a_note(fake_registry):
    fake_registry["fast"] = _SelectiveMethod()
    array = np.stack([_smooth((96, 96), 16, seed=3), np.zeros((96, 96), np.uint16)])
    data = codec.encode(array, mode="fast")
    assert len(data) < len(codec.encode(array, mode="classical"))
    frames = container.unpack(data)[0].meta["frames"]
    assert frames[0] == {"method": "fast"}
    assert frames[1]["method"] == "classical" and frames[1]["fallback"].startswith("fast was ")
    np.testing.assert_array_equal(np.stack(codec.decode(data).planes), array)


def test_learned_frames_used_when_smaller_and_weights_checked(fake_registry):
    fake_registry["fast"] = _BetterMethod()
    array = _smooth((96, 96), 16, seed=3)
    data = codec.encode(array, mode="fast")
    assert len(data) < len(codec.encode(array, mode="classical"))
    header, _ = container.unpack(data)
    assert header.meta["frames"] == [{"method": "fast"}]
    assert header.model_id == "better-test" and header.model_sha256 == bytes(range(32))
    np.testing.assert_array_equal(codec.decode(data).planes[0], array)

    other = _BetterMethod()
    other.model_sha256 = bytes(32)  # same id, different weights
    fake_registry["fast"] = other
    with pytest.raises(ModelMismatchError, match="better-test"):
        codec.decode(data)
    del fake_registry["fast"]
    with pytest.raises(ModelMismatchError):
        codec.decode(data)


def _once_jpeg(height, width, quality, seed=0):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    scene = np.clip(120 + 60 * np.sin(x / 7.0) * np.cos(y / 11.0) + rng.normal(0, 5, (height, width)), 0, 255)
    return imagecodecs.jpeg8_decode(imagecodecs.jpeg8_encode(scene.astype(np.uint8), level=quality))


def test_once_jpeg_frames_are_coded_as_their_jpeg_and_need_no_weights(fake_registry):
    fake_registry["fast"] = _BetterMethod()
    array = np.stack([_once_jpeg(96, 96, 80), _smooth((96, 96), 8, seed=3).astype(np.uint8)])  # 8-bit planes
    data = codec.encode(array, mode="fast")
    header, _ = container.unpack(data)
    jpeg_method = header.meta["frames"][0]["method"]  # the JPEG transcoded by JPEG-XL, or by medcodec
    assert jpeg_method in ("jpeg", "jpeg-dct") and header.meta["frames"][1:] == [{"method": "fast"}]
    assert header.model_id == "better-test"  # the fast frame needs the weights
    np.testing.assert_array_equal(np.stack(codec.decode(data).planes), array)

    only_jpeg = codec.encode(array[:1], mode="fast")
    header, _ = container.unpack(only_jpeg)
    assert header.meta["frames"] == [{"method": jpeg_method}] and header.model_id == "" and header.method == "fast"
    assert len(only_jpeg) < 0.8 * len(codec.encode(array[:1], mode="classical"))
    del fake_registry["fast"]  # decodes without any learned method installed
    np.testing.assert_array_equal(codec.decode(only_jpeg).planes[0], array[0])
    info = codec.info(only_jpeg)
    assert info["frames"][0]["method"] == jpeg_method and info["section_bytes"]["method_stream"] > 0


def test_learned_coding_is_not_run_where_the_jpeg_history_wins_by_far(fake_registry):
    calls = []

    class Counting(_BetterMethod):
        def encode(self, plane, bits):
            calls.append(plane.shape)
            return super().encode(plane, bits)

    fake_registry["fast"] = Counting()
    array = np.stack([_once_jpeg(96, 96, 50), _smooth((96, 96), 8, seed=3).astype(np.uint8)])
    data = codec.encode(array, mode="fast")
    methods = [f["method"] for f in container.unpack(data)[0].meta["frames"]]
    assert methods[0] in ("jpeg", "jpeg-dct") and methods[1:] == ["fast"]
    assert calls == [(96, 96)]  # only the second frame was coded by the learned method
    np.testing.assert_array_equal(np.stack(codec.decode(data).planes), array)


def test_classical_mode_stays_jpeg_xl_only():
    data = codec.encode(_once_jpeg(64, 64, 80), mode="classical")
    assert container.unpack(data)[0].meta["frames"] == [{"method": "classical"}]


def test_frame_method_from_a_newer_medcodec_is_refused_as_such():
    data = codec.encode(_smooth((32, 32), 8), mode="classical")
    header, _ = container.unpack(data)
    newer = _repack(data, header_changes={"meta": {**header.meta, "frames": [{"method": "future-method"}]}})
    with pytest.raises(UnsupportedVersionError, match="newer medcodec"):
        codec.decode(newer)


class _TwoLayoutMethod(_BetterMethod):
    """A 'slow' method whose own streams are padded but which also offers them in the fast layout."""

    name = "slow"

    def encode_alternatives(self, plane, bits):
        streams = super().encode(plane, bits)
        return [("slow", streams + [Stream(SectionKind.METHOD_STREAM, 0, bytes(100))]), ("fast", streams)]


def test_the_smallest_alternative_is_kept_and_decoded_by_the_method_it_names(fake_registry):
    fake_registry["slow"] = _TwoLayoutMethod()
    fake_registry["fast"] = _BetterMethod()  # same weights (model id and sha256) as the slow method
    array = _smooth((96, 96), 16, seed=3)
    data = codec.encode(array, mode="slow")
    header, _ = container.unpack(data)
    assert header.method == "slow" and header.meta["frames"] == [{"method": "fast"}]
    assert header.model_id == "better-test"
    np.testing.assert_array_equal(codec.decode(data).planes[0], array)


def test_real_slow_mode_is_never_larger_than_fast_mode():
    array = np.stack([_smooth((70, 90), 12, seed=4), _smooth((70, 90), 12, seed=8)])
    try:
        sizes = {mode: len(codec.encode(array, mode=mode, device="cpu")) for mode in ("fast", "slow")}
    except ModelMismatchError:
        pytest.skip("the shipped subimage model is not installed")
    assert sizes["slow"] <= sizes["fast"]


def test_real_fast_mode_works_or_fails_clearly():
    array = _smooth((64, 64), 12)
    try:
        data = codec.encode(array, mode="fast", device="cpu")
    except ModelMismatchError as exc:
        assert "fast" in str(exc)
        return
    assert len(data) <= len(codec.encode(array, mode="classical"))
    np.testing.assert_array_equal(codec.decode(data, device="cpu").planes[0], array)


# ----------------------------------------------------------------------------------- damage


def _repack(data, *, header_changes=None, section_change=None):
    """Rebuild a stream with valid CRCs but altered content: only the checksums can catch it."""
    header, sections = container.unpack(data)
    for key, value in (header_changes or {}).items():
        setattr(header, key, value)
    if section_change:
        sections = [section_change(s) for s in sections]
    return container.pack(header, sections)


def test_every_flipped_byte_is_caught():
    data = codec.encode(CT_SMALL, mode="classical")
    positions = sorted(set(np.linspace(0, len(data) - 1, 97).astype(int)))
    for pos in positions:
        damaged = bytearray(data)
        damaged[pos] ^= 0x10
        with pytest.raises(CorruptStreamError):
            codec.decode(bytes(damaged))


def test_truncation_is_caught():
    data = codec.encode(CT_SMALL, mode="classical")
    for length in (0, 4, 30, len(data) // 2, len(data) - 1):
        with pytest.raises(CorruptStreamError):
            codec.decode(data[:length])


def test_pixel_checksum_catches_wrong_planes_with_valid_crcs():
    array = _smooth((20, 30), 12)
    data = codec.encode(array, mode="classical")
    bits = container.unpack(data)[0].bits_stored
    wrong = ClassicalMethod().encode(array ^ np.uint16(1), bits)[0].payload

    def swap(section):
        if section.kind == SectionKind.PLANE:
            section.payload = wrong
        return section

    with pytest.raises(CorruptStreamError, match="checksum mismatch"):
        codec.decode(_repack(data, section_change=swap))


def test_file_checksum_catches_a_wrong_envelope_with_valid_crcs():
    data = codec.encode(CT_SMALL, mode="classical")
    with pytest.raises(CorruptStreamError, match="checksum mismatch"):
        codec.decode(_repack(data, header_changes={"original_sha256": bytes(32)}))


def test_malformed_frame_metadata_is_corruption():
    data = codec.encode(_smooth((20, 30), 12), mode="classical")
    for meta in ({}, {"frames": []}, {"frames": [{"shape": [1]}]}, {"frames": ["x"]}):
        with pytest.raises(CorruptStreamError):
            codec.decode(_repack(data, header_changes={"meta": meta}))


def test_suggested_extension():
    assert [codec.suggested_extension(k) for k in ("dicom", "png", "tiff", "npy")] == [".dcm", ".png", ".tif", ".npy"]


def test_public_exports():
    assert medcodec.encode is codec.encode and medcodec.decode is codec.decode and medcodec.info is codec.info
    assert get_method("classical").name == "classical"


def test_a_frame_that_barely_beats_the_classical_coding_is_weighed_against_the_harder_one():
    def streams(size):
        return [Stream(SectionKind.METHOD_STREAM, 0, bytes(size))]

    class Harder:
        def __init__(self, size):
            self.size, self.calls = size, 0

        def encode(self, plane, bits):
            self.calls += 1
            return streams(self.size)

    plane, base = np.zeros((4, 4), np.uint16), streams(1000)
    close, clear = streams(990), streams(900)  # 1 % and 10 % below the classical base
    assert codec.FALLBACK_REACH == 0.03
    harder = Harder(980)
    raster = {"method": "raster"}

    def weighed(chosen, meta, harder):
        return codec._with_harder_fallback(plane, 8, base, chosen, meta, harder)

    harder = Harder(980)
    assert weighed(close, raster, harder) == (streams(980), {"method": "classical"})
    assert weighed(clear, raster, harder) == (clear, raster)
    assert harder.calls == 1  # a clear win does not pay for the harder coding
    assert weighed(close, raster, Harder(995)) == (close, raster)
    note = {"method": "classical", "fallback": "fast was 12 bytes larger"}
    assert weighed(base, note, Harder(970)) == (streams(970), note)


def test_frames_coded_in_threads_give_the_same_bytes(monkeypatch, torch_threads):
    """A multi-frame file's frames are encoded in threads where the budget allows (parallel.map_in_threads):
    the same file as one thread writes, decoded to the same planes."""
    from medcodec import parallel

    monkeypatch.setattr(parallel, "available_memory", lambda: None)
    frames = np.stack([_smooth((40, 48), 12, seed=s) for s in range(3)])
    torch_threads(1)
    one = codec.encode(frames, mode="fast")
    torch_threads(2)
    assert parallel.thread_workers(3, 1) == 2
    assert codec.encode(frames, mode="fast") == one
    decoded = codec.decode(one)
    restored = np.load(__import__("io").BytesIO(decoded.data))
    np.testing.assert_array_equal(restored, frames)
    assert {f["method"] for f in codec.info(one)["frames"]} - {"classical"}  # learned frames among them


@pytest.mark.parametrize("mode", ["fast", "slow"])
def test_a_planes_codings_in_threads_give_the_same_bytes(monkeypatch, torch_threads, mode):
    """A plane's own coding and its raster codings run side by side where the budget allows (the raster
    ones wait for the own coding's size once analysed): the same file."""
    from medcodec import parallel

    monkeypatch.setattr(parallel, "available_memory", lambda: None)
    calls = []

    def counted(function, items, bytes_each):
        calls.append((len(items), parallel.thread_workers(len(items), bytes_each)))
        return parallel.map_in_threads(function, items, bytes_each)

    monkeypatch.setattr(codec, "map_in_threads", counted)
    plane = _smooth((48, 56), 16, seed=3)
    torch_threads(1)
    one = codec.encode(plane, mode=mode)
    torch_threads(2)
    calls.clear()
    assert codec.encode(plane, mode=mode) == one
    # the own coding and the raster ones (but the thorough one, which a plane this small skips), two at a time
    tries = [t for t in codec.raster_tries(mode) if not t[2]]
    assert (1 + len(tries), 2) in calls
    np.testing.assert_array_equal(np.load(__import__("io").BytesIO(codec.decode(one).data)), plane)


def test_a_failing_own_coding_in_threads_fails_the_encode_without_a_hang(monkeypatch, torch_threads):
    """The raster codings wait for the own coding's size: when it fails, they get its error, not a wait."""
    import threading

    from medcodec import parallel
    from medcodec.pipelines import subimage

    monkeypatch.setattr(parallel, "available_memory", lambda: None)

    def broken(self, plane, bits):
        raise ValueError("own coding failed")

    monkeypatch.setattr(subimage.FastMethod, "encode_alternatives", broken)
    outcome = []

    def run():
        try:
            codec.encode(_smooth((40, 48), 12), mode="fast")
        except ValueError as exc:
            outcome.append(str(exc))

    torch_threads(2)
    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(120)
    assert not worker.is_alive(), "the encoder hung"
    assert outcome == ["own coding failed"]


def test_frames_decoded_in_worker_processes_give_the_same_file(monkeypatch):
    """decode(processes=2): a multi-frame file's frames in this process and a spawned worker, the same
    file as in sequence (the CLI decodes so; the library's default starts no process)."""
    frames = np.stack([_smooth((40, 48), 12, seed=s) for s in range(4)])
    data = codec.encode(frames, mode="fast")
    assert "raster" in {f["method"] for f in codec.info(data)["frames"]}  # the compiled decoder in a worker
    used = []
    real = codec.map_in_processes

    def spy(function, jobs, processes):
        used.append(processes)
        return real(function, jobs, processes)

    monkeypatch.setattr(codec, "map_in_processes", spy)
    sequential = codec.decode(data)
    monkeypatch.setattr(codec, "PROCESS_MIN_PIXELS", 0)  # these frames are far too small to be worth it
    from medcodec import parallel

    monkeypatch.setattr(parallel, "available_memory", lambda: None)
    in_processes = codec.decode(data, processes=2)
    assert used == [1, 2]
    assert in_processes.data == sequential.data
    assert all(np.array_equal(a, b) for a, b in zip(in_processes.planes, sequential.planes))
    assert codec.decode(data, processes=8, device="cpu").data == sequential.data  # at most one per frame
    assert used[-1] == 4
    # and a frame decoded by a spawned process for certain (above, this process may have taken them all)
    header, sections = container.unpack(data)
    per_frame = codec._split(sections, header.frames)[1]
    spawn = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=spawn) as pool:
        for n, frame in enumerate(codec._frames(header)):
            job = (frame["method"], header, "cpu", per_frame.get(n, []), tuple(frame["shape"]))
            np.testing.assert_array_equal(pool.submit(codec._decode_frame, job).result(), sequential.planes[n])


def test_frame_processes_only_where_they_pay():
    def frames(count, side):
        return [{"method": "raster", "shape": (side, side)} for _ in range(count)]

    assert codec._frame_processes(1, frames(8, 1024), "cpu") == 1  # not asked for
    assert codec._frame_processes(4, frames(1, 4096), "cpu") == 1  # one frame
    assert codec._frame_processes(4, frames(3, 256), "cpu") == 1  # under PROCESS_MIN_PIXELS in all
    assert codec._frame_processes(4, frames(3, 1024), "cpu") in (1, 2, 3)  # at most one per frame (and memory)
