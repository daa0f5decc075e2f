"""The raster correction and scale networks: integer features, exact integer inference whatever the
batch or the BLAS summation order, bounds that keep every float64 (and, where used, float32) partial sum
exact, integer scale keys, and the shipped weights."""

import numpy as np
import pytest

from medcodec.errors import ModelMismatchError
from medcodec.networks import raster_mlp
from medcodec.pipelines.surprise import log8


def random_layers(rng, hidden=(16, 16), limit=raster_mlp.WEIGHT_LIMIT):
    sizes = [raster_mlp.FEATURES, *hidden, 1]
    return [(rng.integers(-limit, limit + 1, (sizes[k + 1], sizes[k])), rng.integers(-(1 << 30), 1 << 30, sizes[k + 1]))
            for k in range(len(sizes) - 1)]


def reference_output(layers, feats):
    """The same network in pure int64 arithmetic (numpy's integer matmul: no floating point at all)."""
    h = feats.astype(np.int64)
    for k, (w, b) in enumerate(layers):
        acc = h @ np.asarray(w, dtype=np.int64).T + b
        if k == len(layers) - 1:
            return np.clip(acc[:, 0], -raster_mlp.OUTPUT_LIMIT, raster_mlp.OUTPUT_LIMIT)
        h = np.clip(acc >> raster_mlp.WEIGHT_SHIFT, 0, raster_mlp.ACTIVATION_LIMIT)


def random_inputs(rng, n, extreme=False):
    big = 1 << 24 if extreme else 400
    nb = rng.integers(0, 1 << 16, (n, raster_mlp.TAPS))
    errors1 = rng.integers(-big, big + 1, (n, raster_mlp.TAPS))
    errors2 = rng.integers(-big, big + 1, (n, raster_mlp.TAPS))
    mu1 = rng.integers(0, 1 << 20, n)
    mu2 = rng.integers(0, 1 << 20, n)
    activity = rng.integers(0, 1 << 18 if extreme else 64, n)
    return nb, errors1, errors2, mu1, mu2, activity


@pytest.mark.parametrize("extreme", [False, True])
def test_features_are_bounded_integers(extreme):
    rng = np.random.default_rng(1)
    feats, scale = raster_mlp.features(*random_inputs(rng, 500, extreme))
    assert feats.dtype == np.int64 and feats.shape == (500, raster_mlp.FEATURES)
    assert np.abs(feats).max() <= raster_mlp.FEATURE_LIMIT
    assert scale.min() >= raster_mlp.MIN_SCALE


def test_scale_is_the_neighbours_mean_error_plus_four_times_the_activity():
    nb = np.zeros((2, 12), np.int64)
    errors2 = np.array([[16] * 8 + [999] * 4, [0] * 12])
    zeros = np.zeros(2, np.int64)
    _, scale = raster_mlp.features(nb, np.zeros((2, 12), np.int64), errors2, zeros, zeros, np.array([2, 0]))
    assert scale.tolist() == [16 + 8, raster_mlp.MIN_SCALE]


def _numpy_log2(x):
    return np.minimum(log8(np.minimum(x, (1 << 31) - 1)), 255) << (raster_mlp.FEATURE_SHIFT - 3)


def _numpy_features(nb, errors1, errors2, mu1, mu2, activity):
    """The numpy definition the compiled features replaced (streams before 2026-12 were written with it)."""
    shift, limit, taps = raster_mlp.FEATURE_SHIFT, raster_mlp.FEATURE_LIMIT, raster_mlp.TAPS
    nb = nb.astype(np.int64)
    scale = np.maximum((np.abs(errors2[:, :8].astype(np.int64)).sum(axis=1) + (activity.astype(np.int64) << 5)) >> 3,
                       raster_mlp.MIN_SCALE)
    west = nb[:, 0] << 4
    out = np.empty((nb.shape[0], raster_mlp.FEATURES), dtype=np.int64)
    out[:, :taps - 1] = (nb[:, 1:] << 4) - west[:, None]
    out[:, taps - 1:2 * taps - 1] = errors1
    out[:, 2 * taps - 1:3 * taps - 1] = errors2
    out[:, -3] = mu2 - west
    out[:, -2] = mu1 - west
    out[:, :-1] = np.clip((out[:, :-1] << shift) // scale[:, None], -limit, limit)
    out[:, -1] = _numpy_log2(scale)
    return out, scale


@pytest.mark.parametrize("extreme", [False, True])
def test_compiled_inputs_are_the_numpy_definition(extreme):
    rng = np.random.default_rng(5)
    inputs = random_inputs(rng, 2000, extreme)
    feats, scale = raster_mlp.features(*inputs)
    want, want_scale = _numpy_features(*inputs)
    assert np.array_equal(feats, want) and np.array_equal(scale, want_scale)
    final = rng.integers(-(1 << 24), 1 << 24, (2000, 12)) if extreme else rng.integers(-900, 900, (2000, 12))
    scale_sum = rng.integers(-5, 1 << 30 if extreme else 4000, 2000)
    s = np.maximum(scale_sum, 1)
    extra = np.minimum((np.abs(final) << raster_mlp.FEATURE_SHIFT) // s[:, None], raster_mlp.FEATURE_LIMIT)
    assert np.array_equal(raster_mlp.scale_features(feats, final, scale_sum),
                          np.concatenate([want, extra, _numpy_log2(s)[:, None]], axis=1))


def test_clamped_quotients_are_floor_division_at_every_edge():
    # the features' division by a float reciprocal and a one-step correction, where a / s is an
    # integer, one below or above it, at the clamp and past it, for small and huge s
    rng = np.random.default_rng(15)
    limit = raster_mlp.FEATURE_LIMIT
    for s in [1, 2, 3, 7, 8, 255, 256, 1000003, (1 << 31) - 1, 1 << 33, *rng.integers(1, 1 << 34, 40)]:
        s = int(s)
        edges = [*range(-limit - 2, -limit + 3), -1, 0, 1, *range(limit - 2, limit + 3)]
        for n in [*edges, *rng.integers(-limit, limit, 20)]:
            for a in (int(n) * s - 1, int(n) * s, int(n) * s + 1, int(n) * s + s // 2):
                want = min(max(a // s, -limit), limit)
                assert raster_mlp._clamped_quotient(a, s, limit * s, 1.0 / s) == want, (a, s)


@pytest.mark.parametrize("seed", range(4))
def test_inference_equals_pure_integer_arithmetic_at_the_bounds(seed):
    rng = np.random.default_rng(seed)
    layers = random_layers(rng)
    net = raster_mlp.from_integer_layers("test", b"\0" * 32, layers)
    # features at their limits and random: the largest partial sums the bounds allow
    feats = rng.integers(-raster_mlp.FEATURE_LIMIT, raster_mlp.FEATURE_LIMIT + 1, (300, raster_mlp.FEATURES))
    feats[:10] = raster_mlp.FEATURE_LIMIT * np.sign(layers[0][0][:10])  # each row maximises one unit
    assert np.array_equal(net.output(feats), reference_output(layers, feats))


@pytest.mark.parametrize("model_id", ["raster-nn-v1", "raster-nn-large-v1", "raster-nn-xl-v1", "raster-scale-v1",
                                      "raster-scale-v2"])
def test_shipped_networks_equal_pure_integer_arithmetic(model_id):
    # the compiled hidden-layer step (add, scale, floor, clamp in one pass) on the real weights
    net = raster_mlp.load(model_id)
    layers = [(w.astype(np.int64), b) for w, b in zip(net.weights, net.biases)]
    rng = np.random.default_rng(11)
    feats = rng.integers(-raster_mlp.FEATURE_LIMIT, raster_mlp.FEATURE_LIMIT + 1, (500, net.inputs))
    feats[:100] //= 64  # typical magnitudes too, where few units clamp
    assert np.array_equal(net.output(feats), reference_output(layers, feats))


def test_layer_products_run_in_float32_only_within_its_exact_bound():
    # the same integers from either path: float32 where no partial sum can reach 2**24, else float64
    rng = np.random.default_rng(13)
    layers = random_layers(rng, (64, 64))
    net = raster_mlp.from_integer_layers("test", b"\2" * 32, layers)
    w = np.asarray(layers[1][0], dtype=np.int64)
    for top in (3, 20, 40, 1 << 10, raster_mlp.ACTIVATION_LIMIT):  # bounds 2**20.8 .. 2**39
        h = rng.integers(0, top + 1, (200, 64))
        bound = float((h.max(axis=0) @ np.abs(w).T).max())
        assert raster_mlp._bound(h.max(axis=0).astype(np.float64), np.abs(w).T.astype(np.float64).copy()) == bound
        got = net._layer_product(1, h.astype(np.float32), bound)
        assert got.dtype == (np.float32 if bound < 1 << 24 else np.float64)
        assert np.array_equal(got.astype(np.int64), h @ w.T)
        if top >= 1 << 10:  # far past the bound float32 does round: the fallback is needed
            assert not np.array_equal((h.astype(np.float32) @ w.T.astype(np.float32)).astype(np.int64), h @ w.T)


def test_hidden_activations_by_pieces_equal_one_pass():
    # the encoder's output-layer fit takes them OUTPUT_ROWS rows at a time: each piece's own bound
    rng = np.random.default_rng(15)
    layers = random_layers(rng, (64, 64))
    net = raster_mlp.from_integer_layers("test", b"\4" * 32, layers)
    feats = rng.integers(-raster_mlp.FEATURE_LIMIT, raster_mlp.FEATURE_LIMIT + 1,
                         (2 * raster_mlp.OUTPUT_ROWS + 7, raster_mlp.FEATURES))
    feats[::97] *= 0  # pieces of different bounds
    hidden = net.hidden(feats)
    assert hidden.dtype == np.float64 and hidden.shape == (feats.shape[0], 64)
    assert np.array_equal(hidden, net._hidden(feats)[0].astype(np.float64))
    assert np.array_equal(net.output_of_hidden(hidden), reference_output(layers, feats))
    assert net.hidden(feats[:0]).shape == (0, 64)


def test_a_reduced_precision_blas_setting_keeps_every_layer_in_float64(monkeypatch):
    monkeypatch.setattr(raster_mlp, "FLOAT32_PRODUCTS", False)  # as MKL_BLAS_COMPUTE_MODE set at import
    rng = np.random.default_rng(14)
    layers = random_layers(rng, (64, 64))
    net = raster_mlp.from_integer_layers("test", b"\3" * 32, layers)
    h = rng.integers(0, 4, (50, 64))
    assert net._layer_product(1, h.astype(np.float32), 0.0).dtype == np.float64
    feats = rng.integers(-300, 301, (100, raster_mlp.FEATURES))
    assert np.array_equal(net.output(feats), reference_output(layers, feats))


def test_output_delta_adds_to_the_output_layer_within_the_bounds():
    rng = np.random.default_rng(12)
    layers = random_layers(rng, limit=2000)
    net = raster_mlp.from_integer_layers("test", b"\1" * 32, layers)
    delta = rng.integers(-300, 301, 17)
    adjusted = net.with_output_delta(delta)
    assert adjusted.tag == net.tag  # the frame names the shipped network
    w, b = layers[-1]
    want = layers[:-1] + [(w + delta[None, :16], b + delta[16])]
    feats = rng.integers(-raster_mlp.FEATURE_LIMIT, raster_mlp.FEATURE_LIMIT + 1, (200, raster_mlp.FEATURES))
    assert np.array_equal(adjusted.output(feats), reference_output(want, feats))
    assert np.array_equal(adjusted.output_of_hidden(net.hidden(feats)), adjusted.output(feats))
    for bad in (delta[:-1], np.r_[np.full(16, raster_mlp.WEIGHT_LIMIT * 2), 0], np.r_[np.zeros(16, np.int64), 1 << 41]):
        with pytest.raises(ValueError):
            net.with_output_delta(bad)


def test_inference_does_not_depend_on_the_batch():
    rng = np.random.default_rng(5)
    net = raster_mlp.from_integer_layers("test", b"\0" * 32, random_layers(rng, (48, 48), limit=4000))
    feats, scale = raster_mlp.features(*random_inputs(rng, 777))
    whole = net.correction(feats, scale)
    for size in (1, 33, 400):  # BLAS picks other kernels for other shapes; the integers must not change
        parts = [net.correction(feats[i:i + size], scale[i:i + size]) for i in range(0, 777, size)]
        assert np.array_equal(np.concatenate(parts), whole)


def test_quantised_layers_round_to_the_integer_grid():
    (w, b), = raster_mlp.quantise_layers([(np.array([[0.5, -1.0 / 1024, 100.0]]), np.array([1.0]))])
    assert w.tolist() == [[512, -1, raster_mlp.WEIGHT_LIMIT]]
    assert b.tolist() == [1 << (raster_mlp.WEIGHT_SHIFT + raster_mlp.FEATURE_SHIFT)]


@pytest.mark.parametrize("damage", ["shape", "range", "outputs", "single"])
def test_bad_layers_are_refused(damage):
    rng = np.random.default_rng(0)
    layers = random_layers(rng, (8,))
    if damage == "shape":
        layers[1] = (layers[1][0][:, :5], layers[1][1])
    elif damage == "range":
        layers[0] = (layers[0][0] * 4, layers[0][1])
    elif damage == "outputs":
        layers[1] = (np.vstack([layers[1][0]] * 2), np.r_[layers[1][1], 0])
    else:
        layers = [(layers[0][0][:1], layers[0][1][:1])]
    with pytest.raises(ValueError):
        raster_mlp.from_integer_layers("test", b"", layers)


def test_shipped_weights_load_and_name_themselves():
    try:
        net = raster_mlp.load("raster-nn-v1")
    except ModelMismatchError as exc:
        pytest.skip(f"raster-nn-v1 not installed here: {exc}")
    assert net.tag.startswith("raster-nn-v1/") and len(net.tag) == len("raster-nn-v1/") + 16
    feats, scale = raster_mlp.features(*random_inputs(np.random.default_rng(2), 64))
    assert net.correction(feats, scale).dtype == np.int64


def test_missing_weights_are_a_model_mismatch(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDCODEC_MODELS", str(tmp_path))
    with pytest.raises(ModelMismatchError):
        raster_mlp.load("raster-nn-v1")


@pytest.mark.parametrize("extreme", [False, True])
def test_scale_features_are_bounded_integers(extreme):
    rng = np.random.default_rng(2)
    inputs = random_inputs(rng, 500, extreme)
    feats, _ = raster_mlp.features(*inputs)
    scale_sum = rng.integers(0, 1 << 30, 500)
    scale_sum[:5] = 0  # a flat neighbourhood: the sum is taken as 1
    sfeats = raster_mlp.scale_features(feats, inputs[2], scale_sum)
    assert sfeats.dtype == np.int64 and sfeats.shape == (500, raster_mlp.SCALE_FEATURES)
    assert np.array_equal(sfeats[:, :raster_mlp.FEATURES], feats)
    assert sfeats.min() >= -raster_mlp.FEATURE_LIMIT and sfeats.max() <= raster_mlp.FEATURE_LIMIT


def small_scale_network(rng, bias):
    """A random scale network of one hidden layer of 8, weights within +-300, biases within +-bias."""
    sizes = [raster_mlp.SCALE_FEATURES, 8, 1]
    layers = [(rng.integers(-300, 301, (sizes[k + 1], sizes[k])), rng.integers(-bias, bias, sizes[k + 1]))
              for k in range(2)]
    return raster_mlp.from_integer_layers("test-sn", b"\0" * 32, layers, raster_mlp.SCALE_FEATURES)


def test_scale_keys_are_integer_quarter_octaves_of_the_scale():
    rng = np.random.default_rng(5)
    net = small_scale_network(rng, 1 << 19)
    feats = rng.integers(-(50 << 8), 50 << 8, (400, raster_mlp.SCALE_FEATURES))
    scale_sum = rng.integers(0, 1 << 20, 400)
    keys = raster_mlp.scale_keys(net, feats, scale_sum)
    reference = np.floor(np.floor(8 * np.log2(np.maximum(scale_sum, 1))) / 2 + 4 * net.output(feats) / 2.0 ** 18)
    assert keys.dtype == np.int64 and np.array_equal(keys, np.clip(reference, 0, raster_mlp.SCALE_KEY_LIMIT))
    assert 0 < keys.min() < keys.max() < raster_mlp.SCALE_KEY_LIMIT  # the clamp is not all this tests


def test_compiled_scale_keys_are_the_numpy_definition():
    rng = np.random.default_rng(6)
    net = small_scale_network(rng, 1 << 21)
    feats = rng.integers(-raster_mlp.FEATURE_LIMIT, raster_mlp.FEATURE_LIMIT + 1, (3000, raster_mlp.SCALE_FEATURES))
    scale_sum = np.r_[rng.integers(-5, 1 << 40, 2990), 0, 1, 2, (1 << 31) - 2, (1 << 31) - 1, 1 << 31, -1, 7, 8, 9]
    output = net.output(feats)
    s = np.minimum(np.maximum(scale_sum, 1), (1 << 31) - 1)
    shift = raster_mlp.FEATURE_SHIFT + raster_mlp.WEIGHT_SHIFT
    want = np.clip(((log8(s) << (shift - 1)) + (output << 2)) >> shift, 0, raster_mlp.SCALE_KEY_LIMIT)
    keys = raster_mlp.scale_keys(net, feats, scale_sum)
    assert keys.dtype == np.int64 and np.array_equal(keys, want)
    assert keys.min() == 0 and keys.max() == raster_mlp.SCALE_KEY_LIMIT and len(np.unique(keys)) > 20  # both clamps


def test_a_network_of_one_kind_is_refused_as_the_other():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError):
        raster_mlp.from_integer_layers("test", b"", random_layers(rng, (8,)), raster_mlp.SCALE_FEATURES)


def test_shipped_scale_weights_load_as_a_scale_network():
    try:
        net = raster_mlp.load("raster-scale-v1")
    except ModelMismatchError as exc:
        pytest.skip(f"raster-scale-v1 not installed here: {exc}")
    assert net.weights[0].shape[1] == raster_mlp.SCALE_FEATURES and net.tag.startswith("raster-scale-v1/")


def _window(i, j):
    """The wide window's cells, written out: rows i-6..i-2 at columns j-6..j+3, row i-1 at j-6..j+1, row
    i at j-6..j-1."""
    return ([(y, x) for y in range(i - 6, i - 1) for x in range(j - 6, j + 4)] + [(i - 1, x) for x in range(j - 6, j + 2)]
            + [(i, x) for x in range(j - 6, j)])


@pytest.mark.parametrize("shape", [(1, 1), (1, 9), (9, 1), (5, 12), (23, 17)])
def test_window_features_are_the_causal_windows_statistics(shape):
    rng = np.random.default_rng(shape[0])
    errors = rng.integers(-900, 900, shape)
    rows, cols = np.divmod(np.arange(errors.size), shape[1])
    scale_sum = rng.integers(0, 3000, errors.size)
    feats = raster_mlp.ErrorWindows.of_plane(errors).features(rows, cols, scale_sum)
    shift, limit = raster_mlp.FEATURE_SHIFT, raster_mlp.FEATURE_LIMIT
    for k, (i, j) in enumerate(zip(rows, cols)):
        inside = [(y, x) for y, x in _window(i, j) if 0 <= y < shape[0] and 0 <= x < shape[1]]
        assert 2 * i + j > max((2 * y + x for y, x in inside), default=-1)  # decoded before the pixel
        count = max(len(inside), 1)
        magnitude = sum(abs(int(errors[y, x])) for y, x in inside)
        signed = sum(int(errors[y, x]) for y, x in inside)
        s = max(int(scale_sum[k]), 1) * count
        assert feats[k].tolist() == [min((magnitude << shift) // s, limit),
                                     int(_numpy_log2(np.array([magnitude // count + 1]))[0]),
                                     min(max((signed << shift) // s, -limit), limit)]


def test_window_features_filled_by_wavefronts_equal_the_whole_planes():
    """The decoder's integral images, filled a wavefront at a time, give the encoder's features."""
    from medcodec.pipelines.raster.layout import Layout

    rng = np.random.default_rng(3)
    errors = rng.integers(-(1 << 24), 1 << 24, (31, 26))
    errors[5:20, 4:9] = 0  # flat: the log2 feature's floor
    whole = raster_mlp.ErrorWindows.of_plane(errors)
    filled = raster_mlp.ErrorWindows(*errors.shape)
    layout = Layout(errors.shape)
    for t in range(layout.wavefronts):
        rows, cols = layout.wavefront(t)
        scale_sum = rng.integers(0, 1 << 20, rows.size)
        got = filled.features(rows, cols, scale_sum)
        assert np.array_equal(got, whole.features(rows, cols, scale_sum))
        assert np.abs(got).max() <= raster_mlp.FEATURE_LIMIT
        filled.add(rows, cols, errors[rows, cols])
