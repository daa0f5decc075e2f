"""load(path | bytes | array) -> ImageSource, and restore(kind, envelope, planes) -> the original bytes.

The envelope is a small versioned binary: magic, version, a JSON header (kind + format-specific meta)
and a list of raw blobs (DICOM prefix/suffix, PNG ancillary chunks, .npy header, verbatim files).
Planes never go in the envelope; the caller compresses the envelope as a whole.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from medcodec.errors import (CorruptStreamError, InvalidInputError, MedcodecError, ResourceLimitError,
                             UnsupportedVersionError)
from medcodec.io import dicom, dicom_deflate, dicom_jpeg2000, dicom_jpeg_lossy, dicom_rle, dicom_scans, images

ENVELOPE_MAGIC = b"MCEV"
ENVELOPE_VERSION = 1
KINDS = ("dicom", "png", "tiff", "npy")
# Guard against decompression bombs (a tiny PNG can declare gigapixels); far above any medical image.
DEFAULT_MAX_PIXELS = 1 << 30
# DICOM envelope layouts whose compressed pixel data medcodec took apart (the codec weighs such a coding
# against keeping the compressed pixel data as it was)
DECOMPRESSED_LAYOUTS = frozenset({*dicom_scans.LAYOUTS, dicom_rle.LAYOUT, dicom_jpeg_lossy.LAYOUT,
                                  dicom_jpeg2000.LAYOUT, dicom_deflate.LAYOUT})
ACCEPTED = "DICOM (Part 10 or ACR-NEMA), PNG, TIFF, or .npy / numpy array"


@dataclass
class ImageSource:
    """One input file as planes (what methods code) plus an envelope (everything else)."""

    kind: str
    planes: list[np.ndarray]
    bits: int
    signed: bool
    photometric: str
    modality: str
    envelope: bytes
    original_sha256: bytes | None
    description: str
    # the planes (or frames) came out of compressed pixel data (DECOMPRESSED_LAYOUTS), which could also be
    # kept as it is
    decompressed: bool = False


def pack_envelope(kind: str, meta: dict[str, Any], blobs: list[bytes]) -> bytes:
    """MCEV | u8 version | u32 json length | json | u32 blob count | (u64 length | bytes)*."""
    header = json.dumps({"kind": kind, **meta}, separators=(",", ":"), sort_keys=True).encode()
    parts = [ENVELOPE_MAGIC, struct.pack("<BI", ENVELOPE_VERSION, len(header)), header,
             struct.pack("<I", len(blobs))]
    for blob in blobs:
        parts += [struct.pack("<Q", len(blob)), bytes(blob)]
    return b"".join(parts)


def unpack_envelope(envelope: bytes) -> tuple[dict[str, Any], list[bytes]]:
    """Inverse of pack_envelope; CorruptStreamError on any inconsistency."""
    view = memoryview(envelope)
    if bytes(view[:4]) != ENVELOPE_MAGIC or len(view) < 13:
        raise CorruptStreamError("envelope: bad magic or truncated")
    version, header_len = struct.unpack_from("<BI", view, 4)
    if version != ENVELOPE_VERSION:
        raise UnsupportedVersionError(f"envelope version {version} (this build reads {ENVELOPE_VERSION})")
    pos = 9 + header_len
    try:
        meta = json.loads(bytes(view[9:pos]))
        (count,) = struct.unpack_from("<I", view, pos)
    except (ValueError, struct.error) as exc:
        raise CorruptStreamError(f"envelope header: {exc}") from exc
    pos += 4
    blobs = []
    for _ in range(count):
        if pos + 8 > len(view):
            raise CorruptStreamError("envelope: truncated blob table")
        (length,) = struct.unpack_from("<Q", view, pos)
        pos += 8
        if pos + length > len(view):
            raise CorruptStreamError("envelope: truncated blob")
        blobs.append(bytes(view[pos:pos + length]))
        pos += length
    if pos != len(view) or not isinstance(meta, dict):
        raise CorruptStreamError("envelope: trailing bytes or malformed header")
    return meta, blobs


IMAGE_SUFFIXES = frozenset({".dcm", ".dicom", ".png", ".tif", ".tiff", ".npy"})


def is_candidate_file(path: "os.PathLike | str") -> bool:
    """Whether a file found in a folder looks like an input: a known suffix, or 'DICM' after a
    128-byte preamble whatever its name (DICOM files often have none or a numeric one)."""
    from pathlib import Path

    path = Path(path)
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return True
    try:
        with open(path, "rb") as fh:
            return fh.read(132)[128:132] == b"DICM"
    except OSError:
        return False


def sniff(data: bytes) -> str:
    """The kind of a file from its content; InvalidInputError for anything else."""
    # 'DICM' at 128 wins: a DICOM preamble may itself hold a TIFF header (dual-personality files).
    if dicom.has_part10_preamble(data):
        return "dicom"
    kind = images.sniff_image(data)
    if kind is not None:
        return kind
    if dicom.looks_like_dicom(data):
        return "dicom"
    raise InvalidInputError(f"unrecognised input format; accepted: {ACCEPTED}")


def _read_bytes(source: str | os.PathLike | bytes | bytearray | memoryview) -> bytes:
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source)
    try:
        return Path(source).read_bytes()
    except OSError as exc:
        raise InvalidInputError(f"cannot read {os.fspath(source)}: {exc.strerror or exc}") from exc


def load(source: str | os.PathLike | bytes | np.ndarray, *, name: str | None = None,
         max_pixels: int | None = DEFAULT_MAX_PIXELS, decompress: bool = True) -> ImageSource:
    """Read a file (path or bytes, format sniffed from content) or an array into an ImageSource.

    name is only a hint for messages: the content decides the format. An image whose header declares
    more than max_pixels pixels raises ResourceLimitError before decoding (None: no limit). DICOM
    needs no such check: its planes never hold more samples than the file has bytes, except those of
    compressed pixel data (lossless JPEG, JPEG-LS, RLE, JPEG 2000, lossy JPEG), which is kept verbatim instead when
    its frames declare more than max_pixels samples, and of a deflated data set, inflated to at most 6 bytes a
    pixel of the limit (and 64 MiB) or else kept. decompress=False keeps such pixel data verbatim always.
    """
    if isinstance(source, np.ndarray):
        data, original_sha = images.array_to_npy(source), None
    else:
        data = _read_bytes(source)
        original_sha = hashlib.sha256(data).digest()
    try:
        kind = sniff(data)
    except InvalidInputError as exc:
        raise InvalidInputError(f"{name}: {exc}" if name else str(exc)) from None
    if kind == "dicom":
        try:
            read = dicom.read_dicom(data, decompress, max_pixels)
        except InvalidInputError as exc:
            if dicom.has_part10_preamble(data):
                raise
            # Preamble-less content was only a guess at ACR-NEMA: say what we accept instead.
            raise InvalidInputError(f"unrecognised input format ({exc}); accepted: {ACCEPTED}") from None
        photometric, modality = read.photometric, read.modality
    else:
        if max_pixels is not None and (declared := images.declared_pixels(kind, data)) > max_pixels:
            raise ResourceLimitError(f"{name or kind} declares {declared} pixels, over the limit of {max_pixels}")
        read = images.READERS[kind](data)
        # Non-DICOM grayscale has no photometric, except a TIFF that says black is the maximum.
        photometric = "MONOCHROME1" if read.meta.get("photometric") == 0 else ""
        modality = ""
    return ImageSource(
        kind=kind, planes=read.planes, bits=read.bits, signed=read.signed,
        photometric=photometric, modality=modality,
        envelope=pack_envelope(kind, read.meta, read.blobs),
        original_sha256=original_sha, description=read.description,
        decompressed=kind == "dicom" and read.meta.get("layout") in DECOMPRESSED_LAYOUTS,
    )


def restore(kind: str, envelope: bytes, planes: list[np.ndarray]) -> bytes:
    """Rebuild the file: DICOM and .npy byte-identical, PNG/TIFF pixel-identical."""
    meta, blobs = unpack_envelope(envelope)
    if meta.get("kind") != kind or kind not in KINDS:
        raise CorruptStreamError(f"envelope is for {meta.get('kind')!r}, asked to restore {kind!r}")
    try:
        if kind == "dicom":
            return dicom.write_dicom(meta, blobs, planes)
        return images.write_image(meta, blobs, planes)
    except MedcodecError:
        raise
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
        # The envelope passed its CRC and inflated, but its description of the file is not one a writer
        # made (damage behind valid CRCs: deflate, unlike LZMA, inflates most damaged streams).
        raise CorruptStreamError(f"envelope is damaged: cannot rebuild the {kind} file from it "
                                 f"({type(exc).__name__}: {exc})") from None


def whole_file(source: str | os.PathLike | bytes, src: ImageSource) -> ImageSource:
    """The DICOM file src was read from, kept whole: no planes, the file in the envelope (what medcodec
    writes for a file it does not model), its header fields src's."""
    data = _read_bytes(source)
    kept = dicom.whole_file(data, src.modality, src.photometric, "smaller than its coding")
    return replace(src, planes=[], envelope=pack_envelope("dicom", kept.meta, kept.blobs),
                   original_sha256=hashlib.sha256(data).digest(), decompressed=False,
                   description=f"{src.description}; kept whole, smaller than its coding")


def pixel_sha256(planes: list[np.ndarray]) -> bytes:
    """sha256 over 'MCPX1', the plane count, then per plane u32 rows, u32 cols and its uint16 LE bytes."""
    digest = hashlib.sha256(b"MCPX1")
    digest.update(struct.pack("<I", len(planes)))
    for plane in planes:
        plane = np.asarray(plane)
        if plane.ndim != 2 or plane.dtype != np.uint16:
            raise ValueError(f"planes must be 2-D uint16, got {plane.dtype} {plane.shape}")
        digest.update(struct.pack("<II", *plane.shape))
        digest.update(np.ascontiguousarray(plane, dtype="<u2").tobytes())
    return digest.digest()
