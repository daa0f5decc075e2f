"""Lossless JPEG (ITU T.81 process 14, SOF3) scans written again, bit for bit, from their samples.

Why: DICOM archives hold much of their lossless data as JPEG lossless (transfer syntaxes
1.2.840.10008.1.2.4.57 and .70). Such a scan's entropy-coded segment is a function of its samples and
its header (precision, predictor, point transform, Huffman table): per sample the Huffman code of the
prediction difference's size category, then the difference's extra bits, most significant bit first,
with a 0x00 stuffed after every 0xFF byte (Annex H, F.1.2). So ``io.dicom`` keeps a frame's header bytes,
lets medcodec's methods code its samples, and writes the segment again when decoding. Encoders differ
only in how they pad the last byte (the standard says with ones; liblj92 pads with zeros), so the
segment's last partial byte and whatever follows it are kept as they were: ``body`` is the segment up to
that byte. A colour frame (three components of one sample each an MCU, in one interleaved scan, as
libjpeg-turbo and GDCM write it) is written likewise, each pixel's components in turn, each with its own
predictions and table (H.1.1, H.2). A scan this module does not write (restart markers, a point
transform, subsampled components, components in separate scans) is refused by ``parse``, and one whose
encoder computed otherwise is found out by ``body_matches``: either stays verbatim.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from medcodec.compiled import kernel
from medcodec.entropy.jpeg_baseline import huffman_codes

SOI, EOI, SOF3, DHT, SOS, DRI, DNL = 0xD8, 0xD9, 0xC3, 0xC4, 0xDA, 0xDD, 0xDC
# every other start-of-frame marker: a DCT or arithmetic-coded process, not this module's
OTHER_SOF = frozenset({0xC0, 0xC1, 0xC2, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})
MAX_SAMPLES_PER_BYTE = 8  # every sample costs a Huffman code of at least one bit


MAX_COMPONENTS = 4


@dataclass(frozen=True)
class Scan:
    """What a single-scan lossless JPEG frame says of its samples, and where its entropy-coded segment
    lies in the frame's bytes ([segment_start, segment_end): up to the marker after it, EOI)."""

    precision: int
    height: int
    width: int
    predictor: int  # 1..7 (Table H.1)
    point_transform: int
    counts: tuple[int, ...]  # the (first) component's DC table: code counts per length 1..16
    symbols: tuple[int, ...]
    segment_start: int
    segment_end: int
    components: int = 1  # interleaved in the scan, one sample each an MCU
    tables: tuple[tuple[tuple[int, ...], tuple[int, ...]], ...] = ()  # with several: each one's (counts, symbols)

    def table(self, component: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
        return self.tables[component] if self.components > 1 else (self.counts, self.symbols)


def parse(frame: bytes) -> Scan | None:
    """The frame's Scan, or None where it is not one this module writes (see the module docstring) or
    is malformed. Never raises."""
    try:
        return _parse(bytes(frame))
    except (IndexError, ValueError, KeyError):
        return None


def marker_segments(frame: bytes):
    """(marker, its segment's bytes, where the segment ends) for each marker segment after SOI, fill
    bytes skipped, up to and including SOS (what follows it is entropy-coded). ValueError where the
    bytes are not a JPEG's header (IndexError where they end early). Shared with ``jpeg_ls``."""
    if frame[:2] != b"\xff\xd8":
        raise ValueError("no SOI")
    at = 2
    while True:
        if frame[at] != 0xFF:
            raise ValueError("not a marker")
        marker = frame[at + 1]
        if marker == 0xFF:  # fill byte before a marker
            at += 1
            continue
        length = int.from_bytes(frame[at + 2:at + 4], "big")
        segment = frame[at + 4:at + 2 + length]
        if length < 2 or len(segment) != length - 2:
            raise ValueError("truncated marker segment")
        at += 2 + length
        yield marker, segment, at
        if marker == SOS:
            return


def huffman_tables(segment: bytes) -> dict[tuple[int, int], tuple[tuple[int, ...], tuple[int, ...]]] | None:
    """The tables a DHT segment defines: (class, id) -> (counts per code length 1..16, symbols), or None
    where the segment is malformed (a class other than DC 0 or AC 1, a table running past its end, more
    than 256 symbols or more codes of a length than the code space holds, C.2). Shared with ``jpeg_dct``."""
    tables = {}
    pos = 0
    while pos < len(segment):
        table_class, table_id = segment[pos] >> 4, segment[pos] & 15
        counts = tuple(segment[pos + 1:pos + 17])
        total = sum(counts)
        if (table_class > 1 or len(counts) != 16 or pos + 17 + total > len(segment) or total > 256
                or not _codes_fit(counts)):
            return None
        tables[table_class, table_id] = (counts, tuple(segment[pos + 17:pos + 17 + total]))
        pos += 17 + total
    return tables


def _codes_fit(counts: tuple[int, ...]) -> bool:
    """Whether canonical codes with these counts per length 1..16 fit their lengths (Annex C's codes)."""
    code = 0
    for length, count in enumerate(counts, start=1):
        code += count
        if code > 1 << length:
            return False
        code <<= 1
    return True


def _parse(frame: bytes) -> Scan | None:
    tables: dict[int, tuple[tuple[int, ...], tuple[int, ...]]] = {}
    header: dict[str, int] = {}
    for marker, segment, after in marker_segments(frame):
        if marker in OTHER_SOF or marker in (EOI, DNL):
            return None
        if marker == DHT:
            defined = huffman_tables(segment)
            if defined is None or any(table_class != 0 for table_class, _ in defined):
                return None
            tables.update((table_id, table) for (_, table_id), table in defined.items())
        elif marker == SOF3:
            count = segment[5]
            if not 1 <= count <= MAX_COMPONENTS or len(segment) != 6 + 3 * count:
                return None
            # one sample of each component an MCU: every sampling factor 1
            if any(segment[7 + 3 * k] != 0x11 for k in range(count)):
                return None
            header.update(precision=segment[0], height=int.from_bytes(segment[1:3], "big"),
                          width=int.from_bytes(segment[3:5], "big"), components=count)
            identifiers = [segment[6 + 3 * k] for k in range(count)]
        elif marker == DRI:
            if int.from_bytes(segment[:2], "big"):
                return None  # restart markers: not written here
        elif marker == SOS:
            count = segment[0]
            # every component in this one scan, in the frame's order (the decoder's samples are in that order)
            if ("precision" not in header or count != header["components"] or len(segment) != 4 + 2 * count
                    or [segment[1 + 2 * k] for k in range(count)] != identifiers):
                return None
            table_ids = [segment[2 + 2 * k] >> 4 for k in range(count)]
            predictor = segment[1 + 2 * count]
            point_transform = segment[3 + 2 * count] & 15
            end = segment_end(frame, after)
            # a point transform: the decoder at hand (liblj92, imagecodecs) does not undo it as H.1.2.1
            # says, so nothing could check a scan written with one: such files stay verbatim
            if (end is None or frame[end:end + 2] != b"\xff\xd9" or not 1 <= predictor <= 7
                    or any(t not in tables for t in table_ids) or not 2 <= header["precision"] <= 16
                    or point_transform or not header["height"] or not header["width"]):
                return None
            counts, symbols = tables[table_ids[0]]
            return Scan(precision=header["precision"], height=header["height"], width=header["width"],
                        predictor=predictor, point_transform=point_transform, counts=counts, symbols=symbols,
                        segment_start=after, segment_end=end, components=count,
                        tables=tuple(tables[t] for t in table_ids) if count > 1 else ())
    return None


def segment_end(frame: bytes, start: int, restarts: bool = False) -> int | None:
    """Where the entropy-coded segment from start ends: the first 0xFF not followed by a stuffed 0x00
    (nor, with restarts, by a restart marker RST0-7, which is then part of the segment); None at a
    restart marker without restarts, or where the bytes end first. Shared with ``jpeg_dct``."""
    at = start
    while True:
        at = frame.find(b"\xff", at)
        if at < 0 or at + 1 >= len(frame):
            return None
        follower = frame[at + 1]
        if follower == 0x00 or (restarts and 0xD0 <= follower <= 0xD7):
            at += 2
        elif 0xD0 <= follower <= 0xD7:
            return None
        else:
            return at


def predictions(samples: np.ndarray, scan: Scan) -> np.ndarray:
    """int64 [height, width]: each sample's prediction (H.1.2.1) from the point-transformed samples (of
    one component): the first line from the left neighbour, the first column from the one above, the
    first sample 2**(P - Pt - 1), the rest by the scan's predictor."""
    x = samples.astype(np.int64) >> scan.point_transform
    a = np.zeros_like(x)
    a[:, 1:] = x[:, :-1]
    b = np.zeros_like(x)
    b[1:] = x[:-1]
    c = np.zeros_like(x)
    c[1:, 1:] = x[:-1, :-1]
    rule = {1: lambda: a, 2: lambda: b, 3: lambda: c, 4: lambda: a + b - c, 5: lambda: a + ((b - c) >> 1),
            6: lambda: b + ((a - c) >> 1), 7: lambda: (a + b) >> 1}
    out = rule[scan.predictor]().copy()
    out[0, :] = a[0, :]
    out[1:, 0] = b[1:, 0]
    out[0, 0] = 1 << (scan.precision - scan.point_transform - 1)
    return out


def body(samples: np.ndarray, scan: Scan) -> bytes | None:
    """The entropy-coded segment of these samples ([height, width], or [height, width, components]) up to
    its last partial byte (the complete bytes, stuffed), or None when a difference's size category has no
    code in the scan's table."""
    packed = _packed(samples, scan)
    return None if packed is None else packed[0]


def segment(samples: np.ndarray, scan: Scan) -> bytes | None:
    """The whole entropy-coded segment as the standard pads it (the last byte with ones, F.1.2.3)."""
    packed = _packed(samples, scan)
    if packed is None:
        return None
    complete, leftover, count = packed
    if not count:
        return complete
    last = ((leftover << (8 - count)) | ((1 << (8 - count)) - 1)) & 0xFF
    return complete + bytes([last]) + (b"\x00" if last == 0xFF else b"")


def _packed(samples: np.ndarray, scan: Scan) -> tuple[bytes, int, int] | None:
    """(complete bytes, the bits left over, their count) of the samples' segment, or None (``body``)."""
    shape = (scan.height, scan.width) + ((scan.components,) if scan.components > 1 else ())
    if samples.shape != shape:
        raise ValueError(f"samples {samples.shape} for a scan of {shape}")
    if not 2 <= scan.precision <= 16 or not 1 <= scan.predictor <= 7 or not 0 <= scan.point_transform < scan.precision:
        raise ValueError("lossless JPEG parameters out of range")
    planes = [samples] if scan.components == 1 else [samples[..., k] for k in range(scan.components)]
    differences = [((p.astype(np.int64) >> scan.point_transform) - predictions(p, scan)) & 0xFFFF  # mod 2**16
                   for p in planes]
    # each pixel's components in turn: the scan's MCU order (H.1.1)
    difference = np.stack(differences, axis=-1).ravel()
    difference = np.where(difference > 32768, difference - 65536, difference)
    magnitude = np.abs(difference)
    category = np.zeros(magnitude.shape, np.int64)
    nonzero = magnitude > 0
    category[nonzero] = np.floor(np.log2(magnitude[nonzero])).astype(np.int64) + 1  # exact: below 2**17
    codes = np.zeros((scan.components, 17), np.int64)
    lengths = np.zeros((scan.components, 17), np.int64)
    for k in range(scan.components):
        for symbol, (code, length) in huffman_codes(*scan.table(k)).items():
            if symbol <= 16:
                codes[k, symbol], lengths[k, symbol] = code, length
        if (lengths[k, np.unique(category[k::scan.components])] == 0).any():
            return None
    extra = np.where(difference > 0, difference, difference - 1)  # ones' complement of negatives (F.1.2.1)
    out = np.empty(category.size * 4 + 8, np.uint8)  # what a sample costs at most, but for stuffed bytes
    leftover = np.zeros(2, np.int64)
    n = _pack(category, extra, codes, lengths, out, leftover)
    if n > len(out):  # stuffing took more: write again with room for every byte (put_bits)
        out = np.empty(n, np.uint8)
        n = _pack(category, extra, codes, lengths, out, leftover)
    return out[:n].tobytes(), int(leftover[0]), int(leftover[1])


@kernel(inline=True)
def put_bits(acc, bits, code, length, out, n):
    """Append the low length bits of code to the bit accumulator (acc, holding bits bits); whole bytes
    go to out from n, each 0xFF followed by a stuffed 0x00 (F.1.2.3). Returns (acc, bits, n). Bytes
    past out's end are counted, not written: a caller whose n comes back beyond len(out) writes again
    into a buffer of n bytes. Shared with ``jpeg_dct``."""
    acc = (acc << length) | (code & ((1 << length) - 1))
    bits += length
    while bits >= 8:
        bits -= 8
        byte = (acc >> bits) & 0xFF
        if n < len(out):
            out[n] = byte
        n += 1
        if byte == 0xFF:
            if n < len(out):
                out[n] = 0
            n += 1
    acc &= (1 << bits) - 1
    return acc, bits, n


@kernel
def _pack(category, extra, codes, lengths, out, leftover):
    """Codes (sample p's from component p mod the components' table) and extra bits, most significant
    first, 0x00 after every 0xFF: the complete bytes into out (their count returned), the bits left over
    and their count into leftover. Category 16 (the difference 32768) has no extra bits (H.1.2.2)."""
    n = 0
    acc = 0
    bits = 0
    components = codes.shape[0]
    for p in range(category.size):
        s = category[p]
        k = p % components
        size = s if s < 16 else 0
        acc, bits, n = put_bits(acc, bits, codes[k, s], lengths[k, s], out, n)
        acc, bits, n = put_bits(acc, bits, extra[p], size, out, n)
    leftover[0] = acc
    leftover[1] = bits
    return n


def body_matches(frame: bytes, scan: Scan, samples: np.ndarray) -> int | None:
    """The length of ``body(samples, scan)`` where the frame's segment starts with it, else None."""
    written = body(samples, scan)
    if written is None or frame[scan.segment_start:scan.segment_start + len(written)] != written:
        return None
    return len(written) if scan.segment_start + len(written) <= scan.segment_end else None
