"""Sequential-DCT JPEG scans (Huffman coded, grey or colour) to quantised coefficients and back, bit for bit.

Why: 12-bit lossy JPEG (DICOM's JPEG Extended, 1.2.840.10008.1.2.4.51; CT and MR from older PACS)
cannot be transcoded by JPEG XL, which takes 8-bit JPEGs only, so such files were kept verbatim. Their
waste is the same as an 8-bit JPEG's: the quantised coefficients are Huffman coded one symbol at a
time, with no context. ``jpeg_coefficients`` codes the coefficients far more tightly; this module
gets them out of the scan and writes the scan again from them. A sequential Huffman scan is a function
of its coefficients and its header (tables, restart interval; ITU T.81 F.1.2): per block the DC
difference's size category and extra bits, then run/size symbols up to an EOB, with a 0x00 stuffed after
every 0xFF, restart markers every ``restart_interval`` MCUs and the bits before each marker padded
(with ones, as F.1.2.3 says, or zeros, as a few encoders do: ``pad`` says which). What an encoder may
write otherwise (an EOB after ZRLs, other padding, bytes before a marker) is found out because
``write`` does not give the segment back, and such a frame stays verbatim.

Modelled: baseline or extended (SOF0, SOF1) frames of 8 or 12 bits and one to four components in one
scan (interleaved where there are several: colour, with any sampling factors; the scan of the whole
spectrum, as sequential scans are, whatever their Ss and Se say; no successive approximation), followed
by EOI. A frame whose components come in separate scans is not.
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
MAX_COMPONENTS = 4  # a frame of up to four components (grey, YCbCr or RGB, CMYK), all in one scan
MAX_BLOCKS_PER_MCU = 10
# any other start of frame (progressive, lossless, arithmetic coded, hierarchical): not this module's
OTHER_SOF = frozenset({0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})


@dataclass(frozen=True)
class Component:
    """One component of a scan: its quantisation table (zigzag order, as the coefficient coder takes it),
    Huffman tables, and sampling factors (blocks across and down in an MCU; 1 and 1 in a one-component
    scan, which is not interleaved whatever the frame says, A.2.2)."""

    quant: tuple[int, ...]
    dc_table: tuple[tuple[int, ...], tuple[int, ...]]  # (counts per code length, symbols)
    ac_table: tuple[tuple[int, ...], tuple[int, ...]]
    horizontal: int = 1
    vertical: int = 1


@dataclass(frozen=True)
class DctScan:
    """What a sequential DCT frame of one scan says of its coefficients, and where its entropy-coded
    segment lies in the frame's bytes ([segment_start, segment_end): up to the EOI after it, restart
    markers included)."""

    precision: int  # 8 or 12
    height: int
    width: int
    restart_interval: int  # MCUs between restart markers, 0 for none
    components: tuple[Component, ...]  # in the scan's order, which is the MCU's
    segment_start: int
    segment_end: int

    @property
    def mcus(self) -> tuple[int, int]:
        """(rows, columns) of MCUs: in a one-component scan, the image's 8x8 blocks (A.2.2); interleaved,
        the image in units of the largest sampling factors' blocks (A.2.3)."""
        across = 8 * max(c.horizontal for c in self.components)
        down = 8 * max(c.vertical for c in self.components)
        return (self.height + down - 1) // down, (self.width + across - 1) // across

    @property
    def grids(self) -> list[tuple[int, int]]:
        """Each component's (rows, columns) of blocks, padding blocks at the right and bottom included."""
        rows, cols = self.mcus
        return [(rows * c.vertical, cols * c.horizontal) for c in self.components]


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
    frame_components: dict[int, tuple[int, int, int]] = {}  # id -> (horizontal, vertical, quantisation table)
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
            count = segment[5]
            if not 1 <= count <= MAX_COMPONENTS or len(segment) != 6 + 3 * count or frame_components:
                return None
            for k in range(count):
                ident, factors, table_id = segment[6 + 3 * k:9 + 3 * k]
                if ident in frame_components or not (1 <= factors >> 4 <= 4 and 1 <= factors & 15 <= 4):
                    return None
                frame_components[ident] = (factors >> 4, factors & 15, table_id)
            header.update(precision=segment[0], height=int.from_bytes(segment[1:3], "big"),
                          width=int.from_bytes(segment[3:5], "big"))
        elif marker == DRI:
            header["restart_interval"] = int.from_bytes(segment[:2], "big")
        elif marker == SOS:
            return _scan(frame, segment, after, header, frame_components, tables, quant)
    return None


def _scan(frame: bytes, segment: bytes, after: int, header: dict[str, int],
          frame_components: dict[int, tuple[int, int, int]],
          tables: dict[tuple[int, int], tuple[tuple[int, ...], tuple[int, ...]]],
          quant: dict[int, tuple[int, ...]]) -> DctScan | None:
    """The scan a start-of-scan segment begins, if it is one scan of every component of the frame."""
    count = segment[0] if segment else 0
    if not frame_components or count != len(frame_components) or len(segment) != 4 + 2 * count:
        return None
    interleaved = count > 1
    components = []
    for k in range(count):
        ident, selectors = segment[1 + 2 * k], segment[2 + 2 * k]
        if ident not in frame_components:
            return None
        horizontal, vertical, table_id = frame_components.pop(ident)
        dc_id, ac_id = selectors >> 4, selectors & 15
        if ((0, dc_id) not in tables or (1, ac_id) not in tables or table_id not in quant
                or 0 in quant[table_id]):
            return None
        components.append(Component(quant=quant[table_id], dc_table=tables[0, dc_id], ac_table=tables[1, ac_id],
                                    horizontal=horizontal if interleaved else 1,
                                    vertical=vertical if interleaved else 1))
    if sum(c.horizontal * c.vertical for c in components) > MAX_BLOCKS_PER_MCU:
        return None  # B.2.3
    # Ss and Se say 0 and 63 in a sequential scan, which codes the whole spectrum whatever they say
    # (some encoders wrote Se 0; decoders ignore it): only successive approximation is refused
    approximation = segment[-1]
    end = segment_end(frame, after, restarts=True)
    if (end is None or frame[end:end + 2] != b"\xff\xd9" or header["precision"] not in (8, 12) or approximation
            or not header["height"] or not header["width"]):
        return None
    return DctScan(precision=header["precision"], height=header["height"], width=header["width"],
                   restart_interval=header["restart_interval"], components=tuple(components), segment_start=after,
                   segment_end=end)


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


def _plan(scan: DctScan) -> np.ndarray:
    """int64 [blocks in an MCU]: the component of each block of an MCU, in coding order (A.2.3)."""
    return np.array([k for k, c in enumerate(scan.components) for _ in range(c.horizontal * c.vertical)], np.int64)


def _scan_order(scan: DctScan) -> list[np.ndarray]:
    """Per component, int64 [rows, columns]: where each of its blocks comes in the scan (MCU by MCU, each
    MCU's components in the scan's order, a component's blocks in it row by row)."""
    mcu_rows, mcu_cols = scan.mcus
    per_mcu = sum(c.horizontal * c.vertical for c in scan.components)
    out, offset = [], 0
    for c in scan.components:
        rows = np.arange(mcu_rows * c.vertical)[:, None]
        cols = np.arange(mcu_cols * c.horizontal)[None, :]
        mcu = (rows // c.vertical) * mcu_cols + cols // c.horizontal
        out.append(mcu * per_mcu + offset + (rows % c.vertical) * c.horizontal + cols % c.horizontal)
        offset += c.horizontal * c.vertical
    return out


def coefficients(frame: bytes, scan: DctScan) -> list[np.ndarray] | None:
    """Per component, int32 [block rows, block columns, 64] (``DctScan.grids``): every block's quantised
    coefficients in zigzag order, the DC as its value (not the difference the scan codes); None where the
    segment does not decode."""
    order = _scan_order(scan)
    flat = np.zeros((sum(o.size for o in order), 64), np.int32)
    dc = [_decoding_tables(c.dc_table) for c in scan.components]
    ac = [_decoding_tables(c.ac_table) for c in scan.components]
    data = np.frombuffer(frame, np.uint8, scan.segment_end - scan.segment_start, scan.segment_start)
    ok = _decode(data, *_stacked(dc), *_stacked(ac), scan.restart_interval, _plan(scan), flat)
    return [flat[o] for o in order] if ok else None


def _stacked(tables: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """The components' decoding tables as one int64 [components, 3, 17] and their symbols as one [components,
    256] (the kernel's arrays)."""
    symbols = np.zeros((len(tables), 256), np.int64)
    for k, (_, values) in enumerate(tables):
        symbols[k, :len(values)] = values
    return np.stack([limits for limits, _ in tables]), symbols


def write(blocks: list[np.ndarray], scan: DctScan, pad: int = 1) -> bytes | None:
    """The entropy-coded segment of these coefficients (as ``coefficients`` gives them), restart markers
    included, the bits before each marker padded with ``pad`` (1 or 0); None where a symbol has no code
    in the scan's tables or a value is out of the precision's range."""
    order = _scan_order(scan)
    if len(blocks) != len(order) or any(np.shape(b)[:2] != o.shape for b, o in zip(blocks, order)):
        raise ValueError(f"blocks of {[np.shape(b)[:2] for b in blocks]} for a scan of {[o.shape for o in order]}")
    flat = np.zeros((sum(o.size for o in order), 64), np.int32)
    for component, o in zip(blocks, order):
        flat[o] = component
    tables = (np.stack([_encoding_tables(c.dc_table) for c in scan.components]),
              np.stack([_encoding_tables(c.ac_table) for c in scan.components]))
    out = np.empty(flat.shape[0] * 64 + 64, np.uint8)  # a JPEG's blocks rarely take 64 bytes
    arguments = (*tables, scan.restart_interval, _plan(scan), 1 if pad else 0, scan.precision + 3)
    n = _encode(flat, *arguments, out)
    if n > len(out):  # the bytes past the end were counted, not written (put_bits): again, with room
        out = np.empty(n, np.uint8)
        n = _encode(flat, *arguments, out)
    return None if n < 0 else out[:n].tobytes()


def find_pad(frame: bytes, scan: DctScan, blocks: list[np.ndarray]) -> int | None:
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
def _decode(data, dc, dc_symbols, ac, ac_symbols, interval, plan, out):
    """Huffman-decode the blocks of a segment into out, in scan order (F.2.2; plan: each block of an MCU's
    component); False on any decoding error (a code not in a table, a marker or the end of the bytes in
    the middle of a block, a wrong restart marker, a coefficient past the 64th)."""
    pos = 0
    acc = 0
    bits = 0
    predictors = np.zeros(dc.shape[0], np.int64)
    size = len(data)
    per_mcu = len(plan)
    for b in range(out.shape[0]):
        mcu = b // per_mcu
        if interval and mcu and b % per_mcu == 0 and mcu % interval == 0:
            bits = 0  # the padding before the marker (checked when the segment is written again)
            if pos + 1 >= size or data[pos] != 0xFF or data[pos + 1] != 0xD0 + (mcu // interval - 1) % 8:
                return False
            pos += 2
            predictors[:] = 0
        component = plan[b % per_mcu]
        for part in range(2):
            tables = dc[component] if part == 0 else ac[component]
            symbols = dc_symbols[component] if part == 0 else ac_symbols[component]
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
                    predictors[component] += _extend(value, extra)
                    out[b, 0] = predictors[component]
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
def _encode(blocks, dc_codes, ac_codes, interval, plan, pad, max_size, out):
    """The segment's bytes into out (F.1.2; blocks in scan order, plan: each block of an MCU's component);
    their count (more than len(out): counted, not all written), or -1 where a symbol has no code or a
    value's category exceeds max_size."""
    n = 0
    acc = 0
    bits = 0
    predictors = np.zeros(dc_codes.shape[0], np.int64)
    per_mcu = len(plan)
    for b in range(blocks.shape[0]):
        mcu = b // per_mcu
        if interval and mcu and b % per_mcu == 0 and mcu % interval == 0:
            acc, bits, n = _padded(acc, bits, pad, out, n)
            if n + 1 < len(out):
                out[n] = 0xFF
                out[n + 1] = 0xD0 + (mcu // interval - 1) % 8
            n += 2
            predictors[:] = 0
        component = plan[b % per_mcu]
        dc = dc_codes[component]
        ac = ac_codes[component]
        difference = blocks[b, 0] - predictors[component]
        predictors[component] = blocks[b, 0]
        size = size_category(difference)
        if size > max_size or dc[size, 1] == 0:
            return -1
        acc, bits, n = _put_value(acc, bits, dc, size, difference, size, out, n)
        run = 0
        for k in range(1, 64):
            coefficient = blocks[b, k]
            if coefficient == 0:
                run += 1
                continue
            while run > 15:
                if ac[0xF0, 1] == 0:
                    return -1
                acc, bits, n = put_bits(acc, bits, ac[0xF0, 0], ac[0xF0, 1], out, n)
                run -= 16
            size = size_category(coefficient)
            symbol = (run << 4) | size
            if size > max_size - 1 or size > 15 or ac[symbol, 1] == 0:
                return -1
            acc, bits, n = _put_value(acc, bits, ac, symbol, coefficient, size, out, n)
            run = 0
        if run:
            if ac[0, 1] == 0:
                return -1
            acc, bits, n = put_bits(acc, bits, ac[0, 0], ac[0, 1], out, n)
    acc, bits, n = _padded(acc, bits, pad, out, n)
    return n
