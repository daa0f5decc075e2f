"""Encapsulated RLE Lossless PixelData (1.2.840.10008.1.2.5), byte-exact, whatever encoder wrote it.

DICOM's RLE (PS3.5 Annex G) stores each frame in one fragment: a 64-byte header (the number of
segments and their offsets), then one PackBits segment per byte of the sample (most significant
first). PackBits leaves the encoder free choices (where a literal run ends, whether two equal bytes
become a replicate run, no-op bytes, padding after a segment), and encoders differ on them, so a
segment cannot be written again from the samples alone. It does not have to be: given the samples,
what a segment adds is its control bytes and whatever follows its last run. The PixelData value
without the *data* bytes of the runs (a literal run's bytes, a replicate run's byte) is kept; the
samples go to medcodec's methods as native words; decoding replays the kept control bytes over the
samples' bytes, which gives every segment back exactly, for any encoder. What is kept is small and
repetitive (a noisy low byte is mostly 0x7F, "128 literal bytes").

Handled: 8- and 16-bit single-sample frames and 8-bit three-sample (colour) ones, one fragment per
frame, every segment giving exactly rows x columns bytes. Anything else (32-bit, a run crossing the end
of its segment's samples, a damaged header) returns None: the caller keeps the value verbatim.
"""

from __future__ import annotations

import struct
from typing import Any

import numpy as np

from medcodec.compiled import kernel
from medcodec.errors import CorruptStreamError
from medcodec.io.dicom_scans import items

SYNTAX = "1.2.840.10008.1.2.5"
LAYOUT = "rle"
HEADER_BYTES = 64
MAX_SEGMENTS = 15


@kernel
def _unpack(value, start, end, out, data_mask):
    """PackBits-decode value[start:end] into out (exactly its length), marking each data byte in
    data_mask; the position after the run that fills out, or -1 when the segment ends first or a run
    crosses out's end."""
    n = out.shape[0]
    p = start
    produced = 0
    while produced < n:
        if p >= end:
            return -1
        c = value[p]
        p += 1
        if c < 128:
            count = c + 1
            if produced + count > n or p + count > end:
                return -1
            for k in range(count):
                out[produced + k] = value[p + k]
                data_mask[p + k] = True
            p += count
            produced += count
        elif c > 128:
            count = 257 - c
            if produced + count > n or p >= end:
                return -1
            for k in range(count):
                out[produced + k] = value[p]
            data_mask[p] = True
            p += 1
            produced += count
    return p


@kernel(inline=True)
def _predicted(samples, produced, row, min_run):
    """The control byte a typical encoder writes at this point of a segment: a replicate run where
    min_run or more equal bytes start, else a literal run up to where such a run starts; runs hold at
    most 128 bytes and, when row > 0, stay within a row (as the standard recommends)."""
    n = samples.shape[0]
    row_end = n if row == 0 else min(n, (produced // row + 1) * row)
    cap = min(produced + 128, row_end)
    run = 1
    while produced + run < cap and samples[produced + run] == samples[produced]:
        run += 1
    if run >= min_run:
        return 257 - run
    j = produced + 1
    while j < cap:
        if j + min_run <= row_end:
            same = True
            for k in range(1, min_run):
                if samples[j + k] != samples[j]:
                    same = False
                    break
            if same:
                break
        j += 1
    return j - produced - 1


@kernel
def _walk(kept, start, samples, out, out_at, row, min_run, to_residuals):
    """Walk a segment's runs from kept[start] over its samples (the segment's bytes).

    Kept holds each control byte XOR the one _predicted gives there (0 wherever the encoder did what
    is typical, which LZMA then codes in almost nothing). to_residuals: kept holds the control bytes
    themselves and is turned into that form, in place (out unused). Else: write the segment into out
    from out_at. (position in kept, position in out) after the last run, or (-1, -1) when the control
    bytes do not fit the samples (a damaged envelope)."""
    n = samples.shape[0]
    p = start
    q = out_at
    produced = 0
    while produced < n:
        if p >= kept.shape[0]:
            return -1, -1
        predicted = _predicted(samples, produced, row, min_run)
        if to_residuals:
            c = kept[p]
            kept[p] = c ^ predicted
        else:
            c = kept[p] ^ predicted
            out[q] = c
            q += 1
        p += 1
        count = c + 1 if c < 128 else (257 - c if c > 128 else 0)
        if produced + count > n:
            return -1, -1
        if not to_residuals:
            if c < 128:
                for k in range(count):
                    out[q + k] = samples[produced + k]
                q += count
            elif c > 128:
                out[q] = samples[produced]
                q += 1
        produced += count
    return p, q


# The typical encoders _predicted knows, as (row, min_run): row 1 stands for "the image's row length".
# split keeps the one that leaves the fewest non-zero residuals.
PREDICTORS = ((1, 2), (0, 2), (1, 3), (0, 3))


def typical_segment(data: bytes, row: int, min_run: int) -> bytes:
    """The runs a typical encoder writes for these bytes (those _predicted predicts; row: the row
    length, 0 for runs across rows); a segment in a file is padded to an even length after them."""
    samples = np.frombuffer(data, dtype=np.uint8)
    out, produced = bytearray(), 0
    while produced < len(samples):
        control = int(_predicted(samples, produced, row, min_run))
        count = control + 1 if control < 128 else 257 - control
        out.append(control)
        out += samples[produced:produced + (count if control < 128 else 1)].tobytes()
        produced += count
    return bytes(out)


def _native(segment_bytes: np.ndarray, alloc: int) -> bytes:
    """The frames' samples from their segments [frames, segments, count]: 16-bit as little-endian words
    (most significant segment first); 8-bit as the segments' bytes in order (colour: a frame's R, G, B
    planes one after the other)."""
    if alloc == 16:
        words = (segment_bytes[:, 0].astype(np.uint16) << 8) | segment_bytes[:, 1]
        return words.astype("<u2").tobytes()
    return segment_bytes.tobytes()


def _segments(native: bytes, frames: int, segments: int, alloc: int) -> np.ndarray:
    """Inverse of _native: [frames, segments, count] uint8."""
    if alloc == 16:
        words = np.frombuffer(native, dtype="<u2").reshape(frames, -1)
        return np.stack([(words >> 8).astype(np.uint8), (words & 0xFF).astype(np.uint8)], axis=1)
    return np.frombuffer(native, dtype=np.uint8).reshape(frames, segments, -1)


def split(value: bytes, rows: int, cols: int, frames: int, alloc: int, max_pixels: int | None = None,
          samples: int = 1) -> tuple[bytes, bytes, dict[str, Any]] | None:
    """(the frames' samples as _native gives them, kept bytes, meta) of an RLE PixelData value (one
    sample of 8 or 16 bits, or three of 8), or None to keep it verbatim (also when its frames hold more
    than max_pixels samples; None: no limit)."""
    if (samples, alloc) not in ((1, 8), (1, 16), (3, 8)) or min(rows, cols, frames) <= 0:
        return None
    if max_pixels is not None and rows * cols * frames * samples > max_pixels:
        return None
    found = items(value)
    if found is None or len(found) != frames + 1:
        return None
    segments = samples * alloc // 8
    count = rows * cols
    buffer = np.frombuffer(value, dtype=np.uint8)
    data_mask = np.zeros(len(value), dtype=np.bool_)
    segment_bytes = np.zeros((frames, segments, count), dtype=np.uint8)
    starts = []  # every segment's first byte, in value coordinates
    for frame, (payload, length) in enumerate(found[1:]):
        if length < HEADER_BYTES:
            return None
        number, *offsets = struct.unpack_from("<16I", value, payload)
        if number != segments or offsets[0] < HEADER_BYTES:
            return None
        bounds = offsets[:segments] + [length]
        if any(a >= b for a, b in zip(bounds, bounds[1:])):
            return None
        for index in range(segments):
            start, end = payload + bounds[index], payload + bounds[index + 1]
            if _unpack(buffer, start, end, segment_bytes[frame, index], data_mask) < 0:
                return None
            starts.append(start)
    # a segment's start in the kept bytes: its start less the data bytes removed before it
    removed_before = np.concatenate([[0], np.cumsum(data_mask, dtype=np.int64)])
    seg_starts = [int(s - removed_before[s]) for s in starts]
    controls = buffer[~data_mask]
    planes = [plane for frame in segment_bytes for plane in frame]
    best = None
    for row_flag, min_run in PREDICTORS:
        kept = controls.copy()
        for at, plane in zip(seg_starts, planes):
            if _walk(kept, at, plane, kept, 0, cols * row_flag, min_run, True)[0] < 0:
                return None
        if best is None or np.count_nonzero(kept) < np.count_nonzero(best[0]):
            best = kept, [row_flag, min_run]
    kept_bytes = best[0].tobytes()
    meta = {"layout": LAYOUT, "rows": rows, "cols": cols, "frames": frames, "alloc": alloc, "samples": samples,
            "segments": seg_starts, "predictor": best[1]}
    native = _native(segment_bytes, alloc)
    if join(meta, native, kept_bytes) != value:  # the replay is the decoder's: never keep what it cannot rebuild
        return None
    return native, kept_bytes, meta


def join(meta: dict[str, Any], native: bytes, kept: bytes) -> bytes:
    """Inverse of split: the PixelData value from the frames' native words and the kept bytes."""
    rows, cols, frames, alloc, samples = (meta[k] for k in ("rows", "cols", "frames", "alloc", "samples"))
    starts, predictor = meta["segments"], meta["predictor"]
    # the compiled loops take only what split wrote (ints in range): a damaged envelope is refused here
    if (not all(type(v) is int and v >= 0 for v in (rows, cols, frames, alloc, samples, *starts))
            or (samples, alloc) not in ((1, 8), (1, 16), (3, 8))):
        raise CorruptStreamError("RLE DICOM envelope has a damaged description")
    segments = samples * alloc // 8
    if (len(starts) != frames * segments or len(native) != rows * cols * frames * segments
            or tuple(predictor) not in PREDICTORS):
        raise CorruptStreamError("RLE DICOM envelope does not match its frames")
    row, min_run = cols * predictor[0], predictor[1]
    segment_bytes = _segments(native, frames, segments, alloc) if frames else np.zeros((0, segments, 0), np.uint8)
    kept_array = np.frombuffer(kept, dtype=np.uint8).copy()  # writable: _walk is one loop for both ways
    out = np.empty(len(kept) + len(native), dtype=np.uint8)  # every data byte is at most one sample byte
    pos, at = 0, 0
    for frame in range(frames):
        for index, plane in enumerate(segment_bytes[frame]):
            start = starts[frame * segments + index]
            if not pos <= start <= len(kept):
                raise CorruptStreamError("RLE DICOM envelope: segments out of order")
            out[at:at + start - pos] = kept_array[pos:start]
            at += start - pos
            pos, at = _walk(kept_array, start, plane, out, at, row, min_run, False)
            if pos < 0:
                raise CorruptStreamError("RLE DICOM envelope: control bytes do not fit the samples")
    out[at:at + len(kept) - pos] = kept_array[pos:]
    return out[:at + len(kept) - pos].tobytes()
