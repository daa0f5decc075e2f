"""Encapsulated lossless-JPEG and JPEG-LS PixelData, byte-exact: its frames' samples as planes, the rest kept.

JPEG lossless (transfer syntaxes 1.2.840.10008.1.2.4.57 and .70, the commonest lossless compression in
PACS archives) and JPEG-LS lossless (.4.80) store each frame as one scan in one or more fragments.
Where ``entropy.jpeg_lossless`` or ``entropy.jpeg_ls`` writes a frame's entropy-coded segment exactly
again from its samples, the segment's bytes are cut out of the PixelData value (wherever fragment item
headers split them), the samples go to medcodec's methods as a plane, and decoding writes the segment
back: the file comes back byte for byte (the codec checks its sha256) and what is stored is medcodec's
coding of the pixels instead of the scan's. A multi-frame value's fragments are grouped into frames
one each, by the basic offset table, or by where a JPEG starts (``frame_fragments``). Any frame that
does not re-encode exactly, or an item layout none of these explains (several frames in one fragment,
an offset table that names no fragment), leaves the whole value verbatim, as before; so does a frame
that would decode to more samples than the caller allows (a JPEG-LS run codes thousands of samples in
a few bits: no decompression bomb).

Planes: the samples (P-bit unsigned); for signed data (PixelRepresentation 1) with bit P-1 flipped,
which maps two's complement to an order-preserving offset binary, as ``dicom.split_words`` does. An 8-bit
colour lossless-JPEG frame (RGB or YBR_FULL, its three components in one scan) gives three planes, as
native colour does (``dicom_colour.planes_of``: subtract-green for RGB); so does a colour JPEG-LS frame
(three components sample-interleaved in one scan, as CharLS writes them).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from medcodec.entropy import jpeg_lossless, jpeg_ls
from medcodec.errors import CorruptStreamError
from medcodec.io import dicom_colour

ITEM_TAG = b"\xfe\xff\x00\xe0"  # (FFFE,E000), always little endian in encapsulated data


@dataclass(frozen=True)
class Family:
    """A scan family: its envelope layout, its scan module, the decoder that gives the samples (used
    only while encoding, and checked by writing the segment again) and its scans' parameters in the
    envelope's meta."""

    layout: str
    scans: Any  # the entropy module: parse, body, body_matches, Scan
    decode: Callable[[bytes], np.ndarray]
    fields: tuple[str, ...]  # the Scan fields the meta keeps per frame (besides geometry and segment)
    colour_fields: tuple[str, ...]  # those it adds for a colour frame


def _ljpeg_decode(frame: bytes) -> np.ndarray:
    import imagecodecs

    return imagecodecs.ljpeg_decode(frame)


def _jpegls_decode(frame: bytes) -> np.ndarray:
    import imagecodecs

    return imagecodecs.jpegls_decode(frame)


LOSSLESS_JPEG = Family("jpeg-lossless", jpeg_lossless, _ljpeg_decode,
                       ("precision", "predictor", "point_transform", "counts", "symbols"), ("components", "tables"))
JPEG_LS = Family("jpeg-ls", jpeg_ls, _jpegls_decode, ("precision", "maxval", "t1", "t2", "t3", "reset"),
                 ("components",))
SYNTAXES = {
    "1.2.840.10008.1.2.4.57": LOSSLESS_JPEG,
    "1.2.840.10008.1.2.4.70": LOSSLESS_JPEG,
    "1.2.840.10008.1.2.4.80": JPEG_LS,
}
LAYOUTS = {family.layout: family for family in SYNTAXES.values()}


def items(value: bytes) -> list[tuple[int, int]] | None:
    """(payload start, payload length) of each item of an encapsulated value (the first is the basic
    offset table), or None where the value is not a clean run of items."""
    found, at = [], 0
    while at < len(value):
        if value[at:at + 4] != ITEM_TAG or at + 8 > len(value):
            return None
        (length,) = struct.unpack_from("<I", value, at + 4)
        if at + 8 + length > len(value):
            return None
        found.append((at + 8, length))
        at += 8 + length
    return found if found else None


def frame_fragments(value: bytes, frames: int, starts: bytes = b"\xff\xd8"
                    ) -> list[list[tuple[int, int]]] | None:
    """Each frame's fragments, as (payload start, length), of an encapsulated value of frames: all
    of them for a single frame, one each when there are as many as frames; else grouped by the basic
    offset table (each frame's first item, counted from the first fragment's), or, where that table is
    empty, by where a fragment starts a frame (``starts``: a JPEG's SOI marker; a JPEG 2000 codestream's
    SOC and SIZ). None for a layout none of these explains."""
    found = items(value)
    if found is None or len(found) < 2:
        return None
    table, fragments = found[0], found[1:]
    if frames == 1:
        return [fragments]
    if len(fragments) == frames:
        return [[f] for f in fragments]
    if len(fragments) < frames:
        return None
    if table[1]:
        if table[1] != 4 * frames:
            return None
        offsets = list(struct.unpack_from(f"<{frames}I", value, table[0]))
        item_starts = [payload - fragments[0][0] for payload, _ in fragments]  # from the first item
        if offsets[0] != 0 or any(o not in item_starts for o in offsets) or offsets != sorted(offsets):
            return None
        firsts = [item_starts.index(o) for o in offsets]
    else:
        firsts = [k for k, (payload, _) in enumerate(fragments) if value[payload:payload + len(starts)] == starts]
        if len(firsts) != frames or firsts[0] != 0:
            return None
    bounds = firsts + [len(fragments)]
    return [fragments[a:b] for a, b in zip(bounds, bounds[1:])]


def frames_within(value: bytes, rows: int, cols: int, frames: int, samples: int, max_pixels: int | None,
                  starts: bytes = b"\xff\xd8") -> list[tuple[list[tuple[int, int]], bytes]] | None:
    """``frames_of``, or None where the frames would hold more than max_pixels samples in all (None: no
    limit): what every splitter of compressed frames checks before it decodes any."""
    if max_pixels is not None and rows * cols * frames * samples > max_pixels:
        return None
    return frames_of(value, frames, starts)


def frames_of(value: bytes, frames: int, starts: bytes = b"\xff\xd8"
              ) -> list[tuple[list[tuple[int, int]], bytes]] | None:
    """Each frame's fragments (``frame_fragments``) and its bytes (their payloads joined), or None."""
    per_frame = frame_fragments(value, frames, starts)
    if per_frame is None:
        return None
    return [(pieces, b"".join(value[start:start + length] for start, length in pieces)) for pieces in per_frame]


def decoded(decode: Callable[[bytes], Any], frame: bytes, shape: tuple[int, ...]) -> np.ndarray | None:
    """A frame's integer samples by an imagecodecs decoder, or None where it fails or gives another shape
    (the value then stays verbatim)."""
    try:
        samples = np.asarray(decode(frame))
    except Exception:  # any decoder failure: the value stays verbatim
        return None
    return samples if samples.shape == shape and samples.dtype.kind in "ui" else None


def _decode(family: Family, frame: bytes, scan: Any) -> np.ndarray | None:
    """The frame's samples (uint16; [rows, cols], or [rows, cols, components]) by the family's decoder
    (imagecodecs), or None."""
    components = getattr(scan, "components", 1)
    samples = decoded(family.decode, frame, (scan.height, scan.width) + ((components,) if components > 1 else ()))
    if samples is None:
        return None
    samples = samples.astype(np.uint16)
    return samples if int(samples.max(initial=0)) >> scan.precision == 0 else None


def split(value: bytes, rows: int, cols: int, frames: int, signed: bool, family: Family,
          max_pixels: int | None = None, transform: str | None = None
          ) -> tuple[list[np.ndarray], int, dict[str, Any], bytes] | None:
    """(planes, bits, meta, kept bytes) of an encapsulated PixelData value of this family, or None to
    keep it verbatim (also when its frames hold more than max_pixels samples in all; None: no limit).
    transform: of 8-bit colour frames, how their samples become three planes a frame
    (``dicom_colour.PHOTOMETRICS``); None: grey."""
    samples_per_pixel = 1 if transform is None else 3
    per_frame = frames_within(value, rows, cols, frames, samples_per_pixel, max_pixels)
    if per_frame is None:
        return None
    planes, scans, cuts = [], [], []
    for pieces, frame in per_frame:
        scan = family.scans.parse(frame)
        if (scan is None or (scan.height, scan.width) != (rows, cols)
                or getattr(scan, "components", 1) != samples_per_pixel or (transform and scan.precision != 8)):
            return None
        # a lossless JPEG sample costs at least one bit: a tiny fragment cannot declare a huge frame
        if family is LOSSLESS_JPEG and rows * cols * samples_per_pixel > jpeg_lossless.MAX_SAMPLES_PER_BYTE * (
                scan.segment_end - scan.segment_start) + 64:
            return None
        samples = _decode(family, frame, scan)
        if samples is None:
            return None
        written = family.scans.body_matches(frame, scan, samples)
        if written is None:
            return None
        cuts.append(value_ranges(pieces, scan.segment_start, written))
        scans.append(scan)
        planes.append(samples)
    if len({scan.precision for scan in scans}) != 1:
        return None
    bits = scans[0].precision
    flip = np.uint16(1 << (bits - 1)) if signed else np.uint16(0)
    kept, frame_pieces = cut(value, cuts)
    fields = family.fields + (family.colour_fields if transform else ())
    meta = {"layout": family.layout, "rows": rows, "cols": cols, "bits": bits, "signed": signed,
            "frames": [{**{name: _json(getattr(scan, name)) for name in fields}, "pieces": p}
                       for scan, p in zip(scans, frame_pieces)]}
    if transform:
        meta["transform"] = transform
        coloured = [p for samples in planes for p in dicom_colour.planes_of(samples.astype(np.uint8), transform)]
        return coloured, bits, meta, kept
    return [np.ascontiguousarray(p ^ flip) for p in planes], bits, meta, kept


def _json(value: Any) -> Any:
    return [_json(v) for v in value] if isinstance(value, tuple) else value


def value_ranges(pieces: list[tuple[int, int]], start: int, length: int) -> list[tuple[int, int]]:
    """The value's (offset, length) ranges holding the frame's bytes [start, start + length) (the frame
    is its fragments' payloads, pieces, joined)."""
    out, offset = [], 0
    for payload, size in pieces:
        lo, hi = max(start, offset), min(start + length, offset + size)
        if lo < hi:
            out.append((payload + lo - offset, hi - lo))
        offset += size
    return out


def cut(value: bytes, cuts: list[list[tuple[int, int]]]) -> tuple[bytes, list[list[list[int]]]]:
    """The value without the cut ranges, and per frame its pieces as [position in the kept bytes, length]."""
    kept, pos, removed, pieces = bytearray(), 0, 0, []
    for ranges in cuts:
        frame = []
        for start, length in ranges:
            kept += value[pos:start]
            frame.append([start - removed, length])
            removed += length
            pos = start + length
        pieces.append(frame)
    kept += value[pos:]
    return bytes(kept), pieces


def join(meta: dict[str, Any], planes: list[np.ndarray], kept: bytes) -> bytes:
    """Inverse of split: the PixelData value from the planes and the kept bytes."""
    family = LAYOUTS[meta["layout"]]
    frames, rows, cols, bits = meta["frames"], meta["rows"], meta["cols"], meta["bits"]
    transform = meta.get("transform")
    per_frame = 1 if transform is None else 3
    if transform is not None and (bits != 8 or transform not in dicom_colour.PHOTOMETRICS.values()):
        raise CorruptStreamError(f"{family.layout} DICOM: a damaged colour description")
    if len(planes) != per_frame * len(frames):
        raise CorruptStreamError(f"{family.layout} DICOM needs {per_frame * len(frames)} planes, got {len(planes)}")
    flip = np.uint16(1 << (bits - 1)) if meta["signed"] else np.uint16(0)
    names = family.fields + (family.colour_fields if transform else ())
    written_frames = []
    for number, frame in enumerate(frames):
        group = [np.asarray(p, dtype=np.uint16) for p in planes[per_frame * number:per_frame * (number + 1)]]
        if any(p.shape != (rows, cols) or int(p.max(initial=0)) >> bits for p in group):
            raise CorruptStreamError(f"{family.layout} DICOM plane has the wrong shape or values")
        fields = {name: _tuple(frame[name]) for name in names}
        if transform and (fields["components"] != 3 or len(fields.get("tables", (0, 0, 0))) != 3):
            raise CorruptStreamError(f"{family.layout} DICOM: a colour frame's tables are damaged")
        scan = family.scans.Scan(height=rows, width=cols, segment_start=0, segment_end=0, **fields)
        samples = group[0] ^ flip if transform is None else dicom_colour.image_of(group, transform)
        written = family.scans.body(samples, scan)
        if written is None:
            raise CorruptStreamError(f"{family.layout} DICOM: the scan cannot be written again")
        written_frames.append(written)
    return splice(kept, [frame["pieces"] for frame in frames], written_frames, f"{family.layout} DICOM")


def _tuple(value: Any) -> Any:
    """A meta field as the Scan holds it: lists as tuples (nested), numbers as int."""
    return tuple(_tuple(v) for v in value) if isinstance(value, list) else int(value)


def splice(kept: bytes, pieces: list[list[list[int]]], frames: list[bytes], what: str) -> bytes:
    """Inverse of cut: each frame's bytes put back at its pieces ([position in kept, length])."""
    out, pos = bytearray(), 0
    for frame_pieces, written in zip(pieces, frames, strict=True):
        if len(written) != sum(length for _, length in frame_pieces):
            raise CorruptStreamError(f"{what}: a frame's bytes do not fit their place")
        used = 0
        for at, length in frame_pieces:
            if not pos <= at <= len(kept) or length < 0:
                raise CorruptStreamError(f"{what}: frame pieces out of order")
            out += kept[pos:at]
            out += written[used:used + length]
            used, pos = used + length, at
    return bytes(out + kept[pos:])
