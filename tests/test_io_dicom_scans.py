"""io.dicom_scans: lossless-JPEG and JPEG-LS DICOM files coded as planes and given back byte for byte."""

import os

import imagecodecs
import numpy as np
import pydicom
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydicom.encaps import encapsulate
from pydicom.uid import JPEGLSLossless, JPEGLosslessSV1

from damaged_envelopes import decoded_or_refused
from encapsulated import CT_SMALL, encapsulated_dicom
from lossless_jpegs import lossless_jpeg

from medcodec import codec
from medcodec.errors import CorruptStreamError
from medcodec.io import dicom, dicom_colour, dicom_scans

def _words() -> np.ndarray:
    ds = pydicom.dcmread(CT_SMALL)
    return np.frombuffer(ds.PixelData, "<u2").reshape(ds.Rows, ds.Columns).copy()


def jpeg_lossless_dicom(frames: list[bytes], count: int = 1, fragments_per_frame: int = 1,
                        syntax: str = JPEGLosslessSV1) -> bytes:
    """CT_small with its PixelData replaced by these lossless JPEG (or JPEG-LS) frames, encapsulated."""
    return encapsulated_dicom(frames, syntax, count, fragments_per_frame)


def test_a_jpeg_lossless_file_gives_its_samples_and_comes_back_byte_for_byte():
    words = _words()
    data = jpeg_lossless_dicom([imagecodecs.ljpeg_encode(words)])  # liblj92's scan, another encoder's
    read = dicom.read_dicom(data)
    assert read.meta["layout"] == "jpeg-lossless" and read.bits == 16 and read.signed
    assert "re-encoded exactly" in read.description
    (plane,) = read.planes
    np.testing.assert_array_equal(plane, words ^ np.uint16(0x8000))  # two's complement -> offset binary
    assert dicom.write_dicom(read.meta, read.blobs, read.planes) == data
    # the kept bytes are the headers only: the scan itself is what the planes give back
    assert len(read.blobs[1]) < 400
    stream = codec.encode(data, mode="classical")
    assert len(stream) < len(data)
    decoded = codec.decode(stream)
    assert decoded.data == data and decoded.fidelity == "bytes"


@pytest.mark.parametrize("count,fragments_per_frame,has_bot", [(1, 3, True), (3, 1, True), (3, 2, True),
                                                                (3, 2, False)])
def test_fragments_and_frames(count, fragments_per_frame, has_bot):
    """Several fragments per frame of a multi-frame file: grouped by the offset table, or without one by
    where a JPEG starts."""
    words = _words()
    samples = [np.roll(words, 7 * k, axis=1) for k in range(count)]
    frames = [lossless_jpeg(s, 16, 1 + k) for k, s in enumerate(samples)]  # a predictor per frame
    data = encapsulated_dicom(frames, JPEGLosslessSV1, count, fragments_per_frame, has_bot=has_bot)
    read = dicom.read_dicom(data)
    assert read.meta["layout"] == "jpeg-lossless" and len(read.planes) == count
    pieces = [len(f["pieces"]) for f in read.meta["frames"]]
    assert pieces == [fragments_per_frame] * count  # the scans spread over every fragment
    for plane, sample in zip(read.planes, samples):
        np.testing.assert_array_equal(plane, sample ^ np.uint16(0x8000))
    assert dicom.write_dicom(read.meta, read.blobs, read.planes) == data
    assert codec.decode(codec.encode(data, mode="classical")).data == data


def test_an_offset_table_that_names_no_fragment_leaves_the_value_verbatim():
    frames = [lossless_jpeg(np.roll(_words(), 7 * k, axis=1), 16, 1) for k in range(3)]
    data = bytearray(encapsulated_dicom(frames, JPEGLosslessSV1, 3, 2))
    table = data.index(b"\xfe\xff\x00\xe0\x0c\x00\x00\x00") + 8  # the offset table's three entries
    data[table + 4] += 2  # the second frame's first item, two bytes off
    read = dicom.read_dicom(bytes(data))
    assert read.meta["layout"] == "split" and read.planes == []


def test_scans_not_written_here_stay_verbatim():
    words = _words()
    data = jpeg_lossless_dicom([lossless_jpeg(words, 16, 1, restart=128)])  # restart markers
    read = dicom.read_dicom(data)
    assert read.meta["layout"] == "split" and not read.planes and "kept verbatim" in read.description
    assert codec.decode(codec.encode(data, mode="classical")).data == data
    # several frames in one fragment: an item layout not handled here
    two = jpeg_lossless_dicom([lossless_jpeg(words, 16, 1) + lossless_jpeg(words, 16, 1)], count=2)
    assert dicom.read_dicom(two).meta["layout"] == "split"


def test_a_frame_cannot_declare_more_samples_than_its_bytes_can_hold():
    words = _words()
    frame = bytearray(lossless_jpeg(words, 16, 1))
    at = frame.index(b"\xff\xc3")
    frame[at + 5:at + 9] = (40000).to_bytes(2, "big") * 2  # a 40000 x 40000 frame in a few kilobytes
    value = bytes(encapsulate([bytes(frame)]))
    assert dicom_scans.split(value, 40000, 40000, 1, True, dicom_scans.LOSSLESS_JPEG) is None


def test_join_refuses_planes_that_do_not_fit():
    words = _words()
    read = dicom.read_dicom(jpeg_lossless_dicom([lossless_jpeg(words, 16, 1)]))
    kept = read.blobs[1]
    with pytest.raises(CorruptStreamError):
        dicom_scans.join(read.meta, [read.planes[0][:5]], kept)
    with pytest.raises(CorruptStreamError):
        dicom_scans.join(read.meta, read.planes * 2, kept)
    # other samples write another scan: the bytes differ, which the codec's file checksum then refuses
    other = read.planes[0].copy()
    other[3, 3] ^= 1
    try:
        assert dicom_scans.join(read.meta, [other], kept) != dicom_scans.join(read.meta, read.planes,
                                                                                              kept)
    except CorruptStreamError:
        pass  # or the rewritten scan no longer fits its place


def test_never_larger_than_the_compressed_pixel_data_kept_as_it_is():
    from medcodec.io import source as io_source

    data = jpeg_lossless_dicom([imagecodecs.ljpeg_encode(_words())])
    src = io_source.load(data)
    assert src.decompressed and not io_source.load(data, decompress=False).decompressed
    coded = codec.encode(data, mode="classical")
    assert codec._no_larger_than_kept(data, src, coded, None) == coded  # the coding is smaller: kept
    # a coding larger than the file's own JPEG: the file with its pixel data verbatim instead
    kept = codec._no_larger_than_kept(data, src, coded + bytes(len(data)), None)
    assert len(kept) < len(data) + 1000 and codec.info(kept)["frames"] == []
    assert codec.decode(kept).data == data


@pytest.mark.parametrize("syntax", [JPEGLosslessSV1, JPEGLSLossless])
@settings(max_examples=int(os.environ.get("MEDCODEC_FUZZ_EXAMPLES", "60")), deadline=None, derandomize=True)
@given(data=st.data())
def test_damaged_envelopes_end_in_a_clear_error_or_the_original(syntax, data):
    """The kept bytes and the frames' scan descriptions damaged behind valid CRCs (the envelope
    re-compressed and re-packed): decoding gives the original file or refuses with a medcodec error."""
    original, stream = _fuzz_file(syntax)
    assert decoded_or_refused(stream, data) in (None, original)


_FUZZ_FILES: dict[str, tuple[bytes, bytes]] = {}


def _fuzz_file(syntax: str) -> tuple[bytes, bytes]:
    """A two-frame file of this syntax (a fragment each) and its stream, made once."""
    if syntax not in _FUZZ_FILES:
        words = _words()
        frames = [words, np.roll(words, 5, axis=0)]
        scans = ([lossless_jpeg(frames[0], 16, 1), lossless_jpeg(frames[1], 16, 6)] if syntax == JPEGLosslessSV1
                 else [imagecodecs.jpegls_encode(f) for f in frames])
        data = jpeg_lossless_dicom(scans, count=2, syntax=syntax)
        assert dicom.read_dicom(data).meta["layout"] in ("jpeg-lossless", "jpeg-ls")
        _FUZZ_FILES[syntax] = (data, codec.encode(data, mode="classical"))
    return _FUZZ_FILES[syntax]


@pytest.mark.parametrize("count,fragments_per_frame", [(1, 1), (1, 3), (2, 1)])
def test_jpeg_ls_files_give_their_samples_and_come_back_byte_for_byte(count, fragments_per_frame):
    words = _words()
    frames = [imagecodecs.jpegls_encode(np.roll(words, 9 * k, axis=1)) for k in range(count)]  # CharLS's scans
    data = jpeg_lossless_dicom(frames, count, fragments_per_frame, syntax=JPEGLSLossless)
    read = dicom.read_dicom(data)
    assert read.meta["layout"] == "jpeg-ls" and read.bits == 16 and len(read.planes) == count
    np.testing.assert_array_equal(read.planes[0], words ^ np.uint16(0x8000))
    assert dicom.write_dicom(read.meta, read.blobs, read.planes) == data
    stream = codec.encode(data, mode="classical")
    assert len(stream) < len(data) and codec.decode(stream).data == data


def test_frames_of_more_samples_than_allowed_stay_verbatim():
    """A JPEG-LS run codes thousands of samples in a few bits: the caller's pixel limit decides."""
    data = jpeg_lossless_dicom([imagecodecs.jpegls_encode(_words())], syntax=JPEGLSLossless)
    assert dicom.read_dicom(data, max_pixels=128 * 128).meta["layout"] == "jpeg-ls"
    assert dicom.read_dicom(data, max_pixels=128 * 128 - 1).meta["layout"] == "split"
    from medcodec.io import source as io_source

    assert io_source.load(data, max_pixels=1000).planes == []


def _colour_frames(count: int) -> list[np.ndarray]:
    """Colour images (128 x 128): three differently shifted views of CT_small, 8-bit, a tinted square."""
    grey = (_words().astype(np.int64) >> 4).clip(0, 255).astype(np.uint8)
    out = []
    for k in range(count):
        image = np.stack([np.roll(grey, 3 * k, axis=1)] * 3, axis=-1)
        image[20:60, 30:90, 0] = 255 - image[20:60, 30:90, 0]  # a region not grey
        out.append(image)
    return out


def _colour_scan(syntax: str, image: np.ndarray, k: int) -> bytes:
    """A colour frame as libjpeg-turbo's lossless JPEG (predictor 1 + k) or CharLS's JPEG-LS (ILV 2)."""
    if syntax == JPEGLSLossless:
        return bytes(imagecodecs.jpegls_encode(image))
    return bytes(imagecodecs.jpeg8_encode(image, lossless=True, predictor=1 + k))


@pytest.mark.parametrize("syntax,layout", [(JPEGLosslessSV1, "jpeg-lossless"), (JPEGLSLossless, "jpeg-ls")])
@pytest.mark.parametrize("photometric,transform", [("RGB", "subtract-green"), ("YBR_FULL", "none")])
@pytest.mark.parametrize("count,fragments_per_frame", [(1, 1), (2, 3)])
def test_a_colour_lossless_file_gives_three_planes_a_frame(syntax, layout, photometric, transform, count,
                                                          fragments_per_frame):
    images = _colour_frames(count)
    scans = [_colour_scan(syntax, image, k) for k, image in enumerate(images)]
    data = encapsulated_dicom(scans, syntax, count, fragments_per_frame, colour=photometric)
    read = dicom.read_dicom(data)
    assert read.meta["layout"] == layout and read.meta["transform"] == transform
    assert len(read.planes) == 3 * count and read.bits == 8
    assert all(frame["components"] == 3 for frame in read.meta["frames"])
    assert all(len(frame["tables"]) == 3 for frame in read.meta["frames"] if layout == "jpeg-lossless")
    assert all(np.array_equal(dicom_colour.image_of(read.planes[3 * k:3 * k + 3], transform), images[k])
               for k in range(count))
    assert dicom.write_dicom(read.meta, read.blobs, read.planes) == data
    stream = codec.encode(data, mode="classical")
    assert len(stream) < 0.9 * len(data) and codec.decode(stream).data == data


def test_damaged_colour_envelopes_are_refused():
    image = _colour_frames(1)[0]
    data = encapsulated_dicom([bytes(imagecodecs.jpeg8_encode(image, lossless=True))], JPEGLosslessSV1, colour="RGB")
    read = dicom.read_dicom(data)
    prefix, kept, suffix = read.blobs
    frame = read.meta["frames"][0]
    for change in ({"transform": "rct"}, {"bits": 12},
                   {"frames": [{**frame, "components": 2}]}, {"frames": [{**frame, "tables": frame["tables"][:2]}]}):
        with pytest.raises(CorruptStreamError):
            dicom_scans.join({**read.meta, **change}, read.planes, kept)
    with pytest.raises(CorruptStreamError, match="needs 3 planes"):
        dicom_scans.join(read.meta, read.planes[:1], kept)


_FUZZ_COLOUR: dict[str, tuple[bytes, bytes]] = {}


@pytest.mark.parametrize("syntax", [JPEGLosslessSV1, JPEGLSLossless])
@settings(max_examples=int(os.environ.get("MEDCODEC_FUZZ_EXAMPLES", "60")) // 2, deadline=None, derandomize=True)
@given(data=st.data())
def test_damaged_colour_envelopes_end_in_a_clear_error_or_the_original(syntax, data):
    if syntax not in _FUZZ_COLOUR:
        scans = [_colour_scan(syntax, image, 0) for image in _colour_frames(2)]
        original = encapsulated_dicom(scans, syntax, 2, colour="RGB")
        _FUZZ_COLOUR[syntax] = (original, codec.encode(original, mode="classical"))
    original, stream = _FUZZ_COLOUR[syntax]
    assert decoded_or_refused(stream, data) in (None, original)
