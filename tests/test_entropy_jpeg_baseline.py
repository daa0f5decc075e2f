"""The baseline JPEG writer: every stream it writes decodes with libjpeg-turbo to the coefficients'
inverse DCT; out-of-range input is refused rather than written wrong."""

import imagecodecs
import numpy as np
import pytest

from medcodec.entropy import jpeg_baseline as jb
from medcodec.pipelines.jpeg_history import STANDARD_LUMINANCE, ijg_table

RNG = np.random.default_rng(7)


def _idct(coefficients: np.ndarray, table: np.ndarray, height: int, width: int) -> np.ndarray:
    """Float reference decoding: inverse orthonormal DCT of each block, +128, rounded and clamped."""
    k = np.arange(8)
    m = np.cos((2 * k[None, :] + 1) * k[:, None] * np.pi / 16) * np.sqrt(2 / 8)
    m[0] /= np.sqrt(2)
    rows, cols = coefficients.shape[:2]
    blocks = (coefficients * table).reshape(rows, cols, 8, 8).astype(np.float64)
    pixels = (m.T @ blocks @ m).transpose(0, 2, 1, 3).reshape(rows * 8, cols * 8)
    return np.clip(np.round(pixels + 128), 0, 255)[:height, :width]


def _coefficients(rows: int, cols: int, nonzero: float, scale: float) -> np.ndarray:
    values = np.round(RNG.laplace(0, scale, (rows, cols, 64))).astype(np.int64)
    values[RNG.random((rows, cols, 64)) > nonzero] = 0
    values[..., 0] = RNG.integers(-60, 60, (rows, cols))
    return values


@pytest.mark.parametrize("height,width", [(8, 8), (16, 24), (37, 53), (1, 9), (9, 1)])
def test_written_stream_decodes_to_the_inverse_dct(height, width):
    table = ijg_table(80)
    coefficients = _coefficients(-(-height // 8), -(-width // 8), 0.3, 3.0)
    decoded = imagecodecs.jpeg8_decode(jb.write(coefficients, table, height, width))
    assert decoded.shape == (height, width) and decoded.dtype == np.uint8
    # libjpeg-turbo's integer IDCT rounds differently from the float reference by at most one
    assert np.abs(decoded.astype(np.int64) - _idct(coefficients, table, height, width)).max() <= 1


def test_long_zero_runs_extreme_values_and_stuffing():
    table = np.ones(64, np.int64)
    coefficients = np.zeros((3, 4, 64), np.int64)
    coefficients[0, 0, 0] = -1024  # then a DC difference of 2047 (category 11)
    coefficients[0, 1, 0] = 1023
    coefficients[1, :, 63] = [1023, -1023, 1, -1]  # a run of 62 zeros (three ZRL) before the last
    coefficients[2, 0, 1:] = -1  # every AC coefficient set
    coefficients[2, 1, 8] = 255  # codes with 0xFF bytes in them need stuffing
    data = jb.write(coefficients, table, 24, 32)
    decoded = imagecodecs.jpeg8_decode(data)
    assert np.abs(decoded.astype(np.int64) - _idct(coefficients, table, 24, 32)).max() <= 1


def test_refuses_what_baseline_jpeg_cannot_hold():
    table = ijg_table(50)
    with pytest.raises(ValueError, match="range"):
        jb.write(np.full((1, 1, 64), 1024, np.int64), table, 8, 8)
    with pytest.raises(ValueError, match="range"):
        jb.write(np.array([[[2048] + [0] * 63]]), table, 8, 8)
    with pytest.raises(ValueError, match="shape"):
        jb.write(np.zeros((2, 2, 64), np.int64), table, 8, 8)
    with pytest.raises(ValueError, match="table"):
        jb.write(np.zeros((1, 1, 64), np.int64), np.zeros(64), 8, 8)


def test_standard_tables():
    """Annex K.3: 12 DC and 162 AC symbols, a prefix code each, the all-ones code of each length unused."""
    assert len(jb.DC_SYMBOLS) == sum(jb.DC_COUNTS) == 12
    assert len(jb.AC_SYMBOLS) == sum(jb.AC_COUNTS) == 162 == len(set(jb.AC_SYMBOLS))
    for codes in (jb.DC_CODES, jb.AC_CODES):
        assert all(code != (1 << length) - 1 for code, length in codes.values())
        words = sorted(format(code, f"0{length}b") for code, length in codes.values())
        assert not any(b.startswith(a) for a, b in zip(words, words[1:]))
    assert np.array_equal(ijg_table(50), STANDARD_LUMINANCE)
