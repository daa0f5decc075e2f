"""entropy.jpeg_ls: JPEG-LS lossless scans written again bit for bit, checked against CharLS's streams."""

import dataclasses

import imagecodecs
import numpy as np
import pytest

from medcodec.entropy import jpeg_ls


def _image(shape, top, seed=0):
    """A random walk along the rows with flat stretches (run mode) and a few wild samples (escapes)."""
    rng = np.random.default_rng(seed)
    walk = np.cumsum(rng.integers(-5, 6, shape), axis=1) + top // 2
    image = np.clip(walk, 0, top)
    image[shape[0] // 3: shape[0] // 2] = image[shape[0] // 3, 0]  # flat lines: runs to the end of the line
    image[:, shape[1] // 2: shape[1] // 2 + 9] = image[:, shape[1] // 2: shape[1] // 2 + 1]  # runs inside lines
    image[rng.integers(0, shape[0], 20), rng.integers(0, shape[1], 20)] = rng.integers(0, top + 1, 20)
    return image.astype(np.uint8 if top < 256 else np.uint16)


@pytest.mark.parametrize("top", [255, 4095, 65535, 1023])
@pytest.mark.parametrize("shape", [(41, 57), (1, 30), (30, 1), (300, 3)])
def test_charls_scans_are_written_again(top, shape):
    samples = _image(shape, top, seed=top % 7)
    data = imagecodecs.jpegls_encode(samples)
    scan = jpeg_ls.parse(data)
    assert scan is not None and (scan.height, scan.width) == shape
    np.testing.assert_array_equal(imagecodecs.jpegls_decode(data), samples)
    written = jpeg_ls.body_matches(data, scan, samples.astype(np.uint16))
    assert written is not None and 0 <= scan.segment_end - scan.segment_start - written <= 2


def test_default_parameters_are_the_standards():
    assert jpeg_ls.default_parameters(255) == (3, 7, 21, 64)
    assert jpeg_ls.default_parameters(1023) == (6, 19, 72, 64)
    assert jpeg_ls.default_parameters(65535) == (18, 67, 276, 64)
    assert jpeg_ls.default_parameters(15) == (2, 3, 4, 64)


def test_other_samples_do_not_match_and_wrong_shapes_are_refused():
    samples = _image((20, 30), 4095)
    data = imagecodecs.jpegls_encode(samples)
    scan = jpeg_ls.parse(data)
    other = samples.copy()
    other[10, 10] ^= 1
    assert jpeg_ls.body_matches(data, scan, other) is None
    with pytest.raises(ValueError):
        jpeg_ls.body(samples[:5], scan)
    with pytest.raises(ValueError):
        jpeg_ls.body(samples.astype(np.int64) + (1 << 16), scan)  # beyond MAXVAL
    for damaged in ({"maxval": 1 << 40}, {"reset": 1}, {"t1": 0}, {"t3": scan.maxval + 1}, {"precision": 40}):
        with pytest.raises(ValueError):  # a damaged envelope's description: refused, never a hang
            jpeg_ls.body(samples, dataclasses.replace(scan, **damaged))


def test_what_this_module_does_not_write_is_refused():
    samples = _image((32, 32), 4095)
    assert jpeg_ls.parse(imagecodecs.jpegls_encode(samples, level=2)) is None  # near-lossless
    good = imagecodecs.jpegls_encode(samples)
    assert jpeg_ls.parse(good[:-2]) is None and jpeg_ls.parse(good[:60]) is None
    assert jpeg_ls.parse(b"\xff\xd8\xff\xc3") is None and jpeg_ls.parse(b"") is None
    assert jpeg_ls.parse(good.replace(b"\xff\xf7", b"\xff\xc0", 1)) is None  # another process's frame


def _colour(shape, kind, seed=0):
    rng = np.random.default_rng(seed)
    if kind == "random":
        return rng.integers(0, 256, shape + (3,)).astype(np.uint8)
    if kind == "walk":
        return np.stack([_image(shape, 255, seed + k) for k in range(3)], axis=-1)
    image = np.zeros(shape + (3,), np.uint8)  # sparse: runs of whole pixels, interrupted
    image[rng.integers(0, shape[0], 9), rng.integers(0, shape[1], 9)] = rng.integers(0, 256, (9, 3))
    grey = _image(shape, 255, seed)
    image[: shape[0] // 2] = grey[: shape[0] // 2, :, None]  # grey rows: the three components alike
    return image


@pytest.mark.parametrize("kind", ["random", "walk", "sparse"])
@pytest.mark.parametrize("shape", [(41, 57), (1, 30), (30, 1), (9, 200)])
def test_charls_colour_scans_sample_interleaved_are_written_again(kind, shape):
    """CharLS writes colour as three components sample-interleaved (ILV 2): shared contexts, run mode
    over whole pixels, each component of an interrupting pixel in run-interruption context 0."""
    samples = _colour(shape, kind)
    data = bytes(imagecodecs.jpegls_encode(samples))
    scan = jpeg_ls.parse(data)
    assert scan.components == 3
    written = jpeg_ls.body_matches(data, scan, samples)
    assert written is not None and scan.segment_end - scan.segment_start - written in (0, 1)
    assert jpeg_ls.body_matches(data, scan, samples[..., ::-1]) is None  # the components' order matters
    with pytest.raises(ValueError):
        jpeg_ls.body(samples[..., 0], scan)


def test_colour_layouts_not_written_here_are_refused():
    data = bytes(imagecodecs.jpegls_encode(_colour((16, 16), "walk")))
    sos = data.index(b"\xff\xda")
    assert data[sos + 4] == 3 and data[sos + 12] == 2  # three components, ILV 2
    line = bytearray(data)
    line[sos + 12] = 1  # line interleaved: not written here
    assert jpeg_ls.parse(bytes(line)) is None
    mapped = bytearray(data)
    mapped[sos + 6] = 1  # a mapping table
    assert jpeg_ls.parse(bytes(mapped)) is None
    sof = data.index(b"\xff\xf7")
    subsampled = bytearray(data)
    subsampled[sof + 11] = 0x21
    assert jpeg_ls.parse(bytes(subsampled)) is None
