"""Test-time ensembles of the subimage networks: geometry-keeping transforms, the exact integer mean,
and slow-path planes coded with them (round trips, the same bytes under other threads / oneDNN, side
information an older or damaged reader must refuse)."""

import numpy as np
import pytest
import torch

from medcodec.errors import CorruptStreamError, UnsupportedVersionError
from medcodec.pipelines import ensemble, split, subimage
from medcodec.pipelines.base import Stream, pack_side_info, unpack_side_info
from medcodec.pipelines.subimage import FastMethod, SlowMethod

from planes import EDGE_CASES, smooth
from torch_configs import assert_coding_is_configuration_independent


@pytest.mark.parametrize("target, variants, left, count", [
    ("D", 1, False, 1), ("D", 2, False, 2), ("D", 4, False, 4), ("D", 8, False, 8),
    ("B", 8, False, 4), ("C", 8, False, 4),  # a transpose would swap B's and C's roles
    ("B", 1, True, 1), ("C", 2, True, 2)])
def test_transform_sets(target, variants, left, count):
    chosen = ensemble.transforms(target, variants, left)
    assert len(chosen) == count and chosen[0] == (False, False, False)
    if left:  # a left-right flip or a transpose would move the LC-L pass's known columns
        assert all(not lr and not tr for lr, _, tr in chosen)


@pytest.mark.parametrize("variants, left", [(3, False), (16, False), (0, False), (4, True)])
def test_unknown_sizes_are_refused(variants, left):
    with pytest.raises(ValueError):
        ensemble.transforms("D", variants, left)


@pytest.mark.parametrize("name", split.SUBIMAGES)
@pytest.mark.parametrize("transform", ensemble.FLIPS + ensemble.TRANSPOSED)
def test_undo_inverts_apply_but_for_the_repeated_edge(name, transform):
    grid = torch.arange(7 * 9, dtype=torch.int64).reshape(7, 9)
    back = ensemble.undo(name, ensemble.apply(name, grid, transform), transform)
    assert torch.equal(back[1:, 1:], grid[1:, 1:])


@pytest.mark.parametrize("name", split.SUBIMAGES)
def test_a_left_right_flip_is_a_mirror_of_the_full_plane_that_keeps_the_split(name):
    """On an even-sized plane the transformed grid is the subimage of the plane mirrored about the
    column W/2 (x -> W - x, which keeps every pixel's column parity), but for the repeated edge."""
    plane = torch.arange(8 * 12, dtype=torch.int64).reshape(8, 12)
    mirrored = torch.roll(plane.flip(-1), 1, dims=-1)  # mirrored[x] = plane[W - x]; column 0 stays
    got = ensemble.apply(name, split.split(plane, fill=0)[name], (True, False, False))
    want = split.split(mirrored, fill=0)[name]
    assert torch.equal(got[:, 1:], want[:, 1:])


def test_summed_passes_undo_each_transform_and_keep_the_first():
    """A "network" that returns its first input channel (a D grid): every pass, transformed back,
    gives the window's own first channel (but for the repeated edge): the sum is 8 x that channel."""
    window = torch.arange(3 * 6 * 8, dtype=torch.int64).reshape(3, 6, 8)
    chosen = ensemble.transforms("D", 8, False)
    first, (delta_sum, ell_sum) = ensemble.summed_passes(
        "D", ("D", "D", "D"), window, chosen, lambda w: (w[0].clone(), -w[0].clone()))
    assert torch.equal(first[0], window[0]) and torch.equal(first[1], -window[0])
    assert torch.equal(delta_sum[1:, 1:], 8 * window[0][1:, 1:]) and torch.equal(ell_sum, -delta_sum)


@pytest.mark.parametrize("target", split.PREDICTED)
def test_an_ensemble_is_the_mean_of_its_passes(target, monkeypatch):
    """With a network that answers the same (delta, ell) everywhere, every pass agrees, so the ensemble
    must equal the single pass exactly (a wrong divisor, e.g. 8 for B's four passes, would not)."""
    from medcodec.pipelines.subimage import SubimagePredictor

    predictor = SubimagePredictor(subimage.DEFAULT_MODEL, "cpu")
    monkeypatch.setattr(predictor, "_run_window", lambda net, target, window: (
        torch.full(window.shape[-2:], 160, dtype=torch.int64), torch.full(window.shape[-2:], 37, dtype=torch.int64)))
    plane = torch.from_numpy(np.random.default_rng(3).integers(0, 4096, (37, 50)))
    norm = split.Normalisation.of(int(plane.min()), int(plane.max()))
    normalised = {k: split.normalise(v, norm.lo, norm.shift) for k, v in split.split(plane, fill=norm.lo).items()}
    for variants in (2, 4, 8):
        both = predictor.predict_both(target, normalised, norm, variants=variants)
        assert all(np.array_equal(a, b) for a, b in zip(both[1], both[variants]))


@pytest.fixture()
def always_ensemble(monkeypatch):
    """The slow path with its ensemble kept for every subimage, whatever it saves."""
    method = SlowMethod(device="cpu")
    monkeypatch.setattr(method, "ensemble_choice", "always")
    return method


def _meta(streams):
    return unpack_side_info(next(s.payload for s in streams if s.kind == 6))


@pytest.mark.parametrize("case", ["odd", "1x1", "1xN", "Nx1", "noise", "extremes16"])
def test_ensemble_planes_round_trip(always_ensemble, case):
    plane, bits = EDGE_CASES[case]
    alternatives = always_ensemble.encode_alternatives(plane, bits)
    for layout, streams in alternatives:
        meta = _meta(streams)
        assert "ensemble" in meta["requires"] and len(meta["ensemble"]) == 3
        decoder = always_ensemble if layout == "slow" else FastMethod(device="cpu")
        assert np.array_equal(decoder.decode(streams, plane.shape, bits), plane)


def test_ensemble_same_bytes_under_other_threads_and_onednn(always_ensemble):
    plane = smooth((72, 90), 12, seed=7)
    assert "ensemble" in _meta(always_ensemble.encode(plane, 12))
    assert_coding_is_configuration_independent(always_ensemble, plane, 12)


def test_a_subimage_keeps_its_ensemble_only_where_it_pays():
    assert subimage.ENSEMBLE_MIN_GAIN == 0.01
    assert subimage._cheaper([100_000, 99_500]) == 0  # 0.5 %: not worth the decoder's passes
    assert subimage._cheaper([100_000, 99_000]) == 1
    assert subimage._cheaper([100_000, 99_950], min_gain=0.0001) == 1
    assert subimage._cheaper([100_000, 101_000]) == 0
    assert subimage._cheaper([100_000]) == 0


def test_a_plane_keeps_its_ensembles_only_where_they_pay_for_their_side_information():
    """The choices' side information is counted on the whole plane: a slow plane is never larger than
    the same coding with every pass single, and where the ensembles help nowhere, none is sent."""
    slow, single = SlowMethod(device="cpu"), SlowMethod(device="cpu", ensemble_sizes=(1, 1))
    for plane, bits in ((EDGE_CASES["odd"]), (smooth((64, 96), 16, seed=4), 16), (EDGE_CASES["flat"])):
        for (layout, chosen), (_, plain) in zip(slow.encode_alternatives(plane, bits),
                                                single.encode_alternatives(plane, bits)):
            assert subimage._stream_bytes(chosen) <= subimage._stream_bytes(plain)
            if "ensemble" not in _meta(chosen):
                assert chosen == plain
    assert "ensemble" not in _meta(slow.encode(*EDGE_CASES["flat"]))


def _rewritten(streams, change):
    meta = _meta(streams)
    change(meta)
    return [Stream(s.kind, s.index, pack_side_info(meta)) if s.kind == 6 else s for s in streams]


def test_a_reader_without_ensembles_refuses_the_plane_as_newer(always_ensemble, monkeypatch):
    plane, bits = EDGE_CASES["odd"]
    streams = always_ensemble.encode(plane, bits)
    monkeypatch.setattr(subimage, "KNOWN_FEATURES", subimage.KNOWN_FEATURES - {"ensemble"})
    with pytest.raises(UnsupportedVersionError, match="ensemble.*newer medcodec"):
        always_ensemble.decode(streams, plane.shape, bits)


@pytest.mark.parametrize("sizes", [[[3, 1]] * 3, [[8, 4]] * 3, [[8, 2]] * 2, "8x2", [[8]] * 3])
def test_damaged_ensemble_sizes_are_a_clear_error(always_ensemble, sizes):
    plane, bits = EDGE_CASES["odd"]
    streams = _rewritten(always_ensemble.encode(plane, bits), lambda meta: meta.update(ensemble=sizes))
    with pytest.raises(CorruptStreamError, match="side information"):
        always_ensemble.decode(streams, plane.shape, bits)
