"""io.dicom_jpeg_lossy: lossy-JPEG DICOM frames recompressed (JPEG XL, or medcodec's coefficient coder) and given
back byte for byte."""

import os
from pathlib import Path

import imagecodecs
import numpy as np
import pydicom
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydicom.data import get_testdata_file
from pydicom.uid import JPEGBaseline8Bit, JPEGExtended12Bit

from damaged_envelopes import decoded_or_refused
from encapsulated import encapsulated_dicom
from jpegs import lossy_jpeg

from medcodec import codec
from medcodec.errors import CorruptStreamError
from medcodec.io import dicom, dicom_jpeg_lossy


def _image(shift: int = 0) -> np.ndarray:
    """An 8-bit image with texture: CT_small's samples scaled down."""
    words = pydicom.dcmread(get_testdata_file("CT_small.dcm")).pixel_array.astype(np.int32)
    return np.roll(np.clip((words - words.min()) // 4, 0, 255), shift, axis=1).astype(np.uint8)


def jpeg_dicom(frames: list[bytes], count: int = 1, fragments_per_frame: int = 1) -> bytes:
    """CT_small as an 8-bit image whose PixelData is these JPEG frames, encapsulated."""
    return encapsulated_dicom(frames, JPEGBaseline8Bit, count, fragments_per_frame, eight_bit=True)


@pytest.mark.parametrize("count,fragments_per_frame", [(1, 1), (1, 3), (3, 1)])
def test_jpeg_frames_come_back_byte_for_byte_and_smaller(count, fragments_per_frame):
    frames = [imagecodecs.jpeg8_encode(_image(7 * k), level=95) for k in range(count)]
    data = jpeg_dicom(frames, count, fragments_per_frame)
    read = dicom.read_dicom(data)
    assert read.meta["layout"] == "jpeg-jxl" and read.planes == [] and len(read.blobs) == 3 + count
    assert "JPEG frames recompressed exactly (" in read.description
    assert sum(map(len, read.blobs[3:])) < 0.97 * sum(map(len, frames))
    assert dicom.write_dicom(read.meta, read.blobs, read.planes) == data
    stream = codec.encode(data, mode="fast")
    assert len(stream) < len(data) and codec.decode(stream).data == data


def test_a_colour_jpeg_file():
    data = Path(get_testdata_file("SC_rgb_jpeg_dcmtk.dcm")).read_bytes()  # YBR_FULL, dcmtk's encoder
    assert dicom.read_dicom(data).meta["layout"] == "jpeg-jxl"
    stream = codec.encode(data, mode="fast")
    assert len(stream) < len(data) and codec.decode(stream).data == data


def test_what_no_coder_makes_smaller_stays_verbatim():
    data = Path(get_testdata_file("SC_rgb_small_odd_jpeg.dcm")).read_bytes()  # colour 3 x 3
    assert dicom.read_dicom(data).meta["layout"] == "split"
    assert codec.decode(codec.encode(data, mode="fast")).data == data


def twelve_bit_dicom(count: int = 1, fragments_per_frame: int = 1) -> bytes:
    """CT_small as a 12-bit unsigned image whose PixelData is 12-bit lossy JPEG frames, encapsulated."""
    frames = [lossy_jpeg(12, 90 - 5 * k, shift=11 * k) for k in range(count)]
    return encapsulated_dicom(frames, JPEGExtended12Bit, count, fragments_per_frame, bits_stored=12, unsigned=True)


@pytest.mark.parametrize("count,fragments_per_frame", [(1, 1), (1, 4), (3, 2)])
def test_twelve_bit_frames_come_back_byte_for_byte_and_smaller(count, fragments_per_frame):
    data = twelve_bit_dicom(count, fragments_per_frame)
    read = dicom.read_dicom(data)
    assert read.meta["layout"] == "jpeg-jxl" and read.planes == [] and len(read.blobs) == 3 + count
    assert all(frame["dct"]["precision"] == 12 for frame in read.meta["frames"])
    assert f"({count} by medcodec's coefficient coder;" in read.description and read.bits == 12
    assert dicom.write_dicom(read.meta, read.blobs, read.planes) == data
    stream = codec.encode(data, mode="fast")
    assert len(stream) < 0.97 * len(data) and codec.decode(stream).data == data


@pytest.mark.parametrize("name", ["JPGExtended.dcm",  # 1024 x 256, 12 bits
                                  "JPEG-lossy.dcm"])  # the same, its scan header saying Se 0
def test_twelve_bit_sample_files(name):
    data = Path(get_testdata_file(name)).read_bytes()
    assert "dct" in dicom.read_dicom(data).meta["frames"][0]
    stream = codec.encode(data, mode="fast")
    assert len(stream) < 0.8 * len(data) and codec.decode(stream).data == data


def test_damaged_scan_parameters_are_refused():
    read = dicom.read_dicom(twelve_bit_dicom())
    prefix, kept, suffix, stream = read.blobs
    fields = read.meta["frames"][0]["dct"]
    for change in ({"precision": 9}, {"pad": 2}, {"height": 0}, {"width": 70000}, {"restart": -1},
                   {"dc": [[1] * 16, [0]]}, {"ac": "x"}, {"height": "tall"}, {"quant": [1] * 63},
                   {"quant": [0] * 64}):
        meta = {**read.meta, "frames": [{**read.meta["frames"][0], "dct": {**fields, **change}}]}
        with pytest.raises(CorruptStreamError):
            dicom_jpeg_lossy.join(meta, kept, [stream])
    with pytest.raises(CorruptStreamError):
        dicom_jpeg_lossy.join(read.meta, kept, [stream[:-20]])


def test_the_pixel_limit_and_decompress_false_keep_it_verbatim():
    data = jpeg_dicom([imagecodecs.jpeg8_encode(_image(), level=95)])
    assert dicom.read_dicom(data, max_pixels=128 * 128).meta["layout"] == "jpeg-jxl"
    assert dicom.read_dicom(data, max_pixels=128 * 128 - 1).meta["layout"] == "split"
    assert dicom.read_dicom(data, decompress=False).meta["layout"] == "split"


def test_join_refuses_what_split_did_not_write():
    data = jpeg_dicom([imagecodecs.jpeg8_encode(_image(), level=95)])
    read = dicom.read_dicom(data)
    prefix, kept, suffix, jxl = read.blobs
    with pytest.raises(CorruptStreamError):
        dicom_jpeg_lossy.join(read.meta, kept, [jxl, jxl])
    with pytest.raises(CorruptStreamError):
        dicom_jpeg_lossy.join(read.meta, kept, [b"not a JPEG XL stream"])


_FUZZ: list[tuple[bytes, bytes]] = []


@settings(max_examples=int(os.environ.get("MEDCODEC_FUZZ_EXAMPLES", "60")), deadline=None, derandomize=True)
@given(data=st.data())
def test_damaged_envelopes_end_in_a_clear_error_or_the_original(data):
    """The kept bytes, the frames' JPEG XL and their description damaged behind valid CRCs."""
    if not _FUZZ:
        original = jpeg_dicom([imagecodecs.jpeg8_encode(_image(k), level=95) for k in range(2)], count=2)
        _FUZZ.append((original, codec.encode(original, mode="fast")))
    original, stream = _FUZZ[0]
    assert decoded_or_refused(stream, data) in (None, original)


_FUZZ_12: list[tuple[bytes, bytes]] = []


@settings(max_examples=int(os.environ.get("MEDCODEC_FUZZ_EXAMPLES", "60")) // 2, deadline=None, derandomize=True)
@given(data=st.data())
def test_damaged_twelve_bit_envelopes_end_in_a_clear_error_or_the_original(data):
    """As above, for frames coded by medcodec's coefficient coder (their scan parameters in the meta)."""
    if not _FUZZ_12:
        original = twelve_bit_dicom(2)
        _FUZZ_12.append((original, codec.encode(original, mode="fast")))
    original, stream = _FUZZ_12[0]
    assert decoded_or_refused(stream, data) in (None, original)


def test_a_twelve_bit_jpeg_of_another_size_than_the_file_says_stays_verbatim():
    frame = lossy_jpeg(12, 90, shape=(64, 128))  # the file says 128 x 128
    data = encapsulated_dicom([frame], JPEGExtended12Bit, bits_stored=12, unsigned=True)
    assert dicom.read_dicom(data).meta["layout"] == "split"
    assert codec.decode(codec.encode(data, mode="fast")).data == data


def test_a_colour_cine_loop_is_coded_frame_against_frame():
    """pydicom's 30-frame YBR_FULL_422 ultrasound (4:2:0 JPEG Baseline): each frame's components coded by
    medcodec's coder against the frame before's (two thirds of the luma blocks repeat)."""
    data = Path(get_testdata_file("examples_ybr_color.dcm")).read_bytes()
    read = dicom.read_dicom(data)
    frames = read.meta["frames"]
    assert len(frames) == 30 and all(len(f["dct"]["components"]) == 3 for f in frames)
    assert [f["dct"].get("reference", 0) for f in frames] == [0] + [1] * 29
    assert dicom.write_dicom(read.meta, read.blobs, read.planes) == data
    stream = codec.encode(data, mode="fast")
    assert len(stream) < 0.35 * len(data) and codec.decode(stream).data == data  # JPEG XL per frame: 0.45 x


def _colour_frames(count: int) -> list[bytes]:
    grey = _image()
    colour = np.stack([grey, grey[::-1], grey.T], axis=-1)
    return [bytes(imagecodecs.jpeg8_encode(np.roll(colour, 16 * (k // 2), axis=0), level=90, subsampling="422"))
            for k in range(count)]


def test_a_frame_coded_against_one_jpeg_xl_took(monkeypatch):
    data = encapsulated_dicom(_colour_frames(3), JPEGBaseline8Bit, 3, colour="YBR_FULL_422")
    first = []
    real = dicom_jpeg_lossy._dct

    def not_the_first(*args):
        first.append(1)
        return None if len(first) == 1 else real(*args)

    monkeypatch.setattr(dicom_jpeg_lossy, "_dct", not_the_first)
    read = dicom.read_dicom(data)
    frames = read.meta["frames"]
    assert "dct" not in frames[0] and frames[1]["dct"]["reference"] == 1  # the same image
    assert "reference" not in frames[2]["dct"]  # moved: coded alone, which is smaller
    assert dicom.write_dicom(read.meta, read.blobs, read.planes) == data


def test_damaged_colour_or_reference_fields_are_refused():
    data = encapsulated_dicom(_colour_frames(2), JPEGBaseline8Bit, 2, colour="YBR_FULL_422")
    read = dicom.read_dicom(data)
    prefix, kept, suffix, *coded = read.blobs
    assert dicom_jpeg_lossy.join(read.meta, kept, coded) == dicom.read_dicom(data, decompress=False).blobs[1]
    first, second = read.meta["frames"]  # JPEG XL (its tables would cost more in the meta), then ours
    fields = second["dct"]
    assert "dct" not in first and fields["reference"] == 1
    component = fields["components"][0]
    for change in ({"reference": 2}, {"lengths": []}, {"lengths": [-1, 5]}, {"lengths": [10 ** 6, 1]},
                   {"components": [{**component, "h": 5}] + fields["components"][1:]},
                   {"components": [{**component, "h": 4, "v": 3}] + fields["components"][1:]},
                   {"components": fields["components"] * 2}):
        meta = {**read.meta, "frames": [first, {**second, "dct": {**fields, **change}}]}
        with pytest.raises(CorruptStreamError):
            dicom_jpeg_lossy.join(meta, kept, coded)
    other_size = {**second, "dct": {**fields, "width": 100}}  # not the frame before's grids
    with pytest.raises(CorruptStreamError, match="frame before"):
        dicom_jpeg_lossy.join({**read.meta, "frames": [first, other_size]}, kept, coded)
    with pytest.raises(CorruptStreamError, match="frame 0 is coded against a frame before"):
        dicom_jpeg_lossy.join({**read.meta, "frames": [second, second]}, kept, coded[::-1])


_FUZZ_COLOUR: list[tuple[bytes, bytes]] = []


@settings(max_examples=int(os.environ.get("MEDCODEC_FUZZ_EXAMPLES", "60")) // 2, deadline=None, derandomize=True)
@given(data=st.data())
def test_damaged_colour_envelopes_end_in_a_clear_error_or_the_original(data):
    """Components, their streams' lengths and the reference flag damaged behind valid CRCs."""
    if not _FUZZ_COLOUR:
        original = encapsulated_dicom(_colour_frames(2), JPEGBaseline8Bit, 2, colour="YBR_FULL_422")
        _FUZZ_COLOUR.append((original, codec.encode(original, mode="fast")))
    original, stream = _FUZZ_COLOUR[0]
    assert decoded_or_refused(stream, data) in (None, original)
