"""Per-plane side information: plain or zlib-packed JSON, read back exactly, damage refused."""

import zlib

import pytest

from medcodec.pipelines.base import MAX_SIDE_INFO, pack_side_info, unpack_side_info


def test_small_side_information_stays_plain_json():
    payload = pack_side_info({"lo": 3, "shift": 0})
    assert payload == b'{"lo":3,"shift":0}'
    assert unpack_side_info(payload) == {"lo": 3, "shift": 0}


def test_repetitive_side_information_is_packed_and_read_back():
    meta = {"lo": 0, "shift": 8, "refine": [{"w": [12, -3, 40, 7], "bins": [[0, 0]] * 16}] * 6}
    payload = pack_side_info(meta)
    assert payload[:1] != b"{" and len(payload) < len(pack_side_info({"x": 1})) * 20
    assert unpack_side_info(payload) == meta


@pytest.mark.parametrize("payload", [
    b"\x78\x9c damaged",  # zlib header, garbage after it
    zlib.compress(b'{"lo": 1}')[:-3],  # truncated
    zlib.compress(b'{"lo": 1}') + b"extra",  # bytes after the stream
    zlib.compress(b"[1, 2]"),  # JSON, but not an object
    zlib.compress(b" " * (MAX_SIDE_INFO + 1) + b"{}"),  # inflates past the bound
    b"{not json",
])
def test_damaged_side_information_is_refused(payload):
    with pytest.raises((ValueError, TypeError)):
        unpack_side_info(payload)
