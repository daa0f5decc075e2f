"""DICOM, byte-exact: split the file at the PixelData value into prefix | pixel words | suffix.

Everything outside the PixelData value is kept verbatim. Inside it, native grayscale words are split
into the low BitsStored bits (the planes a method codes) and the bits above them (kept here, usually
as a one-word flag because they are zero or a sign extension); lossless-JPEG and JPEG-LS frames give
their samples where their scans re-encode exactly (``dicom_scans``), RLE frames where their segments'
control bytes replay exactly (``dicom_rle``), JPEG 2000 frames where their code-blocks re-encode
exactly (``dicom_jpeg2000``); lossy-JPEG frames' coefficients are recompressed (JPEG XL's transcoding,
or medcodec's coder, whichever is smaller) and the frames given back exactly (``dicom_jpeg_lossy``; no
planes); native 8-bit RGB and YBR_FULL give three planes a frame (``dicom_colour``); a deflated data set
is inflated and read as any other where zlib deflates it again to the file's bytes (``dicom_deflate``).
Anything else (other encapsulated transfer syntaxes, other deflate streams, other colour, 1- or 32-bit
samples, inconsistent attributes) keeps its pixel value, or the whole file, verbatim, so every file that
goes in comes back byte for byte.
"""

from __future__ import annotations

import io
import struct
import warnings
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from medcodec.errors import CorruptStreamError, InvalidInputError
from medcodec.io import dicom_colour, dicom_deflate, dicom_jpeg2000, dicom_jpeg_lossy, dicom_rle, dicom_scans

PIXEL_DATA_TAG = 0x7FE00010
UNDEFINED_LENGTH = 0xFFFFFFFF
# Transfer syntaxes whose PixelData value is the raw words themselves (the only ones we model).
NATIVE_SYNTAXES = {
    "1.2.840.10008.1.2": "Implicit VR LE",
    "1.2.840.10008.1.2.1": "Explicit VR LE",
    "1.2.840.10008.1.2.2": "Explicit VR BE",
}
EXPLICIT_LITTLE = "1.2.840.10008.1.2.1"


@dataclass
class DicomRead:
    """What the DICOM reader learned: planes for the methods plus meta/blobs for the envelope."""

    planes: list[np.ndarray]
    bits: int
    signed: bool
    photometric: str
    modality: str
    description: str
    meta: dict[str, Any] = field(default_factory=dict)
    blobs: list[bytes] = field(default_factory=list)


def has_part10_preamble(data: bytes) -> bool:
    """Part-10 files carry 'DICM' after a 128-byte preamble."""
    return len(data) >= 132 and data[128:132] == b"DICM"


def looks_like_dicom(data: bytes) -> bool:
    """Part-10 preamble, or an old ACR-NEMA file starting directly with a group 0x0000-0x0008 tag."""
    if has_part10_preamble(data):
        return True
    if len(data) < 8:
        return False
    for order in "<>":
        group, element = struct.unpack(order + "HH", data[:4])
        if group not in (0x0000, 0x0002, 0x0008) or element > 0x00FF:
            continue
        vr = data[4:6]
        if vr.isalpha() and vr.isupper():
            return True  # explicit VR
        (length,) = struct.unpack(order + "I", data[4:8])
        if length < min(len(data), 1 << 16):
            return True  # implicit VR with a plausible first length
    return False


def _dataset(data: bytes) -> Any:
    """Parse with pydicom only to learn attributes and where PixelData sits; never to decode pixels."""
    import pydicom

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return pydicom.dcmread(io.BytesIO(data), force=True)
        except Exception as exc:  # pydicom raises many types on damaged files
            raise InvalidInputError(f"cannot parse DICOM: {type(exc).__name__}: {exc}") from exc


def _has_identifying_elements(ds: Any) -> bool:
    """A preamble-less file counts as DICOM only if pydicom found real identifying/image elements."""
    wanted = (0x00080016, 0x00080018, 0x00080060, 0x00280010, 0x00280011, PIXEL_DATA_TAG)
    try:
        return any(tag in ds for tag in wanted)
    except Exception:
        return False


def _attr(ds: Any, keyword: str, default: Any = None) -> Any:
    """An attribute's value, or default when absent, empty or unparsable."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            value = ds.get(keyword, default)
        except Exception:
            return default
    if value is None or value == "":
        return default
    return value


def _int_attr(ds: Any, keyword: str, default: int | None) -> int | None:
    value = _attr(ds, keyword, default)
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _locate_pixel_value(ds: Any, data: bytes) -> tuple[int, int] | None:
    """(start, end) of the top-level PixelData value in data, or None when it cannot be pinned down.

    For undefined length (encapsulated) the value ends before the sequence delimiter, which goes to
    the suffix. The located bytes are checked against what pydicom read, so a wrong offset never
    reaches the envelope.
    """
    try:
        raw = ds.get_item(PIXEL_DATA_TAG)
    except Exception:
        return None
    value_tell = getattr(raw, "value_tell", None)
    value = getattr(raw, "value", None)
    if value_tell is None or not isinstance(value, (bytes, bytearray)):
        return None
    start, end = value_tell, value_tell + len(value)
    if end > len(data) or data[start:end] != value:
        return None
    if raw.length != UNDEFINED_LENGTH and raw.length != len(value):
        return None
    header_len = _element_header_len(raw)
    tag_bytes = struct.pack("<HH" if raw.is_little_endian else ">HH", 0x7FE0, 0x0010)
    if start < header_len or data[start - header_len : start - header_len + 4] != tag_bytes:
        return None
    return start, end


def _element_header_len(raw: Any) -> int:
    """Bytes between the tag and the value: implicit 8; explicit OB/OW/UN... (a 4-byte length) 12."""
    if raw.is_implicit_VR:
        return 8
    return 12 if str(raw.VR).encode("ascii", "replace") in dicom_deflate.LONG_HEADER_VRS else 8


def _ts_name(ts: str | None) -> str:
    if not ts:
        return "no transfer syntax (ACR-NEMA style)"
    if ts in NATIVE_SYNTAXES:
        return NATIVE_SYNTAXES[ts]
    try:
        from pydicom.uid import UID

        name = UID(ts).name
        return name if name else ts
    except Exception:
        return ts


def _geometry_text(rows: Any, cols: Any, frames: Any, bits_stored: Any, bits_alloc: Any) -> str:
    if rows is None or cols is None or bits_alloc is None:
        return "(no image geometry)"
    return f"{rows}x{cols}x{frames}, {bits_stored}/{bits_alloc} bits"


def whole_file(data: bytes, modality: str, photometric: str, why: str) -> DicomRead:
    """Nothing modelled: the whole file rides in the envelope."""
    return DicomRead(
        planes=[], bits=16, signed=False, photometric=photometric, modality=modality,
        description=f"DICOM {modality or '?'}: {why} (kept verbatim)",
        meta={"layout": "whole"}, blobs=[data],
    )


def read_dicom(data: bytes, decompress: bool = True, max_pixels: int | None = None) -> DicomRead:
    """Split a DICOM file into planes and envelope parts; see the module docstring. decompress=False
    keeps lossless-JPEG, JPEG-LS, RLE, JPEG 2000 and lossy-JPEG pixel data, and deflated data sets, verbatim
    too (what the codec weighs its coding against); so does pixel data of more than max_pixels samples (None:
    no limit)."""
    meta_group = dicom_deflate.meta_group(data)
    if meta_group is not None and meta_group[1] == dicom_deflate.SYNTAX:
        return _deflated(data, meta_group[0], decompress, max_pixels)
    ds = _dataset(data)
    if not has_part10_preamble(data) and not _has_identifying_elements(ds):
        raise InvalidInputError("no DICOM preamble and no identifying DICOM elements: not a DICOM file")
    modality = str(_attr(ds, "Modality", "") or "")
    photometric = str(_attr(ds, "PhotometricInterpretation", "") or "").strip()
    file_meta = getattr(ds, "file_meta", None)
    ts = str(file_meta.get("TransferSyntaxUID", "") or "") if file_meta is not None else ""
    ts = ts.strip("\x00 ")
    if ts == dicom_deflate.SYNTAX:  # a meta group pydicom reads and ours does not: damaged, so kept
        return whole_file(data, modality, photometric, "deflated transfer syntax")
    return _read_dataset(ds, data, ts, modality, photometric, decompress, max_pixels)


def _deflated(data: bytes, start: int, decompress: bool, max_pixels: int | None) -> DicomRead:
    """A deflated file whose data set zlib deflates again to the file's bytes (``dicom_deflate``): the
    inflated data set read as any explicit little-endian one, its planes and parts inside a ``deflated``
    envelope; else the whole file, verbatim."""
    # a bound on what a few KB may inflate to: three 16-bit samples a pixel of the limit, plus the header
    limit = None if max_pixels is None else 6 * max_pixels + (64 << 20)
    inflated = dicom_deflate.inflate(data, start, limit) if decompress else None
    why = "deflated transfer syntax"
    parameters = None
    if inflated is not None:
        body, trailing = inflated
        parameters = dicom_deflate.find_parameters(body, data[start:len(data) - len(trailing)])
        why += "" if parameters is not None else ", a deflate stream zlib does not reproduce"
    ds = None if parameters is None else _inner_dataset(body)
    if ds is None:
        return whole_file(data, "", "", why)
    modality = str(_attr(ds, "Modality", "") or "")
    photometric = str(_attr(ds, "PhotometricInterpretation", "") or "").strip()
    inner = _read_dataset(ds, body, EXPLICIT_LITTLE, modality, photometric, decompress, max_pixels)
    if not inner.planes:  # nothing modelled: the file as it is is smaller than its inflated parts
        return whole_file(data, modality, photometric, f"{why}; {inner.description}")
    inner.meta = {"layout": dicom_deflate.LAYOUT, "deflate": parameters, "inner": inner.meta}
    inner.blobs = [data[:start], trailing, *inner.blobs]
    inner.description = (inner.description.replace(_ts_name(EXPLICIT_LITTLE), _ts_name(dicom_deflate.SYNTAX))
                         + f"; data set deflated again exactly (zlib level {parameters['level']})")
    return inner


def _inner_dataset(body: bytes) -> Any:
    """The inflated data set parsed (explicit VR little endian, no preamble or meta group), or None."""
    from pydicom.filereader import read_dataset

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return read_dataset(io.BytesIO(body), is_implicit_VR=False, is_little_endian=True)
        except Exception:  # pydicom raises many types on damaged data sets
            return None


def _read_dataset(ds: Any, data: bytes, ts: str, modality: str, photometric: str, decompress: bool,
                  max_pixels: int | None) -> DicomRead:
    """read_dicom on a parsed data set (ds) of data whose encoding ts names."""
    span = _locate_pixel_value(ds, data)
    if span is None:
        why = "no PixelData" if PIXEL_DATA_TAG not in ds else "PixelData not locatable"
        return whole_file(data, modality, photometric, why)
    start, end = span
    prefix, pixel, suffix = data[:start], data[start:end], data[end:]

    rows = _int_attr(ds, "Rows", None)
    cols = _int_attr(ds, "Columns", None)
    frames = _int_attr(ds, "NumberOfFrames", 1)
    samples = _int_attr(ds, "SamplesPerPixel", 1)
    alloc = _int_attr(ds, "BitsAllocated", None)
    stored = _int_attr(ds, "BitsStored", alloc)
    high_bit = _int_attr(ds, "HighBit", None if stored is None else stored - 1)
    pixel_rep = _int_attr(ds, "PixelRepresentation", 0)
    raw = ds.get_item(PIXEL_DATA_TAG)
    little = bool(raw.is_little_endian)
    geometry = _geometry_text(rows, cols, frames, stored, alloc)

    reason = _unmodelled_reason(ts, raw, rows, cols, frames, samples, alloc, stored, high_bit,
                                pixel_rep, photometric, len(pixel))
    if decompress and reason == "encapsulated transfer syntax":
        what = f"{geometry}, {_ts_name(ts)}"
        read = None
        if ts in dicom_scans.SYNTAXES:
            read = _scans(dicom_scans.SYNTAXES[ts], prefix, pixel, suffix, rows, cols, frames, samples, alloc, stored,
                          high_bit, pixel_rep, photometric, modality, what, max_pixels)
        elif ts == dicom_rle.SYNTAX:
            read = _rle(prefix, pixel, suffix, rows, cols, frames, samples, alloc, stored, high_bit, pixel_rep,
                        photometric, modality, what, max_pixels)
        elif ts in dicom_jpeg2000.SYNTAXES:
            read = _jpeg2000(prefix, pixel, suffix, rows, cols, frames, samples, alloc, stored, high_bit, pixel_rep,
                             photometric, modality, what, max_pixels)
        elif ts in dicom_jpeg_lossy.SYNTAXES:
            read = _jpeg_lossy(prefix, pixel, suffix, rows, cols, frames, samples, stored, photometric, modality,
                               what, max_pixels)
        if read is not None:
            return read
    planar = _int_attr(ds, "PlanarConfiguration", 0)
    if reason is not None and _colour_reason(ts, raw, rows, cols, frames, samples, alloc, stored, high_bit,
                                             pixel_rep, photometric, planar, len(pixel)) is None:
        planes, bits, meta, tail = dicom_colour.split(pixel, rows, cols, frames, planar, photometric)
        meta["layout"] = "colour"
        return DicomRead(planes=planes, bits=bits, signed=False, photometric=photometric, modality=modality,
                         description=f"DICOM {modality or '?'} {geometry} {photometric}, {_ts_name(ts)}",
                         meta=meta, blobs=[prefix, suffix, tail])
    if reason is not None:
        return DicomRead(
            planes=[], bits=int(stored) if stored and 1 <= stored <= 16 else 16,
            signed=pixel_rep == 1, photometric=photometric, modality=modality,
            description=f"DICOM {modality or '?'} {geometry}, {_ts_name(ts)}; pixels kept verbatim ({reason})",
            meta={"layout": "split"}, blobs=[prefix, pixel, suffix],
        )
    assert rows and cols and frames and alloc and stored  # checked by _unmodelled_reason
    signed = pixel_rep == 1
    planes, meta, extra_blobs = split_words(pixel, rows, cols, frames, alloc, stored, signed, little)
    meta["layout"] = "modelled"
    sign_text = " signed" if signed else ""
    return DicomRead(
        planes=planes, bits=stored, signed=signed, photometric=photometric, modality=modality,
        description=f"DICOM {modality or '?'} {geometry}{sign_text}, {_ts_name(ts)}",
        meta=meta, blobs=[prefix, suffix, *extra_blobs],
    )


def _scans(family: dicom_scans.Family, prefix: bytes, pixel: bytes, suffix: bytes, rows: Any, cols: Any,
           frames: Any, samples: Any, alloc: Any, stored: Any, high_bit: Any, pixel_rep: Any, photometric: str,
           modality: str, what: str, max_pixels: int | None) -> DicomRead | None:
    """The planes of a lossless-JPEG or JPEG-LS file (grey, or 8-bit RGB or YBR_FULL) whose scans re-encode
    exactly (``dicom_scans``), else None."""
    transform = None
    if samples == 3:
        if _colour_sample_reason(rows, cols, frames, samples, alloc, stored, high_bit, pixel_rep, photometric):
            return None
        transform = dicom_colour.PHOTOMETRICS[photometric]
    elif _frame_reason(rows, cols, frames, samples, pixel_rep, photometric) is not None:
        return None
    split = dicom_scans.split(pixel, rows, cols, frames, pixel_rep == 1, family, max_pixels, transform)
    if split is None:
        return None
    planes, bits, meta, kept = split
    return DicomRead(planes=planes, bits=bits, signed=pixel_rep == 1, photometric=photometric, modality=modality,
                     description=f"DICOM {modality or '?'} {what}; scans re-encoded exactly", meta=meta,
                     blobs=[prefix, kept, suffix])


# what a reversible colour JPEG 2000 file says its samples are (PS3.5 8.2.4): decoders give RGB for both
JPEG2000_COLOUR = ("YBR_RCT", "RGB")


def _jpeg2000(prefix: bytes, pixel: bytes, suffix: bytes, rows: Any, cols: Any, frames: Any, samples: Any,
              alloc: Any, stored: Any, high_bit: Any, pixel_rep: Any, photometric: str, modality: str, what: str,
              max_pixels: int | None) -> DicomRead | None:
    """The planes of a JPEG 2000 file (grey, or 8-bit colour) whose code-blocks are written again from its
    samples (``dicom_jpeg2000``), else None."""
    if samples == 3:
        if _colour_sample_reason(rows, cols, frames, samples, alloc, stored, high_bit, pixel_rep, photometric,
                                 JPEG2000_COLOUR) is not None:
            return None
    elif _frame_reason(rows, cols, frames, samples, pixel_rep, photometric) is not None:
        return None
    split = dicom_jpeg2000.split(pixel, rows, cols, frames, max_pixels, stored if isinstance(stored, int) else None,
                                 signed=pixel_rep == 1, samples=samples)
    if split is None:
        return None
    planes, bits, meta, kept = split
    return DicomRead(planes=planes, bits=bits, signed=bool(meta["signed"]), photometric=photometric,
                     modality=modality, description=f"DICOM {modality or '?'} {what}; code-blocks re-encoded exactly",
                     meta=meta, blobs=[prefix, kept, suffix])


def _rle(prefix: bytes, pixel: bytes, suffix: bytes, rows: Any, cols: Any, frames: Any, samples: Any, alloc: Any,
         stored: Any, high_bit: Any, pixel_rep: Any, photometric: str, modality: str, what: str,
         max_pixels: int | None) -> DicomRead | None:
    """The planes of an RLE file (grey, or 8-bit colour) whose segments' control bytes replay exactly
    (``dicom_rle``), else None."""
    colour = samples == 3
    if colour:
        if _colour_sample_reason(rows, cols, frames, samples, alloc, stored, high_bit, pixel_rep, photometric):
            return None
    elif (_frame_reason(rows, cols, frames, samples, pixel_rep, photometric) is not None
            or _word_reason(alloc, stored, high_bit) is not None):
        return None
    split = dicom_rle.split(pixel, rows, cols, frames, alloc, max_pixels, samples)
    if split is None:
        return None
    native, kept, rle_meta = split
    signed = pixel_rep == 1
    if colour:  # RLE's segments are a frame's R, G, B planes: planar configuration 1
        planes, bits, meta, tail = dicom_colour.split(native, rows, cols, frames, 1, photometric)
        high_blob = b""
    else:
        bits = stored
        planes, meta, (tail, high_blob) = split_words(native, rows, cols, frames, alloc, stored, signed, little=True)
    return DicomRead(planes=planes, bits=bits, signed=signed, photometric=photometric, modality=modality,
                     description=f"DICOM {modality or '?'} {what}; RLE segments replayed exactly",
                     meta={**meta, **rle_meta}, blobs=[prefix, kept, suffix, tail, high_blob])


def _jpeg_lossy(prefix: bytes, pixel: bytes, suffix: bytes, rows: Any, cols: Any, frames: Any, samples: Any,
                stored: Any, photometric: str, modality: str, what: str, max_pixels: int | None) -> DicomRead | None:
    """A lossy-JPEG file whose frames' coefficients are recompressed exactly (``dicom_jpeg_lossy``: by
    JPEG XL or medcodec's coefficient coder; no planes), else None."""
    if not all(isinstance(v, int) and v > 0 for v in (rows, cols, frames, samples)):
        return None
    split = dicom_jpeg_lossy.split(pixel, rows, cols, frames, samples, max_pixels)
    if split is None:
        return None
    kept, coded, meta = split
    ours = sum("dct" in frame for frame in meta["frames"])
    against = sum(bool(frame.get("dct", {}).get("reference")) for frame in meta["frames"])
    coders = ", ".join(f"{count} by {name}" for count, name in ((len(coded) - ours, "JPEG XL"),
                                                                (ours, "medcodec's coefficient coder")) if count)
    if against:
        coders += f", {against} of them against the frame before"
    bits = stored if isinstance(stored, int) and 1 <= stored <= 16 else 8
    return DicomRead(planes=[], bits=bits, signed=False, photometric=photometric, modality=modality,
                     description=f"DICOM {modality or '?'} {what}; JPEG frames recompressed exactly ({coders}; "
                                 "pixels not modelled)", meta=meta, blobs=[prefix, kept, suffix, *coded])


def _unmodelled_reason(ts: str, raw: Any, rows: Any, cols: Any, frames: Any, samples: Any,
                       alloc: Any, stored: Any, high_bit: Any, pixel_rep: Any,
                       photometric: str, pixel_len: int) -> str | None:
    """Why the PixelData value cannot be coded as planes, or None when it can."""
    if ts and ts not in NATIVE_SYNTAXES:
        return "encapsulated transfer syntax"
    if raw.length == UNDEFINED_LENGTH:
        return "undefined-length PixelData"
    reason = _frame_reason(rows, cols, frames, samples, pixel_rep, photometric) or _word_reason(
        alloc, stored, high_bit)
    if reason is not None:
        return reason
    if alloc == 16 and not _words_readable(raw):
        return "big-endian OB pixel data"
    if rows * cols * frames * (alloc // 8) > pixel_len:
        return "PixelData shorter than Rows*Columns*Frames"
    return None


def _colour_reason(ts: str, raw: Any, rows: Any, cols: Any, frames: Any, samples: Any, alloc: Any, stored: Any,
                   high_bit: Any, pixel_rep: Any, photometric: str, planar: Any, pixel_len: int) -> str | None:
    """Why the PixelData value is not native colour medcodec codes as planes (``dicom_colour``), or None."""
    if ts and ts not in NATIVE_SYNTAXES or raw.length == UNDEFINED_LENGTH or not raw.is_little_endian:
        return "not native little-endian pixel data"
    if planar not in (0, 1):
        return f"planar configuration {planar}"
    subsampled = photometric in dicom_colour.SUBSAMPLED
    if subsampled and (planar != 0 or not isinstance(cols, int) or cols % 2):
        return f"{photometric} with planar configuration {planar} or an odd width"
    reason = _colour_sample_reason(rows, cols, frames, samples, alloc, stored, high_bit, pixel_rep, photometric,
                                   (*dicom_colour.PHOTOMETRICS, *dicom_colour.SUBSAMPLED))
    if reason is None and dicom_colour.native_bytes(rows, cols, frames, photometric) > pixel_len:
        return "PixelData shorter than its frames"
    return reason


def _colour_sample_reason(rows: Any, cols: Any, frames: Any, samples: Any, alloc: Any, stored: Any, high_bit: Any,
                          pixel_rep: Any, photometric: str,
                          photometrics: Collection[str] = tuple(dicom_colour.PHOTOMETRICS)) -> str | None:
    """Why frames with these attributes are not colour medcodec codes (any transfer syntax; photometrics:
    the interpretations its samples may have there), or None."""
    if samples != 3 or photometric not in photometrics:
        return f"{samples} samples, photometric {photometric}"
    if (alloc, stored, high_bit, pixel_rep) != (8, 8, 7, 0):
        return "not 8-bit unsigned samples"
    if not rows or not cols or not frames or min(rows, cols, frames) < 0:
        return "missing or zero Rows/Columns/NumberOfFrames"
    return None


def _frame_reason(rows: Any, cols: Any, frames: Any, samples: Any, pixel_rep: Any, photometric: str) -> str | None:
    """Why frames with these attributes are not grayscale planes medcodec codes (any transfer syntax).
    PALETTE COLOR frames are: their samples are indices into lookup tables the header holds (kept with
    it), and a plane of indices is coded as any other (ultrasound and nuclear medicine write them)."""
    if samples != 1:
        return f"SamplesPerPixel {samples}"
    if photometric not in ("", "MONOCHROME1", "MONOCHROME2", "PALETTE COLOR"):
        return f"photometric {photometric}"
    if photometric == "PALETTE COLOR" and pixel_rep != 0:
        return "signed palette indices"
    if pixel_rep not in (0, 1):
        return f"PixelRepresentation {pixel_rep}"
    if not rows or not cols or not frames or rows < 0 or cols < 0 or frames < 0:
        return "missing or zero Rows/Columns/NumberOfFrames"
    return None


def _word_reason(alloc: Any, stored: Any, high_bit: Any) -> str | None:
    """Why words of this layout cannot be split into planes and high bits (split_words)."""
    if alloc not in (8, 16):
        return f"BitsAllocated {alloc}"
    if stored is None or not 1 <= stored <= alloc:
        return f"BitsStored {stored}"
    if high_bit != stored - 1:
        return f"HighBit {high_bit} != BitsStored-1"
    return None


def _words_readable(raw: Any) -> bool:
    """16-bit words are byte-swapped in big-endian files only when the VR is OW (or implicit)."""
    return bool(raw.is_little_endian) or raw.VR in ("OW", None, "US", "SS", "OB or OW", "US or SS or OW")


def _canonical_high(low: np.ndarray, stored: int, alloc: int, sign_extend: bool) -> np.ndarray:
    """The bits above BitsStored a clean file has: zero, or the sign extension of bit stored-1."""
    dtype = low.dtype
    if not sign_extend or stored == alloc:
        return np.zeros_like(low)
    above = dtype.type(((1 << alloc) - 1) ^ ((1 << stored) - 1))
    negative = (low >> (stored - 1)) & 1
    return (negative * above).astype(dtype)


def split_words(pixel: bytes, rows: int, cols: int, frames: int, alloc: int, stored: int,
                signed: bool, little: bool) -> tuple[list[np.ndarray], dict[str, Any], list[bytes]]:
    """Raw PixelData bytes -> (planes, meta, [tail, high residual]).

    high residual = actual high bits XOR their canonical form (zero, or the sign extension for signed
    data), as raw words; it is stored only when some word differs from it (overlays, garbage).
    """
    dtype = np.dtype(np.uint8) if alloc == 8 else np.dtype("<u2" if little else ">u2")
    count = rows * cols * frames
    words = np.frombuffer(pixel, dtype=dtype, count=count).astype(np.uint16 if alloc == 16 else np.uint8)
    tail = pixel[count * dtype.itemsize:]
    low_mask = (1 << stored) - 1
    low = words & words.dtype.type(low_mask)
    high = words & words.dtype.type(((1 << alloc) - 1) ^ low_mask)
    # Signed files usually sign-extend, but some leave the high bits zero: keep the closer base.
    high_residual = high ^ _canonical_high(low, stored, alloc, signed)
    sign_extend = signed
    if signed and np.count_nonzero(high) < np.count_nonzero(high_residual):
        high_residual, sign_extend = high, False
    values = low.astype(np.uint16)
    if signed:
        values ^= np.uint16(1 << (stored - 1))
    planes = [np.ascontiguousarray(p) for p in values.reshape(frames, rows, cols)]
    has_high = bool(high_residual.any())
    meta = {"rows": rows, "cols": cols, "frames": frames, "alloc": alloc, "stored": stored,
            "signed": signed, "little": little, "sign_extend": sign_extend,
            "high": "stored" if has_high else "canonical"}
    high_blob = high_residual.astype(high_residual.dtype.newbyteorder("<")).tobytes() if has_high else b""
    return planes, meta, [tail, high_blob]


def join_words(meta: dict[str, Any], planes: list[np.ndarray], tail: bytes, high_blob: bytes) -> bytes:
    """Inverse of split_words: planes + high bits + tail -> the exact PixelData value."""
    rows, cols, frames = meta["rows"], meta["cols"], meta["frames"]
    alloc, stored, signed = meta["alloc"], meta["stored"], meta["signed"]
    if len(planes) != frames:
        raise CorruptStreamError(f"DICOM needs {frames} planes, got {len(planes)}")
    for plane in planes:
        if plane.shape != (rows, cols):
            raise CorruptStreamError(f"DICOM plane shape {plane.shape} != {(rows, cols)}")
    values = np.stack([np.asarray(p, dtype=np.uint16) for p in planes])
    if int(values.max(initial=0)) >> stored:
        raise CorruptStreamError(f"DICOM plane value exceeds {stored} bits")
    if signed:
        values = values ^ np.uint16(1 << (stored - 1))
    word_type = np.uint8 if alloc == 8 else np.uint16
    low = values.astype(word_type)
    high = _canonical_high(low, stored, alloc, bool(meta["sign_extend"]))
    if meta["high"] == "stored":
        residual = np.frombuffer(high_blob, dtype=np.dtype(word_type).newbyteorder("<"))
        if residual.size != low.size:
            raise CorruptStreamError("DICOM high-bit residual has the wrong size")
        high = high ^ residual.reshape(low.shape).astype(word_type)
    words = low | high
    out_dtype = np.dtype(np.uint8) if alloc == 8 else np.dtype("<u2" if meta["little"] else ">u2")
    return words.astype(out_dtype).tobytes() + tail


def write_dicom(meta: dict[str, Any], blobs: list[bytes], planes: list[np.ndarray]) -> bytes:
    """Rebuild the original file bytes from the envelope parts and the decoded planes."""
    layout = meta.get("layout")
    if layout == dicom_deflate.LAYOUT and len(blobs) >= 2:
        head, trailing, *inner = blobs
        if meta["inner"].get("layout") == dicom_deflate.LAYOUT:
            raise CorruptStreamError("DICOM envelope nests a deflated data set in another")
        return head + dicom_deflate.deflate(write_dicom(meta["inner"], inner, planes), meta["deflate"]) + trailing
    if layout == "whole" and len(blobs) == 1:
        return blobs[0]
    if layout == "split" and len(blobs) == 3:
        return blobs[0] + blobs[1] + blobs[2]
    if layout == "modelled" and len(blobs) == 4:
        prefix, suffix, tail, high_blob = blobs
        return prefix + join_words(meta, planes, tail, high_blob) + suffix
    if layout == "colour" and len(blobs) == 3:
        prefix, suffix, tail = blobs
        return prefix + dicom_colour.join(meta, planes, tail) + suffix
    if layout == dicom_rle.LAYOUT and len(blobs) == 5:
        prefix, kept, suffix, tail, high_blob = blobs
        native = (dicom_colour.join(meta, planes, tail) if meta["samples"] == 3
                  else join_words(meta, planes, tail, high_blob))
        return prefix + dicom_rle.join(meta, native, kept) + suffix
    if layout == dicom_jpeg_lossy.LAYOUT and len(blobs) >= 3:
        prefix, kept, suffix, *coded = blobs
        return prefix + dicom_jpeg_lossy.join(meta, kept, coded) + suffix
    if layout == dicom_jpeg2000.LAYOUT and len(blobs) == 3:
        prefix, kept, suffix = blobs
        return prefix + dicom_jpeg2000.join(meta, planes, kept) + suffix
    if layout in dicom_scans.LAYOUTS and len(blobs) == 3:
        prefix, kept, suffix = blobs
        return prefix + dicom_scans.join(meta, planes, kept) + suffix
    raise CorruptStreamError(f"DICOM envelope has unknown layout {layout!r} with {len(blobs)} parts")
