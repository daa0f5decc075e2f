"""Raster coding (pipelines/raster/coding.py): the raw-bit stream's packing and its compiled reader
against their numpy definitions, and the value range's clipped tables against the values each entry holds."""

import numpy as np
import pytest

from medcodec.entropy import residual_model as rm
from medcodec.errors import CorruptStreamError
from medcodec.pipelines import raster


def read_bits(reader, widths):
    """The next values of widths[i] bits each, most significant first, from a raster.coding.BitReader: the numpy
    definition its compiled ``values`` pass is checked against (it was the decoder's reader)."""
    total = int(widths.sum())
    assert reader.cursor + total <= reader.bits.size
    starts = reader.cursor + np.cumsum(widths) - widths
    out = np.zeros(widths.size, dtype=np.int64)
    for k in range(int(widths.max()) if widths.size else 0):
        mask = widths > k
        out[mask] = (out[mask] << 1) | reader.bits[starts[mask] + k]
    reader.cursor += total
    return out


def test_bit_packing_round_trips():
    rng = np.random.default_rng(0)
    widths = rng.integers(0, 17, 500)
    values = rng.integers(0, 1 << 16, 500) & ((1 << widths) - 1)
    reader = raster.coding.BitReader(raster.coding.pack_bits(widths, values))
    assert np.array_equal(np.concatenate([read_bits(reader, widths[:123]), read_bits(reader, widths[123:])]), values)
    reader.finish()


def test_values_from_symbols_and_raw_bits_are_the_numpy_definition():
    # the decoder's compiled pass against read_bits of the widths and the two np.where it replaced
    rng = np.random.default_rng(1)
    n = 400
    symbols = np.where(rng.random(n) < 0.1, rm.ESCAPE, rng.integers(0, rm.ESCAPE, n))
    params = rm.PixelParams(table=np.zeros(n, np.int64), low_bits=rng.integers(0, 6, n), base=rng.integers(0, 900, n))
    escaped = symbols == rm.ESCAPE
    widths = np.where(escaped, raster.layout.RAW_ESCAPE_BITS, params.low_bits)
    payload = raster.coding.pack_bits(widths, rng.integers(0, 1 << 16, n) & ((1 << widths) - 1))
    extra = read_bits(raster.coding.BitReader(payload), widths)
    want = np.where(escaped, extra, ((symbols - rm.SUPPORT + params.base) << params.low_bits) + extra)
    reader = raster.coding.BitReader(payload)
    got = np.concatenate([reader.values(symbols[:150], _rows(params, slice(0, 150)), int(want.min()), int(want.max())),
                          reader.values(symbols[150:], _rows(params, slice(150, n)), int(want.min()), int(want.max()))])
    assert np.array_equal(got, want)
    reader.finish()
    with pytest.raises(CorruptStreamError, match="outside the plane's range"):
        raster.coding.BitReader(payload).values(symbols, params, int(want.min()), int(want.max()) - 1)
    with pytest.raises(CorruptStreamError, match="truncated"):
        raster.coding.BitReader(payload[:len(payload) // 2]).values(symbols, params, int(want.min()), int(want.max()))


def _rows(params, chosen):
    return rm.PixelParams(table=params.table[chosen], low_bits=params.low_bits[chosen], base=params.base[chosen])


def _model_with(value_range, boost=(0, 0)):
    return raster.side_info.RasterModel(pad=0, class_shift=0, shared=np.zeros(12, np.int64), first=np.zeros((1, 12), np.int64),
                              second=np.zeros((1, 12), np.int64), scale_weights=np.zeros(9, np.int64), bucket_low=0,
                              ell=np.zeros(1, np.int64), boost=boost, value_range=value_range)


@pytest.mark.parametrize("censor", [0, 1, 2, 3])
def test_clipped_tables_hold_nothing_outside_the_range_and_the_saving_matches_them(censor):
    rng = np.random.default_rng(3)
    count = 600
    mu = rng.integers(-200 << 4, 4300 << 4, count)
    ell = rng.integers(0, 90, count)  # some pixels with low bits: symbols are ranges of values
    params = rm.pixel_params(mu, ell)
    lo, hi = 40, 4000
    probabilities = raster.coding.probabilities(_model_with((lo, hi, censor)), params, None)
    table = rm.tables()[params.table].astype(np.float64)
    # written out from the values each entry holds: [q << b, (q << b) + 2**b - 1], q = s - SUPPORT + base
    q = np.arange(rm.ESCAPE) - rm.SUPPORT + params.base[:, None]
    lowest, highest = q << params.low_bits[:, None], ((q + 1) << params.low_bits[:, None]) - 1
    below, above = highest < lo, lowest > hi
    can_escape = ((lo >> params.low_bits) < params.base - rm.SUPPORT) | ((hi >> params.low_bits) > params.base + rm.SUPPORT)
    kept = table.copy()
    kept[:, :rm.ESCAPE][below | above] = 0
    clipped = (below | above).any(axis=1)
    kept[clipped & ~can_escape, rm.ESCAPE] = 0
    for bit, outside, holds in ((1, below, (lowest <= lo) & (highest >= lo)), (2, above, (lowest <= hi) & (highest >= hi))):
        if censor & bit:
            for i in np.flatnonzero(holds.any(axis=1) & clipped):
                kept[i, np.flatnonzero(holds[i])[0]] += table[i, :rm.ESCAPE][outside[i]].sum()
    assert np.array_equal(probabilities, kept / kept.sum(axis=1, keepdims=True))  # exactly f / sum(f)
    # the estimate: the code length the clipped tables give to values in the range, against the plain ones
    values = np.clip((mu >> 4) + rng.integers(-40, 41, count), lo, hi)
    symbols, _ = rm.coded_symbols(values, params)
    rows = np.arange(count)
    exact = np.log2(probabilities[rows, symbols] / (table[rows, symbols] / rm.TOTAL)).sum()
    assert np.isclose(raster.coding.range_savings(values, params, (lo, hi))[censor], exact)


def test_clipped_decoding_does_not_depend_on_how_pixels_are_batched():
    rng = np.random.default_rng(4)
    mu = rng.integers(0, 300 << 4, 64)
    params = rm.pixel_params(mu, rng.integers(0, 40, 64))
    nb = np.clip((mu >> 4)[:, None] + rng.integers(-3, 4, (64, len(raster.layout.OFFSETS))), 20, 255)
    for censor in range(4):
        model = _model_with((20, 255, censor), boost=(16, 16))
        batch = raster.coding.probabilities(model, params, nb)
        for i in (0, 17, 63):
            one = rm.PixelParams(params.table[i:i + 1], params.low_bits[i:i + 1], params.base[i:i + 1])
            assert np.array_equal(raster.coding.probabilities(model, one, nb[i:i + 1]), batch[i:i + 1])
