"""PNG / TIFF pixel-identical and .npy byte-identical round trips, including size and value extremes."""

from __future__ import annotations

import io

import imagecodecs
import numpy as np
import pytest
from PIL import Image, PngImagePlugin

from medcodec.errors import CorruptStreamError, InvalidInputError
from medcodec.io import load, restore

SHAPES = [(1, 1), (1, 7), (7, 1), (3, 5), (17, 31)]


def ramp(shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """Values covering the dtype's extremes (min and max always present when size allows)."""
    info = np.iinfo(dtype)
    size = int(np.prod(shape))
    values = np.linspace(info.min, info.max, num=max(size, 2)).round().astype(np.int64)
    rng = np.random.default_rng(size)
    return rng.permutation(values)[:size].reshape(shape).astype(dtype) if size > 1 else \
        np.full(shape, info.max, dtype=dtype)


def png_bytes(array: np.ndarray, **save_args) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG", **save_args)
    return buffer.getvalue()


def offset_binary(array: np.ndarray) -> np.ndarray:
    bits = array.dtype.itemsize * 8
    values = array.astype(np.int64)
    if array.dtype.kind == "i":
        values += 1 << (bits - 1)
    return values.astype(np.uint16)


def roundtrip(data: bytes):
    source = load(data)
    rebuilt = restore(source.kind, source.envelope, source.planes)
    for plane in source.planes:
        assert plane.dtype == np.uint16 and plane.ndim == 2
        assert int(plane.max(initial=0)) < (1 << source.bits)
    return source, rebuilt


# ---------------------------------------------------------------- PNG


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_png_grayscale_pixel_identical(shape, dtype) -> None:
    image = ramp(shape, dtype)
    data = imagecodecs.png_encode(image)
    source, rebuilt = roundtrip(data)
    assert source.kind == "png" and source.bits == (8 if dtype == np.uint8 else 16) and not source.signed
    np.testing.assert_array_equal(source.planes[0], image)
    decoded = imagecodecs.png_decode(rebuilt)
    assert decoded.dtype == image.dtype
    np.testing.assert_array_equal(decoded, image)


def test_png_16_bit_extremes() -> None:
    image = np.array([[0, 65535], [65535, 0]], dtype=np.uint16)
    source, rebuilt = roundtrip(imagecodecs.png_encode(image))
    np.testing.assert_array_equal(source.planes[0], image)
    np.testing.assert_array_equal(imagecodecs.png_decode(rebuilt), image)


def test_pillow_written_l_and_16_bit_pngs() -> None:
    eight = np.arange(20, dtype=np.uint8).reshape(4, 5) * 12
    sixteen = np.arange(20, dtype=np.uint16).reshape(4, 5) * 3000
    for data, expected, bits in [(png_bytes(eight), eight, 8), (png_bytes(sixteen), sixteen, 16)]:
        source, rebuilt = roundtrip(data)
        assert source.bits == bits
        np.testing.assert_array_equal(source.planes[0], expected)
        # Pillow reads 16-bit grayscale as mode I or I;16 depending on version: same mode both times.
        before, after = Image.open(io.BytesIO(data)), Image.open(io.BytesIO(rebuilt))
        assert before.mode == after.mode
        np.testing.assert_array_equal(np.asarray(after), np.asarray(before))


def test_png_ancillary_chunks_survive() -> None:
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "keep me")
    data = png_bytes(np.zeros((3, 3), np.uint8), pnginfo=info)
    _, rebuilt = roundtrip(data)
    assert Image.open(io.BytesIO(rebuilt)).text == {"Comment": "keep me"}


def test_rgb_png_gives_three_planes_and_comes_back_pixel_identical() -> None:
    rng = np.random.default_rng(4)
    rgb = np.repeat(rng.integers(0, 256, (9, 7, 1), dtype=np.uint8), 3, axis=2)
    rgb[2:5, 1:4] = rng.integers(0, 256, (3, 3, 3), dtype=np.uint8)  # a coloured patch on grey
    source, rebuilt = roundtrip(png_bytes(rgb))
    assert len(source.planes) == 3 and source.bits == 8 and "RGB" in source.description
    np.testing.assert_array_equal(source.planes[0], rgb[:, :, 1])  # G, then the differences from it
    np.testing.assert_array_equal(imagecodecs.png_decode(rebuilt), rgb)
    from medcodec import codec

    decoded = codec.decode(codec.encode(png_bytes(rgb), mode="classical"))
    assert decoded.fidelity == "pixels" and np.array_equal(imagecodecs.png_decode(decoded.data), rgb)


@pytest.mark.parametrize("mode", ["RGBA", "P", "LA", "1"])
def test_png_alpha_palette_and_bilevel_are_verbatim(mode: str) -> None:
    image = Image.fromarray(np.arange(12, dtype=np.uint8).reshape(3, 4) * 20).convert(mode)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    data = buffer.getvalue()
    source, rebuilt = roundtrip(data)
    assert source.kind == "png" and source.planes == []
    assert rebuilt == data


def test_truncated_png_is_invalid_input() -> None:
    data = imagecodecs.png_encode(np.zeros((4, 4), np.uint8))
    with pytest.raises(InvalidInputError):
        load(data[:-20])


# ---------------------------------------------------------------- TIFF


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int8, np.int16])
@pytest.mark.parametrize("shape", [(1, 1), (1, 9), (5, 3)])
def test_tiff_pixel_identical(dtype, shape) -> None:
    image = ramp(shape, dtype)
    data = imagecodecs.tiff_encode(image)
    source, rebuilt = roundtrip(data)
    assert source.kind == "tiff" and source.signed == (np.dtype(dtype).kind == "i")
    np.testing.assert_array_equal(source.planes[0], offset_binary(image))
    decoded = imagecodecs.tiff_decode(rebuilt)
    assert decoded.dtype == image.dtype
    np.testing.assert_array_equal(decoded, image)


def test_tiff_multipage_compressed_miniswhite() -> None:
    pages = [np.full((2, 3), 7, np.uint16), np.arange(6, dtype=np.uint16).reshape(2, 3) * 10000]
    data = imagecodecs.tiff_encode(pages[0], photometric="miniswhite", compression="deflate")
    data = imagecodecs.tiff_encode(pages[1], photometric="miniswhite", compression="deflate", appendto=data)
    source, rebuilt = roundtrip(data)
    assert len(source.planes) == 2 and source.photometric == "MONOCHROME1"
    for index, page in enumerate(pages):
        np.testing.assert_array_equal(imagecodecs.tiff_decode(rebuilt, index=index), page)
    assert Image.open(io.BytesIO(rebuilt)).tag_v2[262] == 0


def test_big_endian_tiff() -> None:
    image = np.array([[1, 258, 65535]], dtype=np.uint16)
    data = imagecodecs.tiff_encode(image.copy(), byteorder=">")  # the encoder byte-swaps its input in place
    assert data[:2] == b"MM"
    source, rebuilt = roundtrip(data)
    np.testing.assert_array_equal(source.planes[0], image)
    np.testing.assert_array_equal(imagecodecs.tiff_decode(rebuilt), image)


def test_tiff_rgb_is_verbatim() -> None:
    data = imagecodecs.tiff_encode(np.zeros((4, 4, 3), np.uint8), photometric="rgb")
    source, rebuilt = roundtrip(data)
    assert source.planes == [] and rebuilt == data


# ---------------------------------------------------------------- .npy and arrays


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


@pytest.mark.parametrize("dtype", ["u1", "<u2", ">u2", "i1", "<i2", ">i2"])
@pytest.mark.parametrize("shape", [(1, 1), (1, 5), (3, 4, 5), (2, 1, 1)])
@pytest.mark.parametrize("fortran", [False, True])
def test_npy_byte_identical(dtype: str, shape, fortran: bool) -> None:
    array = ramp(shape, np.dtype(dtype).newbyteorder("=")).astype(dtype)
    if fortran:
        array = np.asfortranarray(array)
    data = npy_bytes(array)
    source, rebuilt = roundtrip(data)
    assert source.kind == "npy" and rebuilt == data
    assert len(source.planes) == (shape[0] if len(shape) == 3 else 1)
    stack = array.reshape((-1,) + shape[-2:])
    for plane, expected in zip(source.planes, stack):
        np.testing.assert_array_equal(plane, offset_binary(expected))


def test_signed_minimum_maps_to_zero() -> None:
    for dtype in (np.int8, np.int16):
        info = np.iinfo(dtype)
        source = load(np.array([[info.min, -1, 0, info.max]], dtype=dtype))
        assert source.signed
        top = (1 << source.bits) - 1
        np.testing.assert_array_equal(source.planes[0], [[0, top // 2, top // 2 + 1, top]])


def test_array_input_restores_as_npy() -> None:
    array = np.arange(12, dtype=np.uint16).reshape(3, 4)
    source = load(array)
    assert source.kind == "npy" and source.original_sha256 is None
    rebuilt = restore(source.kind, source.envelope, source.planes)
    np.testing.assert_array_equal(np.load(io.BytesIO(rebuilt)), array)


@pytest.mark.parametrize("array", [np.zeros((2, 2), np.float32), np.arange(5, dtype=np.uint16),
                                   np.zeros((2, 2, 2, 2), np.uint8), np.zeros((0, 3), np.uint16),
                                   np.zeros((2, 2), np.int32)])
def test_unmodelled_arrays_are_kept_verbatim(array: np.ndarray) -> None:
    data = npy_bytes(array)
    source, rebuilt = roundtrip(data)
    assert source.planes == [] and rebuilt == data


def test_object_array_is_refused() -> None:
    with pytest.raises(InvalidInputError):
        load(np.array([[object()]], dtype=object))


def test_npy_trailing_bytes_are_kept() -> None:
    data = npy_bytes(np.ones((2, 2), np.uint8)) + b"tail"
    source, rebuilt = roundtrip(data)
    assert len(source.planes) == 1 and rebuilt == data


def test_restore_rejects_planes_of_the_wrong_shape() -> None:
    source = load(np.zeros((2, 3), np.uint8))
    with pytest.raises(CorruptStreamError):
        restore("npy", source.envelope, [np.zeros((3, 2), np.uint16)])
    with pytest.raises(CorruptStreamError):
        restore("npy", source.envelope, [np.full((2, 3), 256, np.uint16)])
