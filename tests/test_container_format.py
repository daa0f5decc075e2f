"""The .mlc container: round trips, and every kind of damage gives CorruptStreamError (one line)."""

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
    struct.pack_into("<H", data, 8, 2)
    with pytest.raises(UnsupportedVersionError, match=r"written by format 2\.x; this medcodec reads 1\.x"):
        unpack(reseal(data))
    with pytest.raises(UnsupportedVersionError):
        read_header(bytes(data))


def test_future_minor_version_is_accepted_with_extra_header_field():
    """A later minor writer may append header fields and add section kinds; this reader ignores both."""
    new_kind = Section(SectionKind.ENVELOPE, 0, 0, b"x")
    data = bytearray(pack(make_header(), [new_kind, Section(SectionKind.PLANE, 0, 0, b"y")]))
    head_len = struct.unpack_from("<I", data, 20)[0]
    head_end = 24 + head_len
    extra = b"NEWFIELD"
    data[head_end:head_end] = extra  # appended to the header, before its CRC
    struct.pack_into("<HQI", data, 10, fmt.FORMAT_MINOR + 1, len(data), head_len + len(extra))
    # Shift the section offsets by the inserted bytes and turn the first section into an unknown kind.
    table = head_end + len(extra) + 4 + 4
    for i in range(2):
        at = table + i * fmt._ENTRY.size
        kind, frame, index, offset, length, crc = fmt._ENTRY.unpack_from(data, at)
        fmt._ENTRY.pack_into(data, at, 99 if i == 0 else kind, frame, index, offset + len(extra), length, crc)
    struct.pack_into("<I", data, table + 2 * fmt._ENTRY.size,
                     zlib.crc32(bytes(data[table - 4:table + 2 * fmt._ENTRY.size])))
    header, sections = unpack(reseal(data))
    assert header == make_header()
    assert sections == [Section(SectionKind.PLANE, 0, 0, b"y")]


def test_same_minor_rejects_trailing_header_bytes():
    data = bytearray(small_file())
    head_len = struct.unpack_from("<I", data, 20)[0]
    data[24 + head_len:24 + head_len] = b"??"
    struct.pack_into("<QI", data, 12, len(data), head_len + 2)
    with pytest.raises(CorruptStreamError, match="end of the header"):
        unpack(reseal(data))


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


def test_section_past_the_end_is_rejected_even_with_valid_crcs():
    data = bytearray(small_file())
    head_len = struct.unpack_from("<I", data, 20)[0]
    table = 24 + head_len + 4 + 4
    kind, frame, index, offset, length, crc = fmt._ENTRY.unpack_from(data, table)
    fmt._ENTRY.pack_into(data, table, kind, frame, index, offset, 2**63, crc)
    struct.pack_into("<I", data, table + len(SMALL_SECTIONS) * fmt._ENTRY.size,
                     zlib.crc32(bytes(data[table - 4:table + len(SMALL_SECTIONS) * fmt._ENTRY.size])))
    with pytest.raises(CorruptStreamError, match="outside the payload area"):
        unpack(reseal(data))


def test_huge_section_count_is_rejected_before_allocation():
    data = bytearray(small_file())
    head_len = struct.unpack_from("<I", data, 20)[0]
    struct.pack_into("<I", data, 24 + head_len + 4, 2**32 - 1)
    with pytest.raises(CorruptStreamError, match="does not fit"):
        unpack(reseal(data))


def test_pack_rejects_bad_input():
    with pytest.raises(ValueError):
        pack(make_header(pixel_sha256=b"short"), [])
    with pytest.raises(ValueError):
        pack(make_header(), [Section(SectionKind.PLANE, 0, 0, b"a"), Section(SectionKind.PLANE, 0, 0, b"b")])
    with pytest.raises(ValueError):
        pack(make_header(meta={"x": float("nan")}), [])
