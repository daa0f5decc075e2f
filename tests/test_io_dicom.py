"""DICOM round trips: every pydicom test file byte-exact, plus synthetic edge cases of the word split."""

from __future__ import annotations

import io
import lzma
import os
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian, generate_uid

from medcodec import codec
from medcodec.errors import CorruptStreamError, InvalidInputError
from medcodec.io import load, restore
from medcodec.io.source import unpack_envelope

PYDICOM_FILES = Path(os.path.dirname(get_testdata_file("CT_small.dcm")))
CORPUS_NOPREAMBLE = Path("/work/shared/corpus/train/dicom16/barre_CT-MONO2-12-lomb-an2_nopreamble.dcm")


def roundtrip(data: bytes):
    source = load(data)
    assert source.kind == "dicom"
    assert restore(source.kind, source.envelope, source.planes) == data
    for plane in source.planes:
        assert plane.dtype == np.uint16 and plane.ndim == 2
        assert int(plane.max(initial=0)) < (1 << source.bits)
    return source


def envelope_meta(source) -> dict:
    return unpack_envelope(source.envelope)[0]


def make_dicom(words: np.ndarray, *, alloc: int = 16, stored: int = 16, signed: bool = False,
               high_bit: int | None = None, ts: str = ExplicitVRLittleEndian, frames: int | None = None,
               pixel: bytes | None = None) -> bytes:
    """A small Part-10 file whose PixelData holds exactly the given words (in the syntax's byte order)."""
    rows, cols = words.shape[-2:]
    ds = Dataset()
    ds.Modality = "CT"
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    ds.Rows, ds.Columns = rows, cols
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored = alloc, stored
    ds.HighBit = stored - 1 if high_bit is None else high_bit
    ds.PixelRepresentation = int(signed)
    if frames is not None:
        ds.NumberOfFrames = frames
    big = ts == ExplicitVRBigEndian
    if pixel is None:
        dtype = np.uint8 if alloc == 8 else (">u2" if big else "<u2")
        pixel = np.asarray(words).astype(dtype).tobytes()
    ds.PixelData = pixel
    ds["PixelData"].VR = "OB" if alloc == 8 else "OW"
    meta = FileMetaDataset()
    meta.TransferSyntaxUID = ts
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.file_meta = meta
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


# ---------------------------------------------------------------- pydicom's bundled files


NOT_DICOM_SUFFIXES = {".txt", ".json", ".dump", ".icc", ".gz"}


def _pydicom_files() -> list[Path]:
    """Every DICOM file pydicom bundles (skipping its READMEs, text dumps, ICC profile and gzip)."""
    return sorted(p for p in PYDICOM_FILES.rglob("*")
                  if p.is_file() and p.suffix not in NOT_DICOM_SUFFIXES and p.name != "README")


@pytest.mark.parametrize("path", _pydicom_files(), ids=lambda p: str(p.relative_to(PYDICOM_FILES)))
def test_pydicom_test_files_roundtrip_byte_exact(path: Path) -> None:
    data = path.read_bytes()
    try:
        source = load(data)
    except InvalidInputError:
        # Only preamble-less files may be refused: no_meta.dcm starts with a stray byte that even
        # pydicom parses as one unknown element, so there is nothing DICOM-shaped to keep.
        assert data[128:132] != b"DICM", "a Part-10 file was refused"
        assert path.name == "no_meta.dcm"
        return
    assert source.kind == "dicom"
    assert restore(source.kind, source.envelope, source.planes) == data


def _plane_from_pixel_array(ds: pydicom.Dataset, bits: int) -> np.ndarray:
    values = ds.pixel_array.astype(np.int64)
    if ds.PixelRepresentation == 1:
        values = values + (1 << (bits - 1))
    return values.astype(np.uint16)


@pytest.mark.filterwarnings("ignore:The pixel data is .* excess padding")  # MR_small_padded, on purpose
@pytest.mark.parametrize("name", ["CT_small.dcm", "MR_small.dcm", "MR_small_bigendian.dcm",
                                  "MR_small_implicit.dcm", "MR_small_padded.dcm", "MR_small_expb.dcm"])
def test_native_files_are_modelled_and_match_pixel_array(name: str) -> None:
    data = Path(get_testdata_file(name)).read_bytes()
    source = roundtrip(data)
    ds = pydicom.dcmread(io.BytesIO(data))
    assert len(source.planes) == 1
    assert source.bits == ds.BitsStored
    assert source.signed == (ds.PixelRepresentation == 1)
    assert source.modality == ds.Modality
    assert source.photometric == "MONOCHROME2"
    np.testing.assert_array_equal(source.planes[0], _plane_from_pixel_array(ds, source.bits))
    assert envelope_meta(source)["high"] == "canonical"


def test_big_endian_gives_the_same_planes_as_little_endian() -> None:
    little = load(Path(get_testdata_file("MR_small.dcm")).read_bytes())
    big = load(Path(get_testdata_file("MR_small_bigendian.dcm")).read_bytes())
    np.testing.assert_array_equal(little.planes[0], big.planes[0])


def test_bits_stored_12_file_codes_only_the_low_bits() -> None:
    data = Path(get_testdata_file("examples_overlay.dcm")).read_bytes()
    source = roundtrip(data)
    ds = pydicom.dcmread(io.BytesIO(data))
    assert source.bits == 12
    raw = np.frombuffer(ds.PixelData, "<u2").reshape(ds.Rows, ds.Columns)
    np.testing.assert_array_equal(source.planes[0], raw & 0x0FFF)
    # This file's overlay lives in OverlayData, so its high bits are clean; if not, they are stored.
    assert envelope_meta(source)["high"] == ("stored" if (raw >> 12).any() else "canonical")
    # The envelope never holds a second copy of the pixels.
    assert len(source.envelope) < len(data) - raw.nbytes + 1024


@pytest.mark.parametrize("name", ["rtdose_rle.dcm", "JPEG2000.dcm", "rtdose.dcm", "liver_1frame.dcm"])
def test_unmodelled_files_keep_pixels_verbatim(name: str) -> None:
    source = roundtrip(Path(get_testdata_file(name)).read_bytes())
    assert source.planes == []
    assert "verbatim" in source.description


def test_a_palette_colour_file_codes_its_indices_as_a_plane() -> None:
    """PALETTE COLOR (an ultrasound): the samples are indices into the header's lookup tables, which stay
    with the header; the indices are a plane like any grey one."""
    data = Path(get_testdata_file("examples_palette.dcm")).read_bytes()
    source = roundtrip(data)
    assert len(source.planes) == 1 and source.bits == 8 and source.photometric == "PALETTE COLOR"
    ds = pydicom.dcmread(io.BytesIO(data))
    np.testing.assert_array_equal(source.planes[0], np.frombuffer(ds.PixelData, np.uint8).reshape(ds.Rows, ds.Columns))
    stream = codec.encode(data, mode="classical")
    assert len(stream) < 0.8 * len(lzma.compress(data)) and codec.decode(stream).data == data


@pytest.mark.parametrize("name,how", [("MR_small_jpeg_ls_lossless.dcm", "re-encoded exactly"),
                                      ("MR_small_RLE.dcm", "replayed exactly"),
                                      ("MR_small_jp2klossless.dcm", "code-blocks re-encoded exactly")])
def test_a_lossless_compressed_file_gives_its_planes(name: str, how: str) -> None:
    """Its scan is written again from the samples (io.dicom_scans), its RLE segments' control bytes
    replayed over them (io.dicom_rle), or its code-blocks written again (io.dicom_jpeg2000): no longer
    kept verbatim."""
    source = roundtrip(Path(get_testdata_file(name)).read_bytes())
    assert len(source.planes) == 1 and source.decompressed and how in source.description
    reference = Path(get_testdata_file("MR_small.dcm"))  # the same image, uncompressed
    assert np.array_equal(source.planes[0], roundtrip(reference.read_bytes()).planes[0])


# ---------------------------------------------------------------- synthetic edge cases


def test_bits_stored_12_with_garbage_high_bits() -> None:
    rng = np.random.default_rng(1)
    words = rng.integers(0, 1 << 16, size=(7, 5), dtype=np.uint16)
    source = roundtrip(make_dicom(words, stored=12))
    np.testing.assert_array_equal(source.planes[0], words & 0x0FFF)
    assert envelope_meta(source)["high"] == "stored"


def test_signed_16_bit_extremes_in_offset_binary() -> None:
    values = np.array([[-32768, -1, 0, 1, 32767]], dtype=np.int16)
    source = roundtrip(make_dicom(values.view(np.uint16), signed=True))
    assert source.signed and source.bits == 16
    np.testing.assert_array_equal(source.planes[0], [[0, 32767, 32768, 32769, 65535]])


def test_signed_12_bit_sign_extended_is_canonical() -> None:
    values = np.array([[-2048, -1, 0, 2047]], dtype=np.int16)
    source = roundtrip(make_dicom(values.view(np.uint16), stored=12, signed=True))
    np.testing.assert_array_equal(source.planes[0], [[0, 2047, 2048, 4095]])
    assert envelope_meta(source)["high"] == "canonical"


def test_signed_12_bit_without_sign_extension_is_canonical_too() -> None:
    words = np.array([[0x0800, 0x0FFF, 0x0000, 0x07FF]], dtype=np.uint16)  # -2048, -1, 0, 2047 in 12 bits
    source = roundtrip(make_dicom(words, stored=12, signed=True))
    np.testing.assert_array_equal(source.planes[0], [[0, 2047, 2048, 4095]])
    assert envelope_meta(source)["high"] == "canonical"


def test_unsigned_16_bit_extremes_and_1x1() -> None:
    source = roundtrip(make_dicom(np.array([[65535]], dtype=np.uint16)))
    np.testing.assert_array_equal(source.planes[0], [[65535]])
    source = roundtrip(make_dicom(np.array([[0, 65535, 0]], dtype=np.uint16)))
    np.testing.assert_array_equal(source.planes[0], [[0, 65535, 0]])


def test_8_bit_allocated_odd_length_value_is_padded_and_kept() -> None:
    words = np.arange(9, dtype=np.uint8).reshape(3, 3) * 28
    data = make_dicom(words, alloc=8, stored=8)
    source = roundtrip(data)
    assert source.bits == 8
    np.testing.assert_array_equal(source.planes[0], words)
    # pydicom pads the 9-byte value to 10: the pad byte stays in the envelope, not in the plane.
    assert unpack_envelope(source.envelope)[1][2] == b"\x00"


def test_8_bit_with_6_bits_stored() -> None:
    words = np.array([[0x3F, 0xC1, 0x80, 0x00]], dtype=np.uint8)
    source = roundtrip(make_dicom(words, alloc=8, stored=6))
    np.testing.assert_array_equal(source.planes[0], words & 0x3F)


def test_extra_bytes_after_last_frame_and_after_dataset() -> None:
    words = np.arange(6, dtype=np.uint16).reshape(2, 3)
    pixel = words.astype("<u2").tobytes() + b"\x01\x02\x03\x04"
    data = make_dicom(words, pixel=pixel) + b"trailing garbage\x00\xff"
    source = roundtrip(data)
    np.testing.assert_array_equal(source.planes[0], words)


def test_multi_frame_gives_one_plane_per_frame() -> None:
    frames = np.arange(3 * 1 * 4, dtype=np.uint16).reshape(3, 1, 4) * 1000
    source = roundtrip(make_dicom(frames, frames=3))
    assert len(source.planes) == 3
    for plane, frame in zip(source.planes, frames):
        np.testing.assert_array_equal(plane, frame)


def test_big_endian_synthetic() -> None:
    words = np.array([[0x0102, 0xFFFE, 0x8000]], dtype=np.uint16)
    source = roundtrip(make_dicom(words, ts=ExplicitVRBigEndian))
    np.testing.assert_array_equal(source.planes[0], words)


def test_high_bit_mismatch_and_short_pixel_data_are_verbatim() -> None:
    words = np.arange(4, dtype=np.uint16).reshape(2, 2)
    assert roundtrip(make_dicom(words, stored=12, high_bit=15)).planes == []
    assert roundtrip(make_dicom(words, pixel=b"\x00" * 6)).planes == []


def test_acr_nema_file_without_preamble() -> None:
    ds = Dataset()
    ds.Modality = "CT"
    ds.Rows, ds.Columns, ds.BitsAllocated, ds.BitsStored, ds.HighBit = 2, 3, 16, 12, 11
    ds.PixelRepresentation = 0
    words = np.array([[1, 2, 3], [4095, 0, 7]], dtype=np.uint16)
    ds.PixelData = words.astype("<u2").tobytes()
    ds["PixelData"].VR = "OW"
    buffer = io.BytesIO()
    ds.save_as(buffer, implicit_vr=True, little_endian=True)
    data = buffer.getvalue()
    assert data[128:132] != b"DICM"
    source = roundtrip(data)
    np.testing.assert_array_equal(source.planes[0], words)


def test_corpus_nopreamble_file() -> None:
    if not CORPUS_NOPREAMBLE.exists():
        pytest.skip("needs the shared corpus (/work/shared/corpus)")
    source = roundtrip(CORPUS_NOPREAMBLE.read_bytes())
    assert len(source.planes) == 1 and source.bits == 12


def test_implicit_syntax_synthetic() -> None:
    words = np.array([[5, 6], [7, 8]], dtype=np.uint16)
    source = roundtrip(make_dicom(words, ts=ImplicitVRLittleEndian))
    np.testing.assert_array_equal(source.planes[0], words)


# ---------------------------------------------------------------- restore checks its inputs


def test_restore_uses_the_planes_and_rejects_wrong_ones() -> None:
    words = np.arange(6, dtype=np.uint16).reshape(2, 3)
    data = make_dicom(words, stored=12)
    source = load(data)
    changed = source.planes[0].copy()
    changed[0, 0] = 9
    assert restore("dicom", source.envelope, [changed]) != data
    with pytest.raises(CorruptStreamError):
        restore("dicom", source.envelope, [])
    with pytest.raises(CorruptStreamError):
        restore("dicom", source.envelope, [np.zeros((3, 2), np.uint16)])
    with pytest.raises(CorruptStreamError):
        restore("dicom", source.envelope, [np.full((2, 3), 4096, np.uint16)])
    with pytest.raises(CorruptStreamError):
        restore("png", source.envelope, source.planes)
