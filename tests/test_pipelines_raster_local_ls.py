"""The local least-squares predictor: the encoder's whole-plane computation equals the decoder's
wavefront one bit for bit, whatever the batch; the blend and the ridge behave as documented."""

import numpy as np
import pytest

from medcodec.pipelines import raster
from medcodec.pipelines.raster import local_ls

from planes import turning_stripes


def _padded(plane):
    layout = raster.layout.Layout(plane.shape)
    grid = np.full(layout.padded_shape, int(np.median(plane)), np.int64)
    grid[raster.layout.PAD_TOP:, raster.layout.PAD_LEFT:raster.layout.PAD_LEFT + plane.shape[1]] = plane
    return layout, grid.ravel()


def _taps(layout, grid, rows, cols):
    return grid[layout.flat(rows, cols)[:, None] + layout.offsets[None, :len(raster.layout.OFFSETS)]]


def _encoder_predictions(plane, top, band_rows, radius=local_ls.RADIUS):
    layout, grid = _padded(plane)
    width = plane.shape[1]

    def taps(first, end):
        rows, cols = np.divmod(np.arange(first * width, end * width), width)
        return _taps(layout, grid, rows, cols)

    return local_ls.plane_predictions(taps, plane.ravel().astype(np.int64), *plane.shape, top, band_rows, radius)


def _decoder_predictions(plane, top, radius=local_ls.RADIUS):
    layout, grid = _padded(plane)
    sums = local_ls.RunningSums(*plane.shape, radius)
    out = np.zeros(plane.size, np.int64)
    for t in range(layout.wavefronts):
        rows, cols = layout.wavefront(t)
        if rows.size == 0:
            continue
        nb = _taps(layout, grid, rows, cols)
        out[rows * plane.shape[1] + cols] = sums.predict(rows, cols, nb, top)
        sums.add(rows, cols, nb, plane[rows, cols])
    return out


PLANES = {
    "stripes": (turning_stripes((41, 37)), 12),
    "noise16": (np.random.default_rng(1).integers(0, 1 << 16, (23, 31)).astype(np.uint16), 16),
    "one-row": (np.arange(40, dtype=np.uint16).reshape(1, 40), 8),
    "one-column": (np.arange(30, dtype=np.uint16).reshape(30, 1) * 3, 8),
    "narrow": (turning_stripes((33, 5)), 12),
}


@pytest.mark.parametrize("name", sorted(PLANES))
@pytest.mark.parametrize("band_rows", [1, 4, 1000])
@pytest.mark.parametrize("radius", [local_ls.RADIUS, 1, 4, 14])
def test_encoder_equals_decoder_in_wavefront_order(name, band_rows, radius):
    plane, bits = PLANES[name]
    top = (1 << bits) << 4
    encoded = _encoder_predictions(plane, top, band_rows, radius)
    assert np.array_equal(encoded, _decoder_predictions(plane, top, radius))
    assert encoded.min() >= 0 and encoded.max() <= top


@pytest.mark.parametrize("radius", [local_ls.RADIUS, 4])
def test_the_window_is_the_documented_one(radius):
    """docs/FORMAT.md: rows i-r..i-1 at columns j-r..j+1 and row i at columns j-r..j-1, inside the plane."""
    plane, bits = PLANES["stripes"]
    layout, grid = _padded(plane)
    height, width = plane.shape
    rows, cols = np.divmod(np.arange(plane.size), width)
    nb = _taps(layout, grid, rows, cols)
    products = local_ls.products(nb, plane.ravel()).reshape(height, width, local_ls.TERMS)
    sums = np.zeros((plane.size, local_ls.TERMS), np.int64)
    for i in range(height):
        for j in range(width):
            above = products[max(0, i - radius):i, max(0, j - radius):j + 2].reshape(-1, local_ls.TERMS)
            left = products[i, max(0, j - radius):j]
            sums[i * width + j] = above.sum(axis=0) + left.sum(axis=0)
    top = (1 << bits) << 4
    assert np.array_equal(local_ls.predict(sums, nb, top), _encoder_predictions(plane, top, 7, radius))


def test_prediction_does_not_depend_on_the_batch():
    plane, bits = PLANES["stripes"]
    layout, grid = _padded(plane)
    rows, cols = np.divmod(np.arange(plane.size), plane.shape[1])
    nb = _taps(layout, grid, rows, cols)
    rng = np.random.default_rng(2)
    sums = rng.integers(-(1 << 30), 1 << 30, (plane.size, local_ls.TERMS))
    sums[:, : local_ls.TERMS - local_ls.FEATURES] = np.abs(sums[:, : local_ls.TERMS - local_ls.FEATURES])
    top = (1 << bits) << 4
    whole = local_ls.predict(sums, nb, top)
    for part in (slice(0, 1), slice(5, 6), slice(100, 357), slice(plane.size - 3, plane.size)):
        assert np.array_equal(local_ls.predict(sums[part], nb[part], top), whole[part])


def test_a_window_without_information_predicts_the_left_neighbour():
    nb = np.array([[100] + [130] * 11, [7] * 12])
    mu = local_ls.predict(np.zeros((2, local_ls.TERMS), np.int64), nb, 4096 << 4)
    assert mu.tolist() == [100 * 16 + 8, 7 * 16 + 8]  # weights 0: the bin centre of the left neighbour


def test_an_exact_linear_texture_is_predicted_exactly():
    # a ramp: every window holds value - left neighbour = 3 exactly, from the differences
    plane = (np.add.outer(np.arange(20) * 5, np.arange(24) * 3) + 100).astype(np.uint16)
    top = (1 << 12) << 4
    mu = _encoder_predictions(plane, top, 1000).reshape(plane.shape)
    inner = mu[8:, 8:-3]
    assert np.abs(inner - (plane[8:, 8:-3].astype(np.int64) * 16 + 8)).max() <= 2  # within 1/8 sample (ridge)


def test_blend_moves_by_the_weight_and_stays_in_integers():
    mu = np.array([1000, 1000, 1000, 1000])
    local = np.array([1640, 1640, 360, 1000 + 2 * local_ls.DELTA_LIMIT])
    weights = np.array([0, 64, 32, 64])
    assert local_ls.moved(mu, local_ls.shift(mu, local, weights)).tolist() == [1000, 1640, 680,
                                                                              1000 + local_ls.DELTA_LIMIT]


def test_a_degenerate_system_stays_in_range_without_floating_point_errors():
    sums = np.zeros((1, local_ls.TERMS), np.int64)
    sums[0, 0] = -(1 << 30)  # not a sum of squares (damaged state): a negative pivot, weights that overflow
    sums[0, local_ls.TERMS - local_ls.FEATURES] = 1 << 38
    nb = np.array([[50] + [60000] * 11])
    with np.errstate(all="raise"):
        mu = local_ls.predict(sums, nb, 1 << 20)
    assert 0 <= mu[0] <= 1 << 20


def _numpy_predict(sums, nb, top):
    """The documented solve as numpy ran it until 2026-12 (streams of 2.3-2.5 were written with it): the
    same IEEE operations a pixel at a time, vectorised along pixels."""
    n = sums.shape[0]
    f_count, pairs = local_ls.FEATURES, local_ls.PAIRS
    i_of, j_of = local_ls._I, local_ls._J
    ridge = (sums[:, local_ls._DIAGONAL].sum(axis=1) >> local_ls.RIDGE_SHIFT) + 1
    quad = sums[:, :pairs].copy()
    quad[:, local_ls._DIAGONAL] += ridge[:, None]
    system = np.empty((f_count, f_count + 1, n))
    system[i_of, j_of] = quad.T
    system[j_of, i_of] = quad.T
    system[:, f_count] = sums[:, pairs:].T
    with np.errstate(all="ignore"):
        for k in range(f_count - 1):
            factor = system[k + 1:, k] / system[k, k]
            system[k + 1:, k + 1:] -= factor[:, None, :] * system[k, k + 1:][None]
        weights = np.empty((f_count, n))
        rhs = system[:, f_count].copy()
        for k in range(f_count - 1, -1, -1):
            weights[k] = rhs[k] / system[k, k]
            rhs[:k] -= system[:k, k] * weights[k]
        f = local_ls.features(nb).T.astype(np.float64)
        q = np.zeros(n)
        for k in range(f_count):
            q = q + weights[k] * f[k]
    q = np.where(np.isfinite(q), np.clip(q, -local_ls.PREDICTION_LIMIT, local_ls.PREDICTION_LIMIT), 0.0)
    mu = (nb[:, 0].astype(np.int64) << 4) + 8 + np.floor(q * 16.0 + 0.5).astype(np.int64)
    return np.clip(mu, 0, top)


def _window_sums(plane, radius):
    """Every pixel's window sums by brute force (the documented window) and its neighbours."""
    layout, grid = _padded(plane)
    rows, cols = np.divmod(np.arange(plane.size), plane.shape[1])
    nb = _taps(layout, grid, rows, cols)
    height, width = plane.shape
    products = local_ls.products(nb, plane.ravel()).reshape(height, width, local_ls.TERMS)
    sums = np.zeros((plane.size, local_ls.TERMS), np.int64)
    for i in range(height):
        for j in range(width):
            above = products[max(0, i - radius):i, max(0, j - radius):j + 2].reshape(-1, local_ls.TERMS)
            sums[i * width + j] = above.sum(axis=0) + products[i, max(0, j - radius):j].sum(axis=0)
    return sums, nb


@pytest.mark.parametrize("name", ["stripes", "noise16", "narrow"])
def test_the_compiled_solve_is_the_documented_one_bit_for_bit(name):
    """Flat, textured, noisy, near-singular and damaged windows: the compiled solve gives numpy's bits."""
    plane, bits = PLANES[name]
    top = (1 << bits) << 4
    sums, nb = _window_sums(plane, local_ls.RADIUS)
    assert np.array_equal(local_ls.predict(sums, nb, top), _numpy_predict(sums, nb, top))
    rng = np.random.default_rng(3)
    small = rng.integers(0, 3, (4000, 12))  # few distinct values: singular and near-singular windows
    damaged = rng.integers(-(1 << 40), 1 << 40, (4000, local_ls.TERMS))  # no sums of squares at all
    for nb, sums in ((small, np.cumsum(local_ls.products(small, rng.integers(0, 3, 4000)), axis=0)),
                     (small, damaged)):
        assert np.array_equal(local_ls.predict(sums, nb, 1 << 20), _numpy_predict(sums, nb, 1 << 20))
