"""Tap-difference and agreement weights: the integer powers, the slots, their layout, and a fit that pays
on a drifting lattice."""

import numpy as np

from medcodec.entropy import residual_model as rm
from medcodec.pipelines.raster import coding, differences
from medcodec.pipelines.raster.layout import OFFSETS

from planes import drifting_step_lattice


def test_powers_are_the_floors_of_two_to_the_sixteenths():
    powers = differences.powers()
    assert powers.size == differences.DEPTH + 1
    assert powers[0] == 2 ** differences.FLOOR_BITS and powers[16] == 2 ** (differences.FLOOR_BITS + 1)
    assert powers[-1] == 2 ** (differences.FLOOR_BITS + differences.DEPTH // 16) <= 2**24
    for i, p in enumerate(powers.astype(np.int64).tolist()):  # p = floor(2 ** (FLOOR_BITS + i / 16)), exactly
        assert p**16 <= 2 ** (16 * differences.FLOOR_BITS + i) < (p + 1) ** 16


def test_slots_hold_each_near_difference_and_one_for_each_far_side():
    d = np.arange(-differences.RADIUS - 3, differences.RADIUS + 4)
    slots = differences.slot_of(d)
    assert slots[0] == 0 and slots[-1] == differences.WIDTH - 1
    near = np.abs(d) <= differences.RADIUS
    assert np.array_equal(slots[near], d[near] + differences.RADIUS + 1)


def test_agreement_slots_count_the_neighbours_holding_a_value_or_the_nearest_ones_distance():
    d = differences
    count = np.array([1, 2, d.MAX_COUNT, d.MAX_COUNT + 3, 0, 0, 0, 0, 0])
    nearest = np.array([0, 0, 0, 0, 1, 2, d.NEAR, d.NEAR + 1, 40])
    assert differences.agreement_slot(count, nearest).tolist() == [
        0, 1, d.MAX_COUNT - 1, d.MAX_COUNT - 1, d.MAX_COUNT, d.MAX_COUNT + 1, d.AGREEMENT - 1, d.AGREEMENT, d.AGREEMENT]


def test_valid_weights_keep_the_agreement_row_past_its_weights_empty():
    weights = np.zeros((differences.TAPS + 1, differences.WIDTH), np.int64)
    assert not differences.valid(weights)  # all 0: not sent
    weights[differences.TAPS, differences.AGREEMENT - 1] = 3
    assert differences.valid(weights)
    weights[differences.TAPS, differences.AGREEMENT] = 3
    assert not differences.valid(weights)
    assert not differences.valid(weights[:differences.TAPS])


def test_weights_fitted_on_a_drifting_lattice_code_it_smaller():
    plane = drifting_step_lattice((80, 96)).astype(np.int64)
    values = plane[2:, 3:-3].ravel()
    rows, cols = np.divmod(np.arange(values.size), plane.shape[1] - 6)
    rows, cols = rows + 2, cols + 3
    nb = np.stack([plane[rows + dy, cols + dx] for dy, dx in OFFSETS], axis=1)
    mu = (16 * (nb[:, 0] + nb[:, 1]) // 2 + 8)
    params = rm.pixel_params(mu, np.full(values.size, 30))
    weights = differences.fit(values, params, nb)
    assert weights is not None and differences.valid(weights)
    zero = np.zeros_like(weights)
    fitted = coding.difference_cost_bits(values, params, nb, weights).sum()
    assert fitted < 0.85 * coding.difference_cost_bits(values, params, nb, zero).sum()


def test_too_few_pixels_without_low_bits_fit_nothing():
    rng = np.random.default_rng(0)
    values = rng.integers(0, 4096, 500)
    nb = values[:, None] + rng.integers(-3, 4, (500, differences.TAPS))
    assert differences.fit(values, rm.pixel_params(values << 4, np.full(500, 20)), nb) is None
