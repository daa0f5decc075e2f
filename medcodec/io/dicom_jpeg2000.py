"""Encapsulated lossless JPEG 2000 PixelData, byte-exact: its frames' samples as planes, the rest kept.

JPEG 2000 (transfer syntaxes 1.2.840.10008.1.2.4.90 and .91) is the commonest lossless compression of
newer PACS archives, and it was kept verbatim. Unlike a lossless-JPEG scan, a JPEG 2000 codestream is
not a function of its samples alone: packet headers, quality layers, progression order, tile-parts
and how each code-block's arithmetic codeword ends are the encoder's choices. Its bulk, the code-blocks'
codewords, is though (``entropy.jpeg2000_tier1``: the reversible 5/3 wavelet and EBCOT tier 1). So
``split`` writes every code-block again from the decoded samples and finds long runs of those bytes in
the frame (a code-block's codeword is cut into pieces across quality layers; its last bytes, ended as
the encoder chose, usually differ); the value without those runs is kept, with a table of where each
run goes, and decoding writes the code-blocks again from the planes and puts the runs back. What the
runs do not cover (markers, packet headers, terminations, code-blocks an encoder wrote otherwise) is
kept as it was, so any codestream the decoder reads comes back byte for byte (the codec checks the
file's sha256).

Modelled: one component (or three of 8 bits), one tile at the origin, the reversible transform, no
optional code-block coding style, no region of interest, no coding parameters in tile-part headers; a
codestream as DICOM stores it or wrapped in a JP2 file. The 9/7 transform is not; code-blocks an
encoder truncated (lossy by rate) match only in part, and where the coding comes out larger than the
value the codec keeps the value. Planes: the values as the DICOM header reads them (``split``), offset
to unsigned for signed files, in BitsStored bits where they fit; colour frames' subtract-green planes.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

import numpy as np

from medcodec.compiled import kernel
from medcodec.entropy import jpeg2000_tier1
from medcodec.errors import CorruptStreamError
from medcodec.io import colour
from medcodec.io.dicom_scans import decoded, frames_within

SYNTAXES = ("1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91")
LAYOUT = "jpeg2000"
SOC, SIZ, COD, COC, RGN, CAP, SOT, SOD = 0xFF4F, 0xFF51, 0xFF52, 0xFF53, 0xFF5E, 0xFF50, 0xFF90, 0xFF93
RUN = 8  # bytes: shorter runs are not looked for (a chance match of 8 bytes is rare; the table costs ~4)
MAX_LEVELS = 32
MAX_PLACES = 16  # places in the value tried for each stream offset
JP2_SIGNATURE = b"\x00\x00\x00\x0cjP  \r\n\x87\n"


@dataclass(frozen=True)
class Codestream:
    """What writing a single-tile reversible codestream's code-blocks needs."""

    height: int
    width: int
    precision: int
    signed: bool
    levels: int
    block_sizes: tuple[tuple[int, int], ...]  # per resolution: log2 of the code-block width and height
    components: int = 1  # 1, or 3 (colour: 8-bit samples)
    mct: bool = False  # the reversible colour transform (RCT) between the components and the wavelet


def _segments(frame: bytes, at: int, stop: int):
    """(marker, body start, body end) of the marker segments from at until the marker stop (or None)."""
    while at + 4 <= len(frame):
        marker, length = struct.unpack_from(">HH", frame, at)
        if marker == stop:
            yield marker, at, at
            return
        if marker >> 8 != 0xFF or length < 2 or at + 2 + length > len(frame):
            yield None, at, at
            return
        yield marker, at + 4, at + 2 + length
        at += 2 + length
    yield None, at, at


def codestream_start(frame: bytes) -> int | None:
    """Where the codestream starts: at 0 as DICOM has it, or inside the 'jp2c' box of a JP2 file (some
    writers wrap it so; its boxes are kept with the rest); None for anything else."""
    if frame[:4] == b"\xff\x4f\xff\x51":
        return 0
    if frame[:12] != JP2_SIGNATURE:
        return None
    at = 0
    while at + 8 <= len(frame):
        length, kind = struct.unpack_from(">I4s", frame, at)
        header = 8
        if length == 1 and at + 16 <= len(frame):  # a 64-bit length follows
            (length,) = struct.unpack_from(">Q", frame, at + 8)
            header = 16
        if kind == b"jp2c":
            start = at + header
            return start if frame[start:start + 4] == b"\xff\x4f\xff\x51" else None
        if length < header:  # 0: the box runs to the end, and it is not the codestream
            return None
        at += length
    return None


def parse(frame: bytes) -> Codestream | None:
    """The codestream's parameters, or None for one this module does not model (see the module doc)."""
    origin = codestream_start(frame)
    if origin is None:
        return None
    found: dict[int, bytes] = {}
    first_tile_part = None
    for marker, start, end in _segments(frame, origin + 2, SOT):
        if marker is None or marker in (COC, RGN, CAP) or (marker in (SIZ, COD) and marker in found):
            return None
        if marker == SOT:
            first_tile_part = start
            break
        found[marker] = frame[start:end]
    if first_tile_part is None or SIZ not in found or COD not in found or len(found[SIZ]) < 39:
        return None
    _, width, height, x0, y0, tile_w, tile_h, tile_x0, tile_y0, components = struct.unpack_from(
        ">HIIIIIIIIH", found[SIZ])
    if components not in (1, 3) or len(found[SIZ]) != 36 + 3 * components:
        return None
    ssiz, dx, dy = found[SIZ][36:39]
    if (x0 or y0 or tile_x0 or tile_y0 or tile_w < width or tile_h < height or (dx, dy) != (1, 1)
            or not 1 <= (ssiz & 0x7F) + 1 <= 16 or width == 0 or height == 0
            or found[SIZ][36:] != found[SIZ][36:39] * components or (components == 3 and ssiz != 7)):
        return None
    cod = found[COD]
    if len(cod) < 10:
        return None
    scod, mct, levels, xcb, ycb, style, transform = cod[0], cod[4], cod[5], cod[6] + 2, cod[7] + 2, cod[8], cod[9]
    if (style or transform != 1 or levels > MAX_LEVELS or xcb > 10 or ycb > 10 or xcb + ycb > 12
            or mct > 1 or (mct and components != 3)):
        return None
    precincts = cod[10:] if scod & 1 else bytes([0xFF] * (levels + 1))
    if len(precincts) != levels + 1:
        return None
    # a code-block never crosses a precinct: at resolution r > 0 a precinct spans half as much of a subband
    sizes = tuple((min(xcb, (p & 15) - (r > 0)), min(ycb, (p >> 4) - (r > 0))) for r, p in enumerate(precincts))
    if any(min(size) < 0 for size in sizes) or not _tile_parts_plain(frame, first_tile_part):
        return None
    return Codestream(height, width, (ssiz & 0x7F) + 1, bool(ssiz >> 7), levels, sizes, components, bool(mct))


def _tile_parts_plain(frame: bytes, at: int) -> bool:
    """Whether every tile-part is of tile 0 and none of their headers changes the coding (COD, COC, RGN)."""
    while at + 12 <= len(frame) and struct.unpack_from(">H", frame, at)[0] == SOT:
        _, _, tile, length, _, _ = struct.unpack_from(">HHHIBB", frame, at)
        if tile != 0:
            return False
        for marker, _, _ in _segments(frame, at + 12, SOD):
            if marker is None or marker in (COD, COC, RGN):
                return False
            if marker == SOD:
                break
        if length == 0:  # the last tile-part runs to the end of the codestream
            return True
        at += length
    return True


def _decode(frame: bytes, stream: Codestream) -> np.ndarray | None:
    """The frame's samples (int64; two's complement values where the codestream is signed), or None
    where the decoder fails or gives what the codestream's header does not declare."""
    import imagecodecs

    shape = (stream.height, stream.width) + ((3,) if stream.components == 3 else ())
    samples = decoded(imagecodecs.jpeg2k_decode, frame, shape)
    if samples is None:
        return None
    samples = samples.astype(np.int64)
    low, high = (-(1 << (stream.precision - 1)), 1 << (stream.precision - 1)) if stream.signed else (
        0, 1 << stream.precision)
    if samples.size and (samples.min() < low or samples.max() >= high):
        return None
    return samples


def _keys(data: np.ndarray) -> np.ndarray:
    """The RUN bytes starting at each position, as one uint64 each."""
    if len(data) < RUN:
        return np.zeros(0, np.uint64)
    windows = np.lib.stride_tricks.sliding_window_view(data, RUN).astype(np.uint64)
    return (windows << (np.arange(RUN, dtype=np.uint64) * np.uint64(8))).sum(axis=1, dtype=np.uint64)


@kernel
def _match(region, order, sorted_keys, stream, stream_keys, claimed, out):
    """Runs of stream found in region, in order along both, on bytes no earlier run claimed; each as
    (region position, stream offset, length) in out; returns how many."""
    n, found, offset, last = len(stream), 0, 0, 0
    while offset <= n - RUN:
        key = stream_keys[offset]
        lo, hi = np.searchsorted(sorted_keys, key, "left"), np.searchsorted(sorted_keys, key, "right")
        best, length = -1, 0
        # a few places a key: repeated bytes (a crafted value's) must not make this quadratic
        for j in range(lo, min(hi, lo + MAX_PLACES)):
            at = order[j]
            if at < last or claimed[at]:
                continue
            length = 0
            while offset + length < n and at + length < len(region) and not claimed[at + length] and (
                    region[at + length] == stream[offset + length]):
                length += 1
            if length >= RUN:
                best = at
                break
        if best < 0:
            offset += 1
            continue
        claimed[best:best + length] = True
        out[found, 0], out[found, 1], out[found, 2] = best, offset, length
        found += 1
        offset += length
        last = best + length
    return found


def find_runs(region: bytes, streams: list[bytes]) -> list[tuple[int, int, int, int]]:
    """(position in region, stream, offset in stream, length) of every run of RUN or more bytes of the
    streams found in region, none overlapping another, sorted by position. Each stream's runs lie in
    its order in region (a code-block's layers do), the first place that fits taken."""
    data = np.frombuffer(region, dtype=np.uint8)
    keys = _keys(data)
    order = np.argsort(keys, kind="stable")
    sorted_keys = keys[order]
    claimed = np.zeros(len(data), dtype=np.bool_)
    runs = []
    for index, stream in enumerate(streams):
        if len(stream) < RUN:
            continue
        array = np.frombuffer(stream, dtype=np.uint8)
        out = np.zeros((len(stream) // RUN + 1, 3), np.int64)
        count = _match(data, order, sorted_keys, array, _keys(array), claimed, out)
        runs.extend((int(at), index, int(offset), int(length)) for at, offset, length in out[:count])
    return sorted(runs)


def _table(runs: list[tuple[int, int, int, int]], pos: int) -> tuple[list[int], int]:
    """A frame's runs as a flat list of small numbers, four a run: the kept bytes before it (pos: where
    the previous frame's last run ended), its code-block less the previous run's, its offset less where
    that code-block's previous run ended, its length; and where the last run ends."""
    table, previous, ends = [], 0, {}
    for at, stream, offset, length in runs:
        table += [at - pos, stream - previous, offset - ends.get(stream, 0), length]
        pos, previous, ends[stream] = at + length, stream, offset + length
    return table, pos


def _values(samples: np.ndarray, precision: int, coded_signed: bool, signed: bool) -> np.ndarray:
    """The samples as the DICOM header reads them: a signed file whose codestream says unsigned (as some
    encoders wrote it) holds two's complement bit patterns of `precision` bits."""
    if signed and not coded_signed:
        return samples - ((samples >> (precision - 1)) << precision)
    return samples


def _plane_bits(values: list[np.ndarray], precision: int, signed: bool, stored: int | None) -> int:
    """The planes' bits: the DICOM header's BitsStored where the values fit in it (a 12-bit CR in a
    16-bit codestream is coded as 12-bit planes), else the codestream's precision."""
    if stored is None or not 1 <= stored < precision:
        return precision
    low = min(int(v.min(initial=0)) for v in values)
    high = max(int(v.max(initial=0)) for v in values)
    fits = -(1 << (stored - 1)) <= low and high < 1 << (stored - 1) if signed else high < 1 << stored
    return stored if fits else precision


def _wavelet_input(plane: np.ndarray, meta: dict[str, Any]) -> np.ndarray:
    """A grey plane's codestream samples as the wavelet takes them (unsigned ones less 2^(P-1), the DC
    level shift): the inverse of ``split``'s mapping, value = plane - 2^(bits-1) for a signed file."""
    bits, precision, signed, coded_signed = meta["bits"], meta["precision"], meta["signed"], meta["coded_signed"]
    values = plane.astype(np.int64) - ((1 << (bits - 1)) if signed else 0)
    if coded_signed:
        return values
    samples = values & ((1 << precision) - 1)  # two's complement patterns where the file is signed
    return samples - (1 << (precision - 1))


def _frame_streams(planes: list[np.ndarray], meta: dict[str, Any]) -> list[bytes]:
    """Every code-block's bytes of a frame, from its planes: one grey plane, or a colour frame's three
    (``io.colour``'s subtract-green planes of its RGB samples, which the codestream holds DC-shifted and,
    with ``mct``, through the reversible colour transform of G.2: (R + 2G + B) >> 2, B - G, R - G)."""
    if meta["components"] == 3:
        rgb = colour.inverse(*planes).astype(np.int64) - 128
        red, green, blue = rgb[..., 0], rgb[..., 1], rgb[..., 2]
        inputs = [(red + 2 * green + blue) >> 2, blue - green, red - green] if meta["mct"] else [red, green, blue]
    else:
        inputs = [_wavelet_input(planes[0], meta)]
    sizes = [tuple(size) for size in meta["blocks"]]
    return [stream for component in inputs for stream in jpeg2000_tier1.block_streams(component, meta["levels"], sizes)]


def split(value: bytes, rows: int, cols: int, frames: int, max_pixels: int | None = None,
          stored: int | None = None, signed: bool = False, samples: int = 1
          ) -> tuple[list[np.ndarray], int, dict[str, Any], bytes] | None:
    """(planes, bits, meta, kept bytes) of a JPEG 2000 PixelData value of grey (samples 1) or 8-bit
    colour (samples 3) frames, or None to keep it verbatim (also when its frames hold more than
    max_pixels samples in all; None: no limit). Grey planes hold the values as the DICOM header reads
    them (signed: PixelRepresentation 1, or a signed codestream), plus 2^(bits-1) where signed, in the
    header's BitsStored where they fit (``_plane_bits``); a colour frame gives three subtract-green planes
    (``io.colour``) of its RGB samples."""
    if samples not in (1, 3):
        return None
    per_frame = frames_within(value, rows, cols, frames, samples, max_pixels, starts=b"\xff\x4f\xff\x51")
    if per_frame is None:
        return None
    streams, samples_of = [], []
    for _, frame in per_frame:
        stream = parse(frame)
        if (stream is None or (stream.height, stream.width, stream.components) != (rows, cols, samples)
                or stream not in (streams[:1] or [stream])):
            return None
        frame_samples = _decode(frame, stream)
        if frame_samples is None:
            return None
        streams.append(stream)
        samples_of.append(frame_samples)
    stream = streams[0]
    meta = {"layout": LAYOUT, "rows": rows, "cols": cols, "precision": stream.precision, "coded_signed": stream.signed,
            "components": stream.components, "mct": stream.mct, "levels": stream.levels,
            "blocks": [list(size) for size in stream.block_sizes]}
    if stream.components == 3:
        meta.update(bits=8, signed=False)
        frame_planes = [colour.forward(frame_samples.astype(np.uint8)) for frame_samples in samples_of]
    else:
        signed = signed or stream.signed
        values = [_values(frame_samples, stream.precision, stream.signed, signed) for frame_samples in samples_of]
        bits = _plane_bits(values, stream.precision, signed, stored)
        meta.update(bits=bits, signed=signed)
        frame_planes = [[np.ascontiguousarray((v + ((1 << (bits - 1)) if signed else 0)).astype(np.uint16))]
                        for v in values]
    tables, written_frames, kept, pos = [], [], bytearray(), 0
    for (pieces, _), planes in zip(per_frame, frame_planes):
        written = _frame_streams(planes, meta)  # what join writes again from the same planes
        written_frames.append(written)
        # runs are looked for in the frame's stretch of the value: item headers between fragments end them
        start, end = pieces[0][0], pieces[-1][0] + pieces[-1][1]
        runs = [(at + start, *rest) for at, *rest in find_runs(value[start:end], written)]
        for at, _, _, length in runs:
            kept += value[pos:at]
            pos = at + length
        tables.append(runs)
    kept += value[pos:]
    pos, meta["runs"] = 0, []
    for runs in tables:
        table, pos = _table(runs, pos)
        meta["runs"].append(table)
    planes = [plane for planes in frame_planes for plane in planes]
    # the decoder's own splice over the code-blocks join writes (the same from the same planes): never keep
    # what it cannot undo
    if _splice(meta["runs"], written_frames, bytes(kept)) != value:
        return None
    return planes, meta["bits"], meta, bytes(kept)


def join(meta: dict[str, Any], planes: list[np.ndarray], kept: bytes) -> bytes:
    """Inverse of split: the PixelData value from the planes and the kept bytes."""
    rows, cols, bits, precision, levels, blocks, tables, components = (
        meta[k] for k in ("rows", "cols", "bits", "precision", "levels", "blocks", "runs", "components"))
    numbers = [rows, cols, bits, precision, levels, *(v for size in blocks for v in size)]
    if (not all(type(v) is int and v >= 0 for v in numbers) or not 1 <= bits <= precision <= 16
            or any(type(meta[k]) is not bool for k in ("signed", "coded_signed", "mct"))
            or components not in (1, 3) or (components == 3 and (bits, precision) != (8, 8)) or levels > MAX_LEVELS
            or len(blocks) != levels + 1 or any(len(size) != 2 or max(size) > 10 or sum(size) > 12 for size in blocks)
            or not isinstance(tables, list) or components * len(tables) != len(planes)
            or not all(isinstance(t, list) and len(t) % 4 == 0 and all(type(v) is int for v in t) for t in tables)):
        raise CorruptStreamError("JPEG 2000 DICOM envelope has a damaged description")
    written_frames = []
    for frame in range(len(tables)):
        frame_planes = [np.asarray(p) for p in planes[components * frame:components * (frame + 1)]]
        if any(p.shape != (rows, cols) or (p.size and int(p.max()) >> bits) for p in frame_planes):
            raise CorruptStreamError("JPEG 2000 DICOM plane has the wrong shape or values")
        written_frames.append(_frame_streams(frame_planes, meta))
    return _splice(tables, written_frames, kept)


def _splice(tables: list[list[int]], written_frames: list[list[bytes]], kept: bytes) -> bytes:
    """The PixelData value: the kept bytes with each frame's runs of its code-blocks' bytes put back."""
    out, pos = bytearray(), 0
    for table, written in zip(tables, written_frames, strict=True):
        previous, ends = 0, {}
        for k in range(0, len(table), 4):
            gap, step, skip, length = table[k:k + 4]
            stream = previous + step
            offset = ends.get(stream, 0) + skip
            if (gap < 0 or pos + gap > len(kept) or not 0 <= stream < len(written) or offset < 0 or length <= 0
                    or offset + length > len(written[stream])):
                raise CorruptStreamError("JPEG 2000 DICOM envelope: a code-block run does not fit")
            out += kept[pos:pos + gap]
            out += written[stream][offset:offset + length]
            pos, previous, ends[stream] = pos + gap, stream, offset + length
    return bytes(out + kept[pos:])
