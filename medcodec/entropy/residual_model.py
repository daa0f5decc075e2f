"""The residual model of the learned methods: integer parameters -> integer frequency tables -> symbols.

A predicted pixel comes with two integers from the network: its mean ``mu`` in 1/16 sample units
(the pixel value x occupies the interval [x, x+1)) and a log-scale index ``ell``: the residual is a
discretised logistic with scale ``2**(ell/8 - 4)`` samples. Wide distributions (16-bit data) are coded
as a most-significant part plus ``b`` raw low bits: with ``b`` chosen so that the coded part has a
scale in [4, 8) samples, the low bits are within ~0.002 bit/pixel of uniform. What is coded is

    symbol = (x >> b) - floor(mu / (16 << b)) + SUPPORT      (or ESCAPE when outside the support)

under the table of (scale index, mean-fraction bucket). Tables are computed with Python's decimal
arithmetic (software, identical on every machine; no libm exp) and quantised to integer frequencies
summing to 2**20; their sha256 is pinned by the tests. Escaped pixels carry their full value in 16
uniform bits.
"""

from __future__ import annotations

import decimal
import functools
import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from medcodec.compiled import kernel

from .rans import Segment

STEPS_PER_OCTAVE = 8
LOG2_MIN_SCALE = -4  # ell = 0 is a logistic scale of 1/16 sample
SPLIT_ELL = 56  # tables cover ell' in [0, 56): scales up to 8 samples; wider ones shed low bits
MAX_ELL = 168  # scale 2**17: more than any 16-bit residual needs
FRACTIONS = 8  # mean-fraction buckets per table
SUPPORT = 96  # symbols cover offsets -96..96
ALPHABET = 2 * SUPPORT + 2  # plus one escape symbol
ESCAPE = ALPHABET - 1
TOTAL = 1 << 20
MEAN_ONE = 16  # mu is in 1/16 sample units
RAW_BITS = 8  # escaped values are coded as bytes


def offset_in_range(d_ell: int, d_mu: int) -> bool:
    """Whether a (scale index, mean in 1/16 sample) offset read from side information is one an
    encoder can send: the bound every decoder applies to calibration, refinement and block-phase offsets."""
    return abs(d_ell) <= MAX_ELL and abs(d_mu) <= MEAN_ONE


def scale_of(ell: float) -> float:
    return 2.0 ** (ell / STEPS_PER_OCTAVE + LOG2_MIN_SCALE)


TABLES_FILE = Path(__file__).resolve().parent.parent / "data" / "residual_tables_v1.npy"
TABLES_SHA256 = "dd320b0f18e98876bfe11539c75c25f89c40f4e3e3a506b07985b1959ae3a26e"


@functools.lru_cache(maxsize=1)
def tables() -> np.ndarray:
    """int64 [SPLIT_ELL * FRACTIONS, ALPHABET] frequency tables, every entry >= 1, rows sum to TOTAL.

    Read from the shipped file when its hash is the pinned one (computing takes seconds); the tests
    check that the file equals ``compute_tables()``.
    """
    if TABLES_FILE.exists():
        loaded = np.load(TABLES_FILE, allow_pickle=False).astype(np.int64)
        if hashlib.sha256(loaded.tobytes()).hexdigest() == TABLES_SHA256:
            return loaded
    return compute_tables()


def compute_tables() -> np.ndarray:
    """The tables from their definition, in decimal arithmetic (the reference)."""
    ctx = decimal.Context(prec=40)
    out = np.zeros((SPLIT_ELL * FRACTIONS, ALPHABET), dtype=np.int64)
    edges = [decimal.Decimal(k) for k in range(-SUPPORT, SUPPORT + 2)]
    for ell in range(SPLIT_ELL):
        scale = ctx.power(decimal.Decimal(2), ctx.divide(decimal.Decimal(ell), STEPS_PER_OCTAVE) + LOG2_MIN_SCALE)
        for frac in range(FRACTIONS):
            centre = ctx.divide(decimal.Decimal(2 * frac + 1), 2 * FRACTIONS)
            cdf = [_sigmoid(ctx, ctx.divide(edge - centre, scale)) for edge in edges]
            probs = [cdf[i + 1] - cdf[i] for i in range(len(edges) - 1)]
            probs.append(cdf[0] + (1 - cdf[-1]))  # escape: both tails
            out[ell * FRACTIONS + frac] = _quantise(ctx, probs)
    return out


def _sigmoid(ctx: decimal.Context, z: decimal.Decimal) -> decimal.Decimal:
    if z < -200:
        return decimal.Decimal(0)
    return ctx.divide(1, 1 + ctx.exp(-z))


def _quantise(ctx: decimal.Context, probs: list) -> np.ndarray:
    freqs = np.array([max(1, int(ctx.to_integral_value(p * TOTAL))) for p in probs], dtype=np.int64)
    freqs[int(np.argmax(freqs))] += TOTAL - int(freqs.sum())
    return freqs


def tables_sha256() -> str:
    return hashlib.sha256(tables().tobytes()).hexdigest()


@dataclass
class PixelParams:
    """Per-pixel integer coding parameters derived from the network's outputs (all int64 1-D)."""

    table: np.ndarray  # row of tables()
    low_bits: np.ndarray  # b
    base: np.ndarray  # floor(mu / (16 << b))


def pixel_params(mu: np.ndarray, ell: np.ndarray) -> PixelParams:
    """mu in 1/16 samples, ell scale index (any int64) -> table row, low-bit count and base, exactly.

    low_bits b = 0 below SPLIT_ELL, else (ell - SPLIT_ELL) // STEPS_PER_OCTAVE + 1; the mean unit
    16 << b is a power of two, so floor division is an arithmetic right shift (exact for negative mu
    too) and the mean-fraction bucket is the remainder's top three bits. The encoder's searches call
    this thousands of times per plane: the 8-bit case (no low bits) takes the shortest route.
    """
    ell = _clamp_ell(ell.astype(np.int64, copy=False))
    mu = mu.astype(np.int64, copy=False)
    if ell.size == 0 or int(ell.max()) < SPLIT_ELL:
        return PixelParams(table=ell * FRACTIONS + ((mu & (MEAN_ONE - 1)) >> 1),
                           low_bits=np.zeros(ell.shape, np.int64), base=mu >> 4)
    low_bits = np.maximum(ell - (SPLIT_ELL - STEPS_PER_OCTAVE), 0) // STEPS_PER_OCTAVE
    shift = low_bits + 4  # log2 of the mean unit MEAN_ONE << b
    base = mu >> shift
    frac = (mu - (base << shift)) >> (shift - 3)  # * FRACTIONS // unit
    return PixelParams(table=(ell - low_bits * STEPS_PER_OCTAVE) * FRACTIONS + frac, low_bits=low_bits, base=base)


def pixel_params_of_buckets(mu: np.ndarray, buckets: np.ndarray, ell: np.ndarray) -> PixelParams:
    """``pixel_params(mu, ell[buckets])`` with the buckets clamped to ell's indices first, in one compiled
    pass (a raster decoder's wavefront took ~10 numpy calls for it)."""
    count = mu.size
    out = PixelParams(table=np.empty(count, np.int64), low_bits=np.empty(count, np.int64),
                      base=np.empty(count, np.int64))
    _params_of_buckets(np.ascontiguousarray(mu, dtype=np.int64), np.ascontiguousarray(buckets, dtype=np.int64),
                       np.ascontiguousarray(ell, dtype=np.int64), out.table, out.low_bits, out.base)
    return out


@kernel(inline=True)
def _params_of(e, m):
    """``pixel_params``' integer rule for one pixel in compiled loops: (table row, low bits b, base) of the
    clamped scale index e and the mean m (1/16 sample); below SPLIT_ELL it is the 8-bit one (b = 0)."""
    b = max(e - (SPLIT_ELL - STEPS_PER_OCTAVE), 0) // STEPS_PER_OCTAVE
    shift = b + 4
    base = m >> shift
    return (e - b * STEPS_PER_OCTAVE) * FRACTIONS + ((m - (base << shift)) >> (shift - 3)), b, base


@kernel
def _params_of_buckets(mu, buckets, ell, table, low_bits, base):
    last = ell.size - 1
    for p in range(mu.size):
        e = min(max(ell[min(max(buckets[p], 0), last)], 0), MAX_ELL - 1)
        table[p], low_bits[p], base[p] = _params_of(e, mu[p])


@functools.lru_cache(maxsize=1)
def _table_costs() -> np.ndarray:
    """-log2 p of every symbol of every table (float64; only used to choose, never to code)."""
    return np.log2(TOTAL) - np.log2(tables().astype(np.float64))


@functools.lru_cache(maxsize=1)
def _flat_table_costs() -> np.ndarray:
    return np.ascontiguousarray(_table_costs()).ravel()


@functools.lru_cache(maxsize=1)
def _flat_costs_with_raw_bytes() -> np.ndarray:
    """_flat_table_costs with the escape's two raw bytes added to every ESCAPE entry (the same float
    per pixel as adding them after the gather)."""
    costs = _table_costs().copy()
    costs[:, ESCAPE] += 2 * RAW_BITS
    return costs.ravel()


def coded_symbols(values: np.ndarray, params: PixelParams) -> tuple[np.ndarray, np.ndarray]:
    """(symbol, escaped) per pixel: ``(x >> b) - base + SUPPORT``, or ESCAPE when outside the support."""
    symbols = np.right_shift(values, params.low_bits) - params.base + SUPPORT
    escaped = (symbols < 0) | (symbols >= 2 * SUPPORT + 1)
    return np.where(escaped, ESCAPE, symbols), escaped


def ideal_cost_bits(values: np.ndarray, params: PixelParams) -> float:
    """Code length these parameters would give, without coding: for encoder-side choices.

    One flat gather and one sum (same elements in the same order whichever branch, so the same float:
    the encoder's choices do not depend on the route)."""
    if params.low_bits.any():
        symbols, escaped = coded_symbols(values, params)
        main = float(np.take(_flat_table_costs(), params.table * ALPHABET + symbols).sum())
        return main + 2 * RAW_BITS * int(escaped.sum()) + float(params.low_bits[~escaped].sum())
    offsets = values - params.base
    escaped = np.abs(offsets) > SUPPORT
    index = params.table * ALPHABET + (offsets + SUPPORT)
    n_escaped = int(np.count_nonzero(escaped))
    if n_escaped:
        index[escaped] = params.table[escaped] * ALPHABET + ESCAPE
    return float(np.take(_flat_table_costs(), index).sum()) + 2 * RAW_BITS * n_escaped


SEARCH_SAMPLE = 1 << 16  # pixels the encoder-side searches look at (an even stride through the set)


def best_scale_adjustment(values: np.ndarray, mu: np.ndarray, ell: np.ndarray, limit: int = 24) -> int:
    """Only the scale-index part of ``best_adjustment`` (for streams that carry no mean offset)."""
    return best_adjustment(values, mu, ell, limit, search_mean=False)[0]


def best_adjustment(values: np.ndarray, mu: np.ndarray, ell: np.ndarray, limit: int = 24,
                    search_mean: bool = True) -> tuple[int, int]:
    """Offsets (scale index, mean in 1/16 sample) to add to every pixel of a set to code it in fewest bits.

    A per-plane calibration sent in the stream: the network can be over- or under-confident, or
    slightly biased, on data unlike its training set (flat backgrounds, unusual detectors). Searched
    on a strided sample: the scale coarsely in steps of 4, refined by 1, then the mean within +-1/2.
    """
    return search_adjustment(values, mu, ell, limit, search_mean).offsets


@dataclass(frozen=True)
class Adjustment:
    """The result of ``search_adjustment``: the offsets, and the sample's code length (bits) with them
    and with none - so callers weighing the offsets against their side information need not re-cost."""

    offsets: tuple[int, int]
    bits: float
    bits_unadjusted: float


def search_adjustment(values: np.ndarray, mu: np.ndarray, ell: np.ndarray, limit: int = 24,
                      search_mean: bool = True) -> Adjustment:
    """``best_adjustment`` with the sample's code lengths (the sample: an even stride of at most
    about SEARCH_SAMPLE pixels, as ``best_adjustment`` searches). limit: a multiple of 4."""
    if values.size == 0:
        return Adjustment((0, 0), 0.0, 0.0)
    stride = max(1, values.size // SEARCH_SAMPLE)
    cost = _SampleCost(values[::stride], mu[::stride], ell[::stride])
    return _search(lambda d_ell, d_mu: np.array([cost(int(d_ell[0]), d_mu)]), 1, limit, search_mean)[0]


def search_class_adjustments(values: np.ndarray, mu: np.ndarray, ell: np.ndarray, classes: np.ndarray,
                             n_classes: int, limit: int = 24) -> list[Adjustment]:
    """``search_adjustment`` for each class of pixels at once (classes: int64 in [0, n_classes), one per
    pixel; all pixels are looked at, no stride). Each class gets the offsets that search would choose
    on its pixels alone, up to the order in which its pixels' costs are added (here: pixel order).

    Why at once: the refinement's activity bins and the block-phase classes are 16 small searches of
    ~27 costings each; one costing of all pixels, summed per class, replaces 16 small ones."""
    if values.size == 0:
        return [Adjustment((0, 0), 0.0, 0.0)] * n_classes
    values, mu, ell, classes = (np.ascontiguousarray(a, dtype=np.int64) for a in (values, mu, ell, classes))
    present = np.bincount(classes, minlength=n_classes) > 0
    costs = _flat_costs_with_raw_bytes()

    def class_costs(d_ell: np.ndarray, d_mu: int) -> np.ndarray:
        out = np.zeros(n_classes, dtype=np.float64)
        _class_cost_sums(values, mu, ell, classes, np.ascontiguousarray(d_ell, dtype=np.int64), int(d_mu), costs, out)
        return out

    found = _search(class_costs, n_classes, limit, True)
    return [a if present[k] else Adjustment((0, 0), 0.0, 0.0) for k, a in enumerate(found)]


@kernel
def _class_cost_sums(values, mu, ell, classes, d_ell, d_mu, costs, out):
    """out[c] += the code length of each pixel of class c with its class's scale offset and the mean
    offset, in one pass (a search costs every class ~30 times: numpy's passes over the pixels took ~40 %
    of the slow mode's raster analyses). Each pixel's term is its entry of the escape-weighted cost
    table plus its raw low bits (one IEEE addition), added to its class's sum in pixel order, as
    ``np.bincount`` adds per-pixel weights: the floats numpy gave (tests: the per-pixel definition,
    summed by bincount). The integer rule is ``pixel_params``' (``_params_of``)."""
    for p in range(values.size):
        c = classes[p]
        e = min(max(ell[p] + d_ell[c], 0), MAX_ELL - 1)
        row, low_bits, base = _params_of(e, mu[p] + d_mu)
        offset = (values[p] >> low_bits) - base
        if offset > SUPPORT or offset < -SUPPORT:
            out[c] += costs[row * ALPHABET + ESCAPE]
        elif low_bits == 0:
            out[c] += costs[row * ALPHABET + offset + SUPPORT]
        else:
            out[c] += costs[row * ALPHABET + offset + SUPPORT] + np.float64(low_bits)


def _search(costs_at, n: int, limit: int, search_mean: bool) -> list[Adjustment]:
    """The calibration search for n pixel classes: costs_at(d_ell [n] int64, d_mu) -> code length of
    each class with its scale offset and the mean offset. The scale coarsely in steps of 4, refined by
    1 around the best, then the mean within +-1/2 sample; ties go to the smaller offset."""
    coarse = list(range(-limit, limit + 1, 4))
    costs = {d: costs_at(np.full(n, d), 0) for d in coarse}
    best = lambda table, k: min(table, key=lambda d: (table[d][k], abs(d)))  # noqa: E731
    centres = [best(costs, k) for k in range(n)]
    windows = [coarse + [d for d in range(max(-limit, c - 3), min(limit, c + 3) + 1) if d not in coarse]
               for c in centres]
    for d in sorted({d for window in windows for d in window} - costs.keys()):
        costs[d] = costs_at(np.full(n, d), 0)
    d_ell = np.array([best({d: costs[d] for d in window}, k) for k, window in enumerate(windows)])
    chosen = np.array([costs[d][k] for k, d in enumerate(d_ell)])
    unadjusted = costs[0]
    if not search_mean:
        return [Adjustment((int(d_ell[k]), 0), float(chosen[k]), float(unadjusted[k])) for k in range(n)]
    means = {m: (chosen if m == 0 else costs_at(d_ell, m)) for m in range(-MEAN_ONE // 2, MEAN_ONE // 2 + 1, 2)}
    d_mu = [best(means, k) for k in range(n)]
    return [Adjustment((int(d_ell[k]), d_mu[k]), float(means[d_mu[k]][k]), float(unadjusted[k])) for k in range(n)]


def _clamp_ell(ell: np.ndarray) -> np.ndarray:
    # np.clip's Python-level checks cost more than the clamp on these small arrays
    return np.minimum(np.maximum(ell, 0), MAX_ELL - 1)


class _SampleCost:
    """cost(d_ell, d_mu) == ideal_cost_bits(values, pixel_params(mu + d_mu, ell + d_ell)), the same
    float. The symbol column of a pixel that sheds no low bits depends on the mean offset only, so it is
    kept per mean offset; a scale offset then costs one gather, plus the full rule for the pixels that
    do shed low bits. The gathered costs are the elements ideal_cost_bits sums, in the same order, so
    the sum is the same float and the searches choose exactly what they chose without this shortcut."""

    def __init__(self, values: np.ndarray, mu: np.ndarray, ell: np.ndarray):
        self.values = values.astype(np.int64, copy=False)
        self.mu = mu.astype(np.int64, copy=False)
        self.ell = ell.astype(np.int64, copy=False)
        self.ell_range = (int(self.ell.min()), int(self.ell.max())) if self.ell.size else (0, 0)
        self.columns: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def _terms(self, d_ell: int, d_mu: int) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """(flat table index, escaped, raw low bits sent or None when no pixel sheds any), per pixel."""
        if d_mu not in self.columns:
            mu = self.mu + d_mu
            offsets = self.values - (mu >> 4)
            escaped = np.abs(offsets) > SUPPORT
            column = ((mu & (MEAN_ONE - 1)) >> 1) * ALPHABET + np.where(escaped, ESCAPE, offsets + SUPPORT)
            self.columns[d_mu] = (column, escaped)
        column, escaped = self.columns[d_mu]
        # the offsets' range bounds the scales: whether to clamp, whether to look for shedding pixels
        low_end, high_end = self.ell_range[0] + d_ell, self.ell_range[1] + d_ell
        ell = self.ell + d_ell
        if low_end < 0 or high_end > MAX_ELL - 1:
            ell = _clamp_ell(ell)
        index = ell * (FRACTIONS * ALPHABET)
        index += column
        shedding = np.flatnonzero(ell >= SPLIT_ELL) if high_end >= SPLIT_ELL else ()
        if len(shedding) == 0:
            return index, escaped, None
        # the pixels with low bits: pixel_params and ideal_cost_bits' rule on them alone
        params = pixel_params(self.mu[shedding] + d_mu, ell[shedding])
        offsets = np.right_shift(self.values[shedding], params.low_bits) - params.base
        escaped_s = np.abs(offsets) > SUPPORT
        index[shedding] = params.table * ALPHABET + np.where(escaped_s, ESCAPE, offsets + SUPPORT)
        escaped = escaped.copy()
        escaped[shedding] = escaped_s
        low = np.zeros(index.size, np.int64)
        low[shedding] = np.where(escaped_s, 0, params.low_bits)
        return index, escaped, low

    def __call__(self, d_ell: int, d_mu: int) -> float:
        index, escaped, low = self._terms(d_ell, d_mu)
        main = float(np.take(_flat_table_costs(), index).sum())
        extra = 2 * RAW_BITS * int(np.count_nonzero(escaped))
        return main + extra if low is None else main + extra + float(low.sum())


def encode_segments(values: np.ndarray, params: PixelParams) -> tuple[list[Segment], list[Segment]]:
    """Pixel values (int64 1-D) -> (main segments, escape-and-low-bit segments) for two rANS streams."""
    symbols, escaped = coded_symbols(values, params)
    main = _grouped(symbols, params.table, tables())
    extra = _raw_bytes(values[escaped])
    keep = ~escaped
    extra += _low_bit_segments(values[keep], params.low_bits[keep])
    return main, extra


def decode_main_tables(params: PixelParams) -> tuple[list[tuple[np.ndarray, int]], np.ndarray]:
    """The (table, count) list the main stream was coded with, and the pixel order it follows."""
    order, rows, counts = _by_table(params.table)
    table = tables()
    return [(table[r], int(n)) for r, n in zip(rows, counts)], order


def decode_values(
    main_symbols: list[np.ndarray], order: np.ndarray, params: PixelParams, decode_extra
) -> np.ndarray:
    """Rebuild pixel values from the main symbols; ``decode_extra(tables)`` decodes the second stream."""
    symbols = np.empty(order.size, dtype=np.int64)
    symbols[order] = np.concatenate(main_symbols) if main_symbols else np.zeros(0, np.int64)
    escaped = symbols == ESCAPE
    keep = ~escaped
    n_esc = int(escaped.sum())
    low_bits = params.low_bits[keep]
    plan = _low_bit_plan(low_bits)  # once: the tables and the joining follow the same plan
    raw_tables = _raw_byte_tables(n_esc)
    extra = decode_extra(raw_tables + _low_bit_tables(plan))
    values = np.empty(order.size, dtype=np.int64)
    values[escaped] = _join_raw_bytes(extra[: len(raw_tables)], n_esc)
    lows = _join_low_bits(extra[len(raw_tables):], plan, low_bits.size)
    high = symbols[keep] - SUPPORT + params.base[keep]
    values[keep] = np.left_shift(high, low_bits) + lows
    return values


# -- grouping helpers ---------------------------------------------------------------------------
def _by_table(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(the stable order that groups pixels by table row, the rows in use ascending, their counts).

    Table rows are below SPLIT_ELL * FRACTIONS (448), so the keys are sorted as uint16, for which
    numpy's stable sort is a radix sort (7x faster than on int64; a stable order is unique, so the
    same permutation), and counted with bincount instead of np.unique."""
    order = np.argsort(keys.astype(np.uint16), kind="stable")
    counts = np.bincount(keys, minlength=SPLIT_ELL * FRACTIONS)
    rows = np.flatnonzero(counts)
    return order, rows, counts[rows]


def _grouped(symbols: np.ndarray, keys: np.ndarray, table: np.ndarray) -> list[Segment]:
    order, rows, counts = _by_table(keys)
    bounds = np.cumsum(counts)
    sorted_symbols = symbols[order]
    return [Segment(table[r], sorted_symbols[e - n:e]) for r, n, e in zip(rows, counts, bounds)]


def _raw_byte_tables(count: int) -> list[tuple[np.ndarray, int]]:
    if count == 0:
        return []
    uniform = np.ones(1 << RAW_BITS, dtype=np.int64)
    return [(uniform, count), (uniform, count)]


def _raw_bytes(values: np.ndarray) -> list[Segment]:
    if values.size == 0:
        return []
    uniform = np.ones(1 << RAW_BITS, dtype=np.int64)
    return [Segment(uniform, values & 0xFF), Segment(uniform, values >> RAW_BITS)]


def _join_raw_bytes(parts: list[np.ndarray], count: int) -> np.ndarray:
    if count == 0:
        return np.zeros(0, np.int64)
    return parts[0].astype(np.int64) | (parts[1].astype(np.int64) << RAW_BITS)


def _low_bit_plan(low_bits: np.ndarray) -> list[tuple[int, int, np.ndarray]]:
    """For each distinct b > 0: (b, which 8-bit chunk width list) - returns (b, chunk_bits, index) triples."""
    plan = []
    # the widths in use (> 0), ascending, by bincount: they are small (< 16), and np.unique's hashing
    # took 15 % of a fast decode
    for b in np.flatnonzero(np.bincount(low_bits)[1:]) + 1 if low_bits.any() else ():
        b = int(b)
        index = np.flatnonzero(low_bits == b)
        done = 0
        while done < b:
            width = min(RAW_BITS, b - done)
            plan.append((done, width, index))
            done += width
    return plan


def _low_bit_segments(values: np.ndarray, low_bits: np.ndarray) -> list[Segment]:
    return [
        Segment(np.ones(1 << width, dtype=np.int64), (values[index] >> shift) & ((1 << width) - 1))
        for shift, width, index in _low_bit_plan(low_bits)
    ]


def _low_bit_tables(plan: list[tuple[int, int, np.ndarray]]) -> list[tuple[np.ndarray, int]]:
    return [(np.ones(1 << width, dtype=np.int64), index.size) for _, width, index in plan]


def _join_low_bits(parts: list[np.ndarray], plan: list[tuple[int, int, np.ndarray]], size: int) -> np.ndarray:
    lows = np.zeros(size, dtype=np.int64)
    for (shift, _, index), part in zip(plan, parts):
        lows[index] |= part.astype(np.int64) << shift
    return lows
