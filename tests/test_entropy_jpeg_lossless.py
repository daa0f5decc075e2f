"""entropy.jpeg_lossless: lossless JPEG scans written again bit for bit, checked against libjpeg's decoder."""

import struct

import imagecodecs
import numpy as np
import pytest
from lossless_jpegs import lossless_jpeg

from medcodec.entropy import jpeg_lossless as jl

def _image(shape, precision, seed=0):
    rng = np.random.default_rng(seed)
    step = min(40, (1 << precision) // 8)
    walk = np.cumsum(rng.integers(-step, step + 1, shape), axis=1) + (1 << (precision - 1))
    return np.clip(walk, 0, (1 << precision) - 1).astype(np.uint16)


@pytest.mark.parametrize("predictor", range(1, 8))
@pytest.mark.parametrize("precision", [16, 12, 8, 2])
def test_scans_written_here_decode_with_libjpeg_and_are_found_again(predictor, precision):
    """Every predictor and precision: the scan this module writes decodes, by imagecodecs' independent
    lossless JPEG decoder, to the samples; and parse and body_matches find it again."""
    point_transform = 0
    samples = _image((23, 37), precision, seed=predictor)
    data = lossless_jpeg(samples, precision, predictor, point_transform)
    np.testing.assert_array_equal(imagecodecs.ljpeg_decode(data).astype(np.uint16), samples)
    scan = jl.parse(data)
    assert (scan.precision, scan.predictor, scan.point_transform) == (precision, predictor, point_transform)
    assert data[scan.segment_end:] == b"\xff\xd9"
    written = jl.body_matches(data, scan, samples)
    assert written is not None and scan.segment_end - scan.segment_start - written in (0, 1, 2)


def test_the_difference_32768_has_no_extra_bits():
    samples = np.array([[0, 32768, 0, 65535, 1]], np.uint16)  # differences of +-32768 modulo 2**16
    data = lossless_jpeg(samples, 16, 1)
    np.testing.assert_array_equal(imagecodecs.ljpeg_decode(data).astype(np.uint16), samples)
    assert jl.body_matches(data, jl.parse(data), samples) is not None


def test_another_encoders_scan_is_written_again_up_to_its_padding():
    samples = _image((40, 51), 16, seed=3)
    data = imagecodecs.ljpeg_encode(samples)  # liblj92: pads the last byte with zeros, not ones
    scan = jl.parse(data)
    written = jl.body_matches(data, scan, imagecodecs.ljpeg_decode(data).astype(np.uint16))
    assert written is not None and 0 <= scan.segment_end - scan.segment_start - written <= 2


def test_other_samples_do_not_match():
    samples = _image((20, 30), 12)
    data = lossless_jpeg(samples, 12, 4)
    other = samples.copy()
    other[10, 10] ^= 1
    assert jl.body_matches(data, jl.parse(data), other) is None
    with pytest.raises(ValueError):
        jl.body(samples[:5], jl.parse(data))


def test_what_this_module_does_not_write_is_refused():
    samples = _image((16, 16), 12)
    good = lossless_jpeg(samples, 12, 1)
    assert jl.parse(good) is not None
    assert jl.parse(lossless_jpeg(samples, 12, 1, restart=16)) is None  # restart markers
    assert jl.parse(lossless_jpeg(samples >> 2 << 2, 12, 1, point_transform=2)) is None
    assert jl.parse(good.replace(b"\xff\xc3", b"\xff\xc0", 1)) is None  # a DCT frame
    assert jl.parse(good[:-2]) is None  # no EOI after the segment
    assert jl.parse(good[:40]) is None  # truncated
    assert jl.parse(b"not a jpeg") is None and jl.parse(b"") is None
    two_components = good.replace(struct.pack(">BHHB", 12, 16, 16, 1), struct.pack(">BHHB", 12, 16, 16, 2), 1)
    assert jl.parse(two_components) is None


def test_put_bits_counts_past_the_buffer_without_writing_there():
    out = np.full(3, 7, np.uint8)
    acc, bits, n = jl.put_bits(0, 0, 0xFFFFF, 20, out, 0)  # FF 00 FF 00 and 4 bits left
    assert (acc, bits, n) == (0xF, 4, 4)
    assert out.tolist() == [0xFF, 0x00, 0xFF]


def _colour(shape=(23, 37), seed=0) -> np.ndarray:
    return np.stack([_image(shape, 8, seed + k) for k in range(3)], axis=-1).astype(np.uint8)


@pytest.mark.parametrize("predictor", range(1, 8))
def test_colour_scans_of_libjpeg_turbo_are_written_again(predictor):
    """Three components interleaved in one scan (libjpeg-turbo's lossless colour): each pixel's R, G, B
    differences in turn, each from its own component's predictions."""
    samples = _colour(seed=predictor)
    data = bytes(imagecodecs.jpeg8_encode(samples, lossless=True, predictor=predictor))
    scan = jl.parse(data)
    assert scan.components == 3 and len(scan.tables) == 3 and scan.predictor == predictor
    written = jl.body_matches(data, scan, samples)
    assert written is not None and scan.segment_end - scan.segment_start - written in (0, 1, 2)
    assert jl.body_matches(data, scan, samples[..., ::-1]) is None  # the components' order matters
    with pytest.raises(ValueError):
        jl.body(samples[..., 0], scan)


def test_gdcms_colour_scan_and_refused_colour_layouts():
    import pydicom
    from pydicom.data import get_testdata_file
    from pydicom.encaps import generate_frames

    ds = pydicom.dcmread(get_testdata_file("SC_rgb_jpeg_gdcm.dcm"))
    frame = next(generate_frames(ds.PixelData, number_of_frames=1))
    scan = jl.parse(frame)
    assert scan.components == 3 and jl.body_matches(frame, scan, imagecodecs.ljpeg_decode(frame)) is not None
    good = bytes(imagecodecs.jpeg8_encode(_colour((16, 16)), lossless=True))
    sof = good.index(b"\xff\xc3")
    subsampled = bytearray(good)
    subsampled[sof + 2 + 9] = 0x21  # the first component sampled 2x1: not one sample each an MCU
    assert jl.parse(bytes(subsampled)) is None
    sos = good.index(b"\xff\xda")
    reordered = bytearray(good)
    reordered[sos + 5], reordered[sos + 7] = reordered[sos + 7], reordered[sos + 5]  # the scan's order not the frame's
    assert jl.parse(bytes(reordered)) is None
