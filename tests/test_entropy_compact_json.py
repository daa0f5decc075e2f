"""The compact binary coding of side information: every JSON value it holds reads back exactly, in
fewer bytes than JSON text; floats are left to JSON; damage is a ValueError."""

import json
import random
import zlib

import pytest

from medcodec.entropy import compact_json
from medcodec.entropy.compact_json import MARKER, decode, encode

# The names as first released: a code is an index into this table, so it may only grow at its end.
RELEASED_NAMES = ("raster", "pad", "cs", "g", "first", "second", "w", "blo", "ell", "step", "nb", "pal",
                  "lo", "shift", "requires", "refine", "bins", "phase", "ensemble", "surprise", "left_pass",
                  "mean_adjust", "scale_adjust", "latent", "residual_bits", "z_bits", "whole_set",
                  # format 2
                  "frames", "method", "modality", "description", "fallback", "shape", "classical", "jpeg",
                  "fast", "slow", "nn", "bc", "raster-nn-v1/575b2b961130ba04",
                  "raster-nn-large-v1/43307bc3595e11cf", "raster-nn-xl-v1/5889accea96285a9")


def _random_value(rng, depth=0):
    kind = rng.choice(["null", "bool", "int", "big", "ints", "list", "name", "text", "object"] if depth < 4
                      else ["null", "int", "name"])
    if kind == "null":
        return None
    if kind == "bool":
        return rng.random() < 0.5
    if kind == "int":
        return rng.randint(-300, 300)
    if kind == "big":
        return rng.choice([-1, 1]) * rng.randrange(1 << 61)
    if kind == "ints":
        scale = 1 << rng.randint(0, 40)
        return [rng.randint(-scale, scale) for _ in range(rng.randint(1, 40))]
    if kind == "list":
        return [_random_value(rng, depth + 1) for _ in range(rng.randint(0, 5))]
    if kind == "name":
        return rng.choice(compact_json.NAMES)
    if kind == "text":
        return "".join(rng.choice("aé_Z9 ") for _ in range(rng.randint(0, 12)))
    return {rng.choice(compact_json.NAMES + ("other", "ünïcode", "")): _random_value(rng, depth + 1)
            for _ in range(rng.randint(0, 6))}


def test_name_table_only_grows_at_its_end():
    assert compact_json.NAMES[:len(RELEASED_NAMES)] == RELEASED_NAMES
    assert len(set(compact_json.NAMES)) == len(compact_json.NAMES)


@pytest.mark.parametrize("seed", range(64))
def test_random_values_read_back_exactly(seed):
    value = _random_value(random.Random(seed))
    payload = encode(value)
    assert payload[0] == MARKER
    assert decode(payload) == value


def test_raster_like_side_information_is_about_half_its_zlib_text():
    rng = random.Random(1)
    meta = {"raster": {"pad": 32768, "cs": 0, "blo": 0, "g": [rng.randint(-250, 250) for _ in range(12)],
                       "first": [None if rng.random() < 0.7 else [rng.randint(-250, 250) for _ in range(12)]
                                 for _ in range(17)],
                       "second": [None] * 17, "w": [6, 5, 0, 0, 3, 1, 0, 0, 0],
                       "ell": [rng.randint(-8, 8) for _ in range(33)], "nb": [32, 8]}}
    text = json.dumps(meta, separators=(",", ":")).encode()
    assert len(encode(meta)) < 0.6 * len(zlib.compress(text, 9))


def test_integer_list_order_follows_the_magnitudes():
    small = encode([0, 1, -1, 2] * 8)
    large = encode([1 << 20, -(1 << 20)] * 16)
    assert len(small) <= 1 + (3 + 11 + 5 + 32 * 3 + 7) // 8
    assert len(large) <= 1 + (3 + 11 + 5 + 32 * 28 + 7) // 8  # order 15: 28 bits a value, no long prefixes


@pytest.mark.parametrize("seed", range(3))
def test_list_mode_is_the_shortest_coding_the_first_on_a_tie(seed):
    # numpy's lengths against the definition written out: every order of either coding, summed in Python
    rng = random.Random(seed)
    for _ in range(2000):
        top = rng.choice([1, 3, 100, 1 << 20, 1 << 51, 1 << 53, 1 << 61])
        values = [rng.randint(0 if rng.random() < 0.5 else -top, top) for _ in range(rng.randint(1, 40))]
        signed = [compact_json._zigzag(v) for v in values]
        options = [(m, signed) for m in range(16)] + ([(16 + m, values) for m in range(16)] if min(values) >= 0 else [])
        best = min(options, key=lambda o: sum(compact_json._eg_length(u, o[0] % 16) for u in o[1]))[0]
        assert compact_json._list_mode(values, signed) == best


def test_lists_without_negative_values_skip_the_sign():
    labels = [0, 1, 2, 3, 0, 0, 1, 5] * 16
    assert decode(encode(labels)) == labels
    assert len(encode(labels)) < len(encode([-x for x in labels]))  # the same magnitudes, signed: a bit more each


@pytest.mark.parametrize("value", [0.5, [1, 2.0], {"w": float("nan")}, 1 << 62, [-(1 << 62)], {1: 2}])
def test_what_it_does_not_hold_is_left_to_json(value):
    assert encode(value) is None


def _bits(text):
    text += "0" * (-len(text) % 8)
    return bytes([MARKER]) + int(text, 2).to_bytes(len(text) // 8, "big")


def _eg(u, k):
    x = u + (1 << k)
    return "0" * (x.bit_length() - k - 1) + format(x, "b")


_RASTER = _eg(compact_json.NAMES.index("raster") + 1, 2)


@pytest.mark.parametrize("payload", [
    b"{}",  # not the marker
    bytes([MARKER]),  # no value
    _bits("011" + "0" * 70 + "1"),  # an integer whose code has more than 64 leading zeros
    _bits("110" + _eg(len(compact_json.NAMES) + 1, 2)),  # a name beyond the table
    _bits("110" + _eg(0, 2) + _eg(2, 2) + "11111111" * 2),  # a literal name of invalid UTF-8
    _bits("111" + _eg(2, 0) + _RASTER + "000" + _RASTER + "000"),  # an object repeating a key
    _bits("100" + _eg(14, 0) + "000"),  # a list announcing 14 values, holding one
    _bits("101" + _eg(40, 0) + "00011" + "1111"),  # an integer list announcing 41 values, holding one
    encode({"lo": 1}) + b"\x00",  # a byte after the value
    encode({"lo": 1})[:-1] + bytes([encode({"lo": 1})[-1] | 1]),  # padding that is not zero
])
def test_damage_is_refused(payload):
    with pytest.raises(ValueError):
        decode(payload)


def test_nesting_deeper_than_the_bound_is_refused():
    deep = None
    for _ in range(compact_json.MAX_DEPTH + 2):
        deep = [deep]
    assert encode(deep) is None
    with pytest.raises(ValueError):
        decode(_bits(("100" + _eg(1, 0)) * (compact_json.MAX_DEPTH + 2) + "000"))
