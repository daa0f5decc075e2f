"""The raster coder's per-pixel probability tables for the rANS coder, compiled.

Each coded pixel gets a float64 row of ``residual_model.ALPHABET`` probabilities f / sum(f) from integer
frequencies f: its residual table (``residual_model.tables()``), with the neighbour-value boost (values
that its 12 neighbours hold made likelier) and the plane's value range (entries outside it emptied, their
mass dropped or moved onto the range's end) where the plane sends them. Why each option pays is in
``coding.probabilities``; this module defines and builds the rows:

* boost (seen, per count) in 1/16: entry i of a pixel without low bits is weighted (16 + seen [c_i > 0]
  + per_count c_i) / 16 where c_i of its neighbours hold the value of entry i (a tap outside the
  table's value entries adds nothing); every other entry, and every entry of a pixel with low bits
  (wide 16-bit residuals, where an entry is a range of values), by 16 / 16. Integers below 2**31, their
  sum below 2**39.
* lattice (step, weight) in 1/16, with the boost (format 2.8): entry i of a pixel without low bits also
  gains weight * l_i / 16, l_i the number of its four nearest neighbours (W, N, NW, NE: the first
  LATTICE_TAPS taps) whose value differs from entry i's by a multiple of step: a plane whose values sit
  on a lattice that drifts (contrast-stretched radiographs: 2 of 3 values used, which ones changing
  across the image) makes the values on its neighbours' lattice likely, not only the values they hold.
* value range (lo, hi, censor): entries first..last can hold values in [lo, hi] (entry s holds the values
  v with v >> b = s - SUPPORT + base); on a pixel whose table has entries outside them, those are set to
  0, the escape too where no escaped value can lie in the range; with censor bit 0 (1) the plain
  table's mass below first, times the unit (16 where boosted), is added to entry first, with bit 1 (2)
  the mass above last to entry last, where those are value entries.

Why compiled: the decoder builds a wavefront's rows at a time, a few hundred pixels, where numpy's
dozen calls a wavefront cost more than the arithmetic (a 957x821 head CT: 1.35 s of 5.5 s decoding).
The encoder calls the same function, so both sides run the same code.

Decodable anywhere: every frequency is an integer below 2**40 held in float64, so their sum is exact in
any order, and each probability is one IEEE-754 division; the bits are numpy's before (tests compare).
"""

from __future__ import annotations

import functools

import numpy as np

from medcodec.compiled import kernel
from medcodec.entropy import residual_model as rm
from medcodec.pipelines.raster import differences

_SUPPORT, _ESCAPE, _ALPHABET, _TOTAL = rm.SUPPORT, rm.ESCAPE, rm.ALPHABET, float(rm.TOTAL)
LATTICE_TAPS = 4  # the lattice boost looks at the first four neighbours (layout.OFFSETS: W, N, NW, NE)


def boost_terms(boost: tuple[int, ...]) -> tuple[int, int, int, int]:
    """(seen, per count, lattice step, lattice weight) of a boost given as (seen, per count) or with the
    lattice's two appended; a lattice step below 2 or a weight of 0 is no lattice."""
    seen, per_count, step, weight = (tuple(int(v) for v in boost) + (0, 0))[:4]
    if step < 2 or weight <= 0:
        step, weight = 1, 0
    return seen, per_count, step, weight


@functools.lru_cache(maxsize=1)
def frequencies() -> np.ndarray:
    """float64 [tables, ALPHABET]: the residual tables' integer frequencies (exact)."""
    return np.ascontiguousarray(rm.tables().astype(np.float64))


@functools.lru_cache(maxsize=1)
def prefix_sums() -> np.ndarray:
    """int64 [tables, ESCAPE + 1]: entry k is the sum of a table's first k value entries."""
    main = rm.tables()[:, :_ESCAPE].astype(np.int64)
    return np.ascontiguousarray(np.concatenate([np.zeros((main.shape[0], 1), np.int64), np.cumsum(main, axis=1)],
                                               axis=1))


def probabilities(table: np.ndarray, low_bits: np.ndarray, base: np.ndarray, nb: np.ndarray | None,
                  boost: tuple[int, ...], value_range: tuple[int, int, int] | None) -> np.ndarray:
    """float64 [pixels, ALPHABET]: each pixel's row for the coder.

    table, low_bits, base: the pixels' ``residual_model.PixelParams``; nb: their 12 neighbours' values
    (needed with a boost); boost: (seen, per count) in 1/16, (0, 0) for none, or with a lattice (step,
    weight) appended (``boost_terms``); value_range: (lo, hi, censor) of the coded plane, or None."""
    count = table.size
    out = np.empty((count, _ALPHABET), dtype=np.float64)
    seen, per_count, step, weight = boost_terms(boost)
    boosted = bool(seen or per_count or weight)
    taps = np.ascontiguousarray(nb, dtype=np.int64) if boosted else np.zeros((count, 0), dtype=np.int64)
    lo, hi, censor = value_range if value_range is not None else (0, 0, -1)
    _fill(frequencies(), prefix_sums(), np.ascontiguousarray(table, dtype=np.int64),
          np.ascontiguousarray(low_bits, dtype=np.int64), np.ascontiguousarray(base, dtype=np.int64), taps,
          seen, per_count, step, weight, boosted, int(lo), int(hi), int(censor), out)
    return out


@kernel
def _fill(frequencies, prefix_sums, table, low_bits, base, taps, seen, per_count, step, weight, boosted, lo, hi,
          censor, out):
    """censor < 0: no value range. Row by row, the rows defined in the module docstring; the same
    integers and divisions as the numpy definition the streams before 2026-12 were written with (the
    tests keep it as the reference)."""
    freq = np.empty(_ALPHABET, dtype=np.float64)
    unit = 16.0 if boosted else 1.0
    for p in range(table.size):
        row = frequencies[table[p]]
        for e in range(_ALPHABET):
            freq[e] = row[e] * unit
        if boosted and low_bits[p] == 0:  # wide residuals (low bits) keep their table
            for k in range(taps.shape[1]):
                at = _tap_entry(taps, p, k, base[p])
                extra = _tap_weight(taps, p, k, at, seen, per_count)
                if extra:
                    freq[at] += row[at] * extra  # integers: exact in any order
            if weight:
                for k in range(LATTICE_TAPS):
                    for e in range(_lattice_start(taps[p, k], base[p], step), _ESCAPE, step):
                        freq[e] += row[e] * weight
        plain = not boosted
        if censor >= 0 and _clip_to_range(freq, prefix_sums[table[p]], lo, hi, low_bits[p], base[p], censor, unit):
            plain = False
        if plain:
            for e in range(_ALPHABET):
                out[p, e] = row[e] / _TOTAL
        else:
            total = 0.0
            for e in range(_ALPHABET):
                total += freq[e]  # integers below 2**53: exact in any order
            for e in range(_ALPHABET):
                out[p, e] = freq[e] / total


@kernel(inline=True)
def _clip_to_range(freq, sums, lo, hi, low_bits, base, censor, unit):
    """A row's frequencies cut to the value range (the module docstring): where the table holds entries for
    values outside [lo, hi], those get 0, the escape too where no escaped value can lie in the range, and a
    censored end gains the plain table's mass beyond it (sums: the table's prefix sums) times unit.
    Whether the row was cut."""
    first, last = _range_entries(lo, hi, low_bits, base)
    if not (first > 0 or last < 2 * _SUPPORT):
        return False
    can_escape = first < 0 or last > 2 * _SUPPORT
    for e in range(_ESCAPE):
        if e < first or e > last:
            freq[e] = 0.0
    if not can_escape:
        freq[_ESCAPE] = 0.0
    if censor & 1 and 0 <= first < _ESCAPE:
        freq[first] += unit * sums[first]
    if censor & 2 and 0 <= last < _ESCAPE:
        freq[last] += unit * (sums[_ESCAPE] - sums[last + 1])
    return True


def boosted_code_terms(table: np.ndarray, low_bits: np.ndarray, base: np.ndarray, nb: np.ndarray,
                       symbols: np.ndarray, boost: tuple[int, ...],
                       value_range: tuple[int, int, int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(total, own) float64 per pixel: the sum of the row ``probabilities`` builds (boost and value range as
    there) and its coded symbol's entry, in the boosted units (16 per unit of the plain table, with or
    without a boost: the ratio own / total is the row's probability either way), without building the
    rows: what the encoder's boost search costs a pixel, log2(total / own). Exact integers."""
    count = table.size
    total, own = np.empty(count, dtype=np.float64), np.empty(count, dtype=np.float64)
    lo, hi, censor = value_range if value_range is not None else (0, 0, -1)
    seen, per_count, step, weight = boost_terms(boost)
    _boosted_terms(frequencies(), prefix_sums(), strided_sums(step) if weight else np.zeros((0, 0), np.int64),
                   np.ascontiguousarray(table, dtype=np.int64), np.ascontiguousarray(low_bits, dtype=np.int64),
                   np.ascontiguousarray(base, dtype=np.int64), np.ascontiguousarray(nb, dtype=np.int64),
                   np.ascontiguousarray(symbols, dtype=np.int64), seen, per_count, step, weight, int(lo), int(hi),
                   int(censor), total, own)
    return total, own


@functools.lru_cache(maxsize=4)
def strided_sums(step: int) -> np.ndarray:
    """int64 [tables, ESCAPE]: entry e is the sum of a table's value entries e, e - step, e - 2 step, ... down
    to the first: the lattice's mass over any run of every step-th entry is one difference (the boost
    search's terms, instead of a loop over the run)."""
    main = rm.tables()[:, :_ESCAPE].astype(np.int64)
    out = main.copy()  # C-ordered, as the compiled loops want
    for e in range(step, _ESCAPE):
        out[:, e] += out[:, e - step]
    return out


@kernel(inline=True)
def _tap_entry(taps, p, k, base):
    """Pixel p's neighbour k's value as an entry of its table (entry s holds value s - SUPPORT + base)."""
    return taps[p, k] - base + _SUPPORT


@kernel(inline=True)
def _tap_weight(taps, p, k, at, seen, per_count):
    """The boost pixel p's tap k adds to its entry ``at``: per_count, plus seen for the first of the taps
    holding that value; 0 for a tap outside the table's value entries. (Which of equal taps gets seen
    does not matter: the row's integers are the same; scanning the earlier taps instead of sorting the
    twelve took the boost search's terms from 4.4 to 2.7 ms per 32k pixels.)"""
    if at < 0 or at >= _ESCAPE:
        return 0
    for j in range(k):
        if taps[p, j] == taps[p, k]:
            return per_count
    return per_count + seen


@kernel(inline=True)
def _range_entries(lo, hi, low_bits, base):
    """The first and last entries of a pixel's table that can hold values in [lo, hi] (entry s holds the
    values v with v >> low_bits = s - SUPPORT + base)."""
    return (lo >> low_bits) - base + _SUPPORT, (hi >> low_bits) - base + _SUPPORT


@kernel(inline=True)
def _lattice_start(tap, base, step):
    """The first entry on a neighbour's lattice: entry e holds value e - SUPPORT + base, so the entries
    whose values differ from the tap's by a multiple of step are e = start, start + step, ..."""
    return (tap - base + _SUPPORT) % step  # Python's modulo: in 0..step - 1 for a negative left side too


@kernel
def _boosted_terms(frequencies, prefix_sums, strided, table, low_bits, base, taps, symbols, seen, per_count, step,
                   weight, lo, hi, censor, total, own):
    """The row _fill builds, summed and read at the symbol, from the taps and the prefix sums alone: the
    plain table sums to TOTAL, times 16; each boosted entry adds its frequency times its weight (every
    step-th entry from each lattice start, where a lattice is sent); a value range takes away the entries
    outside first..last (their boosts with them) and the escape where no escaped value can lie in it,
    and gives a censored end the mass beyond it. strided: ``strided_sums(step)`` where a lattice is sent
    (each lattice run's mass is one difference of it). Every term is an integer: the same sums in any order."""
    counted = seen != 0 or per_count != 0  # a lattice alone adds nothing per tap
    for p in range(table.size):
        row = frequencies[table[p]]
        symbol = symbols[p]
        first, last = _range_entries(lo, hi, low_bits[p], base[p])
        cut = censor >= 0 and (first > 0 or last < 2 * _SUPPORT)  # as _fill: the table has entries outside
        whole = 16.0 * _TOTAL
        mine = row[symbol] * 16.0
        if low_bits[p] == 0 and counted:
            for k in range(taps.shape[1]):
                at = _tap_entry(taps, p, k, base[p])
                extra = _tap_weight(taps, p, k, at, seen, per_count)
                if extra and (not cut or first <= at <= last):
                    added = row[at] * extra
                    whole += added
                    if at == symbol:
                        mine += added
        if low_bits[p] == 0 and weight:
            start_at, end_at = (max(first, 0), min(last + 1, _ESCAPE)) if cut else (0, _ESCAPE)
            sums = strided[table[p]]
            for k in range(LATTICE_TAPS):
                start = _lattice_start(taps[p, k], base[p], step)
                if start < start_at:
                    start += (start_at - start + step - 1) // step * step
                if start < end_at:  # the entries start, start + step, ..., end: sums[end] - sums[start - step]
                    end = start + (end_at - 1 - start) // step * step
                    run = sums[end] - (sums[start - step] if start >= step else 0)
                    whole += float(run * weight)
                if start_at <= symbol < end_at and (symbol - start) % step == 0:
                    mine += row[symbol] * weight
        if cut:
            below = float(prefix_sums[table[p], min(max(first, 0), _ESCAPE)])
            above = float(prefix_sums[table[p], _ESCAPE] - prefix_sums[table[p], min(max(last + 1, 0), _ESCAPE)])
            whole -= 16.0 * (below + above)
            if symbol < _ESCAPE and (symbol < first or symbol > last):
                mine = 0.0
            if not (first < 0 or last > 2 * _SUPPORT):  # no escaped value can lie in the range
                whole -= 16.0 * row[_ESCAPE]
                if symbol == _ESCAPE:
                    mine = 0.0
            if censor & 1 and 0 <= first < _ESCAPE:
                whole += 16.0 * below
                if symbol == first:
                    mine += 16.0 * below
            if censor & 2 and 0 <= last < _ESCAPE:
                whole += 16.0 * above
                if symbol == last:
                    mine += 16.0 * above
        total[p] = whole
        own[p] = mine


def difference_probabilities(table: np.ndarray, low_bits: np.ndarray, base: np.ndarray, nb: np.ndarray,
                             weights: np.ndarray, value_range: tuple[int, int, int] | None) -> np.ndarray:
    """float64 [pixels, ALPHABET]: each pixel's row for the coder under tap-difference weights (format 2.20,
    ``differences``: int64 [TAPS, WIDTH]) instead of a boost, with the value range as ``probabilities``."""
    out = np.empty((table.size, _ALPHABET), dtype=np.float64)
    _difference_call(table, low_bits, base, nb, np.zeros(0, np.int64), weights, value_range, out,
                     np.empty(0), np.empty(0))
    return out


def difference_code_terms(table: np.ndarray, low_bits: np.ndarray, base: np.ndarray, nb: np.ndarray,
                          symbols: np.ndarray, weights: np.ndarray,
                          value_range: tuple[int, int, int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(total, own) float64 per pixel of the rows ``difference_probabilities`` builds, without keeping them:
    what the encoder weighs, log2(total / own). Exact integers."""
    total, own = np.empty(table.size, dtype=np.float64), np.empty(table.size, dtype=np.float64)
    _difference_call(table, low_bits, base, nb, symbols, weights, value_range, np.empty((0, _ALPHABET)), total, own)
    return total, own


def _difference_call(table, low_bits, base, nb, symbols, weights, value_range, out, total, own) -> None:
    lo, hi, censor = value_range if value_range is not None else (0, 0, -1)
    _difference_rows(frequencies(), prefix_sums(), differences.powers(), np.ascontiguousarray(table, dtype=np.int64),
                     np.ascontiguousarray(low_bits, dtype=np.int64), np.ascontiguousarray(base, dtype=np.int64),
                     np.ascontiguousarray(nb, dtype=np.int64), np.ascontiguousarray(weights, dtype=np.int64),
                     np.ascontiguousarray(symbols, dtype=np.int64), differences.RADIUS, differences.DEPTH,
                     # (max_count 0: no agreement weights sent, their loops skipped)
                     differences.MAX_COUNT if weights[differences.TAPS:].any() else 0, differences.NEAR,
                     int(lo), int(hi), int(censor), out, total, own)


@kernel
def _difference_rows(frequencies, prefix_sums, powers, table, low_bits, base, taps, weights, symbols, radius, depth,
                     max_count, near, lo, hi, censor, out, total, own):
    """Rows under tap-difference weights and agreement weights (``differences``' docstring defines them):
    into out, or, where out has no rows, each row's sum and its symbol's entry into total and own. Every
    frequency an integer below 2**44 (table entry < 2**20 times a power <= 2**24), their sum below 2**53:
    exact in any order."""
    freq = np.empty(_ALPHABET, dtype=np.float64)
    score = np.empty(_ESCAPE, dtype=np.int64)
    steps = np.empty(_ESCAPE + 1, dtype=np.int64)  # one past the last entry: where the above-steps end
    count = np.zeros(_ESCAPE, dtype=np.int64)  # agreement: neighbours holding an entry's value (reset per pixel)
    nearest = np.full(_ESCAPE, near + 1, dtype=np.int64)  # and the nearest one's distance, up to near
    last = weights.shape[1] - 1
    taps_count = taps.shape[1]
    agreement = weights.shape[0] > taps_count and max_count > 0  # the agreement weights (row TAPS): sent
    rows = out.shape[0] > 0
    for p in range(table.size):
        row = frequencies[table[p]]
        unit = powers[depth]  # the weight of a score of 0 where it is the best
        if low_bits[p] == 0:
            score[:] = 0
            steps[:] = 0
            for k in range(taps.shape[1]):
                centre = taps[p, k] - base[p] + _SUPPORT  # the entry holding the neighbour's value
                # the entries farther than radius below and above: their weights as steps of a running sum
                below, above = min(max(centre - radius, 0), _ESCAPE), min(max(centre + radius + 1, 0), _ESCAPE)
                steps[0] += weights[k, 0]
                steps[below] -= weights[k, 0]
                steps[above] += weights[k, last]
                steps[_ESCAPE] -= weights[k, last]
                for j in range(2 * radius + 1):
                    e = centre + j - radius
                    if 0 <= e < _ESCAPE:
                        score[e] += weights[k, j + 1]
            running = 0
            for e in range(_ESCAPE):
                running += steps[e]
                score[e] += running
            if agreement:  # the values within near of a neighbour's: each neighbour marks them, then the first scores
                for k in range(taps_count):
                    centre = taps[p, k] - base[p] + _SUPPORT
                    for j in range(max(centre - near, 0), min(centre + near + 1, _ESCAPE)):
                        nearest[j] = min(nearest[j], abs(j - centre))
                        if j == centre:
                            count[j] += 1
                for k in range(taps_count):
                    centre = taps[p, k] - base[p] + _SUPPORT
                    for j in range(max(centre - near, 0), min(centre + near + 1, _ESCAPE)):
                        if nearest[j] <= near:
                            if count[j] > 0:
                                score[j] += weights[taps_count, min(count[j], max_count) - 1]
                            else:
                                score[j] += weights[taps_count, max_count - 1 + nearest[j]]
                            count[j] = 0
                            nearest[j] = near + 1
            top = 0
            for e in range(_ESCAPE):
                top = max(top, score[e])
            unit = powers[max(-top, -depth) + depth]
            for e in range(_ESCAPE):
                freq[e] = row[e] * powers[max(score[e] - top, -depth) + depth]
            freq[_ESCAPE] = row[_ESCAPE] * unit
        else:  # wide residuals: every entry a range of values, the table as it is
            for e in range(_ALPHABET):
                freq[e] = row[e] * unit
        if censor >= 0:
            _clip_to_range(freq, prefix_sums[table[p]], lo, hi, low_bits[p], base[p], censor, unit)
        whole = 0.0
        for e in range(_ALPHABET):
            whole += freq[e]
        if rows:
            for e in range(_ALPHABET):
                out[p, e] = freq[e] / whole
        else:
            total[p] = whole
            own[p] = freq[symbols[p]]
