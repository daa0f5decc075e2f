"""The .mlc container: the only module that knows its byte layout (specified in docs/FORMAT.md).

A file is a fixed prelude (magic, version, total length), a typed header, a table of sections, the
section payloads and a CRC32 of everything before it. Every region has its own CRC so that damage is
reported where it is; the reader validates every length against the bytes actually present before it
slices anything, and raises only CorruptStreamError / UnsupportedVersionError, with one clear line.

Format 2 (what this module writes) differs from format 1 (which it still reads) only in two places
that were a visible share of small files: the section table's entries are variable-length integers
with implicit offsets (about 9 bytes an entry instead of 30), and the header meta may be in the
compact binary coding of ``entropy.compact_json`` (the frame list of a one-frame PNG: 77 -> ~35
bytes). About 160-175 bytes a file: 0.15-0.2 % of a 512x512 CT or a head CT PNG, 3.5 % of a 64x64 MR.
"""

from __future__ import annotations

import enum
import json
import struct
import zlib
from dataclasses import dataclass, field
from typing import Any

from medcodec.entropy import compact_json
from medcodec.errors import CorruptStreamError, UnsupportedVersionError

FORMAT_MAJOR = 2
FORMAT_MINOR = 24
# The newest minor of each major this reader knows (a file of a newer minor may carry what it ignores).
KNOWN_MINOR = {1: 4, FORMAT_MAJOR: FORMAT_MINOR}
# PNG-style: the high-bit first byte catches 7-bit transports, CR LF catches newline conversion,
# ^Z stops DOS `type`, the final LF catches LF -> CR LF conversion.
MAGIC = b"\x89MLC\r\n\x1a\n"

_PRELUDE = struct.Struct("<8sHHQI")  # magic, major, minor, file length, header length
_CRC = struct.Struct("<I")
_COUNT = struct.Struct("<I")
_ENTRY_V1 = struct.Struct("<HIIQQI")  # format 1: kind, frame, index, offset, length, crc32
_DIMS = struct.Struct("<IIIBB")  # height, width, frames, bits_stored, signed
_U8 = struct.Struct("<B")
_U32 = struct.Struct("<I")
_SHA_LEN = 32
_VARINT_MAX_BYTES = 10  # a u64 in 7-bit groups
# The compact coding's reader works on a bit string (8 characters a byte): a header meta in it is
# bounded, as PLANE_META is (the frame list of 100,000 frames is ~300 KB); beyond, the writer keeps JSON.
MAX_COMPACT_META = 1 << 20
_MIN_ENTRY_V2 = 4 + _CRC.size  # kind, frame, index and length of one byte each, and the CRC
# Bytes one section adds to a file besides its payload (its table entry: kind, frame and index of one
# byte each, a length of two to three, the CRC): lets a caller compare costs.
SECTION_OVERHEAD = 9


class SectionKind(enum.IntEnum):
    """What a section's payload is; docs/FORMAT.md ("Stream payloads") says how each is coded."""

    ENVELOPE = 1  # compressed io envelope (everything besides the planes); index: coding (container.envelope)
    JXL_SUBIMAGE = 2  # JPEG-XL codestream of subimage A of a plane
    LATENT_Z = 3  # canonical Huffman stream of a latent z
    RESIDUAL = 4  # rANS stream of residual symbols
    PLANE = 5  # a whole plane coded by a classical method (JPEG-XL codestream)
    PLANE_META = 6  # small per-plane side information of a method (UTF-8 JSON)
    METHOD_STREAM = 7  # any other named stream a method returns; index = its position in the list
    PLANE_CLASSICAL = 5  # alias of PLANE, the name the classical pipeline uses


@dataclass
class Section:
    """One payload: kind, the plane it belongs to (0 for file-level sections) and its index there."""

    kind: SectionKind
    frame: int
    index: int
    payload: bytes


@dataclass
class Header:
    """What a reader needs before touching any section (docs/FORMAT.md lists the types)."""

    source_kind: str
    height: int
    width: int
    frames: int
    bits_stored: int
    signed: bool
    photometric: str
    method: str
    model_id: str
    model_sha256: bytes
    encoder_version: str
    pixel_sha256: bytes
    original_sha256: bytes
    meta: dict = field(default_factory=dict)


# ---------------------------------------------------------------- writing

def _str8(text: str, name: str) -> bytes:
    raw = text.encode("utf-8")
    if len(raw) > 255:
        raise ValueError(f"header field {name} is over 255 UTF-8 bytes")
    return _U8.pack(len(raw)) + raw


def _bin8(blob: bytes, name: str, allowed: tuple[int, ...]) -> bytes:
    if len(blob) not in allowed:
        raise ValueError(f"header field {name} must be {' or '.join(map(str, allowed))} bytes")
    return _U8.pack(len(blob)) + bytes(blob)


def _encode_header(h: Header) -> bytes:
    for name in ("height", "width", "frames"):
        if not 0 <= getattr(h, name) < 1 << 32:
            raise ValueError(f"header field {name} out of u32 range")
    if not 0 <= h.bits_stored <= 255:
        raise ValueError("bits_stored out of u8 range")
    if not isinstance(h.meta, dict):
        raise ValueError("meta must be a dict")
    # Sorted keys and fixed separators: the same meta always gives the same bytes. The compact coding
    # when it is shorter (it holds no floats; a meta with one stays JSON text).
    meta = json.dumps(h.meta, sort_keys=True, separators=(",", ":"), allow_nan=False).encode("utf-8")
    compact = compact_json.encode(h.meta)
    if compact is not None and len(compact) < len(meta) and len(compact) <= MAX_COMPACT_META:
        meta = compact
    return b"".join([
        _str8(h.source_kind, "source_kind"),
        _DIMS.pack(h.height, h.width, h.frames, h.bits_stored, int(bool(h.signed))),
        _str8(h.photometric, "photometric"),
        _str8(h.method, "method"),
        _str8(h.model_id, "model_id"),
        _bin8(h.model_sha256, "model_sha256", (0, _SHA_LEN)),
        _str8(h.encoder_version, "encoder_version"),
        _bin8(h.pixel_sha256, "pixel_sha256", (_SHA_LEN,)),
        _bin8(h.original_sha256, "original_sha256", (0, _SHA_LEN)),
        _U32.pack(len(meta)), meta,
    ])


def _uvarint(n: int) -> bytes:
    """LEB128: 7 bits a byte, least significant first, high bit set on every byte but the last."""
    out = bytearray()
    while True:
        low, n = n & 0x7F, n >> 7
        out.append(low | (0x80 if n else 0))
        if not n:
            return bytes(out)


def pack(header: Header, sections: list[Section]) -> bytes:
    """Serialise a header and its sections into one .mlc byte string (format 2)."""
    head = _encode_header(header)
    seen = set()
    for s in sections:
        key = (int(s.kind), s.frame, s.index)
        if not (0 < key[0] < 1 << 16 and 0 <= s.frame < 1 << 32 and 0 <= s.index < 1 << 32):
            raise ValueError(f"section kind/frame/index out of range: {key}")
        if key in seen:
            raise ValueError(f"duplicate section {SectionKind(s.kind).name} frame {s.frame} index {s.index}")
        seen.add(key)
    table = bytearray(_uvarint(len(sections)))
    for s in sections:  # payloads follow the table in table order: no offsets
        table += _uvarint(int(s.kind)) + _uvarint(s.frame) + _uvarint(s.index) + _uvarint(len(s.payload))
        table += _CRC.pack(zlib.crc32(s.payload))
    total = _PRELUDE.size + len(head) + _CRC.size + len(table) + _CRC.size \
        + sum(len(s.payload) for s in sections) + _CRC.size
    prelude = _PRELUDE.pack(MAGIC, FORMAT_MAJOR, FORMAT_MINOR, total, len(head)) + head
    body = b"".join([prelude, _CRC.pack(zlib.crc32(prelude)), bytes(table), _CRC.pack(zlib.crc32(table)),
                     *[bytes(s.payload) for s in sections]])
    return body + _CRC.pack(zlib.crc32(body))


# ---------------------------------------------------------------- reading

class _Cursor:
    """Reads typed fields from a byte region; reading past its end is a CorruptStreamError."""

    def __init__(self, data: bytes, what: str) -> None:
        self.data, self.pos, self.what = data, 0, what

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise CorruptStreamError(f"not a valid medcodec file: {self.what} ends early")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def unpack(self, st: struct.Struct) -> tuple:
        return st.unpack(self.take(st.size))

    def str8(self, name: str) -> str:
        raw = self.take(self.unpack(_U8)[0])
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise CorruptStreamError(f"corrupt medcodec file: header field {name} is not UTF-8") from None

    def bin8(self, name: str, allowed: tuple[int, ...]) -> bytes:
        n = self.unpack(_U8)[0]
        if n not in allowed:
            raise CorruptStreamError(f"corrupt medcodec file: header field {name} has length {n}")
        return self.take(n)


def _check_prelude(data: bytes) -> tuple[int, int, int, int, int]:
    """Magic and version; returns (major, minor, declared file length, header length, header end)."""
    if len(data) < len(MAGIC) or data[:len(MAGIC)] != MAGIC:
        raise CorruptStreamError("not a medcodec file (wrong magic bytes)")
    if len(data) < _PRELUDE.size:
        raise CorruptStreamError("corrupt medcodec file: truncated inside the prelude")
    _, major, minor, file_len, head_len = _PRELUDE.unpack_from(data)
    if major not in KNOWN_MINOR:
        readable = " and ".join(f"{m}.x" for m in sorted(KNOWN_MINOR))
        raise UnsupportedVersionError(
            f"written by format {major}.x; this medcodec reads {readable} — upgrade medcodec"
            if major > FORMAT_MAJOR else
            f"written by format {major}.x, which this medcodec ({readable}) does not read")
    head_end = _PRELUDE.size + head_len
    if head_end + _CRC.size > len(data):
        raise CorruptStreamError("corrupt medcodec file: truncated inside the header")
    (crc,) = _CRC.unpack_from(data, head_end)
    if zlib.crc32(data[:head_end]) != crc:
        raise CorruptStreamError("corrupt medcodec file: header CRC mismatch")
    return major, minor, file_len, head_len, head_end


def _parse_meta(raw: bytes, major: int) -> dict:
    """The header meta: JSON text, or (format 2) the compact binary coding."""
    if major >= 2 and raw[:1] == bytes([compact_json.MARKER]):
        if len(raw) > MAX_COMPACT_META:
            raise CorruptStreamError("corrupt medcodec file: compact header meta is over the size limit")
        try:
            meta = compact_json.decode(raw)
        except (ValueError, TypeError, RecursionError):
            raise CorruptStreamError("corrupt medcodec file: header meta is damaged") from None
    else:
        def no_constants(name: str) -> Any:
            raise ValueError(name)
        try:
            meta = json.loads(raw.decode("utf-8"), parse_constant=no_constants)
        except (ValueError, RecursionError):  # UnicodeDecodeError and JSONDecodeError are ValueErrors
            raise CorruptStreamError("corrupt medcodec file: header meta is not valid JSON") from None
    if not isinstance(meta, dict):
        raise CorruptStreamError("corrupt medcodec file: header meta is not a JSON object")
    return meta


def _decode_header(raw: bytes, major: int, minor: int) -> Header:
    c = _Cursor(raw, "the header")
    source_kind = c.str8("source_kind")
    height, width, frames, bits_stored, signed = c.unpack(_DIMS)
    photometric = c.str8("photometric")
    method = c.str8("method")
    model_id = c.str8("model_id")
    model_sha = c.bin8("model_sha256", (0, _SHA_LEN))
    encoder_version = c.str8("encoder_version")
    pixel_sha = c.bin8("pixel_sha256", (_SHA_LEN,))
    original_sha = c.bin8("original_sha256", (0, _SHA_LEN))
    meta = _parse_meta(c.take(c.unpack(_U32)[0]), major)
    # A newer minor may append header fields this reader does not know; the same minor may not.
    if c.pos != len(raw) and minor <= KNOWN_MINOR[major]:
        raise CorruptStreamError("corrupt medcodec file: unexpected bytes at the end of the header")
    if signed > 1:
        raise CorruptStreamError(f"corrupt medcodec file: signed flag is {signed}")
    if frames > 0 and (height == 0 or width == 0):
        raise CorruptStreamError(f"corrupt medcodec file: {frames} planes of {height}x{width} pixels")
    if frames > 0 and not 1 <= bits_stored <= 16:
        raise CorruptStreamError(f"corrupt medcodec file: bits_stored {bits_stored} is not in 1..16")
    return Header(source_kind, height, width, frames, bits_stored, bool(signed), photometric, method,
                  model_id, model_sha, encoder_version, pixel_sha, original_sha, meta)


def _check_pixels(h: Header, max_pixels: int | None) -> None:
    if max_pixels is not None and h.height * h.width * h.frames > max_pixels:
        raise CorruptStreamError(
            f"medcodec file declares {h.frames}x{h.height}x{h.width} pixels, over the limit of {max_pixels}")


def read_version(data: bytes) -> tuple[int, int]:
    """(major, minor) of a file this reader can read (magic, version and header CRC checked)."""
    major, minor, *_ = _check_prelude(bytes(data))
    return major, minor


def read_header(data: bytes, *, max_pixels: int | None = None) -> Header:
    """The header alone (magic, version and header CRC checked); sections are neither read nor checked,
    so ``data`` may be just the start of a file."""
    data = bytes(data)
    major, minor, _, head_len, head_end = _check_prelude(data)
    header = _decode_header(data[_PRELUDE.size:head_end], major, minor)
    _check_pixels(header, max_pixels)
    return header


def unpack(data: bytes, *, max_pixels: int | None = None) -> tuple[Header, list[Section]]:
    """Parse and fully verify a .mlc byte string; sections come back in file order."""
    data = bytes(data)
    major, minor, file_len, _, head_end = _check_prelude(data)
    if file_len != len(data):
        raise CorruptStreamError(
            f"corrupt medcodec file: truncated ({len(data)} of {file_len} bytes)" if len(data) < file_len
            else f"corrupt medcodec file: {len(data) - file_len} unexpected bytes after its end")
    header = _decode_header(data[_PRELUDE.size:head_end], major, minor)
    _check_pixels(header, max_pixels)
    end = len(data) - _CRC.size  # the final CRC
    table_start = head_end + _CRC.size
    read_table = _read_table_v1 if major == 1 else _read_table_v2
    entries, table_end = read_table(data, table_start, end)
    (crc,) = _CRC.unpack_from(data, table_end)
    if zlib.crc32(data[table_start:table_end]) != crc:
        raise CorruptStreamError("corrupt medcodec file: section table CRC mismatch")
    if major >= 2:  # offsets are implicit: payloads back to back after the table's CRC, up to the final CRC
        offset = table_end + _CRC.size
        for entry in entries:
            entry[3] = offset
            offset += entry[4]
        if offset != end:
            raise CorruptStreamError("corrupt medcodec file: the section lengths do not add up to the payload area")
    sections = _read_sections(data, entries, table_end + _CRC.size, end, minor > KNOWN_MINOR[major])
    (crc,) = _CRC.unpack_from(data, end)
    if zlib.crc32(memoryview(data)[:end]) != crc:  # a view: no copy of a large file
        raise CorruptStreamError("corrupt medcodec file: file CRC mismatch")
    return header, sections


def _read_table_v1(data: bytes, start: int, end: int) -> tuple[list[list[int]], int]:
    """Format 1: u32 count, then 30-byte entries. Returns ([kind, frame, index, offset, length, crc]
    per entry, the table's end)."""
    if start + _COUNT.size > end:
        raise CorruptStreamError("corrupt medcodec file: truncated before the section table")
    (count,) = _COUNT.unpack_from(data, start)
    table_end = start + _COUNT.size + count * _ENTRY_V1.size  # checked before anything is sliced
    if table_end + _CRC.size > end:
        raise CorruptStreamError(f"corrupt medcodec file: a table of {count} sections does not fit")
    entries = [list(_ENTRY_V1.unpack_from(data, start + _COUNT.size + i * _ENTRY_V1.size)) for i in range(count)]
    return entries, table_end


def _read_table_v2(data: bytes, start: int, end: int) -> tuple[list[list[int]], int]:
    """Format 2: uvarint count, then per entry uvarint kind, frame, index, length and a u32 CRC (offsets
    are filled in by the caller). Every varint is bounded and minimal, so one table has one encoding."""
    pos = start

    def varint(what: str, limit: int) -> int:
        nonlocal pos
        value = shift = 0
        for n in range(_VARINT_MAX_BYTES):
            if pos >= end:
                raise CorruptStreamError("corrupt medcodec file: the section table runs past the end of the file")
            byte = data[pos]
            pos += 1
            value |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                if byte == 0 and n > 0:
                    raise CorruptStreamError(f"corrupt medcodec file: section table {what} is not minimally encoded")
                if value >= limit:
                    raise CorruptStreamError(f"corrupt medcodec file: section table {what} {value} is out of range")
                return value
        raise CorruptStreamError(f"corrupt medcodec file: section table {what} is over {_VARINT_MAX_BYTES} bytes")

    count = varint("count", 1 << 32)
    if count * _MIN_ENTRY_V2 > end - pos:  # checked before anything is allocated
        raise CorruptStreamError(f"corrupt medcodec file: a table of {count} sections does not fit")
    entries = []
    for _ in range(count):
        kind, frame, index = varint("kind", 1 << 16), varint("frame", 1 << 32), varint("index", 1 << 32)
        length = varint("length", 1 << 63)
        if pos + _CRC.size > end:
            raise CorruptStreamError("corrupt medcodec file: the section table runs past the end of the file")
        (crc,) = _CRC.unpack_from(data, pos)
        pos += _CRC.size
        entries.append([kind, frame, index, 0, length, crc])
    if pos + _CRC.size > end:
        raise CorruptStreamError("corrupt medcodec file: truncated after the section table")
    return entries, pos


def _read_sections(data: bytes, entries: list[list[int]], lo: int, hi: int, newer_minor: bool) -> list[Section]:
    """Table entries -> sections, each bounds- and CRC-checked; unknown kinds of a newer minor skipped."""
    sections: list[Section] = []
    seen = set()
    for i, (kind, frame, index, offset, length, crc) in enumerate(entries):
        if offset < lo or offset + length > hi:
            raise CorruptStreamError(f"corrupt medcodec file: section {i} lies outside the payload area")
        if (kind, frame, index) in seen:
            raise CorruptStreamError(f"corrupt medcodec file: section {i} is a duplicate")
        seen.add((kind, frame, index))
        payload = memoryview(data)[offset:offset + length]
        if zlib.crc32(payload) != crc:
            raise CorruptStreamError(f"corrupt medcodec file: CRC mismatch in section {i} (kind {kind}, "
                                     f"frame {frame}, index {index})")
        if kind not in SectionKind._value2member_map_:
            if newer_minor:
                continue  # a newer minor may only add sections an older reader can ignore
            raise CorruptStreamError(f"corrupt medcodec file: unknown section kind {kind}")
        sections.append(Section(SectionKind(kind), frame, index, bytes(payload)))
    return sections
