"""The integer inverse DCT that decodes a ``jpeg`` frame, written out: libjpeg's "islow" algorithm
(``jidctint.c``: Loeffler-Ligtenberg-Moschytz with 13-bit constants, two passes), which
libjpeg-turbo runs in C and SIMD with identical results.

Why here: a jpeg frame's pixels are what that IDCT makes of the recovered coefficients, and unlike
JPEG-XL's lossless decoding the JPEG standard does not fix an IDCT to the bit. medcodec decodes with
libjpeg-turbo (through imagecodecs); this reference states the arithmetic the format relies on, and the
tests hold the installed decoder to it, so a library whose IDCT rounds differently fails there, not in
an archive.
"""

from __future__ import annotations

import numpy as np

CONST_BITS = 13
PASS1_BITS = 2
# round(x * 2**13) of the constants jidctint.c names FIX_x
FIX_0_298631336 = 2446
FIX_0_390180644 = 3196
FIX_0_541196100 = 4433
FIX_0_765366865 = 6270
FIX_0_899976223 = 7373
FIX_1_175875602 = 9633
FIX_1_501321110 = 12299
FIX_1_847759065 = 15137
FIX_1_961570560 = 16069
FIX_2_053119869 = 16819
FIX_2_562915447 = 20995
FIX_3_072711026 = 25172
RANGE_MASK = 1023  # libjpeg's range-limit table is indexed by the descaled value & 1023


def _descale(x: np.ndarray, n: int) -> np.ndarray:
    return (x + (1 << (n - 1))) >> n


def _butterfly(v: list[np.ndarray]) -> list[np.ndarray]:
    """One 8-point pass over inputs v[0..7] (int64 arrays): the eight outputs before descaling."""
    z2, z3 = v[2], v[6]
    z1 = (z2 + z3) * FIX_0_541196100
    tmp2 = z1 - z3 * FIX_1_847759065
    tmp3 = z1 + z2 * FIX_0_765366865
    tmp0 = (v[0] + v[4]) << CONST_BITS
    tmp1 = (v[0] - v[4]) << CONST_BITS
    tmp10, tmp13, tmp11, tmp12 = tmp0 + tmp3, tmp0 - tmp3, tmp1 + tmp2, tmp1 - tmp2
    tmp0, tmp1, tmp2, tmp3 = v[7], v[5], v[3], v[1]
    z1, z2, z3, z4 = tmp0 + tmp3, tmp1 + tmp2, tmp0 + tmp2, tmp1 + tmp3
    z5 = (z3 + z4) * FIX_1_175875602
    tmp0 = tmp0 * FIX_0_298631336
    tmp1 = tmp1 * FIX_2_053119869
    tmp2 = tmp2 * FIX_3_072711026
    tmp3 = tmp3 * FIX_1_501321110
    z1 = z1 * -FIX_0_899976223
    z2 = z2 * -FIX_2_562915447
    z3 = z3 * -FIX_1_961570560 + z5
    z4 = z4 * -FIX_0_390180644 + z5
    tmp0, tmp1, tmp2, tmp3 = tmp0 + z1 + z3, tmp1 + z2 + z4, tmp2 + z2 + z3, tmp3 + z1 + z4
    return [tmp10 + tmp3, tmp11 + tmp2, tmp12 + tmp1, tmp13 + tmp0,
            tmp13 - tmp0, tmp12 - tmp1, tmp11 - tmp2, tmp10 - tmp3]


def range_limit(x: np.ndarray) -> np.ndarray:
    """libjpeg's post-IDCT range-limit table, indexed by ``x & RANGE_MASK``: x + 128 clamped to 0..255
    for x in -512..511. Beyond that the C table wraps and the SIMD code saturates: they disagree,
    which is why the encoder refuses blocks outside ``AGREED`` (``agreed``)."""
    m = x & RANGE_MASK
    return np.where(m < 128, m + 128, np.where(m < 512, 255, np.where(m < 896, 0, m - 896)))


AGREED = (-512, 511)  # descaled values on which libjpeg-turbo's C table and SIMD saturation agree


def in_agreed_range(values: np.ndarray) -> np.ndarray:
    """Per descaled value, whether it lies in ``AGREED``."""
    return (values >= AGREED[0]) & (values <= AGREED[1])


def agreed(values: np.ndarray) -> bool:
    """Whether every descaled value lies in ``AGREED``, so every libjpeg-turbo build gives the same samples."""
    return bool(in_agreed_range(values).all())


def descaled(coefficients: np.ndarray, quant: np.ndarray) -> np.ndarray:
    """The inverse DCT's values [..., 64] before range limiting (x, where the sample is x + 128 clamped),
    of quantised coefficients [..., 64] (natural order) and a table [64]."""
    d = np.asarray(coefficients, dtype=np.int64) * np.asarray(quant, dtype=np.int64)
    blocks = d.reshape(d.shape[:-1] + (8, 8))
    # pass 1: columns, results scaled up by 2**PASS1_BITS
    columns = _butterfly([blocks[..., u, :] for u in range(8)])
    work = np.stack([_descale(c, CONST_BITS - PASS1_BITS) for c in columns], axis=-2)
    # pass 2: rows, descaled by the constants, the pass-1 scale and the 8 of the 2-D DCT's norm
    rows = _butterfly([work[..., :, u] for u in range(8)])
    return np.stack([_descale(r, CONST_BITS + PASS1_BITS + 3) for r in rows], axis=-1).reshape(d.shape)


def inverse_dct(coefficients: np.ndarray, quant: np.ndarray) -> np.ndarray:
    """8-bit samples [..., 64] of quantised coefficients [..., 64] (natural order) and a table [64]."""
    return range_limit(descaled(coefficients, quant)).astype(np.uint8)


def raster(blocks: np.ndarray, height: int, width: int) -> np.ndarray:
    """Blocks [block rows, block columns, 64] as the [height, width] image they tile (edge blocks cropped)."""
    rows, cols = blocks.shape[:2]
    return blocks.reshape(rows, cols, 8, 8).transpose(0, 2, 1, 3).reshape(rows * 8, cols * 8)[:height, :width]
