"""Adapters for the classical lossless codecs the bench compares against (all through imagecodecs).

Every adapter has the same shape, after imagecodecs' own `<codec>_encode` / `<codec>_decode` family:
`encode(plane, bits) -> bytes` and `decode(data) -> ndarray`, plus `max_bits` (planes deeper than
that are "not applicable", e.g. WebP is 8-bit only). Adding a codec is one `ClassicalCodec(...)` entry.

Settings chosen here, all lossless, single-threaded where the library lets us choose:
- JPEG-XL: `lossless=True, effort=7|9, numthreads=1`, `bitspersample=bits` (tells libjxl the real
  precision of a 10/12-bit plane stored in uint16; measured to be never larger than without it).
- JPEG-LS (CharLS): default `level=None` is NEAR=0, i.e. lossless. CharLS is single-threaded.
  The output buffer is given room for incompressible planes (imagecodecs' default can be too small).
- JPEG 2000 (OpenJPEG): `reversible=True` (5/3 wavelet), `numthreads=1`, `bitspersample=bits`;
  the number of wavelet resolutions is reduced for tiny planes, which OpenJPEG would reject.
- HTJ2K (OpenJPH): `reversible=True`; OpenJPH is single-threaded.
- PNG (libpng/zlib): `level=9`, default adaptive filtering.
- WebP lossless (libwebp): default effort (`-q 75 -m 4` in cwebp terms), `numthreads=1`; libwebp
  only codes RGB(A), so the plane is replicated into 3 channels and channel 0 is read back.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import imagecodecs
import numpy as np

from medcodec.pipelines.classical import jpeg2000_resolutions


@dataclass(frozen=True)
class ClassicalCodec:
    """One classical lossless codec: how to call it and which planes it can code."""

    name: str
    label: str
    encode_fn: Callable[[np.ndarray, int], bytes]
    decode_fn: Callable[[bytes], np.ndarray]
    available: bool
    max_bits: int = 16

    def applies_to(self, bits: int) -> bool:
        """Whether this codec can code a plane of `bits` bits per sample at all."""
        return bits <= self.max_bits

    def encode(self, plane: np.ndarray, bits: int) -> bytes:
        """Code one plane; 8-bit planes go in as uint8, deeper ones as uint16."""
        return bytes(self.encode_fn(as_codec_dtype(plane, bits), bits))

    def decode(self, data: bytes) -> np.ndarray:
        return self.decode_fn(data)


def as_codec_dtype(plane: np.ndarray, bits: int) -> np.ndarray:
    """The array a classical codec is fed: uint8 for <= 8 bits (else PNG/JPEG-LS would code 16)."""
    dtype = np.uint8 if bits <= 8 else np.uint16
    return np.ascontiguousarray(plane, dtype=dtype)


def _jxl_encode(effort: int) -> Callable[[np.ndarray, int], bytes]:
    def encode(a: np.ndarray, bits: int) -> bytes:
        return imagecodecs.jpegxl_encode(
            a, lossless=True, effort=effort, bitspersample=bits, numthreads=1
        )

    return encode


def _jxl_decode(data: bytes) -> np.ndarray:
    return imagecodecs.jpegxl_decode(data, numthreads=1)


def _j2k_encode(a: np.ndarray, bits: int) -> bytes:
    return imagecodecs.jpeg2k_encode(
        a,
        reversible=True,
        # OpenJPEG fails on 1-bit uint8 input; declaring 2 bits codes the same values losslessly.
        bitspersample=max(bits, 2),
        resolutions=jpeg2000_resolutions(a.shape),
        numthreads=1,
    )


def _j2k_decode(data: bytes) -> np.ndarray:
    return imagecodecs.jpeg2k_decode(data, numthreads=1)


def _jpegls_encode(a: np.ndarray, bits: int) -> bytes:
    # imagecodecs sizes CharLS's output buffer for compressible data; noise can overflow it.
    return imagecodecs.jpegls_encode(a, out=2 * a.nbytes + 4096)


def _htj2k_encode(a: np.ndarray, bits: int) -> bytes:
    return imagecodecs.htj2k_encode(a, reversible=True, resolutions=jpeg2000_resolutions(a.shape))


def _webp_encode(a: np.ndarray, bits: int) -> bytes:
    rgb = np.ascontiguousarray(np.repeat(a[..., None], 3, axis=2))
    return imagecodecs.webp_encode(rgb, lossless=True, numthreads=1)


def _webp_decode(data: bytes) -> np.ndarray:
    rgb = imagecodecs.webp_decode(data)
    # A grey image must come back grey: any channel differing would be a failed round trip.
    if rgb.ndim == 3 and not (
        np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 0], rgb[..., 2])
    ):
        return rgb
    return rgb[..., 0] if rgb.ndim == 3 else rgb


CODECS: dict[str, ClassicalCodec] = {
    c.name: c
    for c in (
        ClassicalCodec(
            "jxl7", "JPEG-XL e7", _jxl_encode(7), _jxl_decode, imagecodecs.JPEGXL.available
        ),
        ClassicalCodec(
            "jxl9", "JPEG-XL e9", _jxl_encode(9), _jxl_decode, imagecodecs.JPEGXL.available
        ),
        ClassicalCodec(
            "jpegls",
            "JPEG-LS",
            _jpegls_encode,
            imagecodecs.jpegls_decode,
            imagecodecs.JPEGLS.available,
        ),
        ClassicalCodec("j2k", "JPEG 2000", _j2k_encode, _j2k_decode, imagecodecs.JPEG2K.available),
        ClassicalCodec(
            "htj2k", "HTJ2K", _htj2k_encode, imagecodecs.htj2k_decode, imagecodecs.HTJ2K.available
        ),
        ClassicalCodec(
            "png",
            "PNG",
            lambda a, bits: imagecodecs.png_encode(a, level=9),
            imagecodecs.png_decode,
            imagecodecs.PNG.available,
        ),
        ClassicalCodec(
            "webp", "WebP-LL", _webp_encode, _webp_decode, imagecodecs.WEBP.available, max_bits=8
        ),
    )
}

# The reference every ratio is taken against; the bench always runs it.
REFERENCE = "jxl9"


def codec_versions() -> dict[str, str]:
    """Library versions behind each adapter, for the machine record of a run."""
    versions = {"imagecodecs": imagecodecs.__version__}
    for lib in ("jpegxl", "jpegls", "jpeg2k", "htj2k", "png", "webp"):
        try:
            versions[lib] = getattr(imagecodecs, f"{lib}_version")()
        except Exception as exc:  # a missing optional library must not stop a bench run
            versions[lib] = f"unavailable ({exc})"
    return versions
