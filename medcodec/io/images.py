"""PNG, TIFF and .npy inputs: grayscale 8/16-bit samples become planes (8-bit RGB PNG: three, as colour
DICOM's, ``io.colour``); the rest is kept verbatim.

PNG and TIFF come back pixel-identical (same size, bit depth, sample values; PNG also keeps its
ancillary chunks). .npy comes back byte-identical: its header is kept verbatim and only the array
bytes are rebuilt. Inputs we do not model (other colour, palette, <8-bit, float, ...) keep their file
bytes in the envelope so they still round-trip.
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from medcodec.errors import CorruptStreamError, InvalidInputError
from medcodec.io import colour as rgb_planes

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
TIFF_MAGICS = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
NPY_MAGIC = b"\x93NUMPY"
# TIFF Compression tag values we can write back in kind (others are re-written with deflate).
TIFF_COMPRESSION_NAMES = {1: None, 5: "lzw", 8: "deflate", 32946: "deflate", 32773: "packbits"}


@dataclass
class ImageRead:
    """What an image reader learned: planes for the methods plus meta/blobs for the envelope."""

    planes: list[np.ndarray]
    bits: int
    signed: bool
    description: str
    meta: dict[str, Any] = field(default_factory=dict)
    blobs: list[bytes] = field(default_factory=list)


def _verbatim(data: bytes, what: str) -> ImageRead:
    return ImageRead(planes=[], bits=8, signed=False, description=f"{what} (kept verbatim)",
                     meta={"layout": "whole"}, blobs=[data])


def _to_planes(stack: np.ndarray) -> tuple[list[np.ndarray], int, bool]:
    """uint8/uint16/int8/int16 array (..., H, W) -> uint16 planes in offset binary, bits, signed."""
    bits = stack.dtype.itemsize * 8
    signed = stack.dtype.kind == "i"
    unsigned = stack.astype(stack.dtype.newbyteorder("=")).view(f"u{stack.dtype.itemsize}")
    values = unsigned.astype(np.uint16)
    if signed:
        values ^= np.uint16(1 << (bits - 1))
    values = values.reshape((-1,) + stack.shape[-2:])
    return [np.ascontiguousarray(p) for p in values], bits, signed


def _from_planes(planes: list[np.ndarray], bits: int, signed: bool) -> np.ndarray:
    """Inverse of _to_planes for equally shaped planes: a native-order (N, H, W) array."""
    values = np.stack([np.asarray(p, dtype=np.uint16) for p in planes])
    if int(values.max(initial=0)) >> bits:
        raise CorruptStreamError(f"plane value exceeds {bits} bits")
    if signed:
        values = values ^ np.uint16(1 << (bits - 1))
    unsigned = values.astype(np.uint8 if bits == 8 else np.uint16)
    return unsigned.view(np.int8 if bits == 8 else np.int16) if signed else unsigned


def _check_planes(planes: list[np.ndarray], shapes: list[list[int]]) -> None:
    if len(planes) != len(shapes):
        raise CorruptStreamError(f"expected {len(shapes)} planes, got {len(planes)}")
    for plane, shape in zip(planes, shapes):
        if tuple(plane.shape) != tuple(shape):
            raise CorruptStreamError(f"plane shape {plane.shape} != {tuple(shape)}")


# ---------------------------------------------------------------- PNG


def _png_chunks(data: bytes) -> tuple[list[tuple[bytes, bytes]], bytes]:
    """[(type, whole chunk bytes)] and the bytes after IEND; raises InvalidInputError on damage."""
    chunks, pos = [], len(PNG_MAGIC)
    while pos + 12 <= len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind = data[pos + 4:pos + 8]
        end = pos + 12 + length
        if end > len(data):
            raise InvalidInputError("truncated PNG chunk")
        chunks.append((kind, data[pos:end]))
        pos = end
        if kind == b"IEND":
            return chunks, data[pos:]
    raise InvalidInputError("PNG without IEND chunk")


def read_png(data: bytes) -> ImageRead:
    import imagecodecs

    chunks, trailer = _png_chunks(data)
    if not chunks or chunks[0][0] != b"IHDR" or len(chunks[0][1]) != 25:
        raise InvalidInputError("PNG does not start with an IHDR chunk")
    width, height, depth, colour = struct.unpack(">IIBB", chunks[0][1][8:18])
    if (colour, depth) not in ((0, 8), (0, 16), (2, 8)):
        return _verbatim(data, f"PNG {width}x{height}, colour type {colour}, {depth}-bit")
    try:
        image = imagecodecs.png_decode(data)
    except Exception as exc:
        raise InvalidInputError(f"cannot decode PNG: {exc}") from exc
    expected = np.uint8 if depth == 8 else np.uint16
    shape = (height, width, 3) if colour == 2 else (height, width)
    if image.dtype != expected or image.shape != shape:
        return _verbatim(data, f"PNG {width}x{height} decoded as {image.dtype} {image.shape}")
    # Ancillary chunks (text, gamma, sBIT, pHYs...) are kept in place around the pixel data.
    first_idat = next(i for i, (kind, _) in enumerate(chunks) if kind == b"IDAT")
    keep = [(i, raw) for i, (kind, raw) in enumerate(chunks) if kind not in (b"IHDR", b"IDAT", b"IEND")]
    before = b"".join(raw for i, raw in keep if i < first_idat)
    after = b"".join(raw for i, raw in keep if i > first_idat)
    if colour == 2:  # RGB: G and the differences from it, as for colour DICOM (io.colour)
        planes, bits = rgb_planes.forward(image), 8
    else:
        planes, bits, _ = _to_planes(image)
    meta = {"layout": "png", "depth": depth, "shapes": [[height, width]] * len(planes)}
    if colour == 2:  # said only where true: a grey PNG's envelope stays as it was before RGB PNGs were coded
        meta["rgb"] = True
    return ImageRead(planes=planes, bits=bits, signed=False,
                     description=f"PNG {width}x{height}, {depth}-bit {'RGB' if colour == 2 else 'grayscale'}",
                     meta=meta, blobs=[before, after, trailer])


def write_png(meta: dict[str, Any], blobs: list[bytes], planes: list[np.ndarray]) -> bytes:
    import imagecodecs

    _check_planes(planes, meta["shapes"])
    if meta.get("rgb"):
        if max(int(p.max(initial=0)) for p in planes) > 255:
            raise CorruptStreamError("RGB PNG planes exceed 8 bits")
        image = rgb_planes.inverse(*planes)
    else:
        image = _from_planes(planes, meta["depth"], False)[0]
    # The pixels are what is restored exactly (the original IDAT's deflate stream is not reproducible
    # in general), so the deflate settings are ours to choose: zlib level 1 with its run-length strategy
    # (libpng's adaptive row filters kept) wrote every 3rd train PNG (93 files, 22 MP) 4.9x faster than
    # level 6 and 6.5 % smaller (0.46 s vs 2.24 s; 16-bit DICOM planes 5.5x faster, 0.4 % smaller):
    # medical images are mostly runs of background and of small filtered differences
    encoded, _ = _png_chunks(imagecodecs.png_encode(image, level=1, strategy=imagecodecs.PNG.STRATEGY.RLE))
    before, after, trailer = blobs
    header = b"".join(raw for kind, raw in encoded if kind == b"IHDR")
    idat = b"".join(raw for kind, raw in encoded if kind == b"IDAT")
    iend = b"".join(raw for kind, raw in encoded if kind == b"IEND")
    return PNG_MAGIC + header + before + idat + after + iend + trailer


# ---------------------------------------------------------------- TIFF


def _tiff_pages(data: bytes) -> list[dict[int, Any]]:
    """Tag dictionaries of every page (Pillow parses the IFDs; pixels are decoded elsewhere)."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as image:
            pages = []
            for index in range(getattr(image, "n_frames", 1)):
                image.seek(index)
                pages.append(dict(image.tag_v2))
            return pages
    except Exception as exc:
        raise InvalidInputError(f"cannot parse TIFF: {exc}") from exc


def _first(value: Any, default: Any) -> Any:
    if isinstance(value, tuple):
        return value[0] if value and len(set(value)) == 1 else None
    return default if value is None else value


def read_tiff(data: bytes) -> ImageRead:
    import imagecodecs

    pages = _tiff_pages(data)
    layout = {(_first(p.get(277), 1), _first(p.get(258), 1), _first(p.get(339), 1), p.get(262)) for p in pages}
    if len(layout) != 1:
        return _verbatim(data, f"TIFF, {len(pages)} pages of mixed layout")
    samples, depth, sample_format, photometric = layout.pop()
    if samples != 1 or depth not in (8, 16) or sample_format not in (1, 2) or photometric not in (0, 1):
        return _verbatim(data, f"TIFF, {samples} samples, {depth}-bit, photometric {photometric}")
    try:
        images = [imagecodecs.tiff_decode(data, index=i) for i in range(len(pages))]
    except Exception as exc:
        raise InvalidInputError(f"cannot decode TIFF: {exc}") from exc
    dtype = np.dtype(f"{'i' if sample_format == 2 else 'u'}{depth // 8}")
    if any(im.ndim != 2 or im.dtype.newbyteorder("=") != dtype for im in images):
        return _verbatim(data, "TIFF whose pages decode to unexpected arrays")
    planes: list[np.ndarray] = []
    for image in images:
        page_planes, bits, signed = _to_planes(image)
        planes += page_planes
    compression = _first(pages[0].get(259), 1)
    meta = {"layout": "tiff", "depth": depth, "signed": signed, "photometric": photometric,
            "compression": TIFF_COMPRESSION_NAMES.get(compression, "deflate"),
            "shapes": [list(p.shape) for p in planes]}
    h, w = planes[0].shape
    sign_text = " signed" if signed else ""
    return ImageRead(planes=planes, bits=bits, signed=signed,
                     description=f"TIFF {w}x{h}x{len(planes)}, {depth}-bit{sign_text} grayscale",
                     meta=meta, blobs=[])


def write_tiff(meta: dict[str, Any], blobs: list[bytes], planes: list[np.ndarray]) -> bytes:
    import imagecodecs

    _check_planes(planes, meta["shapes"])
    photometric = "miniswhite" if meta["photometric"] == 0 else "minisblack"
    out = b""
    for plane in planes:
        page = _from_planes([plane], meta["depth"], meta["signed"])[0]
        out = imagecodecs.tiff_encode(page, photometric=photometric, compression=meta["compression"],
                                      appendto=out or None)
    return out


# ---------------------------------------------------------------- .npy


def array_to_npy(array: np.ndarray) -> bytes:
    """Serialise an in-memory array the way np.save does; that file is what restore rebuilds."""
    buffer = io.BytesIO()
    try:
        np.lib.format.write_array(buffer, np.asanyarray(array), allow_pickle=False)
    except ValueError as exc:
        raise InvalidInputError(f"cannot store array: {exc}") from exc
    return buffer.getvalue()


def _npy_header(data: bytes) -> tuple[int, tuple[int, ...], bool, np.dtype]:
    """(offset of the array bytes, shape, fortran_order, dtype) from a .npy header."""
    fp = io.BytesIO(data)
    try:
        version = np.lib.format.read_magic(fp)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(fp)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(fp)
        else:
            # Version 3 differs only in the header's text encoding; numpy reads it with this helper.
            shape, fortran, dtype = np.lib.format._read_array_header(fp, version)
    except Exception as exc:
        first_line = (str(exc).splitlines() or [type(exc).__name__])[0]  # numpy's messages run to several lines
        raise InvalidInputError(f"cannot parse .npy header: {first_line}") from exc
    return fp.tell(), tuple(shape), bool(fortran), dtype


def read_npy(data: bytes) -> ImageRead:
    offset, shape, fortran, dtype = _npy_header(data)
    order = "F" if fortran else "C"
    what = f".npy {dtype.str} {'x'.join(map(str, shape)) or 'scalar'} ({order} order)"
    count = int(np.prod(shape)) if shape else 1
    if (dtype.kind not in "ui" or dtype.itemsize not in (1, 2) or len(shape) not in (2, 3)
            or count == 0 or len(data) - offset < count * dtype.itemsize):
        return _verbatim(data, what)
    array = np.frombuffer(data, dtype=dtype, count=count, offset=offset).reshape(shape, order=order)
    planes, bits, signed = _to_planes(array)
    meta = {"layout": "npy", "dtype": dtype.str, "shape": list(shape), "fortran": fortran,
            "shapes": [list(p.shape) for p in planes]}
    tail = data[offset + count * dtype.itemsize:]
    return ImageRead(planes=planes, bits=bits, signed=signed, description=what,
                     meta=meta, blobs=[data[:offset], tail])


def write_npy(meta: dict[str, Any], blobs: list[bytes], planes: list[np.ndarray]) -> bytes:
    _check_planes(planes, meta["shapes"])
    dtype = np.dtype(meta["dtype"])
    values = _from_planes(planes, dtype.itemsize * 8, dtype.kind == "i")
    array = values.reshape(meta["shape"]).astype(dtype)
    header, tail = blobs
    return header + array.tobytes(order="F" if meta["fortran"] else "C") + tail


# ---------------------------------------------------------------- dispatch

READERS = {"png": read_png, "tiff": read_tiff, "npy": read_npy}
WRITERS = {"png": write_png, "tiff": write_tiff, "npy": write_npy}


def sniff_image(data: bytes) -> str | None:
    """'png' | 'tiff' | 'npy' from the magic bytes, or None."""
    if data.startswith(PNG_MAGIC):
        return "png"
    if data[:4] in TIFF_MAGICS:
        return "tiff"
    if data.startswith(NPY_MAGIC):
        return "npy"
    return None


def declared_pixels(kind: str, data: bytes) -> int:
    """Pixels the file's header declares (all pages), read before any pixel is decoded."""
    if kind == "png":
        chunks, _ = _png_chunks(data)
        width, height = struct.unpack(">II", chunks[0][1][8:16]) if chunks[0][0] == b"IHDR" else (0, 0)
        return width * height
    if kind == "tiff":
        return sum(int(_first(p.get(256), 0) or 0) * int(_first(p.get(257), 0) or 0) for p in _tiff_pages(data))
    _, shape, _, _ = _npy_header(data)
    return int(np.prod(shape, dtype=np.int64)) if shape else 1


def write_image(meta: dict[str, Any], blobs: list[bytes], planes: list[np.ndarray]) -> bytes:
    layout = meta.get("layout")
    if layout == "whole" and len(blobs) == 1:
        return blobs[0]
    expected_blobs = {"png": 3, "tiff": 0, "npy": 2}
    if layout not in WRITERS or len(blobs) != expected_blobs[layout]:
        raise CorruptStreamError(f"image envelope has unknown layout {layout!r} with {len(blobs)} parts")
    return WRITERS[layout](meta, blobs, planes)

