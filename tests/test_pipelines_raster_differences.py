"""Tap-difference and agreement weights: the integer powers, the slots, their layout, and a fit that pays
on a drifting lattice."""

import numpy as np
import pytest

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


def test_fit_loss_gradient_is_the_objectives():
    """The compiled objective and gradient equal torch's autograd of the same softmax model (the fit
    before it was compiled), repeated and farther-than-radius slots included."""
    import torch

    rng = np.random.default_rng(5)
    pixels, entries, taps, size = 40, 9, 4, 30
    log_masses = rng.normal(0.0, 2.0, (pixels, entries))
    slots = rng.integers(0, size - 1, (pixels, entries, taps))
    slots[:, -1, :] = size - 1  # an entry with no weight (the escape's)
    slots[:, 0, 1] = slots[:, 0, 0]  # one slot scored twice
    target = rng.integers(0, entries, pixels)
    weights = rng.normal(0.0, 0.5, size)
    weights[-1] = 0.0
    value, grad = differences._fit_loss(log_masses, slots, target, weights, 1e-3)

    w = torch.tensor(weights, requires_grad=True)
    logits = torch.tensor(log_masses) + w[torch.tensor(slots)].sum(dim=2) * np.log(2.0)
    bits = -torch.log_softmax(logits, dim=1).gather(1, torch.tensor(target)[:, None]).sum() / np.log(2.0)
    expected = bits / pixels + 1e-3 * (w[:-1] ** 2).sum()
    expected.backward()
    reference = w.grad.numpy().copy()
    reference[-1] = 0.0
    assert value == pytest.approx(expected.item(), rel=1e-12)
    np.testing.assert_allclose(grad, reference, rtol=1e-10, atol=1e-13)


def test_minimise_finds_a_convex_objectives_minimum():
    """L-BFGS on a badly scaled quadratic reaches its minimiser, and stays at a start that is already it."""
    rng = np.random.default_rng(3)
    basis = np.linalg.qr(rng.normal(size=(12, 12)))[0]
    curvature = basis @ np.diag(np.logspace(-2, 2, 12)) @ basis.T
    centre = rng.normal(size=12)

    def quadratic(x):
        return 0.5 * (x - centre) @ curvature @ (x - centre), curvature @ (x - centre)

    found = differences._minimise(quadratic, np.zeros(12), 200)
    assert quadratic(found)[0] < 1e-7  # it stops where the objective changes by less than FIT_TOLERANCE
    np.testing.assert_allclose(found, centre, atol=1e-2)
    np.testing.assert_array_equal(differences._minimise(quadratic, centre.copy(), 30), centre)
