"""Surprise offsets: the documented integer rule, the encoder's keep-or-drop decision, validation of the
side information, exact round trips (with ensembles too), configuration independence, older readers."""

import math

import numpy as np
import pytest

from medcodec.entropy import residual_model as rm
from medcodec.errors import CorruptStreamError, UnsupportedVersionError
from medcodec.pipelines import subimage, surprise
from medcodec.pipelines.base import unpack_side_info
from medcodec.pipelines.subimage import FastMethod, SlowMethod

from planes import EDGE_CASES, smooth
from side_info import assert_feature_used_exact_and_paying, with_meta
from torch_configs import assert_coding_is_configuration_independent


def varying_noise(shape, bits, seed=0):
    """A smooth image whose heavy-tailed noise is 50x stronger on the dark squares of a 16-pixel
    checkerboard (CT streaks, a detector's regions): the network, which sees values and not where it
    was wrong, under- and over-rates it square by square; the surprise classes see its errors."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0 : shape[0], 0 : shape[1]]
    top = (1 << bits) - 1
    base = (np.sin(x / 9.0) + np.cos(y / 13.0) + 2) / 4 * top
    sigma = np.where(((y // 16) + (x // 16)) % 2 == 0, top / 3000, top / 150)
    return np.clip(base + rng.laplace(0, 1, shape) * sigma, 0, top).astype(np.uint16)


def _forced(cls, **kwargs):
    method = cls(device="cpu", **kwargs)
    method.surprise_choice = "always"
    return method


@pytest.fixture(scope="module", params=[FastMethod, SlowMethod], ids=["fast", "slow"])
def method(request):
    return request.param(device="cpu")


@pytest.mark.parametrize("x", [0, 1, 2, 3, 4, 5, 6, 7, 8, 181, 182, 1448, 1449, 2**20 - 1, 2**20, 2**30, 2**31 - 1])
def test_log8_is_floor_of_eight_log2(x):
    # floor(8 log2 x) = floor(log2 x**8) = bit length of x**8, minus one (Python integers: exact)
    assert surprise.log8(np.array([x]))[0] == (max(x, 1) ** 8).bit_length() - 1


def test_log8_matches_the_integer_definition_on_many_values():
    rng = np.random.default_rng(0)
    x = np.concatenate([np.arange(1, 20_000), rng.integers(1, 2**31, 20_000), 2 ** np.arange(31) - 1])
    expected = np.array([(max(int(v), 1) ** 8).bit_length() - 1 for v in x])
    assert np.array_equal(surprise.log8(x), expected)


def test_eighth_octave_thresholds_are_the_documented_constants():
    assert surprise.EIGHTHS.tolist() == [math.ceil(2 ** (30 + i / 8)) for i in range(1, 8)]


def test_a_errors_are_four_times_the_laplacian_with_edges_replicated():
    a = np.array([[10, 10, 10], [10, 30, 10], [10, 10, 10]])
    got = surprise.a_errors(a)
    assert got[1, 1] == 4 * abs(4 * 30 - 40)
    assert got[0, 0] == 4 * abs(4 * 10 - (10 + 10 + 10 + 10))  # replicated edges: itself twice, 10, 10
    assert got[0, 1] == 4 * abs(4 * 10 - (10 + 30 + 10 + 10))


def test_error_grid_holds_the_first_pass_error_at_coded_pixels_only():
    pixels = np.array([[True, False], [True, True]])
    values = np.array([5, 7, 9])
    first_mu = np.array([5 * 16, 7 * 16 + 40, 9 * 16 - 100])
    grid = surprise.errors((2, 2), pixels, values, first_mu)
    assert grid.tolist() == [[8, 0], [abs(8 - 40), 108]]


def _expected_class(total, ell, neighbours):
    log8 = lambda v: (max(int(v), 1) ** 8).bit_length() - 1  # noqa: E731
    return min(23, max(0, (log8(total) - ell - log8(neighbours)) // 4 + 12))


def test_class_is_the_ratio_of_neighbour_errors_to_the_own_scale_in_half_octaves():
    shape = (4, 5)
    grids = {"A": np.full(shape, 64, np.int64)}
    pixels = np.zeros(shape, bool)
    pixels[1, 2] = pixels[2, 3] = True
    ell = np.array([40, 0])
    assert surprise.classes("D", grids, pixels, ell).tolist() == [_expected_class(4 * 64, e, 4) for e in ell]
    # B reads six D neighbours, C two D and four B
    grids.update(D=np.arange(20, dtype=np.int64).reshape(shape) * 100, B=np.full(shape, 7, np.int64))
    d = grids["D"]
    total_b = d[0, 2] + d[1, 2] + d[0, 1] + d[1, 1] + d[0, 3] + d[1, 3]
    assert surprise.classes("B", grids, pixels, np.array([30, 30]))[0] == _expected_class(total_b, 30, 6)
    total_c = d[1, 1] + d[1, 2] + 4 * 7
    assert surprise.classes("C", grids, pixels, np.array([-5, -5]))[0] == _expected_class(total_c, -5, 6)


def test_errors_as_large_as_the_scale_sit_mid_range():
    pixels = np.ones((1, 1), bool)
    for ell in (0, 40, 100):  # mean error 2**(ell / 8) in 1/16 sample at each of B's six neighbours
        grids = {"D": np.full((1, 1), round(2 ** (ell / 8)), np.int64)}
        assert surprise.classes("B", grids, pixels, np.array([ell]))[0] in (11, 12)


def _synthetic(wide_class=None):
    rng = np.random.default_rng(0)
    pixel_classes = rng.permutation(np.tile(np.arange(surprise.CLASSES), 3000))  # the fit samples a stride
    mu = np.full(pixel_classes.size, 100 * rm.MEAN_ONE + rm.MEAN_ONE // 2)
    noise = rng.logistic(0, 2.0, pixel_classes.size)
    if wide_class is not None:
        noise[pixel_classes == wide_class] *= 4
    values = 100 + np.round(noise).astype(np.int64)
    ell = np.full(pixel_classes.size, 40)  # scale 2 samples, as drawn
    return values, mu, ell, pixel_classes


def test_fit_drops_offsets_that_do_not_pay():
    assert surprise.fit(*_synthetic()) is None
    assert surprise.fit(*_synthetic(), always=True) is not None


def test_fit_widens_a_class_the_network_underrates():
    offsets = surprise.fit(*_synthetic(wide_class=11))
    assert offsets is not None
    assert offsets[11][0] >= 12 and all(abs(e) <= 2 for k, (e, _) in enumerate(offsets) if k != 11)


@pytest.mark.parametrize("bad", [
    [[0, 0]] * 23, [[0, 0, 0]] * 24, [[0, False]] * 24, [[0, 999]] * 24, [[10**6, 0]] * 24, {"0": [0, 0]},
])
def test_side_information_is_validated(bad):
    with pytest.raises((ValueError, TypeError)):
        surprise.from_json(bad)


def test_varying_noise_uses_offsets_that_pay_and_is_exact(method):
    assert_feature_used_exact_and_paying(method, varying_noise((96, 128), 12), 12, "surprise", use_surprise=False)


@pytest.mark.parametrize("case", sorted(EDGE_CASES))
def test_forced_offsets_round_trip_the_edge_cases(case):
    plane, bits = EDGE_CASES[case]
    for cls in (FastMethod, SlowMethod):
        method = _forced(cls)
        streams = method.encode(plane, bits)
        assert np.array_equal(method.decode(streams, plane.shape, bits), plane)


def test_forced_offsets_with_ensembles_round_trip():
    """An ensemble subimage's decoder needs the first single pass too (its errors feed the later classes)."""
    method = _forced(SlowMethod)
    method.ensemble_choice = "always"
    plane = varying_noise((72, 90), 16, seed=2)
    streams = method.encode(plane, 16)
    meta = unpack_side_info(streams[0].payload)
    assert {"ensemble", "surprise"} <= set(meta["requires"])
    assert np.array_equal(method.decode(streams, plane.shape, 16), plane)


def test_same_bytes_under_other_configurations(method):
    assert_coding_is_configuration_independent(method, varying_noise((64, 72), 16, seed=3), 16)


def test_a_plane_where_nothing_varies_carries_no_offsets():
    streams = FastMethod(device="cpu").encode(*EDGE_CASES["flat"])
    assert "surprise" not in unpack_side_info(streams[0].payload)


def test_a_reader_without_surprise_refuses_the_plane_as_newer(monkeypatch):
    method = _forced(FastMethod)
    plane = smooth((40, 48), 12)
    streams = method.encode(plane, 12)
    monkeypatch.setattr(subimage, "KNOWN_FEATURES", subimage.KNOWN_FEATURES - {"surprise"})
    with pytest.raises(UnsupportedVersionError, match="surprise.*newer medcodec"):
        method.decode(streams, plane.shape, 12)


@pytest.mark.parametrize("damage", [
    lambda m: m["surprise"].append(None),
    lambda m: m["surprise"].pop(),
    lambda m: m.update(surprise=[[[0, 99]] * 24] * len(m["surprise"])),
    lambda m: m.update(surprise="none"),
], ids=["extra-sets", "missing-set", "range", "not-a-list"])
def test_damaged_offsets_are_corrupt(method, damage):
    plane = varying_noise((64, 80), 12)
    streams = with_meta(_forced(type(method)).encode(plane, 12), damage)
    with pytest.raises(CorruptStreamError):
        method.decode(streams, plane.shape, 12)


def test_compiled_log8_is_log8():
    edges = [0, 1, 2, 3] + [v for k in range(1, 31) for v in ((1 << k) - 1, 1 << k, (1 << k) + 1)] + [(1 << 31) - 1]
    values = np.array(edges + list(np.random.default_rng(0).integers(0, 1 << 31, 2000)), dtype=np.int64)
    assert [surprise.log8_of(int(v)) for v in values] == surprise.log8(values).tolist()
