"""Per-plane side information: plain JSON, zlib-packed JSON or the compact binary coding, whichever is
shortest, read back exactly, damage refused; the decoding features a frame requires."""

import json
import zlib

import pytest

from medcodec.entropy import compact_json
from medcodec.errors import UnsupportedVersionError
from medcodec.pipelines.base import MAX_SIDE_INFO, pack_side_info, required_features, unpack_side_info


def test_side_information_takes_the_compact_coding_and_reads_back():
    meta = {"lo": 3, "shift": 0}
    payload = pack_side_info(meta)
    assert payload == compact_json.encode(meta) and len(payload) < len(json.dumps(meta)) / 2
    assert unpack_side_info(payload) == meta


def test_side_information_the_compact_coding_cannot_hold_stays_json():
    meta = {"lo": 3, "gain": 0.5}  # no method sends a float; should one, its side information stays text
    assert pack_side_info(meta) == b'{"gain":0.5,"lo":3}'
    assert unpack_side_info(pack_side_info(meta)) == meta


def test_json_side_information_of_earlier_files_still_reads():
    assert unpack_side_info(b'{"lo":3,"shift":0}') == {"lo": 3, "shift": 0}


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
    compact_json.encode([1, 2]),  # compact, but not an object
    compact_json.encode({"lo": 1})[:-1],  # compact, truncated
    bytes([compact_json.MARKER]) + b"\x00" * (MAX_SIDE_INFO + 1),  # compact, over the bound
])
def test_damaged_side_information_is_refused(payload):
    with pytest.raises((ValueError, TypeError)):
        unpack_side_info(payload)


def test_required_features_are_returned_or_refused_as_from_a_newer_medcodec():
    assert required_features({"lo": 0}, {"refine"}, "fast") == set()
    assert required_features({"requires": ["refine"]}, {"refine", "phase"}, "fast") == {"refine"}
    with pytest.raises(UnsupportedVersionError, match="fast frame needs later.*upgrade medcodec"):
        required_features({"requires": ["refine", "later"]}, {"refine"}, "fast")
