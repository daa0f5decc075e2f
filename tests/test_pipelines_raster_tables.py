"""The compiled probability rows: exactly the numpy definition the streams before them were written with
(kept here as the reference), whatever the batch; boosted frequencies are exact integers."""

import numpy as np
import pytest

from medcodec.entropy import residual_model as rm
from medcodec.pipelines import raster


def _boost_taps(params, nb, boost):
    """The numpy definition (raster._boost_taps until 2026-12): (symbol position, extra weight in 1/16),
    both [pixels, taps] with each row's positions sorted: the neighbour-value boost as additions to
    single entries of each pixel's table. A tap whose value is in
    the pixel's support adds per_count, plus seen for the first of equal values; a tap outside it, and
    every tap of a pixel with low bits (wide 16-bit residuals, where a symbol is a range of values),
    adds 0 (at position 0, which it leaves as it is)."""
    seen, per_count = boost
    position = np.sort(nb.astype(np.int64) - params.base[:, None] + rm.SUPPORT, axis=1)
    inside = (position >= 0) & (position < rm.ESCAPE) & (params.low_bits == 0)[:, None]
    first = np.ones(position.shape, dtype=bool)
    first[:, 1:] = position[:, 1:] != position[:, :-1]
    extra = np.where(inside, per_count + np.where(first, seen, 0), 0)
    return np.where(inside, position, 0), extra


def _boosted(params, nb, boost):
    """The numpy definition of the boosted integer frequencies (float64 [pixels, ALPHABET]); a boost of
    four numbers adds the lattice (step, weight): each value entry of a pixel without low bits gains
    weight times the number of its first four neighbours whose value differs from the entry's by a
    multiple of step."""
    table = raster.tables.frequencies()[params.table]
    freq = table * 16.0
    position, extra = _boost_taps(params, nb, boost[:2])
    entries = np.arange(table.shape[0])[:, None] * rm.ALPHABET + position
    np.add.at(freq.ravel(), entries.ravel(), (table.ravel()[entries] * extra).ravel())  # repeats add up
    if len(boost) == 4:
        step, weight = boost[2:]
        value = params.base[:, None] + np.arange(rm.ESCAPE)[None, :] - rm.SUPPORT  # each value entry's value
        on = ((value[:, :, None] - nb[:, None, :raster.tables.LATTICE_TAPS]) % step == 0).sum(axis=2)
        freq[:, :rm.ESCAPE] += np.where((params.low_bits == 0)[:, None], table[:, :rm.ESCAPE] * weight * on, 0)
    return freq


def _clip_to_range(freq, table, first, last, censor, unit):
    """The numpy definition of the value range on clipped pixels' frequencies (in place); unit: one, or
    one per pixel."""
    unit = np.broadcast_to(np.asarray(unit, dtype=np.float64), first.shape)
    entries = np.arange(rm.ALPHABET)
    inside = (entries >= first[:, None]) & (entries <= last[:, None])
    inside[:, rm.ESCAPE] = raster.coding.can_escape(first, last)
    freq *= inside
    if censor:
        below, above, _ = raster.coding.range_masses(table, first, last)
        for bit, entry, mass in ((1, first, below), (2, last, above)):
            onto = np.flatnonzero(raster.coding.is_entry(entry)) if censor & bit else ()
            if len(onto):
                freq[onto, entry[onto]] += unit[onto] * mass[onto]
    return freq


def _reference(params, nb, boost, value_range):
    """The numpy definition of the rows (raster.coding.probabilities until 2026-12)."""
    freq = _boosted(params, nb, boost) if any(boost) else None
    if freq is None:
        probabilities = raster.tables.frequencies()[params.table] / float(rm.TOTAL)
    else:
        probabilities = freq / freq.sum(axis=1, keepdims=True)
    if value_range is not None:
        first, last = raster.coding.in_range_entries(params, value_range)
        rows = np.flatnonzero(raster.coding.is_clipped(first, last))
        if rows.size:
            kept = raster.tables.frequencies()[params.table[rows]] if freq is None else freq[rows]
            kept = _clip_to_range(kept, params.table[rows], first[rows], last[rows], value_range[2],
                                  1.0 if freq is None else 16.0)
            probabilities[rows] = kept / kept.sum(axis=1, keepdims=True)
    return probabilities


def _pixels(rng, count, values, ells):
    mu = rng.integers(-20 << 4, (values + 20) << 4, count)
    params = rm.pixel_params(mu, rng.integers(0, ells, count))  # ells > SPLIT_ELL: pixels with low bits
    nb = (mu >> 4)[:, None] + rng.integers(-6, 7, (count, len(raster.layout.OFFSETS)))
    return params, nb


LATTICE_BOOSTS = [(16, 16, 3, 24), (0, 0, 2, 8), (raster.layout.BOOST_LIMIT, raster.layout.BOOST_LIMIT, raster.layout.LATTICE_MAX_STEP,
                                                  raster.layout.LATTICE_LIMIT)]


@pytest.mark.parametrize("boost", [(0, 0), *raster.analysis.BOOSTS, (raster.layout.BOOST_LIMIT, raster.layout.BOOST_LIMIT), *LATTICE_BOOSTS])
@pytest.mark.parametrize("value_range", [None, (40, 4000, 0), (40, 4000, 1), (40, 4000, 2), (40, 4000, 3),
                                         (7, 7, 3), (0, 255, 3)])
def test_rows_are_the_numpy_definition_bit_for_bit(boost, value_range):
    rng = np.random.default_rng(7)
    for values, ells in ((4096, 90), (256, 40)):
        params, nb = _pixels(rng, 700, values, ells)
        got = raster.tables.probabilities(params.table, params.low_bits, params.base, nb, boost, value_range)
        assert np.array_equal(got, _reference(params, nb, boost, value_range))


def test_rows_do_not_depend_on_the_batch():
    rng = np.random.default_rng(8)
    params, nb = _pixels(rng, 64, 300, 40)
    batch = raster.tables.probabilities(params.table, params.low_bits, params.base, nb, (16, 16), (20, 255, 3))
    for i in (0, 17, 63):
        one = raster.tables.probabilities(params.table[i:i + 1], params.low_bits[i:i + 1], params.base[i:i + 1],
                                          nb[i:i + 1], (16, 16), (20, 255, 3))
        assert np.array_equal(one, batch[i:i + 1])


def test_boosted_frequencies_are_exact_integers_and_the_cost_matches_them():
    rng = np.random.default_rng(1)
    count = 500
    mu = rng.integers(0, 4096 << 4, count)
    ell = rng.integers(0, 70, count)  # some pixels with low bits: left as their table
    params = rm.pixel_params(mu, ell)
    nb = (mu >> 4)[:, None] + rng.integers(-6, 7, (count, len(raster.layout.OFFSETS)))
    for boost in raster.analysis.BOOSTS + ((0, 0), (raster.layout.BOOST_LIMIT, raster.layout.BOOST_LIMIT)):
        freq = _boosted(params, nb, boost)
        table = rm.tables()[params.table]
        assert np.array_equal(freq, np.round(freq)) and freq.max() < 2**31 and freq.sum(axis=1).max() < 2**39
        assert np.all(freq >= 16 * table)
        wide = params.low_bits > 0
        assert np.array_equal(freq[wide], 16 * table[wide]) and np.array_equal(freq[:, rm.ESCAPE], 16 * table[:, rm.ESCAPE])
        if boost == (0, 0):
            assert np.array_equal(freq, 16 * table)
        # a value held by c neighbours is weighted (16 + seen + per_count * c) / 16, exactly
        i = int(np.flatnonzero(~wide)[0])
        held, c = np.unique(nb[i] - params.base[i] + rm.SUPPORT, return_counts=True)
        inside = (held >= 0) & (held < rm.ESCAPE)
        assert np.array_equal(freq[i, held[inside]], table[i, held[inside]] * (16 + boost[0] + boost[1] * c[inside]))
        values = (mu >> 4) + rng.integers(-8, 9, count)
        symbols, escaped = rm.coded_symbols(values, params)
        exact = np.log2(freq.sum(axis=1) / freq[np.arange(count), symbols]) + np.where(escaped, 16, params.low_bits)
        assert np.allclose(raster.coding.cost_bits(values, params, nb, boost), exact)
    for boost in LATTICE_BOOSTS:  # the largest weights the side information allows stay within the bounds
        freq = _boosted(params, nb, boost)
        assert freq.max() < 2**31 and freq.sum(axis=1).max() < 2**39
        assert np.array_equal(freq[params.low_bits > 0], 16 * rm.tables()[params.table[params.low_bits > 0]])


def _reference_code_terms(values, params, nb, boost):
    """The numpy definition of the boost search's (total, own) (raster.coding.cost_bits until 2026-12)."""
    symbols, _ = rm.coded_symbols(values, params)
    table = raster.tables.frequencies()
    position, extra = _boost_taps(params, nb, boost)
    at_taps = table[params.table[:, None], position] * extra
    total = 16.0 * rm.TOTAL + at_taps.sum(axis=1)
    own = table[params.table, symbols] * 16.0 + (at_taps * (position == symbols[:, None])).sum(axis=1)
    return total, own


@pytest.mark.parametrize("seed", range(4))
def test_boosted_code_terms_are_the_definitions_floats(seed):
    # the boost search chooses by these: the compiled terms must be numpy's, bit for bit
    rng = np.random.default_rng(40 + seed)
    count = 800
    mu = rng.integers(-64, (4096 if seed % 2 else 256) << 4, count)
    ell = rng.integers(0, 70, count)  # some pixels with low bits, some escapes
    params = rm.pixel_params(mu, ell)
    nb = (mu >> 4)[:, None] + rng.integers(-120, 121, (count, len(raster.layout.OFFSETS))) // (1 + 20 * (seed % 2))
    values = (mu >> 4) + rng.integers(-150, 151, count)
    for boost in raster.analysis.BOOSTS + ((raster.layout.BOOST_LIMIT, raster.layout.BOOST_LIMIT),):
        symbols, _ = rm.coded_symbols(values, params)
        got = raster.tables.boosted_code_terms(params.table, params.low_bits, params.base, nb, symbols, boost)
        for a, b in zip(got, _reference_code_terms(values, params, nb, boost)):
            assert a.tobytes() == b.tobytes()


def test_boosted_frequencies_do_not_depend_on_how_pixels_are_batched():
    # the decoder builds a wavefront's tables at once; one pixel at a time gives the same frequencies
    rng = np.random.default_rng(2)
    mu = rng.integers(0, 256 << 4, 64)
    params = rm.pixel_params(mu, rng.integers(0, 40, 64))
    nb = (mu >> 4)[:, None] + rng.integers(-3, 4, (64, len(raster.layout.OFFSETS)))
    batch = _boosted(params, nb, (16, 16))
    for i in (0, 17, 63):
        one = rm.PixelParams(params.table[i:i + 1], params.low_bits[i:i + 1], params.base[i:i + 1])
        assert np.array_equal(_boosted(one, nb[i:i + 1], (16, 16)), batch[i:i + 1])




@pytest.mark.parametrize("seed", range(4))
def test_code_terms_with_a_value_range_are_the_rows_probabilities(seed):
    # the boost search weighs every boost on the tables the value range leaves: own / total must be the
    # coder's probability of the symbol, bit for bit, for each censor choice, boosted or not
    rng = np.random.default_rng(60 + seed)
    count = 600
    wide = seed % 2  # 12-bit values, some pixels with low bits
    top = 4096 if wide else 256
    # the whole range, or a narrow one that a table's support can hold (no escape then)
    values = rng.integers(0, top, count) if seed < 2 else rng.integers(top // 2 - 50, top // 2 + 50, count)
    lo, hi = int(values.min()) + 3 + 20 * wide, int(values.max()) - 2 - 20 * wide
    values = np.clip(values, lo, hi)
    mu = np.clip(values + rng.integers(-40, 41, count), -8, top + 8) << 4
    params = rm.pixel_params(mu, rng.integers(0, 70 if wide else 45, count))
    nb = np.clip(values[:, None] + rng.integers(-5, 6, (count, len(raster.layout.OFFSETS))), 0, top - 1)
    symbols, _ = rm.coded_symbols(values, params)
    for boost in ((0, 0),) + raster.analysis.BOOSTS + tuple(LATTICE_BOOSTS):
        for censor in range(4):
            value_range = (lo, hi, censor)
            rows = raster.tables.probabilities(params.table, params.low_bits, params.base,
                                               nb if any(boost) else None, boost, value_range)
            total, own = raster.tables.boosted_code_terms(params.table, params.low_bits, params.base, nb, symbols,
                                                          boost, value_range)
            assert np.array_equal(own / total, rows[np.arange(count), symbols])
            assert np.array_equal(total, np.round(total)) and np.all(own > 0)


@pytest.mark.parametrize("step", (2, 3, 16))
def test_strided_sums_are_the_runs_of_every_step_th_entry(step):
    # the boost search's lattice terms take each run's mass as one difference of these
    sums = raster.tables.strided_sums(step)
    main = rm.tables()[:, :rm.ESCAPE].astype(np.int64)
    for e in (0, 1, step, rm.ESCAPE // 2, rm.ESCAPE - 1):
        assert np.array_equal(sums[:, e], main[:, e::-step].sum(axis=1))


def _difference_reference(params, nb, weights, value_range):
    """The numpy definition of the rows under tap-difference and agreement weights (docs/FORMAT.md, 2.20, 2.21)."""
    differences = raster.differences
    table = raster.tables.frequencies()[params.table]
    value = params.base[:, None] + np.arange(rm.ESCAPE)[None, :] - rm.SUPPORT  # each value entry's value
    apart = value[:, :, None] - nb.astype(np.int64)[:, None, :]  # [pixels, entries, taps]
    score = weights[np.arange(nb.shape[1])[None, None, :], differences.slot_of(apart)].sum(axis=2)
    agreement = differences.agreement_slot((apart == 0).sum(axis=2), np.abs(apart).min(axis=2))
    score += np.where(agreement < differences.AGREEMENT,
                      weights[differences.TAPS][np.minimum(agreement, differences.AGREEMENT - 1)], 0)
    top = np.maximum(score.max(axis=1), 0)
    powers = differences.powers()
    weight = np.ones(table.shape) * powers[np.maximum(-top, -differences.DEPTH) + differences.DEPTH][:, None]
    weight[:, :rm.ESCAPE] = powers[np.maximum(score - top[:, None], -differences.DEPTH) + differences.DEPTH]
    wide = params.low_bits > 0
    weight[wide] = powers[differences.DEPTH]
    freq = table * weight
    if value_range is not None:
        first, last = raster.coding.in_range_entries(params, value_range)
        rows = np.flatnonzero(raster.coding.is_clipped(first, last))
        if rows.size:
            freq[rows] = _clip_to_range(freq[rows], params.table[rows], first[rows], last[rows], value_range[2],
                                        weight[rows, rm.ESCAPE])
    return freq / freq.sum(axis=1, keepdims=True)


def _difference_weights(rng, scale, agreement=True):
    """Random weights in the rows' layout: the tap-difference weights, then the agreement weights (or none)."""
    differences = raster.differences
    weights = np.zeros((differences.TAPS + 1, differences.WIDTH), np.int64)
    weights[:differences.TAPS] = rng.integers(-scale, scale + 1, (differences.TAPS, differences.WIDTH))
    if agreement:
        weights[differences.TAPS, :differences.AGREEMENT] = rng.integers(-scale, scale + 1, differences.AGREEMENT)
    return weights


@pytest.mark.parametrize("value_range", [None, (40, 4000, 0), (40, 4000, 3), (7, 7, 3), (0, 255, 1), (0, 255, 2)])
@pytest.mark.parametrize("scale", [0, 16, raster.differences.LIMIT])
@pytest.mark.parametrize("agreement", [False, True], ids=["taps", "taps+agreement"])
def test_difference_rows_are_the_numpy_definition_bit_for_bit(value_range, scale, agreement):
    rng = np.random.default_rng(11 + scale)
    weights = _difference_weights(rng, scale, agreement)
    for values, ells in ((4096, 90), (256, 40)):
        params, nb = _pixels(rng, 500, values, ells)
        got = raster.tables.difference_probabilities(params.table, params.low_bits, params.base, nb, weights,
                                                     value_range)
        assert np.array_equal(got, _difference_reference(params, nb, weights, value_range))
        symbols, _ = rm.coded_symbols(np.clip((params.base + rng.integers(-30, 31, params.base.size)),
                                              0, values - 1), params)
        total, own = raster.tables.difference_code_terms(params.table, params.low_bits, params.base, nb, symbols,
                                                         weights, value_range)
        assert np.array_equal(total, np.round(total)) and total.max() < 2**53
        inside = own > 0  # a symbol outside the range has no probability
        assert np.array_equal((own / total)[inside], got[np.arange(params.base.size), symbols][inside])


@pytest.mark.parametrize("value_range", [None, (40, 4000, 3), (0, 255, 1)])
def test_zero_difference_weights_give_the_plain_rows(value_range):
    # every entry weighted alike: the rows are the plain tables' (with the range), to the bit
    rng = np.random.default_rng(5)
    params, nb = _pixels(rng, 400, 4096, 90)
    zero = np.zeros((raster.differences.TAPS + 1, raster.differences.WIDTH), np.int64)
    assert np.array_equal(raster.tables.difference_probabilities(params.table, params.low_bits, params.base, nb, zero,
                                                                 value_range),
                          raster.tables.probabilities(params.table, params.low_bits, params.base, None, (0, 0),
                                                      value_range))


def test_difference_rows_do_not_depend_on_the_batch():
    rng = np.random.default_rng(9)
    params, nb = _pixels(rng, 64, 300, 40)
    weights = _difference_weights(rng, 40)
    batch = raster.tables.difference_probabilities(params.table, params.low_bits, params.base, nb, weights,
                                                   (20, 255, 3))
    for i in (0, 17, 63):
        one = raster.tables.difference_probabilities(params.table[i:i + 1], params.low_bits[i:i + 1],
                                                     params.base[i:i + 1], nb[i:i + 1], weights, (20, 255, 3))
        assert np.array_equal(one, batch[i:i + 1])
