"""Encapsulated JPEG-lossless PixelData, byte-exact: its frames' samples as planes, the rest kept.

A JPEG-lossless DICOM (transfer syntaxes 1.2.840.10008.1.2.4.57 and .70, the commonest lossless
compression in PACS archives) stores each frame as a lossless JPEG in one or more fragments. Where
``entropy.jpeg_lossless`` writes a frame's entropy-coded segment exactly again from its samples, the
segment's bytes are cut out of the PixelData value (wherever fragment item headers split them), the
samples go to medcodec's methods as a plane, and decoding writes the segment back: the file comes back
byte for byte (the codec checks its sha256) and what is stored is medcodec's coding of the pixels instead
of the Huffman coding of a fixed predictor's differences. Any frame that does not re-encode exactly, or
an item layout not handled here (several frames in one fragment, several fragments per frame of a
multi-frame file), leaves the whole value verbatim, as before.

Planes: the JPEG samples (P-bit unsigned); for signed data (PixelRepresentation 1) with bit P-1 flipped,
which maps two's complement to an order-preserving offset binary, as ``dicom.split_words`` does.
"""

from __future__ import annotations

import struct
from typing import Any

import numpy as np

from medcodec.entropy import jpeg_lossless
from medcodec.errors import CorruptStreamError

SYNTAXES = {
    "1.2.840.10008.1.2.4.57": "JPEG Lossless P14",
    "1.2.840.10008.1.2.4.70": "JPEG Lossless P14 SV1",
}
ITEM_TAG = b"\xfe\xff\x00\xe0"  # (FFFE,E000), always little endian in encapsulated data


def _items(value: bytes) -> list[tuple[int, int]] | None:
    """(payload start, payload length) of each item of an encapsulated value (the first is the basic
    offset table), or None where the value is not a clean run of items."""
    items, at = [], 0
    while at < len(value):
        if value[at:at + 4] != ITEM_TAG or at + 8 > len(value):
            return None
        (length,) = struct.unpack_from("<I", value, at + 4)
        if at + 8 + length > len(value):
            return None
        items.append((at + 8, length))
        at += 8 + length
    return items if items else None


def _decode(frame: bytes, scan: jpeg_lossless.Scan) -> np.ndarray | None:
    """The frame's samples (uint16) by libjpeg's lossless decoder (imagecodecs), or None."""
    import imagecodecs

    try:
        samples = np.asarray(imagecodecs.ljpeg_decode(frame))
    except Exception:  # any decoder failure: the value stays verbatim
        return None
    if samples.shape != (scan.height, scan.width) or samples.dtype.kind not in "ui":
        return None
    samples = samples.astype(np.uint16)
    return samples if int(samples.max(initial=0)) >> scan.precision == 0 else None


def split(value: bytes, rows: int, cols: int, frames: int, signed: bool
          ) -> tuple[list[np.ndarray], int, dict[str, Any], bytes] | None:
    """(planes, bits, meta, kept bytes) of a JPEG-lossless PixelData value, or None to keep it verbatim."""
    items = _items(value)
    if items is None or len(items) < 2:
        return None
    fragments = items[1:]
    if frames == 1:
        per_frame = [fragments]
    elif len(fragments) == frames:
        per_frame = [[f] for f in fragments]
    else:
        return None
    planes, scans, cuts, precisions = [], [], [], set()
    for pieces in per_frame:
        frame = b"".join(value[start:start + length] for start, length in pieces)
        scan = jpeg_lossless.parse(frame)
        if scan is None or (scan.height, scan.width) != (rows, cols):
            return None
        # every sample costs at least one bit: a tiny fragment cannot declare a huge frame (no bomb)
        if rows * cols > jpeg_lossless.MAX_SAMPLES_PER_BYTE * (scan.segment_end - scan.segment_start) + 64:
            return None
        samples = _decode(frame, scan)
        if samples is None:
            return None
        written = jpeg_lossless.body_matches(frame, scan, samples)
        if written is None:
            return None
        cuts.append(_value_ranges(pieces, scan.segment_start, written))
        scans.append(scan)
        precisions.add(scan.precision)
        planes.append(samples)
    if len(precisions) != 1:
        return None
    bits = precisions.pop()
    flip = np.uint16(1 << (bits - 1)) if signed else np.uint16(0)
    kept, frame_pieces = _cut(value, cuts)
    meta = {"layout": "jpeg-lossless", "rows": rows, "cols": cols, "bits": bits, "signed": signed,
            "frames": [{"precision": s.precision, "predictor": s.predictor, "pt": s.point_transform,
                        "counts": list(s.counts), "symbols": list(s.symbols), "pieces": p}
                       for s, p in zip(scans, frame_pieces)]}
    return [np.ascontiguousarray(p ^ flip) for p in planes], bits, meta, kept


def _value_ranges(pieces: list[tuple[int, int]], start: int, length: int) -> list[tuple[int, int]]:
    """The value's (offset, length) ranges holding the frame's bytes [start, start + length) (the frame
    is its fragments' payloads, pieces, joined)."""
    out, offset = [], 0
    for payload, size in pieces:
        lo, hi = max(start, offset), min(start + length, offset + size)
        if lo < hi:
            out.append((payload + lo - offset, hi - lo))
        offset += size
    return out


def _cut(value: bytes, cuts: list[list[tuple[int, int]]]) -> tuple[bytes, list[list[list[int]]]]:
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
    frames, rows, cols, bits = meta["frames"], meta["rows"], meta["cols"], meta["bits"]
    if len(planes) != len(frames):
        raise CorruptStreamError(f"JPEG-lossless DICOM needs {len(frames)} planes, got {len(planes)}")
    flip = np.uint16(1 << (bits - 1)) if meta["signed"] else np.uint16(0)
    out, pos = bytearray(), 0
    for frame, plane in zip(frames, planes):
        plane = np.asarray(plane, dtype=np.uint16)
        if plane.shape != (rows, cols) or int(plane.max(initial=0)) >> bits:
            raise CorruptStreamError("JPEG-lossless DICOM plane has the wrong shape or values")
        scan = jpeg_lossless.Scan(precision=int(frame["precision"]), height=rows, width=cols,
                                  predictor=int(frame["predictor"]), point_transform=int(frame["pt"]),
                                  counts=tuple(frame["counts"]), symbols=tuple(frame["symbols"]),
                                  segment_start=0, segment_end=0)
        written = jpeg_lossless.body(plane ^ flip, scan)
        pieces = frame["pieces"]
        if written is None or len(written) != sum(length for _, length in pieces):
            raise CorruptStreamError("JPEG-lossless DICOM: the rewritten scan does not fit its place")
        used = 0
        for at, length in pieces:
            if at < pos or at > len(kept):
                raise CorruptStreamError("JPEG-lossless DICOM: scan pieces out of order")
            out += kept[pos:at]
            out += written[used:used + length]
            used, pos = used + length, at
    return bytes(out + kept[pos:])
