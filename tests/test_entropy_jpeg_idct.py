"""medcodec's statement of libjpeg's islow IDCT, and the installed JPEG decoder held to it: a jpeg
frame's pixels are what that arithmetic makes of its coefficients."""

import imagecodecs
import numpy as np
import pytest

from medcodec.entropy import jpeg_baseline as jb
from medcodec.entropy import jpeg_idct as ji
from medcodec.pipelines.jpeg_history import ijg_table

RNG = np.random.default_rng(5)


def _image(coefficients, table):
    rows, cols = coefficients.shape[:2]
    return ji.raster(ji.inverse_dct(coefficients, table), rows * 8, cols * 8)


def _random_case(trial):
    table = ijg_table(int(RNG.integers(1, 100))) if trial % 3 else RNG.integers(1, 256, 64)
    coefficients = np.round(RNG.laplace(0, RNG.uniform(0.3, 20), (4, 6, 64))).astype(np.int64)
    coefficients[..., 0] = RNG.integers(-1024, 1016, (4, 6)) // table[0]
    coefficients[RNG.random((4, 6, 64)) < RNG.uniform(0.2, 0.95)] = 0  # all-zero columns and rows too
    return np.clip(coefficients, -1023, 1023), table


def test_installed_decoder_is_libjpeg_islow_to_the_bit():
    checked = clamped = 0
    for trial in range(400):
        coefficients, table = _random_case(trial)
        values = ji.descaled(coefficients, table)
        low, high = int(values.min()), int(values.max())
        if low < -512 or high > 511:
            assert not ji.agreed(values)
            continue  # where libjpeg-turbo's C and SIMD code disagree; the encoder never writes these
        assert ji.agreed(values)
        decoded = imagecodecs.jpeg8_decode(jb.write(coefficients, table, 32, 48))
        np.testing.assert_array_equal(decoded, _image(coefficients, table))
        checked += 1
        clamped += low < -128 or high > 127
    assert checked >= 40 and clamped >= 20  # samples clamped at 0 and 255 were part of it


def test_flat_blocks_and_the_dc_scale():
    table = ijg_table(50)
    coefficients = np.zeros((1, 2, 64), np.int64)
    coefficients[0, 0, 0] = 10  # 10 * 16 / 8 = 20 above mid-grey
    coefficients[0, 1, 0] = -64  # far below black: clamped
    out = ji.inverse_dct(coefficients, table)
    assert (out[0, 0] == 148).all() and (out[0, 1] == 0).all()


@pytest.mark.parametrize("x,sample", [(-129, 0), (-128, 0), (-1, 127), (0, 128), (127, 255), (511, 255),
                                      (-512, 0), (512, 0), (-513, 255)])
def test_range_limit_is_libjpegs_table(x, sample):
    """Inside -512..511 a clamp of x + 128; outside, the C table's wrap-around (the SIMD code saturates,
    which is why the encoder refuses such blocks)."""
    assert int(ji.range_limit(np.array([x]))[0]) == sample
