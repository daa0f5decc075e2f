"""JPEG 2000 history: the 5/3 lifting is the standard's, planes decoded from lossy JPEG 2000 are told
from others, and the classical method codes them as lossless JPEG 2000, exactly."""

import numpy as np
import pytest

import medcodec
from medcodec import codec
from medcodec.errors import CorruptStreamError
from medcodec.pipelines import jpeg2000_history
from medcodec.pipelines.classical import ClassicalMethod, jpeg2000_encode_plane, jpegxl_encode_plane

from planes import jpeg2000_history as jpeg2000_history_plane


def _noisy_plane(seed: int = 5, shape: tuple[int, int] = (128, 128)) -> np.ndarray:
    """What planes.jpeg2000_history starts from, never through JPEG 2000."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:shape[0], :shape[1]]
    signal = 2000 + 600 * np.sin(x / 9) + 500 * np.cos(y / 13) + rng.normal(0, 30, shape)
    return np.clip(signal, 0, 4095).astype(np.uint16)


def _lossy_jpeg2000(quality: int = 50, shape: tuple[int, int] = (128, 128)) -> np.ndarray:
    decoded = jpeg2000_history_plane(shape, quality=quality)
    assert not np.array_equal(decoded, _noisy_plane(shape=shape))  # lossy indeed
    return decoded


def test_lifting_is_the_standards_reversible_5_3():
    # ITU T.800 F.3.8.2: d[n] = x[2n+1] - floor((x[2n] + x[2n+2]) / 2), s[n] = x[2n] + floor((d[n-1] + d[n] + 2) / 4),
    # symmetric extension at both ends; worked by hand for an odd and an even length
    low, high = jpeg2000_history._lift(np.array([1, 5, 3, 8, 2]), 0)
    assert low.tolist() == [3, 5, 5] and high.tolist() == [3, 6]
    low, high = jpeg2000_history._lift(np.array([1, 5, 3, 8]), 0)
    assert low.tolist() == [3, 5] and high.tolist() == [3, 5]
    rows = np.array([[1, 5, 3, 8, 2], [0, 0, 4, 4, 4]])
    low, high = jpeg2000_history._lift(rows, 1)
    assert low[0].tolist() == [3, 5, 5] and high[0].tolist() == [3, 6]


@pytest.mark.parametrize("quality", [45, 50, 60])
def test_a_decoded_lossy_jpeg2000_plane_shows_its_history(quality):
    history = _lossy_jpeg2000(quality)
    assert jpeg2000_history.carries_history(history)
    # a row or column off the codestream's grid, the low bits look like any plane's
    assert not jpeg2000_history.carries_history(history[1:])
    assert not jpeg2000_history.carries_history(history[:, 1:])


def test_planes_without_history_are_not_flagged():
    rng = np.random.default_rng(7)
    for plane in (_noisy_plane(), rng.integers(0, 65536, (300, 200)).astype(np.uint16),
                  np.zeros((64, 64), np.uint16), np.ones((5, 900), np.uint16)):
        assert not jpeg2000_history.carries_history(plane)
    ratios = jpeg2000_history.residue_ratios(_noisy_plane())
    assert len(ratios) == jpeg2000_history.LOW_BITS and all(0.8 < r < 2.5 for r in ratios)


def test_the_test_looks_at_a_middle_crop_on_the_grid():
    plane = np.zeros((2000, 1301), np.uint16)
    middle = jpeg2000_history._middle(plane)
    assert middle.shape == (jpeg2000_history.CROP, jpeg2000_history.CROP)
    history = _lossy_jpeg2000(shape=(1200, 1100))
    assert jpeg2000_history.carries_history(history)  # its middle, cut on a multiple of 8, keeps the grid


def test_classical_codes_such_a_plane_as_lossless_jpeg2000_exactly():
    history = _lossy_jpeg2000()
    method = ClassicalMethod(effort=7)
    (stream,) = method.encode(history, 12)
    assert stream.payload[0] == 2  # JPEG 2000 (format 2.23)
    assert len(stream.payload) < len(jpegxl_encode_plane(history, 12, 7))
    np.testing.assert_array_equal(method.decode([stream], history.shape, 12), history)
    # a plane without history keeps JPEG-XL (or raw)
    (plain,) = method.encode(_noisy_plane(), 12)
    assert plain.payload[0] == 1


def test_whole_files_round_trip_in_every_mode_that_falls_back():
    history = _lossy_jpeg2000()
    for mode in ("classical", "fast"):
        blob = medcodec.encode(history, mode=mode)
        np.testing.assert_array_equal(medcodec.decode(blob).planes[0], history)
        assert [f.get("classical_coding") for f in codec.info(blob)["frames"]] == ["JPEG 2000"]
        assert len(blob) < len(medcodec.encode(_noisy_plane(), mode="classical"))


def test_damaged_jpeg2000_streams_raise_corrupt_stream_error():
    history = _lossy_jpeg2000()
    method = ClassicalMethod()
    (stream,) = method.encode(history, 12)
    other_shape = b"\x02" + jpeg2000_encode_plane(history[:64], 12)
    other_bits = b"\x02" + jpeg2000_encode_plane(history, 16)
    damaged = [stream.payload[:40], stream.payload[:len(stream.payload) // 2], b"\x02garbage", other_shape,
               other_bits, stream.payload[:1] + bytes(len(stream.payload) - 1)]
    for payload in damaged:
        with pytest.raises(CorruptStreamError):
            method.decode([stream._replace(payload=payload)], history.shape, 12)


def test_openjpeg_refusing_a_plane_leaves_the_jpegxl_coding(monkeypatch):
    from medcodec.pipelines import classical

    def refuse(plane, bits):
        raise RuntimeError("OpenJPEG says no")

    history = _lossy_jpeg2000()
    monkeypatch.setattr(classical, "jpeg2000_encode_plane", refuse)
    (stream,) = ClassicalMethod().encode(history, 12)
    assert stream.payload[0] == 1
    np.testing.assert_array_equal(ClassicalMethod().decode([stream], history.shape, 12), history)
