"""The classical method round-trips every plane exactly, whatever its size, range or content."""

import numpy as np
import pytest

from medcodec.errors import CorruptStreamError, InvalidInputError, ModelMismatchError
from medcodec.pipelines import get_method
from medcodec.pipelines.base import Stream
from medcodec.pipelines.classical import ClassicalMethod

RNG = np.random.default_rng(1234)


def _cases():
    yield "1x1 max", np.array([[65535]], np.uint16), 16
    yield "1x1 zero", np.array([[0]], np.uint16), 16
    yield "1xN", RNG.integers(0, 65536, (1, 37)).astype(np.uint16), 16
    yield "Nx1", RNG.integers(0, 65536, (41, 1)).astype(np.uint16), 16
    yield "odd noise 16", RNG.integers(0, 65536, (65, 33)).astype(np.uint16), 16
    yield "flat 0", np.zeros((17, 23), np.uint16), 16
    yield "flat 65535", np.full((17, 23), 65535, np.uint16), 16
    yield "extremes", np.where(RNG.random((40, 40)) < 0.5, 0, 65535).astype(np.uint16), 16
    yield "12-bit", RNG.integers(0, 4096, (48, 50)).astype(np.uint16), 12
    yield "8-bit", RNG.integers(0, 256, (31, 29)).astype(np.uint16), 8
    yield "1-bit", RNG.integers(0, 2, (30, 30)).astype(np.uint16), 1
    ramp = (np.add.outer(np.arange(96), np.arange(80)) * 300).astype(np.uint16)
    yield "smooth 16", ramp, 16
    yield "smooth 10", (ramp >> 6).astype(np.uint16), 10


@pytest.mark.parametrize("name,plane,bits", list(_cases()), ids=[c[0] for c in _cases()])
def test_roundtrip_exact(name, plane, bits):
    method = ClassicalMethod(effort=3)
    streams = method.encode(plane, bits)
    assert all(isinstance(s, Stream) and isinstance(s.payload, bytes) for s in streams)
    out = method.decode(streams, plane.shape, bits)
    assert out.dtype == np.uint16 and out.shape == plane.shape
    np.testing.assert_array_equal(out, plane)


def test_compresses_smooth_planes_and_stays_raw_for_tiny_ones():
    method = ClassicalMethod(effort=3)
    ramp = (np.add.outer(np.arange(256), np.arange(256)) * 100).astype(np.uint16)
    payload = method.encode(ramp, 16)[0].payload
    assert len(payload) < ramp.nbytes / 20
    tiny = np.array([[7]], np.uint16)
    assert len(method.encode(tiny, 16)[0].payload) == 1 + 2  # tag + one raw little-endian sample


def test_several_efforts_keep_the_smallest_codestream():
    plane = (np.add.outer(np.arange(120), np.arange(90)) * 37 % 4000).astype(np.uint16)
    plane += RNG.integers(0, 40, plane.shape).astype(np.uint16)
    sizes = {e: len(ClassicalMethod(effort=e).encode(plane, 12)[0].payload) for e in (1, 3, 7)}
    (stream,) = ClassicalMethod(effort=(1, 3, 7)).encode(plane, 12)
    assert len(stream.payload) == min(sizes.values())
    np.testing.assert_array_equal(ClassicalMethod().decode([stream], plane.shape, 12), plane)
    with pytest.raises(ValueError):
        ClassicalMethod(effort=())


def test_rejects_planes_outside_the_contract():
    method = ClassicalMethod()
    with pytest.raises(InvalidInputError):
        method.encode(np.array([[300]], np.uint16), 8)
    with pytest.raises(InvalidInputError):
        method.encode(np.zeros((3, 3, 3), np.uint16), 16)
    with pytest.raises(InvalidInputError):
        method.encode(np.zeros((3, 3), np.int16), 16)
    with pytest.raises(ValueError):
        ClassicalMethod(effort=11)


def test_damaged_streams_raise_corrupt_stream_error():
    method = ClassicalMethod(effort=3)
    plane = RNG.integers(0, 4096, (64, 64)).astype(np.uint16)
    (stream,) = method.encode(plane, 12)
    damaged = [
        [],
        [stream._replace(payload=b"")],
        [stream._replace(payload=b"\x09" + stream.payload[1:])],  # unknown tag
        [stream._replace(payload=stream.payload[: len(stream.payload) // 2])],  # truncated
        [stream._replace(payload=b"\x00" + b"\x01\x02")],  # raw with the wrong length
    ]
    for streams in damaged:
        with pytest.raises(CorruptStreamError):
            method.decode(streams, plane.shape, 12)
    # A stream of another shape is detected, not silently returned.
    with pytest.raises(CorruptStreamError):
        method.decode([stream], (32, 128), 12)


def test_registry():
    assert get_method("classical").name == "classical"
    assert get_method("classical") is get_method("classical")  # cached: weights load once
    with pytest.raises(InvalidInputError):
        get_method("nonsense")


def test_learned_method_works_or_says_clearly_why_not():
    try:
        method = get_method("fast", device="cpu")
    except ModelMismatchError as exc:
        assert "fast" in str(exc)  # names what is missing
    else:
        assert method.name == "fast"
