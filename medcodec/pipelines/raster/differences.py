"""Tap-difference weights (format 2.20): a raster frame's tables reweighted by how far each value lies
from each of the pixel's 12 neighbours, with weights the encoder fits to the plane.

Why: on contrast-stretched or locally equalised radiographs (every train and test chest radiograph:
steps of 2-4 grey levels between the values a region uses, which ones drifting across the image) the
likely values are the neighbours' and those a lattice step or two from them, with a pattern that
differs between images and between neighbours (W and N agree more than the far taps; a step of 3 on
one image, 2 or 4 on another). The neighbour-value boost and its fixed lattice (``tables``) see only
part of it. A log-linear weight per (neighbour, difference), fitted to the plane, made 7 train chest
radiographs 1.9-4.8 % smaller (3.2 % in all) than the boost did.

The definition (docs/FORMAT.md): entry e of a pixel without low bits, holding value v, has the score
s_e = sum_k w[k, slot(v - n_k)] over its 12 neighbours' values n_k (in 1/16 of a bit; the escape's is 0),
slot(d) = clamp(d, -RADIUS - 1, RADIUS + 1) + RADIUS + 1: a weight for each difference within RADIUS,
one for every farther one below and one above. With top the largest of the pixel's scores and 0, its
frequency is f_e * POWERS[max(s_e - top, -DEPTH) + DEPTH]: only differences of scores count (a
softmax's), the best entry's weight is 2**24 and none falls below 2**8. Every entry of a pixel with low
bits, and a censored end's moved mass, take the weight of a score of 0. POWERS[i] = floor(2 ** (FLOOR_BITS
+ i / 16)) from integer roots alone, so the same integers on every machine.

Agreement weights (format 2.21, optional with the tap-difference weights): the score also gets a weight for
how many of the 12 neighbours hold v (1..8 or more), or, where none does, for how far v lies from the nearest
one (1, 2 or 3; farther: no weight). Why: a value two neighbours hold is likelier than the sum of two tap
weights says, and a value next to one on a lattice of step 3 less likely: what a region's values are is a
set, which an additive model per neighbour sees only in part (every second train chest radiograph: 0.38 %
smaller than with the tap-difference weights alone, each by 0.03-1.87 %; of two files of every other
train folder only a natural image changed, -0.11 %). The 12 neighbours are the only causal pixels the
padded plane holds (in a float model a window of 3 rows and 9 columns did no better), and weights per
scale bucket group saved under 0.1 % more."""

from __future__ import annotations

import functools
import math

import numpy as np

from medcodec.compiled import kernel
from medcodec.entropy import residual_model as rm
from medcodec.pipelines.raster.layout import OFFSETS

TAPS = len(OFFSETS)  # every neighbour of the template
RADIUS = 8  # differences -RADIUS..RADIUS have their own weight; farther ones one below, one above
WIDTH = 2 * RADIUS + 3
LIMIT = 255  # |weight| in 1/16 bit: 16 bits either way
DEPTH = 256  # scores more than 16 bits below the pixel's best count as 16 bits below
FLOOR_BITS = 8  # POWERS[0] = 2**8: the largest, 2**24, times a table entry (< 2**20) times 194 entries < 2**53
FIT_SAMPLE = 1 << 13  # pixels the fit looks at
WINDOW = 48  # entries the fit scores one by one around a pixel's neighbours (the rest: two far entries)
FIT_ITERATIONS = 30
FIT_HISTORY = 20  # the L-BFGS pairs kept
FIT_TOLERANCE = 1e-7  # a gradient entry (bits a pixel per bit of weight), or a change of the objective
FIT_RIDGE = 1e-6  # per weight (bits**2) against bits a pixel: keeps rare differences near 0
MAX_COUNT = 8  # agreement weights for 1..MAX_COUNT neighbours holding the value (more: the last)
NEAR = 3  # and, where none does, for a nearest neighbour 1..NEAR away
AGREEMENT = MAX_COUNT + NEAR  # agreement weights, kept in the first entries of the weights' extra row TAPS


@functools.lru_cache(maxsize=1)
def powers() -> np.ndarray:
    """float64 [DEPTH + 1]: floor(2 ** (FLOOR_BITS + i / 16)) as exact integers: the 16th root of
    2 ** (16 FLOOR_BITS + i) by four integer square roots (floor(sqrt(floor(x))) = floor(sqrt(x)))."""
    out = []
    for i in range(DEPTH + 1):
        x = 1 << (16 * FLOOR_BITS + i)
        for _ in range(4):
            x = math.isqrt(x)
        out.append(x)
    return np.array(out, dtype=np.float64)


def slot_of(difference):
    """A difference v - n's weight's index: 0 below -RADIUS, 1 + RADIUS + d within, WIDTH - 1 above RADIUS."""
    return np.clip(difference, -RADIUS - 1, RADIUS + 1) + RADIUS + 1


def agreement_slot(count, nearest):
    """The agreement weight's index of a value that count neighbours hold, its nearest one nearest away;
    AGREEMENT: none (no neighbour within NEAR)."""
    return np.where(count > 0, np.minimum(count, MAX_COUNT) - 1, np.where(nearest <= NEAR, MAX_COUNT - 1 + nearest,
                                                                           AGREEMENT))


def valid(weights: np.ndarray) -> bool:
    """Weights as the rows take them: int64 [TAPS + 1, WIDTH], the tap-difference weights, then the agreement
    weights (zeros where none are sent) and zeros; within LIMIT; not all 0."""
    return (weights.shape == (TAPS + 1, WIDTH) and int(np.abs(weights).max()) <= LIMIT and bool(weights.any())
            and not weights[TAPS, AGREEMENT:].any())


@kernel
def _fit_loss(log_masses, slots, target, weights, ridge):
    """The fit's objective and its gradient in one pass over the sample: mean bits of each pixel's target
    entry under the softmax of log_masses[i, e] + ln 2 * sum of weights[slots[i, e, :]] (float64 [N, E],
    int64 [N, E, S], int64 [N]), plus ridge * sum of squares of every weight but the last (the weight that
    stays 0, whose gradient is 0). Why compiled: torch's autograd over 13 gathers of [N, E] took 30-80 ms a
    step; one fused loop takes 10."""
    count, entries, taps = slots.shape
    ln2 = math.log(2.0)
    grad = np.zeros(weights.size)
    logits = np.empty(entries)
    bits = 0.0
    for i in range(count):
        top = -np.inf
        for e in range(entries):
            score = 0.0
            for k in range(taps):
                score += weights[slots[i, e, k]]
            logits[e] = log_masses[i, e] + score * ln2
            top = max(top, logits[e])
        target_entry = target[i]
        bits += (top - logits[target_entry]) / ln2
        total = 0.0
        for e in range(entries):
            logits[e] = math.exp(logits[e] - top)
            total += logits[e]
        bits += math.log(total) / ln2
        # d bits / d weight: each entry's probability, less 1 at the target, per slot it scores
        for e in range(entries):
            share = logits[e] / total - (1.0 if e == target_entry else 0.0)
            for k in range(taps):
                grad[slots[i, e, k]] += share
    last = weights.size - 1
    penalty = 0.0
    for j in range(last):
        grad[j] = grad[j] / count + 2.0 * ridge * weights[j]
        penalty += weights[j] * weights[j]
    grad[last] = 0.0
    return bits / count + ridge * penalty, grad


def _minimise(objective, x: np.ndarray, iterations: int, history: int = FIT_HISTORY) -> np.ndarray:
    """x after at most iterations steps of L-BFGS (Nocedal & Wright, Numerical Optimization, algorithms 7.4
    and 7.5) from x on objective(x) -> (value, gradient), each step's length found by halving from 1 until
    the Armijo condition holds (the objective is convex and smooth, so no curvature condition is needed;
    a pair that shows no curvature is not kept). Why not torch.optim.LBFGS: its first use in a process
    imports torch._dynamo (~2 s, more than the fit), and on the fit's objective this reaches the same
    rounded weights' bits (within 0.011 % on 5 train planes, either way) in about as many evaluations
    (31-35 for 30 steps)."""
    value, grad = objective(x)
    pairs: list[tuple[np.ndarray, np.ndarray, float]] = []  # (step, change of gradient, 1 / their product)
    for _ in range(iterations):
        if np.abs(grad).max() < FIT_TOLERANCE:
            break
        direction, alphas = -grad, []
        for step, change, rho in reversed(pairs):
            alphas.append(rho * step.dot(direction))
            direction = direction - alphas[-1] * change
        if pairs:
            step, change, _ = pairs[-1]
            direction = direction * (step.dot(change) / change.dot(change))
        else:  # no curvature known yet: a first step of length at most 1 in the 1-norm
            direction = direction * min(1.0, 1.0 / np.abs(grad).sum())
        for (step, change, rho), alpha in zip(pairs, reversed(alphas)):
            direction = direction + (alpha - rho * change.dot(direction)) * step
        slope = grad.dot(direction)
        if slope >= 0.0:
            break
        length = 1.0
        while True:
            new_value, new_grad = objective(x + length * direction)
            if new_value <= value + 1e-4 * length * slope or length < 1e-10:
                break
            length *= 0.5
        step, change = length * direction, new_grad - grad
        if step.dot(change) > 1e-12:
            pairs = (pairs + [(step, change, 1.0 / step.dot(change))])[-history:]
        settled = abs(new_value - value) < FIT_TOLERANCE
        x, value, grad = x + step, new_value, new_grad
        if settled:
            break
    return x


def fit(values: np.ndarray, params: rm.PixelParams, nb: np.ndarray, agreement: bool = True) -> np.ndarray | None:
    """int64 [TAPS + 1, WIDTH] weights (``valid``'s layout) fitted (encoder only; the decoder reads them) to
    these pixels' main symbols under their tables (with agreement weights, or without: their row 0), or
    None when too few pixels have no low bits. A float fit of the log-linear model (its WINDOW entries near
    the neighbours one by one, the rest of the table as two entries: 4x fewer terms than every entry, the
    same bits to 0.01 % on a train radiograph), by ``_minimise`` on ``_fit_loss``; then rounded. What it
    saves, with the agreement weights and without them, is weighed afterwards on the exact integer rows
    (``tables.difference_code_terms``)."""
    from medcodec.pipelines.raster.tables import prefix_sums  # tables imports this module

    symbols, escaped = rm.coded_symbols(values, params)
    keep = np.flatnonzero((params.low_bits == 0) & ~escaped)
    if keep.size < 1024:
        return None
    if keep.size > FIT_SAMPLE:
        keep = keep[np.linspace(0, keep.size - 1, FIT_SAMPLE).astype(np.int64)]
    base, taps, symbols, table = params.base[keep], nb[keep].astype(np.int64), symbols[keep], params.table[keep]
    # each pixel's WINDOW entries around its neighbours' median, and the rest of its table as two entries,
    # below and above the window, scored as below or above every neighbour (the far weights) and with no
    # agreement weight; then the escape, with no weight
    centre = np.median(taps, axis=1).astype(np.int64) - base + rm.SUPPORT
    first = np.clip(centre - WINDOW // 2, 0, rm.ESCAPE - WINDOW)
    entries = first[:, None] + np.arange(WINDOW)[None, :]
    sums = prefix_sums()
    below = sums[table, first]
    above = sums[table, rm.ESCAPE] - sums[table, first + WINDOW]
    masses = np.concatenate([rm.tables()[table[:, None], entries], below[:, None], above[:, None],
                             rm.tables()[table, rm.ESCAPE][:, None]], axis=1).astype(np.float64)
    log_masses = np.log(np.maximum(masses, 1e-30))
    window_values = entries - rm.SUPPORT + base[:, None]
    zero = TAPS * WIDTH + AGREEMENT  # the index of a weight that stays 0
    tap_rows = np.arange(TAPS) * WIDTH
    slots = np.full((keep.size, WINDOW + 3, TAPS + int(agreement)), zero, dtype=np.int64)
    apart = window_values[:, :, None] - taps[:, None, :]
    slots[:, :WINDOW, :TAPS] = tap_rows + slot_of(apart)
    slots[:, WINDOW, :TAPS] = tap_rows  # below the window: below every neighbour
    slots[:, WINDOW + 1, :TAPS] = tap_rows + WIDTH - 1
    if agreement:
        held = agreement_slot((apart == 0).sum(axis=2), np.abs(apart).min(axis=2))
        slots[:, :WINDOW, TAPS] = np.where(held < AGREEMENT, TAPS * WIDTH + held, zero)
    target = np.where(symbols < first, WINDOW, np.where(symbols >= first + WINDOW, WINDOW + 1, symbols - first))
    weights = _minimise(lambda w: _fit_loss(log_masses, slots, target, w, FIT_RIDGE), np.zeros(zero + 1),
                        FIT_ITERATIONS)  # in bits
    found = np.clip(np.round(16.0 * weights[:-1]), -LIMIT, LIMIT).astype(np.int64)
    out = np.zeros((TAPS + 1, WIDTH), dtype=np.int64)
    out[:TAPS] = found[:TAPS * WIDTH].reshape(TAPS, WIDTH)
    out[TAPS, :AGREEMENT] = found[TAPS * WIDTH:]
    return out if out.any() else None
