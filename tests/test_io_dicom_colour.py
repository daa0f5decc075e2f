"""io.dicom_colour: native 8-bit colour DICOM coded as three planes a frame, given back byte for byte."""

import io
import os

import numpy as np
import pydicom
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

from damaged_envelopes import decoded_or_refused
from encapsulated import CT_SMALL, saved

from medcodec import codec
from medcodec.errors import CorruptStreamError
from medcodec.io import dicom, dicom_colour


def colour_image(frames: int = 1) -> np.ndarray:
    """[frames, 128, 128, 3] uint8: CT_small's samples as grey, a coloured square on it."""
    words = pydicom.dcmread(CT_SMALL).pixel_array.astype(np.int32)
    grey = np.clip((words - words.min()) // 8, 0, 255).astype(np.uint8)
    out = np.repeat(grey[None, :, :, None], 3, axis=3).repeat(frames, axis=0)
    for k in range(frames):
        out[k, 40 + k:70 + k, 30:60] = [200, 40 + 3 * k, 10]
    return out


def colour_dicom(images: np.ndarray, photometric: str = "RGB", planar: int = 0,
                 syntax: str = ExplicitVRLittleEndian, tail: bytes = b"") -> bytes:
    ds = pydicom.dcmread(CT_SMALL)
    ds.file_meta.TransferSyntaxUID = syntax
    ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, photometric, planar
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    if images.shape[0] > 1:
        ds.NumberOfFrames = images.shape[0]
    ordered = images.transpose(0, 3, 1, 2) if planar == 1 else images
    ds.PixelData = np.ascontiguousarray(ordered).tobytes() + tail
    ds["PixelData"].VR = "OB"
    return saved(ds)


@pytest.mark.parametrize("photometric,planar,frames,syntax", [
    ("RGB", 0, 1, ExplicitVRLittleEndian), ("RGB", 1, 2, ExplicitVRLittleEndian),
    ("RGB", 0, 1, ImplicitVRLittleEndian), ("YBR_FULL", 0, 1, ExplicitVRLittleEndian)])
def test_colour_files_give_three_planes_a_frame_and_come_back_byte_for_byte(photometric, planar, frames, syntax):
    images = colour_image(frames)
    data = colour_dicom(images, photometric, planar, syntax, tail=b"\x00\x01")
    read = dicom.read_dicom(data)
    assert read.meta["layout"] == "colour" and len(read.planes) == 3 * frames
    assert read.bits == 8
    if photometric == "YBR_FULL":
        np.testing.assert_array_equal(read.planes[1], images[0, :, :, 1])
    assert dicom.write_dicom(read.meta, read.blobs, read.planes) == data
    stream = codec.encode(data, mode="classical")
    assert len(stream) < len(data) / 2 and codec.decode(stream).data == data


def test_colour_medcodec_does_not_model_stays_verbatim():
    images = colour_image()
    for data in (colour_dicom(images, "YBR_PARTIAL_422"), colour_dicom(images, "YBR_ICT")):
        read = dicom.read_dicom(data)
        assert read.meta["layout"] == "split" and read.planes == []
        assert codec.decode(codec.encode(data, mode="classical")).data == data


def test_join_refuses_planes_the_file_cannot_hold():
    data = colour_dicom(colour_image())
    read = dicom.read_dicom(data)
    g, dr, db = read.planes
    with pytest.raises(CorruptStreamError):
        dicom_colour.join(read.meta, [g, dr, np.full_like(db, 256)], b"")
    with pytest.raises(CorruptStreamError):
        dicom_colour.join(read.meta, [g, dr], b"")
    with pytest.raises(CorruptStreamError):
        dicom_colour.join({**read.meta, "planar": 2}, read.planes, b"")
    # a description of no frames (only a damaged envelope says so) joins to the tail, not to a ValueError
    assert dicom_colour.join({**read.meta, "frames": 0}, [], b"tail") == b"tail"


_FUZZ: list[tuple[bytes, bytes]] = []


@settings(max_examples=int(os.environ.get("MEDCODEC_FUZZ_EXAMPLES", "60")), deadline=None, derandomize=True)
@given(data=st.data())
def test_damaged_envelopes_end_in_a_clear_error_or_the_original(data):
    """The colour layout's description and kept bytes damaged behind valid CRCs."""
    if not _FUZZ:
        original = colour_dicom(colour_image(2), planar=1, tail=b"\x00")
        _FUZZ.append((original, codec.encode(original, mode="classical")))
    original, stream = _FUZZ[0]
    assert decoded_or_refused(stream, data) in (None, original)


def _ybr_422(images: np.ndarray, tail: bytes = b"") -> tuple[bytes, list[np.ndarray]]:
    """A native YBR_FULL_422 file of these images' first channel as Y and the other two, every second
    column, as Cb and Cr (Y Y Cb Cr a pair of pixels); and the planes it should give."""
    y, cb, cr = images[..., 0], images[:, :, ::2, 1], images[:, :, ::2, 2]
    pairs = np.concatenate([y.reshape(*y.shape[:2], -1, 2), cb[..., None], cr[..., None]], axis=-1)
    ds = pydicom.dcmread(CT_SMALL)
    ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, "YBR_FULL_422", 0
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    if images.shape[0] > 1:
        ds.NumberOfFrames = images.shape[0]
    ds.PixelData = np.ascontiguousarray(pairs).tobytes() + tail
    ds["PixelData"].VR = "OB"
    return saved(ds), [p for k in range(images.shape[0]) for p in (y[k], cb[k], cr[k])]


@pytest.mark.parametrize("frames,tail", [(1, b""), (3, b"\x00\x00")])
def test_ybr_full_422_gives_luma_and_half_width_chroma(frames, tail):
    data, expected = _ybr_422(colour_image(frames), tail)
    read = dicom.read_dicom(data)
    assert read.meta["layout"] == "colour" and read.meta["transform"] == "422"
    assert [p.shape for p in read.planes] == [(128, 128), (128, 64), (128, 64)] * frames
    assert all(np.array_equal(got, want) for got, want in zip(read.planes, expected))
    assert dicom.write_dicom(read.meta, read.blobs, read.planes) == data
    stream = codec.encode(data, mode="classical")
    assert len(stream) < 0.5 * len(data) and codec.decode(stream).data == data


def test_ybr_full_422_of_an_odd_width_or_planar_1_stays_verbatim_and_damage_is_refused():
    data, _ = _ybr_422(colour_image())
    ds = pydicom.dcmread(io.BytesIO(data))
    ds.PlanarConfiguration = 1
    assert dicom.read_dicom(saved(ds)).planes == []
    ds.PlanarConfiguration, ds.Columns = 0, 127
    assert dicom.read_dicom(saved(ds)).planes == []
    read = dicom.read_dicom(data)
    prefix, suffix, tail = read.blobs
    with pytest.raises(CorruptStreamError, match="YBR_FULL_422 DICOM needs"):
        dicom_colour.join(read.meta, read.planes[:2], tail)
    with pytest.raises(CorruptStreamError, match="YBR_FULL_422 DICOM needs"):
        dicom_colour.join(read.meta, [read.planes[0], read.planes[0], read.planes[2]], tail)
