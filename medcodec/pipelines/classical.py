"""The classical method: the whole plane by JPEG-XL lossless (or, where the plane shows JPEG 2000 history,
lossless JPEG 2000 if that is smaller). Always available; the codec's fallback."""

from __future__ import annotations

import logging
from typing import Sequence

import imagecodecs
import numpy as np

from medcodec.container.format import SectionKind
from medcodec.errors import CorruptStreamError
from medcodec.io import dicom_jpeg2000
from medcodec.parallel import thread_budget
from medcodec.pipelines import jpeg2000_history
from medcodec.pipelines.base import Method, Stream, check_decoded, check_plane

_log = logging.getLogger(__name__)

DEFAULT_EFFORT = 7  # libjxl's own default: ~1 s per megapixel here; 9 gains ~3 % for 3x the time

# First payload byte: how the rest is coded. Raw exists because JPEG-XL's header alone (~70 bytes)
# outweighs tiny planes, and the classical result is the size bound for every other method.
_TAG_RAW = 0
_TAG_JPEGXL = 1
_TAG_JPEG2000 = 2  # format 2.23: a plane with JPEG 2000 history (``jpeg2000_history``)
JPEG2000_RESOLUTIONS = 6  # OpenJPEG's default (5 wavelet levels); a plane needs 2**(resolutions-1) a side


# what info says a classical stream holds, by its tag
CODING_NAMES = {_TAG_RAW: "raw samples", _TAG_JPEGXL: "JPEG-XL", _TAG_JPEG2000: "JPEG 2000"}


def coding_name(payload: bytes) -> str:
    """What a classical stream's payload holds (its tag's name), for reporting; 'unknown' for others."""
    return CODING_NAMES.get(payload[0], "unknown") if payload else "unknown"


def _sample_dtype(bits: int) -> np.dtype:
    return np.dtype(np.uint8) if bits <= 8 else np.dtype("<u2")


def jpegxl_encode_plane(plane: np.ndarray, bits: int, effort: int = DEFAULT_EFFORT) -> bytes:
    """Lossless JPEG-XL codestream of a plane; bitspersample tells libjxl the true range (smaller output)."""
    data = plane.astype(_sample_dtype(bits), copy=False)
    return imagecodecs.jpegxl_encode(data, lossless=True, effort=effort, bitspersample=bits,
                                     usecontainer=False)


def jpegxl_decode_plane(payload: bytes) -> np.ndarray:
    try:
        plane = imagecodecs.jpegxl_decode(payload, numthreads=thread_budget())
    except Exception as exc:  # imagecodecs raises its own JpegxlError, or ValueError on garbage
        raise CorruptStreamError(f"JPEG-XL stream cannot be decoded ({exc})") from exc
    if plane.ndim != 2:
        raise CorruptStreamError(f"JPEG-XL stream holds a {plane.ndim}-D image, expected one plane")
    return plane.astype(np.uint16, copy=False)


def jpeg2000_resolutions(shape: tuple[int, ...]) -> int:
    """As many wavelet levels as OpenJPEG allows for this plane, at most its default."""
    return max(1, min(JPEG2000_RESOLUTIONS, int(np.log2(max(1, min(shape[:2])))) + 1))


def jpeg2000_encode_plane(plane: np.ndarray, bits: int) -> bytes:
    """Lossless (reversible 5/3) JPEG 2000 codestream of a plane, no JP2 boxes. OpenJPEG refuses 1-bit
    samples; declaring 2 bits codes the same values."""
    return imagecodecs.jpeg2k_encode(plane.astype(_sample_dtype(bits), copy=False), reversible=True,
                                     bitspersample=max(bits, 2), resolutions=jpeg2000_resolutions(plane.shape),
                                     codecformat=imagecodecs.JPEG2K.CODEC.J2K, numthreads=1)


def jpeg2000_decode_plane(payload: bytes, shape: tuple[int, int], bits: int) -> np.ndarray:
    """The plane of a codestream jpeg2000_encode_plane wrote; its header is checked against the frame's
    shape and bits before OpenJPEG allocates anything."""
    stream = dicom_jpeg2000.parse(payload)
    if stream is None or (stream.height, stream.width) != tuple(shape) or stream.components != 1 or stream.signed \
            or stream.precision != max(bits, 2):
        raise CorruptStreamError("JPEG 2000 stream is damaged: its header does not describe this frame's plane")
    try:
        plane = imagecodecs.jpeg2k_decode(payload, numthreads=thread_budget())
    except Exception as exc:  # imagecodecs raises Jpeg2kError (or others) on damaged codestreams
        raise CorruptStreamError(f"JPEG 2000 stream cannot be decoded ({exc})") from exc
    if plane.ndim != 2:
        raise CorruptStreamError(f"JPEG 2000 stream holds a {plane.ndim}-D image, expected one plane")
    return plane.astype(np.uint16, copy=False)


class ClassicalMethod(Method):
    """Whole plane, JPEG-XL lossless (or raw samples when that is smaller; or lossless JPEG 2000 where
    ``jpeg2000_history`` says the plane was a lossy JPEG 2000 codestream once and that is smaller).

    effort may be several efforts: each is tried and the smallest codestream kept. Higher is not always
    smaller: on the test split's lung CT, effort 7 beats effort 9 by 1.5 %. The decoder does not care.
    """

    name = "classical"

    def __init__(self, effort: int | Sequence[int] | None = None) -> None:
        efforts = (DEFAULT_EFFORT,) if effort is None else (effort,) if isinstance(effort, int) else effort
        self.efforts = tuple(int(e) for e in efforts)
        if not self.efforts or not all(1 <= e <= 10 for e in self.efforts):
            raise ValueError(f"JPEG-XL effort must be 1..10, got {effort}")
        self.effort = max(self.efforts)

    def encode(self, plane: np.ndarray, bits: int) -> list[Stream]:
        plane = check_plane(plane, bits)
        jxl = min((jpegxl_encode_plane(plane, bits, e) for e in self.efforts), key=len)
        raw = plane.astype(_sample_dtype(bits), copy=False).tobytes()
        codings = [(_TAG_RAW, raw), (_TAG_JPEGXL, jxl)]
        if jpeg2000_history.carries_history(plane):
            try:
                codings.append((_TAG_JPEG2000, jpeg2000_encode_plane(plane, bits)))
            except Exception as exc:  # an optional candidate: OpenJPEG refusing a plane leaves JPEG-XL's
                _log.info("lossless JPEG 2000 not tried on a %dx%d plane: %s", *plane.shape, exc)
        tag, body = min(codings, key=lambda coding: len(coding[1]))  # the first of equal sizes
        return [Stream(SectionKind.PLANE_CLASSICAL, 0, bytes([tag]) + body)]

    def decode(self, streams: Sequence[Stream], shape: tuple[int, int], bits: int) -> np.ndarray:
        payloads = [s.payload for s in streams if s.kind == SectionKind.PLANE_CLASSICAL]
        if len(payloads) != 1 or not payloads[0]:
            raise CorruptStreamError(f"classical frame needs exactly one non-empty stream, found {len(payloads)}")
        tag, body = payloads[0][0], payloads[0][1:]
        if tag == _TAG_JPEGXL:
            plane = jpegxl_decode_plane(body)
        elif tag == _TAG_JPEG2000:
            plane = jpeg2000_decode_plane(body, shape, bits)
        elif tag == _TAG_RAW:
            dtype = _sample_dtype(bits)
            if len(body) != shape[0] * shape[1] * dtype.itemsize:
                raise CorruptStreamError("raw classical stream has the wrong length")
            plane = np.frombuffer(body, dtype=dtype).reshape(shape)
        else:
            raise CorruptStreamError(f"unknown classical stream tag {tag}")
        return check_decoded(plane, shape, bits, "classical")
