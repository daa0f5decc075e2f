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
- medcodec's own (``entropy.jpeg_dct`` and ``entropy.jpeg_coefficients``), for sequential frames of 8
  or 12 bits in one scan (grey, or colour interleaved, any sampling factors): the coefficients out of
  the Huffman scan, each component's coded with context-modelled binary arithmetic coding (luma and
  chroma alike, from the same priors, each component's stream after the other's); the scan is written
  again from them. Only the entropy-coded segment is replaced:
  the frame's markers and tables stay in the kept bytes, the scan's parameters in the meta.

Each frame is checked by decoding it back (JPEG XL) or by writing its segment again (medcodec's); the
PixelData value without the frames' coded bytes is kept, and decoding puts each frame's bytes back at
their pieces (``dicom_scans.splice``). A frame neither coder gives back exactly and smaller (an
arithmetic-coded or progressive 12-bit JPEG, say), and item layouts ``dicom_scans`` does not handle,
keep the whole value verbatim. No planes: the file's pixels are not coded by medcodec's methods (they
are not the file's content; the coefficients are).
"""

from __future__ import annotations

import json
import zlib
from typing import Any

import numpy as np

from medcodec.entropy import jpeg_coefficients, jpeg_dct
from medcodec.errors import CorruptStreamError
from medcodec.io.dicom_scans import cut, frames_within, splice, value_ranges

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


def _coefficients(jpeg: bytes, rows: int, cols: int, samples: int
                  ) -> tuple[jpeg_dct.DctScan, list[np.ndarray], int | None] | None:
    """(scan, each component's blocks, the padding with which its segment is written again exactly, or None)
    of a rows x cols JPEG of `samples` components that ``jpeg_dct`` reads, else None (also where the JPEG's
    size is not the file's: its coefficients would take memory the file's attributes do not account for)."""
    if rows * cols * samples > MAX_FRAME_PIXELS:
        return None
    scan = jpeg_dct.parse(jpeg)
    if scan is None or (scan.height, scan.width) != (rows, cols) or len(scan.components) != samples:
        return None
    blocks = jpeg_dct.coefficients(jpeg, scan)
    if blocks is None:
        return None
    return scan, blocks, jpeg_dct.find_pad(jpeg, scan, blocks)


def _reference(scan: jpeg_dct.DctScan, previous: list[np.ndarray] | None) -> list[np.ndarray] | None:
    """The frame before's blocks where they can stand beside this frame's (the same grids), else None."""
    if previous is None or [b.shape[:2] for b in previous] != scan.grids:
        return None
    return previous


def _dct(scan: jpeg_dct.DctScan, blocks: list[np.ndarray], pad: int,
         previous: list[np.ndarray] | None) -> tuple[dict[str, Any], bytes] | None:
    """(the scan's parameters, its coefficients' stream), if smaller than the scan's segment, else None;
    each component coded alone or against the frame before's (previous: its blocks, where the grids
    match), whichever is smaller in all: a cine loop's static regions repeat block for block, but the
    frame before's coefficients as context mislead where the frames are not alike (the slices of a CT)."""
    reference = _reference(scan, previous)
    streams = _streams(scan, blocks, None)
    if reference is not None and streams is not None:
        against = _streams(scan, blocks, reference)
        if (against is not None and sum(map(len, against)) < sum(map(len, streams))
                and _decode_back(scan, blocks, against, reference)):
            streams = against
        else:
            reference = None
    if streams is None or sum(map(len, streams)) >= scan.segment_end - scan.segment_start:
        return None
    if reference is None and not _decode_back(scan, blocks, streams, None):  # only the streams kept are checked
        return None
    fields: dict[str, Any] = {"precision": scan.precision, "height": scan.height, "width": scan.width,
                              "restart": scan.restart_interval}
    if len(scan.components) == 1:  # as 2.14 wrote it
        fields.update(_table_fields(scan.components[0]))
    else:
        fields["components"] = [{**_table_fields(c), "h": c.horizontal, "v": c.vertical} for c in scan.components]
        fields["lengths"] = [len(stream) for stream in streams[:-1]]
    fields["pad"] = pad
    if reference is not None:
        fields["reference"] = 1
    return {"start": scan.segment_start, "end": scan.segment_end, **fields}, b"".join(streams)


def _streams(scan: jpeg_dct.DctScan, blocks: list[np.ndarray], reference: list[np.ndarray] | None
             ) -> list[bytes] | None:
    """Each component's coefficient stream (against the reference's, if any); None where a coefficient is
    beyond what the coder takes."""
    try:
        return [jpeg_coefficients.encode(grid, component.quant, reference=None if reference is None else reference[k])
                for k, (component, grid) in enumerate(zip(scan.components, blocks))]
    except ValueError:  # coefficients beyond what any JPEG holds
        return None


def _decode_back(scan: jpeg_dct.DctScan, blocks: list[np.ndarray], streams: list[bytes],
                 reference: list[np.ndarray] | None) -> bool:
    """Whether the streams decode to the blocks (as ``join`` will decode them)."""
    return all(np.array_equal(decoded, grid) for decoded, grid in zip(_decoded(scan, streams, reference), blocks))


def _decoded(scan: jpeg_dct.DctScan, streams: list[bytes], reference: list[np.ndarray] | None):
    """Each component's blocks from its coefficient stream (against the reference's, if any), one at a time."""
    for k, (stream, grid, component) in enumerate(zip(streams, scan.grids, scan.components)):
        yield jpeg_coefficients.decode(stream, *grid, component.quant,
                                       reference=None if reference is None else reference[k])


def _meta_cost(fields: dict[str, Any], before: dict[str, Any]) -> int:
    """About what describing a frame's scan adds to the compressed envelope: nothing where it is the frame
    before's, else its JSON deflated (its Huffman and quantisation tables: a few hundred bytes, which
    outweigh the coefficient coder's gain on a small colour JPEG)."""
    ignored = ("start", "end", "reference", "lengths")  # what differs from frame to frame, in a few bytes
    if {k: v for k, v in fields.items() if k not in ignored} == {k: v for k, v in before.items() if k not in ignored}:
        return 0
    return len(zlib.compress(json.dumps(fields, separators=(",", ":"), sort_keys=True).encode(), 9))


def _blocks_of(jpeg: bytes, scan: jpeg_dct.DctScan) -> list[np.ndarray] | None:
    """The coefficients of a JPEG XL frame's JPEG, for the frame after it, which was coded against them."""
    read = _coefficients(jpeg, scan.height, scan.width, len(scan.components))
    return None if read is None else read[1]


def _table_fields(component: jpeg_dct.Component) -> dict[str, Any]:
    return {"dc": [list(t) for t in component.dc_table], "ac": [list(t) for t in component.ac_table],
            "quant": list(component.quant)}


def _scan(fields: Any) -> tuple[jpeg_dct.DctScan, int, list[int], bool]:
    """The scan (its padding, where each component's stream ends in the frame's part, the last one open,
    and whether it is coded against the frame before) a frame's meta describes; CorruptStreamError where
    it is not one ``_dct`` could have written."""
    try:
        precision, height, width = int(fields["precision"]), int(fields["height"]), int(fields["width"])
        restart, pad, referenced = int(fields["restart"]), int(fields["pad"]), int(fields.get("reference", 0))
        several = "components" in fields
        components = [_component(c, several) for c in (fields["components"] if several else [fields])]
        lengths = [int(n) for n in fields["lengths"]] if several else []
        if not 1 <= len(components) <= jpeg_dct.MAX_COMPONENTS or len(lengths) != len(components) - 1:
            raise ValueError("components")
        if min(lengths, default=0) < 0 or sum(c.horizontal * c.vertical for c in components) > \
                jpeg_dct.MAX_BLOCKS_PER_MCU:
            raise ValueError("lengths or sampling")
    except (KeyError, TypeError, ValueError) as exc:
        raise CorruptStreamError(f"JPEG DICOM: a frame's scan parameters are damaged ({exc})") from exc
    if (precision not in (8, 12) or not 0 < height < 65536 or not 0 < width < 65536
            or height * width * len(components) > MAX_FRAME_PIXELS or not 0 <= restart < 65536 or pad not in (0, 1)
            or referenced not in (0, 1)):
        raise CorruptStreamError("JPEG DICOM: a frame's scan parameters are out of range")
    scan = jpeg_dct.DctScan(precision=precision, height=height, width=width, restart_interval=restart,
                            components=tuple(components), segment_start=0, segment_end=0)
    return scan, pad, lengths, bool(referenced)


def _component(fields: Any, interleaved: bool) -> jpeg_dct.Component:
    """A component's tables (and, of an interleaved scan, its sampling factors) from its meta; ValueError,
    KeyError or TypeError where they are not a scan's."""
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
    horizontal, vertical = (int(fields["h"]), int(fields["v"])) if interleaved else (1, 1)
    if not (1 <= horizontal <= 4 and 1 <= vertical <= 4):
        raise ValueError("sampling")
    return jpeg_dct.Component(quant=quant, dc_table=tables[0], ac_table=tables[1], horizontal=horizontal,
                              vertical=vertical)


def split(value: bytes, rows: int, cols: int, frames: int, samples: int,
          max_pixels: int | None = None) -> tuple[bytes, list[bytes], dict[str, Any]] | None:
    """(kept bytes, each frame's coded bytes, meta) of an encapsulated JPEG PixelData value, or None to
    keep it verbatim (also when its frames hold more than max_pixels pixels; None: no limit)."""
    if min(rows, cols, frames, samples) <= 0:
        return None
    per_frame = frames_within(value, rows, cols, frames, samples, max_pixels)
    if per_frame is None:
        return None
    coded, cuts, frame_meta = [], [], []
    previous = None  # the frame before's coefficients (whichever coder took it: the decoder has them too)
    described: dict[str, Any] = {}  # the last frame's scan parameters in the meta
    for pieces, jpeg in per_frame:
        jxl = _transcode(jpeg)
        read = _coefficients(jpeg, rows, cols, samples)
        dct = _dct(*read, previous) if read is not None and read[2] is not None else None
        previous = None if read is None else read[1]
        # medcodec's coder leaves the frame's markers and tables in the kept bytes, and describes the scan in
        # the meta (a second time, unless the frame before had the same, shared by the frames of a cine loop,
        # which usually have the same tables); JPEG XL takes them in
        extra = (len(jpeg) - (dct[0]["end"] - dct[0]["start"]) + _meta_cost(dct[0], described) // len(per_frame)
                 if dct else 0)
        if dct is not None and (jxl is None or len(dct[1]) + extra < len(jxl)):
            fields, stream = dct
            start, end = fields.pop("start"), fields.pop("end")
            described = fields
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
    written: list[bytes] = []
    previous: list[np.ndarray] | None = None  # the frame before's coefficients, where a frame needs them
    for number, (frame, stream) in enumerate(zip(frames, coded)):
        if "dct" in frame:
            scan, pad, lengths, referenced = _scan(frame["dct"])
            if referenced and previous is None and written:  # the frame before went to JPEG XL
                previous = _blocks_of(written[-1], scan)
            reference = _reference(scan, previous) if referenced else None
            if referenced and reference is None:
                raise CorruptStreamError(f"JPEG DICOM: frame {number} is coded against a frame before it that "
                                         "does not match it")
            ends = np.cumsum(lengths).tolist()
            if ends and ends[-1] > len(stream):
                raise CorruptStreamError("JPEG DICOM: a frame's component streams are longer than its part")
            parts = [stream[a:b] for a, b in zip([0, *ends], [*ends, len(stream)])]
            blocks = list(_decoded(scan, parts, reference))
            segment = jpeg_dct.write(blocks, scan, pad)
            if segment is None:
                raise CorruptStreamError("JPEG DICOM: a frame's scan cannot be written again")
            written.append(segment)
            previous = blocks
            continue
        try:
            written.append(bytes(imagecodecs.jpegxl_decode_jpeg(stream)))
        except Exception as exc:  # imagecodecs raises JpegxlError on garbage
            raise CorruptStreamError(f"JPEG DICOM: a frame's JPEG XL cannot be decoded ({exc})") from exc
        previous = None  # read from its JPEG only if the next frame needs it
    return splice(kept, [frame["pieces"] for frame in frames], written, "JPEG DICOM")
