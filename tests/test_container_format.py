"""The .mlc container: round trips, and every kind of damage gives CorruptStreamError (one line)."""

import json
import random
import struct
import zlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from medcodec.container import format as fmt
from medcodec.container.format import Header, Section, SectionKind, pack, read_header, unpack
from medcodec.errors import CorruptStreamError, UnsupportedVersionError


def make_header(**over) -> Header:
    fields = dict(source_kind="dicom", height=4, width=5, frames=2, bits_stored=12, signed=True,
                  photometric="MONOCHROME2", method="fast", model_id="lch-h-v1", model_sha256=b"\x01" * 32,
                  encoder_version="0.1.0", pixel_sha256=b"\x02" * 32, original_sha256=b"\x03" * 32,
                  meta={"frames": [{"method": "fast"}, {"method": "classical", "fallback": "larger"}]})
    fields.update(over)
    return Header(**fields)


SMALL_SECTIONS = [Section(SectionKind.ENVELOPE, 0, 0, b"envelope"),
                  Section(SectionKind.JXL_SUBIMAGE, 0, 0, b"A" * 7),
                  Section(SectionKind.RESIDUAL, 0, 2, b""),
                  Section(SectionKind.PLANE, 1, 0, bytes(range(20)))]


def small_file() -> bytes:
    return pack(make_header(), SMALL_SECTIONS)


def reseal(data: bytearray) -> bytes:
    """Recompute the header CRC and the file CRC after editing the prelude or header on purpose."""
    head_len = struct.unpack_from("<I", data, 20)[0]
    head_end = 24 + head_len
    struct.pack_into("<I", data, head_end, zlib.crc32(bytes(data[:head_end])))
    struct.pack_into("<I", data, len(data) - 4, zlib.crc32(bytes(data[:-4])))
    return bytes(data)


def test_round_trip_small():
    header, sections = unpack(small_file())
    assert header == make_header()
    assert sections == SMALL_SECTIONS
    assert read_header(small_file()) == make_header()


def test_verbatim_only_file_has_no_planes():
    header = make_header(frames=0, height=0, width=0, bits_stored=0, method="classical", model_id="",
                         model_sha256=b"", original_sha256=b"")
    data = pack(header, [Section(SectionKind.ENVELOPE, 0, 0, b"whole file")])
    assert unpack(data) == (header, [Section(SectionKind.ENVELOPE, 0, 0, b"whole file")])


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.text(max_size=8)
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8)
texts = st.text(max_size=20)
shas = st.binary(min_size=32, max_size=32)


@st.composite
def headers(draw) -> Header:
    frames = draw(st.integers(0, 2**32 - 1))
    positive = frames > 0
    return Header(
        source_kind=draw(st.sampled_from(["dicom", "png", "tiff", "npy"])),
        height=draw(st.integers(int(positive), 2**32 - 1)), width=draw(st.integers(int(positive), 2**32 - 1)),
        frames=frames, bits_stored=draw(st.integers(1, 16)), signed=draw(st.booleans()),
        photometric=draw(texts), method=draw(st.sampled_from(["classical", "fast", "slow", "latent"])),
        model_id=draw(texts), model_sha256=draw(st.sampled_from([b""]) | shas), encoder_version=draw(texts),
        pixel_sha256=draw(shas), original_sha256=draw(st.sampled_from([b""]) | shas),
        meta=draw(st.dictionaries(st.text(max_size=8), json_values, max_size=4)))


@st.composite
def section_lists(draw) -> list[Section]:
    keys = draw(st.lists(st.tuples(st.sampled_from(list(SectionKind)), st.integers(0, 2**32 - 1),
                                   st.integers(0, 2**32 - 1)), max_size=6, unique_by=lambda k: (int(k[0]), k[1], k[2])))
    return [Section(kind, frame, index, draw(st.binary(max_size=64))) for kind, frame, index in keys]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(headers(), section_lists())
def test_round_trip_property(header, sections):
    data = pack(header, sections)
    assert unpack(data) == (header, sections)
    assert read_header(data) == header
    assert pack(header, sections) == data  # deterministic bytes


def test_truncation_at_every_offset():
    data = small_file()
    for n in range(len(data)):
        with pytest.raises(CorruptStreamError):
            unpack(data[:n])


def test_trailing_bytes_rejected():
    with pytest.raises(CorruptStreamError, match="after its end"):
        unpack(small_file() + b"\0")


@pytest.mark.parametrize("xor", [0x01, 0x80, 0xFF])
def test_every_flipped_byte_is_detected(xor):
    data = small_file()
    for i in range(len(data)):
        damaged = bytearray(data)
        damaged[i] ^= xor
        with pytest.raises(CorruptStreamError) as info:
            unpack(bytes(damaged))
        assert "\n" not in str(info.value)


def test_random_garbage_never_leaks_other_exceptions():
    rng = random.Random(7)
    data = small_file()
    prefix = data[:24]
    for _ in range(2000):
        # Keep a valid prelude sometimes so the parser gets past the magic and into the fields.
        body = bytes(rng.getrandbits(8) for _ in range(rng.randrange(0, 200)))
        for candidate in (body, prefix + body, fmt.MAGIC + body):
            with pytest.raises(CorruptStreamError):
                unpack(candidate)


def test_wrong_magic():
    with pytest.raises(CorruptStreamError, match="not a medcodec file"):
        unpack(b"\x89PNG\r\n\x1a\n" + small_file()[8:])
    with pytest.raises(CorruptStreamError, match="not a medcodec file"):
        unpack(b"")


def test_future_major_version_is_unsupported():
    data = bytearray(small_file())
    struct.pack_into("<H", data, 8, 3)
    with pytest.raises(UnsupportedVersionError, match=r"written by format 3\.x; this medcodec reads 1\.x and 2\.x"):
        unpack(reseal(data))
    with pytest.raises(UnsupportedVersionError):
        read_header(bytes(data))
    struct.pack_into("<H", data, 8, 0)
    with pytest.raises(UnsupportedVersionError, match=r"format 0\.x, which this medcodec"):
        unpack(reseal(data))


# ---------------------------------------------------------------- hand-built files

def uvarint(n: int) -> bytes:
    out = bytearray()
    while True:
        out.append((n & 0x7F) | (0x80 if n >> 7 else 0))
        n >>= 7
        if not n:
            return bytes(out)


def v2_entry(kind, frame, index, payload, length=None) -> bytes:
    return (uvarint(kind) + uvarint(frame) + uvarint(index) + uvarint(len(payload) if length is None else length)
            + struct.pack("<I", zlib.crc32(payload)))


def assemble(head: bytes, table: bytes, payloads: bytes, major: int = fmt.FORMAT_MAJOR,
             minor: int = fmt.FORMAT_MINOR) -> bytes:
    """A file from its parts, every CRC right: what a writer of that version would write."""
    total = 24 + len(head) + 4 + len(table) + 4 + len(payloads) + 4
    prelude = fmt._PRELUDE.pack(fmt.MAGIC, major, minor, total, len(head)) + head
    body = prelude + struct.pack("<I", zlib.crc32(prelude)) + table + struct.pack("<I", zlib.crc32(table)) + payloads
    return body + struct.pack("<I", zlib.crc32(body))


def pack_v1(header: Header, sections: list[Section], minor: int = 4) -> bytes:
    """Format 1's layout (what medcodec wrote before format 2): u32 count, 30-byte entries with offsets,
    JSON meta."""
    head = fmt._encode_header(header)
    meta_text = json.dumps(header.meta, sort_keys=True, separators=(",", ":")).encode()
    head = head[:_meta_start(head)] + struct.pack("<I", len(meta_text)) + meta_text
    entry = struct.Struct("<HIIQQI")
    payload_start = 24 + len(head) + 4 + 4 + entry.size * len(sections) + 4
    table, offset = bytearray(struct.pack("<I", len(sections))), payload_start
    for s in sections:
        table += entry.pack(int(s.kind), s.frame, s.index, offset, len(s.payload), zlib.crc32(s.payload))
        offset += len(s.payload)
    return assemble(head, bytes(table), b"".join(s.payload for s in sections), major=1, minor=minor)


def _meta_start(head: bytes) -> int:
    """Where the header's meta_length field starts: after the fixed fields (parsed as a reader would)."""
    c = fmt._Cursor(head, "test")
    c.str8("s"), c.unpack(fmt._DIMS), c.str8("p"), c.str8("m"), c.str8("i")
    c.bin8("h", (0, 32)), c.str8("v"), c.bin8("x", (32,)), c.bin8("o", (0, 32))
    return c.pos


SMALL_HEAD = fmt._encode_header(make_header())


def test_format_1_files_are_still_read():
    data = pack_v1(make_header(), SMALL_SECTIONS)
    assert fmt.read_version(data) == (1, 4)
    assert unpack(data) == (make_header(), SMALL_SECTIONS)
    assert read_header(data) == make_header()
    for n in range(len(data)):  # and damage to them is still caught
        with pytest.raises(CorruptStreamError):
            unpack(data[:n])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(headers(), section_lists())
def test_format_1_round_trip_property(header, sections):
    assert unpack(pack_v1(header, sections)) == (header, sections)


def test_format_2_is_smaller_than_format_1():
    """The point of format 2: ~21 bytes less per section, and a compact header meta."""
    v1, v2 = pack_v1(make_header(), SMALL_SECTIONS), small_file()
    assert fmt.read_version(v2) == (fmt.FORMAT_MAJOR, fmt.FORMAT_MINOR)
    assert len(v1) - len(v2) >= 20 * len(SMALL_SECTIONS) + 30
    assert SMALL_HEAD[_meta_start(SMALL_HEAD) + 4] == fmt.compact_json.MARKER
    # a meta the compact coding does not hold (a float) stays JSON text
    head = fmt._encode_header(make_header(meta={"x": 0.5}))
    assert head[_meta_start(head) + 4:] == b'{"x":0.5}'
    assert unpack(pack(make_header(meta={"x": 0.5}), []))[0].meta == {"x": 0.5}


def test_compact_header_meta_is_bounded(monkeypatch):
    monkeypatch.setattr(fmt, "MAX_COMPACT_META", 16)
    big = make_header(meta={"frames": [{"method": "raster"}] * 40})
    head = fmt._encode_header(big)
    assert head[_meta_start(head) + 4:][:1] == b"{"  # the writer keeps JSON text past the bound
    assert unpack(pack(big, []))[0] == big
    compact = fmt.compact_json.encode(big.meta)
    too_big = head[:_meta_start(head)] + struct.pack("<I", len(compact)) + compact
    with pytest.raises(CorruptStreamError, match="over the size limit"):
        unpack(assemble(too_big, uvarint(0), b""))
    damaged = head[:_meta_start(head)] + struct.pack("<I", 2) + bytes([fmt.compact_json.MARKER, 0xFF])
    with pytest.raises(CorruptStreamError, match="header meta is damaged"):
        unpack(assemble(damaged, uvarint(0), b""))


def test_future_minor_version_is_accepted_with_extra_header_field():
    """A later minor writer may append header fields and add section kinds; this reader ignores both."""
    head = SMALL_HEAD + b"NEWFIELD"
    table = uvarint(2) + v2_entry(99, 0, 0, b"x") + v2_entry(int(SectionKind.PLANE), 0, 0, b"y")
    header, sections = unpack(assemble(head, table, b"xy", minor=fmt.FORMAT_MINOR + 1))
    assert header == make_header()
    assert sections == [Section(SectionKind.PLANE, 0, 0, b"y")]
    # the same file of this minor is corrupt twice over
    with pytest.raises(CorruptStreamError, match="end of the header"):
        unpack(assemble(head, table, b"xy"))
    with pytest.raises(CorruptStreamError, match="unknown section kind 99"):
        unpack(assemble(SMALL_HEAD, table, b"xy"))


def test_same_minor_rejects_trailing_header_bytes():
    data = bytearray(small_file())
    head_len = struct.unpack_from("<I", data, 20)[0]
    data[24 + head_len:24 + head_len] = b"??"
    struct.pack_into("<QI", data, 12, len(data), head_len + 2)
    with pytest.raises(CorruptStreamError, match="end of the header"):
        unpack(reseal(data))


@pytest.mark.parametrize("table, payloads, message", [
    (uvarint(1) + v2_entry(4, 0, 0, b"abc", length=2**62), b"abc", "do not add up"),
    (uvarint(1) + v2_entry(4, 0, 0, b"abc", length=2), b"abc", "do not add up"),
    (uvarint(2) + v2_entry(4, 0, 0, b"a") + v2_entry(4, 0, 0, b"b"), b"ab", "duplicate"),
    (uvarint(2**32 - 1), b"", "does not fit"),
    (uvarint(2**32), b"", "count 4294967296 is out of range"),
    (uvarint(1) + uvarint(2**16) + b"\0\0\0" + struct.pack("<I", 0), b"", "kind 65536 is out of range"),
    (b"\x81\x00" + v2_entry(4, 0, 0, b""), b"", "not minimally encoded"),
    (b"\xff" * 11, b"", "over 10 bytes"),
    (uvarint(1) + b"\x04\x00", b"", "1 sections does not fit"),
])
def test_damaged_tables_are_rejected_even_with_valid_crcs(table, payloads, message):
    with pytest.raises(CorruptStreamError, match=message):
        unpack(assemble(SMALL_HEAD, table, payloads))


def test_max_pixels_and_absurd_sizes():
    data = small_file()  # 2 frames of 4x5
    assert unpack(data, max_pixels=40)[0].frames == 2
    with pytest.raises(CorruptStreamError, match="over the limit"):
        unpack(data, max_pixels=39)
    with pytest.raises(CorruptStreamError, match="over the limit"):
        read_header(data, max_pixels=39)
    with pytest.raises(CorruptStreamError, match="planes of"):
        unpack(pack(make_header(width=0), []))
    with pytest.raises(CorruptStreamError, match="bits_stored"):
        unpack(pack(make_header(bits_stored=17), []))


def test_pack_rejects_bad_input():
    with pytest.raises(ValueError):
        pack(make_header(pixel_sha256=b"short"), [])
    with pytest.raises(ValueError):
        pack(make_header(), [Section(SectionKind.PLANE, 0, 0, b"a"), Section(SectionKind.PLANE, 0, 0, b"b")])
    with pytest.raises(ValueError):
        pack(make_header(meta={"x": float("nan")}), [])
