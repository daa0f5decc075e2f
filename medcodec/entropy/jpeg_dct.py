"""Sequential-DCT JPEG scans (Huffman coded, one component) to quantised coefficients and back, bit for bit.

Why: 12-bit lossy JPEG (DICOM's JPEG Extended, 1.2.840.10008.1.2.4.51; CT and MR from older PACS)
cannot be transcoded by JPEG XL, which takes 8-bit JPEGs only, so such files were kept verbatim. Their
waste is the same as an 8-bit JPEG's: the quantised coefficients are Huffman coded one symbol at a
time, with no context. ``jpeg_coefficients`` codes the coefficients far more tightly; this module
gets them out of the scan and writes the scan again from them. A sequential Huffman scan is a function
of its coefficients and its header (tables, restart interval; ITU T.81 F.1.2): per block the DC
difference's size category and extra bits, then run/size symbols up to an EOB, with a 0x00 stuffed after
every 0xFF, restart markers every ``restart_interval`` blocks and the bits before each marker padded
(with ones, as F.1.2.3 says, or zeros, as a few encoders do: ``pad`` says which). What an encoder may
write otherwise (an EOB after ZRLs, other padding, bytes before a marker) is found out because
``write`` does not give the segment back, and such a frame stays verbatim.

Modelled: baseline or extended (SOF0, SOF1) frames of one component, 8 or 12 bits, one scan (of the
whole spectrum, as sequential scans are, whatever their Ss and Se say; no successive approximation),
followed by EOI.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from medcodec.compiled import kernel
from medcodec.entropy.jpeg_baseline import huffman_codes
from medcodec.entropy.jpeg_lossless import (DHT, DNL, DRI, EOI, SOS, huffman_tables, marker_segments, put_bits,
                                             segment_end)

SOF0, SOF1 = 0xC0, 0xC1
DQT = 0xDB
# any other start of frame (progressive, lossless, arithmetic coded, hierarchical): not this module's
OTHER_SOF = frozenset({0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})


@dataclass(frozen=True)
class DctScan:
    """What a one-component sequential DCT frame says of its coefficients, and where its entropy-coded
    segment lies in the frame's bytes ([segment_start, segment_end): up to the EOI after it, restart
    markers included)."""

    precision: int  # 8 or 12
    height: int
    width: int
    restart_interval: int  # blocks between restart markers, 0 for none
    dc_table: tuple[tuple[int, ...], tuple[int, ...]]  # (counts per code length, symbols)
    ac_table: tuple[tuple[int, ...], tuple[int, ...]]
    quant: tuple[int, ...]  # the component's quantisation table, zigzag order (the coefficient coder's)
    segment_start: int
    segment_end: int

    @property
    def blocks(self) -> tuple[int, int]:
        """(rows, columns) of 8x8 blocks: a one-component scan covers the image's blocks alone (A.2.2)."""
        return (self.height + 7) // 8, (self.width + 7) // 8


def parse(frame: bytes) -> DctScan | None:
    """The scan of a JPEG frame this module writes, or None (anything else, or bytes that are not a JPEG)."""
    try:
        return _parse(frame)
    except (ValueError, IndexError):
        return None


def _parse(frame: bytes) -> DctScan | None:
    tables: dict[tuple[int, int], tuple[tuple[int, ...], tuple[int, ...]]] = {}
    quant: dict[int, tuple[int, ...]] = {}
    header: dict[str, int] = {"restart_interval": 0}
    for marker, segment, after in marker_segments(frame):
        if marker in OTHER_SOF or marker in (EOI, DNL):
            return None
        if marker == DQT:
            pos = 0
            while pos < len(segment):
                wide, table_id = segment[pos] >> 4, segment[pos] & 15
                size = 128 if wide else 64
                if wide > 1 or pos + 1 + size > len(segment):
                    return None
                raw = segment[pos + 1:pos + 1 + size]
                quant[table_id] = (tuple(int.from_bytes(raw[i:i + 2], "big") for i in range(0, 128, 2))
                                   if wide else tuple(raw))
                pos += 1 + size
        elif marker == DHT:
            defined = huffman_tables(segment)
            if defined is None:
                return None
            tables.update(defined)
        elif marker in (SOF0, SOF1):
            if len(segment) != 9 or segment[5] != 1:  # one component
                return None
            header.update(precision=segment[0], height=int.from_bytes(segment[1:3], "big"),
                          width=int.from_bytes(segment[3:5], "big"), quant_id=segment[8])
        elif marker == DRI:
            header["restart_interval"] = int.from_bytes(segment[:2], "big")
        elif marker == SOS:
            if "precision" not in header or len(segment) != 6 or segment[0] != 1:
                return None
            dc_id, ac_id = segment[2] >> 4, segment[2] & 15
            # Ss and Se say 0 and 63 in a sequential scan, which codes the whole spectrum whatever they
            # say (some encoders wrote Se 0; decoders ignore it): only successive approximation is refused
            approximation = segment[5]
            end = segment_end(frame, after, restarts=True)
            if (end is None or frame[end:end + 2] != b"\xff\xd9" or header["precision"] not in (8, 12)
                    or approximation
                    or (0, dc_id) not in tables or (1, ac_id) not in tables
                    or header["quant_id"] not in quant or 0 in quant[header["quant_id"]]
                    or not header["height"] or not header["width"]):
                return None
            return DctScan(precision=header["precision"], height=header["height"], width=header["width"],
                           restart_interval=header["restart_interval"], dc_table=tables[0, dc_id],
                           ac_table=tables[1, ac_id], quant=quant[header["quant_id"]], segment_start=after,
                           segment_end=end)
    return None


def _decoding_tables(table: tuple[tuple[int, ...], tuple[int, ...]]) -> tuple[np.ndarray, np.ndarray]:
    """int64 [3, 17]: F.2.2.3's MINCODE, MAXCODE (-1: no code of that length) and VALPTR per code length
    1..16 (index 0 unused); and the symbols."""
    counts, symbols = table
    mincode = np.zeros(17, np.int64)
    maxcode = np.full(17, -1, np.int64)
    valptr = np.zeros(17, np.int64)
    code = k = 0
    for length in range(1, 17):
        if counts[length - 1]:
            valptr[length], mincode[length] = k, code
            code += counts[length - 1]
            k += counts[length - 1]
            maxcode[length] = code - 1
        code <<= 1
    return np.stack([mincode, maxcode, valptr]), np.array(symbols, np.int64)


def _encoding_tables(table: tuple[tuple[int, ...], tuple[int, ...]]) -> np.ndarray:
    """int64 [256, 2]: each symbol's (code, length); length 0 where the table has no code for it."""
    out = np.zeros((256, 2), np.int64)
    for symbol, (code, length) in huffman_codes(*table).items():
        out[symbol] = code, length
    return out


def coefficients(frame: bytes, scan: DctScan) -> np.ndarray | None:
    """int32 [block rows, block columns, 64]: every block's quantised coefficients in zigzag order, the
    DC as its value (not the difference the scan codes), or None where the segment does not decode."""
    rows, cols = scan.blocks
    out = np.zeros((rows, cols, 64), np.int32)
    dc, dc_symbols = _decoding_tables(scan.dc_table)
    ac, ac_symbols = _decoding_tables(scan.ac_table)
    data = np.frombuffer(frame, np.uint8, scan.segment_end - scan.segment_start, scan.segment_start)
    ok = _decode(data, dc, dc_symbols, ac, ac_symbols, scan.restart_interval, out.reshape(-1, 64))
    return out if ok else None


def write(blocks: np.ndarray, scan: DctScan, pad: int = 1) -> bytes | None:
    """The entropy-coded segment of these coefficients (as ``coefficients`` gives them), restart markers
    included, the bits before each marker padded with ``pad`` (1 or 0); None where a symbol has no code
    in the scan's tables or a value is out of the precision's range."""
    flat = np.ascontiguousarray(blocks, np.int32).reshape(-1, 64)
    if flat.shape[0] != scan.blocks[0] * scan.blocks[1]:
        raise ValueError(f"{flat.shape[0]} blocks for a scan of {scan.blocks[0]}x{scan.blocks[1]}")
    tables = _encoding_tables(scan.dc_table), _encoding_tables(scan.ac_table)
    out = np.empty(flat.shape[0] * 64 + 64, np.uint8)  # a JPEG's blocks rarely take 64 bytes
    n = _encode(flat, *tables, scan.restart_interval, 1 if pad else 0, scan.precision + 3, out)
    if n > len(out):  # the bytes past the end were counted, not written (put_bits): again, with room
        out = np.empty(n, np.uint8)
        n = _encode(flat, *tables, scan.restart_interval, 1 if pad else 0, scan.precision + 3, out)
    return None if n < 0 else out[:n].tobytes()


def find_pad(frame: bytes, scan: DctScan, blocks: np.ndarray) -> int | None:
    """The padding (1 or 0) with which ``write`` gives back the frame's segment exactly, else None."""
    original = frame[scan.segment_start:scan.segment_end]
    for pad in (1, 0):
        if write(blocks, scan, pad) == original:
            return pad
    return None


@kernel(inline=True)
def _extend(value, size):
    """F.2.2.1 EXTEND: the signed value of size extra bits."""
    if size and value < (1 << (size - 1)):
        return value - (1 << size) + 1
    return value


@kernel(inline=True)
def _next_bit(data, pos, acc, bits):
    """The segment's next bit (-1 at a marker or the end of the bytes: no bit may come from there),
    a stuffed 0x00 after 0xFF skipped; returns (bit, pos, acc, bits)."""
    if bits == 0:
        if pos >= len(data):
            return -1, pos, acc, bits
        byte = data[pos]
        if byte == 0xFF:
            if pos + 1 >= len(data) or data[pos + 1] != 0:
                return -1, pos, acc, bits
            pos += 1
        pos += 1
        acc = byte
        bits = 8
    bits -= 1
    return (acc >> bits) & 1, pos, acc, bits


@kernel
def _decode(data, dc, dc_symbols, ac, ac_symbols, interval, out):
    """Huffman-decode the blocks of a segment into out (F.2.2); False on any decoding error (a code not
    in a table, a marker or the end of the bytes in the middle of a block, a wrong restart marker, a
    coefficient past the 64th)."""
    pos = 0
    acc = 0
    bits = 0
    predictor = 0
    size = len(data)
    for b in range(out.shape[0]):
        if interval and b and b % interval == 0:
            bits = 0  # the padding before the marker (checked when the segment is written again)
            if pos + 1 >= size or data[pos] != 0xFF or data[pos + 1] != 0xD0 + (b // interval - 1) % 8:
                return False
            pos += 2
            predictor = 0
        for part in range(2):
            tables = dc if part == 0 else ac
            symbols = dc_symbols if part == 0 else ac_symbols
            k = 1
            while True:
                # one Huffman code, a bit at a time (F.2.2.3 DECODE)
                code = 0
                length = 0
                symbol = -1
                while length < 16:
                    bit, pos, acc, bits = _next_bit(data, pos, acc, bits)
                    if bit < 0:
                        return False
                    code = (code << 1) | bit
                    length += 1
                    if tables[1, length] >= 0 and code <= tables[1, length]:
                        symbol = symbols[tables[2, length] + code - tables[0, length]]
                        break
                if symbol < 0:
                    return False
                extra = symbol if part == 0 else symbol & 15
                value = 0
                for _ in range(extra):
                    bit, pos, acc, bits = _next_bit(data, pos, acc, bits)
                    if bit < 0:
                        return False
                    value = (value << 1) | bit
                if part == 0:
                    if symbol > 16:
                        return False
                    predictor += _extend(value, extra)
                    out[b, 0] = predictor
                    break
                run = symbol >> 4
                if extra == 0:
                    if run == 15:  # ZRL: sixteen zeros
                        k += 16
                        if k > 64:
                            return False
                        continue
                    if run:
                        return False  # EOBn: progressive scans only
                    break  # EOB
                k += run
                if k > 63:
                    return False
                out[b, k] = _extend(value, extra)
                k += 1
                if k == 64:
                    break
    return True


@kernel(inline=True)
def size_category(value):
    """The size category of a value (F.1.2.1): the bit length of its magnitude. Shared with
    ``jpeg_coefficients``."""
    magnitude = value if value >= 0 else -value
    size = 0
    while magnitude:
        size += 1
        magnitude >>= 1
    return size


@kernel(inline=True)
def _put_value(acc, bits, codes, symbol, value, size, out, n):
    """The symbol's Huffman code, then the value's size low bits (a negative value less one, F.1.2.1)."""
    acc, bits, n = put_bits(acc, bits, codes[symbol, 0], codes[symbol, 1], out, n)
    return put_bits(acc, bits, value if value >= 0 else value - 1, size, out, n)


@kernel(inline=True)
def _padded(acc, bits, pad, out, n):
    """The bits so far completed to a byte with pad (1: ones, F.1.2.3; 0: zeros)."""
    if bits:
        return put_bits(acc, bits, (1 << (8 - bits)) - 1 if pad else 0, 8 - bits, out, n)
    return acc, bits, n


@kernel
def _encode(blocks, dc_codes, ac_codes, interval, pad, max_size, out):
    """The segment's bytes into out (F.1.2); their count (more than len(out): counted, not all written),
    or -1 where a symbol has no code or a value's category exceeds max_size."""
    n = 0
    acc = 0
    bits = 0
    predictor = 0
    for b in range(blocks.shape[0]):
        if interval and b and b % interval == 0:
            acc, bits, n = _padded(acc, bits, pad, out, n)
            if n + 1 < len(out):
                out[n] = 0xFF
                out[n + 1] = 0xD0 + (b // interval - 1) % 8
            n += 2
            predictor = 0
        difference = blocks[b, 0] - predictor
        predictor = blocks[b, 0]
        size = size_category(difference)
        if size > max_size or dc_codes[size, 1] == 0:
            return -1
        acc, bits, n = _put_value(acc, bits, dc_codes, size, difference, size, out, n)
        run = 0
        for k in range(1, 64):
            coefficient = blocks[b, k]
            if coefficient == 0:
                run += 1
                continue
            while run > 15:
                if ac_codes[0xF0, 1] == 0:
                    return -1
                acc, bits, n = put_bits(acc, bits, ac_codes[0xF0, 0], ac_codes[0xF0, 1], out, n)
                run -= 16
            size = size_category(coefficient)
            symbol = (run << 4) | size
            if size > max_size - 1 or size > 15 or ac_codes[symbol, 1] == 0:
                return -1
            acc, bits, n = _put_value(acc, bits, ac_codes, symbol, coefficient, size, out, n)
            run = 0
        if run:
            if ac_codes[0, 1] == 0:
                return -1
            acc, bits, n = put_bits(acc, bits, ac_codes[0, 0], ac_codes[0, 1], out, n)
    acc, bits, n = _padded(acc, bits, pad, out, n)
    return n
