"""From a pixel's prediction and scale to the coder: its residual table and probability row (with the
value range and neighbour-value boost a frame sends), the raw bits of low bits and escaped values, and
the code lengths the encoder's choices weigh."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

import constriction
import numpy as np

from medcodec.compiled import kernel
from medcodec.entropy import residual_model as rm
from medcodec.errors import CorruptStreamError
from medcodec.pipelines.raster import tables
from medcodec.pipelines.raster.layout import RAW_ESCAPE_BITS

if TYPE_CHECKING:
    from medcodec.pipelines.raster.side_info import RasterModel


@functools.lru_cache(maxsize=1)
def float_tables() -> np.ndarray:
    """The residual tables as probabilities: integer / 2**20, exact in float64, so the same on every machine."""
    return rm.tables().astype(np.float64) / float(rm.TOTAL)


FAMILY = constriction.stream.model.Categorical(perfect=False)


def pixel_params(model: RasterModel, mu: np.ndarray, buckets: np.ndarray) -> rm.PixelParams:
    return rm.pixel_params(mu, model.ell[buckets])


def in_range_entries(params: rm.PixelParams, value_range: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """(first, last) per pixel: the table entries whose values can lie in the plane's range [lo, hi] are
    first..last (entry s holds the values v with v >> b = s - SUPPORT + base); either may lie beyond
    the table's 2 * SUPPORT + 1 entries, and then escaped values can be in the range."""
    lo, hi = value_range[:2]
    first = (lo >> params.low_bits) - params.base + rm.SUPPORT
    last = (hi >> params.low_bits) - params.base + rm.SUPPORT
    return first, last


def is_clipped(first: np.ndarray, last: np.ndarray) -> np.ndarray:
    """The pixels whose tables hold entries for values outside the range only (the ones clipped)."""
    return (first > 0) | (last < 2 * rm.SUPPORT)


def can_escape(first: np.ndarray, last: np.ndarray) -> np.ndarray:
    """Whether an escaped value (beyond the table's value entries) can lie in the range."""
    return (first < 0) | (last > 2 * rm.SUPPORT)


def is_entry(entry: np.ndarray) -> np.ndarray:
    """Whether these positions are value entries of a table (the ones a censored mass can go onto)."""
    return (entry >= 0) & (entry < rm.ESCAPE)


def range_masses(table: np.ndarray, first: np.ndarray, last: np.ndarray) -> tuple[np.ndarray, ...]:
    """int64 per pixel, of its plain table (total rm.TOTAL): the mass of the entries below first, of those
    above last, and of the escape where no escaped value can lie in the range; 0 on unclipped pixels."""
    sums = tables.prefix_sums()
    size = rm.ESCAPE
    clipped = is_clipped(first, last)
    below = np.where(clipped, sums[table, np.clip(first, 0, size)], 0)
    above = np.where(clipped, sums[table, size] - sums[table, np.clip(last + 1, 0, size)], 0)
    escape = np.where(clipped & ~can_escape(first, last), rm.tables()[table, rm.ESCAPE], 0)
    return below, above, escape


def probabilities(model: RasterModel, params: rm.PixelParams, nb: np.ndarray | None) -> np.ndarray:
    """float64 [pixels, ALPHABET] probabilities for the coder: f / sum(f) of integer frequencies f, built by
    ``tables.probabilities`` (which defines them) from the pixels' residual tables and:

    * the neighbour-value boost, where sent: the values a pixel's 12 neighbours hold made likelier. On
      planes whose values sit on a lattice that drifts across the image (contrast-stretched or locally
      equalised radiographs: 2 of 3 values used, which ones changing over tens of pixels) the values the
      neighbours hold are the likely ones; a global histogram does not see it (train chest radiographs:
      12-14 % smaller on such planes, ~1 % on the others).
    * the value range, where sent: a pixel's entries for values outside it get frequency 0 (the coder's
      leaky quantisation still gives them its smallest probability) and their mass is dropped or,
      censored, moved onto the range's end: a pixel predicted near a plane's floor or ceiling (CT padding
      and air, saturated CT windows and radiographs) no longer spends probability on values the plane
      never holds;
    * or, instead of the boost, tap-difference weights (``differences``, format 2.20): each value's entry
      weighted by how far it lies from each neighbour's value, with weights the encoder fitted to the plane."""
    if model.differences is not None:
        return tables.difference_probabilities(params.table, params.low_bits, params.base, nb, model.differences,
                                               model.value_range)
    return tables.probabilities(params.table, params.low_bits, params.base, nb, model.boost_terms,
                                       model.value_range)


def range_savings(values: np.ndarray, params: rm.PixelParams, value_range: tuple[int, int]) -> list[float]:
    """Bits the value range saves on these pixels' plain tables, for each censor choice 0..3: a pixel
    codes in log2((f' / T') / (f / T)) fewer bits, f its value's entry and T the table's total before
    (T = rm.TOTAL) and after clipping (its own value is never dropped). Only the clipped pixels
    (``is_clipped``) are visited: on the others nothing is dropped and both logarithms are 0, and they
    are most pixels of a plane whose tables rarely reach its extremes."""
    first, last = in_range_entries(params, value_range)
    clipped = np.flatnonzero(is_clipped(first, last))
    if clipped.size < values.size:
        params = rm.PixelParams(params.table[clipped], params.low_bits[clipped], params.base[clipped])
        values, first, last = values[clipped], first[clipped], last[clipped]
    below, above, escape = range_masses(params.table, first, last)
    symbols, escaped = rm.coded_symbols(values, params)
    own = rm.tables()[params.table, symbols]
    savings = []
    for censor in range(4):
        kept_below = np.where(is_entry(first), below, 0) if censor & 1 else 0
        kept_above = np.where(is_entry(last), above, 0) if censor & 2 else 0
        total = rm.TOTAL - below - above - escape + kept_below + kept_above
        gained = own + np.where(symbols == first, kept_below, 0) + np.where(symbols == last, kept_above, 0)
        gained = np.where(escaped, own, gained)
        savings.append(float(np.log2(gained / own).sum() + np.log2(rm.TOTAL / total).sum()))
    return savings


def cost_bits(values: np.ndarray, params: rm.PixelParams, nb: np.ndarray, boost: tuple[int, ...],
               value_range: tuple[int, int, int] | None = None) -> np.ndarray:
    """Per pixel code length under the boosted frequencies and the value range (float; encoder choices
    only), from the taps alone (tables.boosted_code_terms): no [pixels, ALPHABET] array."""
    symbols, escaped = rm.coded_symbols(values, params)
    total, own = tables.boosted_code_terms(params.table, params.low_bits, params.base, nb, symbols, boost,
                                                  value_range)
    return np.log2(total / own) + np.where(escaped, RAW_ESCAPE_BITS, params.low_bits)


def difference_cost_bits(values: np.ndarray, params: rm.PixelParams, nb: np.ndarray, weights: np.ndarray,
                         value_range: tuple[int, int, int] | None = None) -> np.ndarray:
    """``cost_bits`` under tap-difference weights instead of a boost (tables.difference_code_terms)."""
    symbols, escaped = rm.coded_symbols(values, params)
    total, own = tables.difference_code_terms(params.table, params.low_bits, params.base, nb, symbols, weights,
                                              value_range)
    return np.log2(total / own) + np.where(escaped, RAW_ESCAPE_BITS, params.low_bits)


def extra_widths(values: np.ndarray, params: rm.PixelParams) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(main symbol, raw bit count, raw bits) per pixel: the low bits, or the whole value when escaped."""
    symbols, escaped = rm.coded_symbols(values, params)
    widths = np.where(escaped, RAW_ESCAPE_BITS, params.low_bits)
    raw = np.where(escaped, values, values & ((1 << params.low_bits) - 1))
    return symbols, widths, raw


def pack_bits(widths: np.ndarray, values: np.ndarray) -> bytes:
    """values[i] in widths[i] bits, most significant first, one after another; zero-padded to a byte."""
    starts = np.cumsum(widths) - widths
    bits = np.zeros(int(widths.sum()) if widths.size else 0, dtype=np.uint8)
    for k in range(int(widths.max()) if widths.size else 0):
        mask = widths > k
        bits[starts[mask] + k] = (values[mask] >> (widths[mask] - 1 - k)) & 1
    return np.packbits(bits).tobytes()


_TRUNCATED, _OUT_OF_RANGE = -1, -2  # what _read_values returns instead of the new cursor


@kernel
def _read_values(symbols, low_bits, base, bits, cursor, low, high, out):
    for p in range(symbols.size):
        escaped = symbols[p] == rm.ESCAPE
        width = RAW_ESCAPE_BITS if escaped else low_bits[p]
        if cursor + width > bits.size:
            return _TRUNCATED
        extra = np.int64(0)
        for k in range(width):
            extra = (extra << 1) | bits[cursor + k]
        cursor += width
        value = extra if escaped else ((symbols[p] - rm.SUPPORT + base[p]) << low_bits[p]) + extra
        if value < low or value > high:
            return _OUT_OF_RANGE
        out[p] = value
    return cursor


class BitReader:
    def __init__(self, payload: bytes):
        self.bits = np.unpackbits(np.frombuffer(payload, dtype=np.uint8)).astype(np.int64)
        self.cursor = 0

    def values(self, symbols: np.ndarray, params: rm.PixelParams, low: int, high: int) -> np.ndarray:
        """The pixels' values from their main symbols and raw bits: an escaped one's RAW_ESCAPE_BITS bits,
        else ((symbol - SUPPORT + base) << b) + its b low bits, in one compiled pass (the tests keep the
        numpy definition: the widths' bits read, then two ``np.where``). CorruptStreamError where the bits
        run out or a value leaves [low, high]."""
        out = np.empty(symbols.size, dtype=np.int64)
        cursor = _read_values(np.ascontiguousarray(symbols, dtype=np.int64), params.low_bits, params.base,
                              self.bits, self.cursor, low, high, out)
        if cursor == _TRUNCATED:
            raise CorruptStreamError("raster raw-bit stream is truncated")
        if cursor == _OUT_OF_RANGE:
            raise CorruptStreamError("raster stream decodes to a value outside the plane's range")
        self.cursor = cursor
        return out

    def finish(self) -> None:
        rest = self.bits[self.cursor:]
        if rest.size >= 8 or rest.any():
            raise CorruptStreamError("raster raw-bit stream has bits left over after the last pixel")
