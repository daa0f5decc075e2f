"""Encapsulated lossy JPEG PixelData (baseline and extended, 8 and 12 bits), byte-exact, recompressed.

Lossy JPEG (transfer syntaxes 1.2.840.10008.1.2.4.50 and .51) is the commonest compression in PACS
archives: ultrasound, secondary captures, endoscopy, many radiographs, and (12-bit, .51) CT and MR from
older systems. Its pixels are not what to code (they are the inverse DCT of quantised coefficients, and
decoders differ in rounding); its Huffman coding of the coefficients is what is wasteful. Two coders
take that waste out, and each frame keeps the smaller:

- JPEG XL's lossless JPEG transcoding (ISO/IEC 18181-1 and -2: the coefficients coded with JPEG XL's
  context modelling, plus the reconstruction data that gives back the original file, byte for byte;
  libjxl through imagecodecs): about 17 % smaller on 8-bit JPEGs (``benchmarks/jpeg_transcoding.py``).
  Its reconstruction is part of the standard, so any conforming decoder gives the same JPEG bytes. It
  takes 8-bit JPEGs only.
- medcodec's own (``entropy.jpeg_dct`` and ``entropy.jpeg_coefficients``), for one-component sequential
  scans of 8 or 12 bits: the coefficients out of the Huffman scan, coded with context-modelled binary
  arithmetic coding; the scan is written again from them. Only the entropy-coded segment is replaced:
  the frame's markers and tables stay in the kept bytes, the scan's parameters in the meta.

Each frame is checked by decoding it back (JPEG XL) or by writing its segment again (medcodec's); the
PixelData value without the frames' coded bytes is kept, and decoding puts each frame's bytes back at
their pieces (``dicom_scans.splice``). A frame neither coder gives back exactly and smaller (an
arithmetic-coded or progressive 12-bit JPEG, say), and item layouts ``dicom_scans`` does not handle,
keep the whole value verbatim. No planes: the file's pixels are not coded by medcodec's methods (they
are not the file's content; the coefficients are).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from medcodec.entropy import jpeg_coefficients, jpeg_dct
from medcodec.errors import CorruptStreamError
from medcodec.io.dicom_scans import cut, frames_of, splice, value_ranges

SYNTAXES = {"1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51"}
LAYOUT = "jpeg-jxl"  # the format's name for it since 2.11, when JPEG XL was its only coder
# a frame medcodec's coefficient coder takes: its blocks' coefficients are 4 bytes a pixel in memory
MAX_FRAME_PIXELS = 1 << 28


def _transcode(jpeg: bytes) -> bytes | None:
    """The JPEG as JPEG XL, or None when libjxl cannot transcode it or does not give it back exactly."""
    import imagecodecs

    try:
        jxl = bytes(imagecodecs.jpegxl_encode_jpeg(jpeg))
        if bytes(imagecodecs.jpegxl_decode_jpeg(jxl)) != jpeg:
            return None
    except Exception:  # imagecodecs raises JpegxlError on what libjxl does not transcode
        return None
    return jxl


def _dct(jpeg: bytes, rows: int, cols: int) -> tuple[dict[str, Any], bytes] | None:
    """(the scan's parameters, its coefficients' stream) of a rows x cols JPEG whose segment medcodec's
    coder writes again exactly and smaller, else None (also where the JPEG's size is not the file's: its
    coefficients would take memory the file's attributes do not account for)."""
    scan = jpeg_dct.parse(jpeg)
    if scan is None or (scan.height, scan.width) != (rows, cols):
        return None
    blocks = jpeg_dct.coefficients(jpeg, scan)
    if blocks is None:
        return None
    pad = jpeg_dct.find_pad(jpeg, scan, blocks)
    if pad is None:
        return None
    try:
        stream = jpeg_coefficients.encode(blocks, scan.quant)
    except ValueError:  # coefficients beyond what any JPEG holds
        return None
    if (len(stream) >= scan.segment_end - scan.segment_start
            or not np.array_equal(jpeg_coefficients.decode(stream, *scan.blocks, scan.quant), blocks)):
        return None
    fields = {"precision": scan.precision, "height": scan.height, "width": scan.width,
              "restart": scan.restart_interval, "dc": [list(t) for t in scan.dc_table],
              "ac": [list(t) for t in scan.ac_table], "quant": list(scan.quant), "pad": pad}
    return {"start": scan.segment_start, "end": scan.segment_end, **fields}, stream


def _scan(fields: Any) -> tuple[jpeg_dct.DctScan, int]:
    """The scan (and its padding) a frame's meta describes; CorruptStreamError where it is not one
    ``_dct`` could have written."""
    try:
        precision, height, width = int(fields["precision"]), int(fields["height"]), int(fields["width"])
        restart, pad = int(fields["restart"]), int(fields["pad"])
        tables = []
        for name, most in (("dc", 16), ("ac", 255)):
            counts, symbols = fields[name]
            counts, symbols = tuple(int(c) for c in counts), tuple(int(c) for c in symbols)
            if (len(counts) != 16 or min(counts) < 0 or sum(counts) != len(symbols)
                    or not all(0 <= v <= most for v in symbols)):
                raise ValueError(name)
            tables.append((counts, symbols))
        quant = tuple(int(q) for q in fields["quant"])
        if len(quant) != 64 or not all(1 <= q <= 65535 for q in quant):
            raise ValueError("quant")
    except (KeyError, TypeError, ValueError) as exc:
        raise CorruptStreamError(f"JPEG DICOM: a frame's scan parameters are damaged ({exc})") from exc
    if (precision not in (8, 12) or not 0 < height < 65536 or not 0 < width < 65536
            or height * width > MAX_FRAME_PIXELS or not 0 <= restart < 65536 or pad not in (0, 1)):
        raise CorruptStreamError("JPEG DICOM: a frame's scan parameters are out of range")
    return jpeg_dct.DctScan(precision=precision, height=height, width=width, restart_interval=restart,
                            dc_table=tables[0], ac_table=tables[1], quant=quant, segment_start=0,
                            segment_end=0), pad


def split(value: bytes, rows: int, cols: int, frames: int, samples: int,
          max_pixels: int | None = None) -> tuple[bytes, list[bytes], dict[str, Any]] | None:
    """(kept bytes, each frame's coded bytes, meta) of an encapsulated JPEG PixelData value, or None to
    keep it verbatim (also when its frames hold more than max_pixels pixels; None: no limit)."""
    if min(rows, cols, frames, samples) <= 0:
        return None
    if max_pixels is not None and rows * cols * frames * samples > max_pixels:
        return None
    per_frame = frames_of(value, frames)
    if per_frame is None:
        return None
    coded, cuts, frame_meta = [], [], []
    for pieces, jpeg in per_frame:
        jxl = _transcode(jpeg)
        dct = _dct(jpeg, rows, cols) if samples == 1 and rows * cols <= MAX_FRAME_PIXELS else None
        # medcodec's coder leaves the frame's markers and tables in the kept bytes; JPEG XL takes them in
        left_in_kept = len(jpeg) - (dct[0]["end"] - dct[0]["start"]) if dct is not None else 0
        if dct is not None and (jxl is None or len(dct[1]) + left_in_kept < len(jxl)):
            fields, stream = dct
            start, end = fields.pop("start"), fields.pop("end")
            coded.append(stream)
            cuts.append(value_ranges(pieces, start, end - start))
            frame_meta.append({"dct": fields})
        elif jxl is not None and len(jxl) < len(jpeg):
            coded.append(jxl)
            cuts.append(value_ranges(pieces, 0, len(jpeg)))
            frame_meta.append({})
        else:
            return None
    kept, pieces = cut(value, cuts)
    frame_meta = [{"pieces": p, **m} for p, m in zip(pieces, frame_meta)]
    return kept, coded, {"layout": LAYOUT, "frames": frame_meta}


def join(meta: dict[str, Any], kept: bytes, coded: list[bytes]) -> bytes:
    """Inverse of split: the PixelData value from the kept bytes and the frames' coded bytes."""
    import imagecodecs

    frames = meta["frames"]
    if len(frames) != len(coded):
        raise CorruptStreamError(f"JPEG DICOM needs {len(frames)} coded frames, got {len(coded)}")
    written = []
    for frame, stream in zip(frames, coded):
        if "dct" in frame:
            scan, pad = _scan(frame["dct"])
            blocks = jpeg_coefficients.decode(stream, *scan.blocks, scan.quant)
            segment = jpeg_dct.write(blocks, scan, pad)
            if segment is None:
                raise CorruptStreamError("JPEG DICOM: a frame's scan cannot be written again")
            written.append(segment)
            continue
        try:
            written.append(bytes(imagecodecs.jpegxl_decode_jpeg(stream)))
        except Exception as exc:  # imagecodecs raises JpegxlError on garbage
            raise CorruptStreamError(f"JPEG DICOM: a frame's JPEG XL cannot be decoded ({exc})") from exc
    return splice(kept, [frame["pieces"] for frame in frames], written, "JPEG DICOM")
