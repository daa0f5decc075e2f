"""The encoder-fitted refinement of the subimage paths: integer-exact application, validated side
information, chosen where it pays (fine 16-bit texture), and bit-exact under other configurations."""

import numpy as np
import pytest
import torch

from medcodec.errors import CorruptStreamError, UnsupportedVersionError
from medcodec.pipelines import refine
from medcodec.pipelines import split as sp
from medcodec.pipelines.base import unpack_side_info
from medcodec.pipelines.subimage import FastMethod, SlowMethod

from planes import fine_texture, smooth
from side_info import with_meta
from torch_configs import assert_coding_is_configuration_independent


@pytest.fixture(scope="module", params=[FastMethod, SlowMethod], ids=["fast", "slow"])
def method(request):
    return request.param(device="cpu")


def _ring(plane, target="B", own=None):
    subs = sp.split(torch.from_numpy(plane.astype(np.int64)), fill=int(plane.min()))
    pixels = sp.valid_mask(*plane.shape, target).numpy()
    return refine.NeighbourRing(target, subs, pixels, own), subs, pixels


def test_apply_is_the_documented_integer_formula():
    plane = smooth((30, 26), 16, seed=3).astype(np.int64)
    ring, _, pixels = _ring(plane)
    rng = np.random.default_rng(0)
    mu = rng.integers(0, 16 << 16, pixels.sum())
    ell = rng.integers(0, 160, pixels.sum())
    weights = tuple(int(w) for w in rng.integers(-600, 600, len(ring)))
    bins = tuple((int(e), int(m)) for e, m in rng.integers(-9, 9, (refine.ACTIVITY_BINS, 2)))
    got_mu, got_ell = refine.apply(mu, ell, ring, refine.Refinement(weights, bins))
    neighbours = np.stack([ring.values(k) for k in range(len(ring))], axis=1)
    near = neighbours[:, :4]
    spread = np.abs(4 * near - near.sum(1, keepdims=True)).sum(1)
    activity = np.minimum([int(s).bit_length() for s in spread], refine.ACTIVITY_BINS - 1)
    correction = [sum(w * (16 * int(n) - int(m)) for w, n in zip(weights, row)) // 256
                  for row, m in zip(neighbours, mu)]
    assert np.array_equal(got_mu, mu + np.array(correction) + np.array([bins[a][1] for a in activity]))
    assert np.array_equal(got_ell, ell + np.array([bins[a][0] for a in activity]))


def test_own_row_neighbours_only_in_later_column_sets():
    plane = smooth((20, 24), 12)
    assert len(_ring(plane, "C")[0]) == len(refine.RING["C"])
    assert len(_ring(plane, "C", own=torch.zeros(10, 12, dtype=torch.int64))[0]) == len(refine.RING["C"]) + 2


@pytest.mark.parametrize("bad", [
    {"w": [1] * 7, "bins": [[0, 0]] * refine.ACTIVITY_BINS},  # one weight short
    {"w": [refine.MAX_WEIGHT + 1] + [0] * 7, "bins": [[0, 0]] * refine.ACTIVITY_BINS},
    {"w": [0] * 8, "bins": [[0, 0]] * (refine.ACTIVITY_BINS - 1)},
    {"w": [0] * 8, "bins": [[0, 999]] * refine.ACTIVITY_BINS},
    {"w": [0] * 8},
])
def test_side_information_is_validated(bad):
    with pytest.raises((ValueError, TypeError, KeyError)):
        refine.Refinement.from_json(bad, 8)


def test_fine_16_bit_texture_is_refined_and_exact(method):
    plane = fine_texture((72, 90))
    streams = method.encode(plane, 16)
    meta = unpack_side_info(streams[0].payload)
    assert "refine" in meta["requires"] and all(r is not None for r in meta["refine"])
    assert np.array_equal(method.decode(streams, plane.shape, 16), plane)
    # and it pays: without the refinement the same plane costs more
    plain = type(method)(device="cpu", use_refinement=False)
    unrefined = plain.encode(plane, 16)
    assert "refine" not in unpack_side_info(unrefined[0].payload)
    assert sum(len(s.payload) for s in streams) < 0.97 * sum(len(s.payload) for s in unrefined)


def test_refined_streams_are_the_same_under_other_configurations(method):
    assert_coding_is_configuration_independent(method, fine_texture((64, 70), seed=2), 16)


def test_unknown_required_feature_says_upgrade(method):
    plane = fine_texture((72, 90))
    streams = with_meta(method.encode(plane, 16), lambda m: m.update(requires=["refine", "from-the-future"]))
    with pytest.raises(UnsupportedVersionError, match="upgrade"):
        method.decode(streams, plane.shape, 16)


@pytest.mark.parametrize("damage", [
    lambda m: m["refine"][0].update(w=[10**6] * len(m["refine"][0]["w"])),  # weight out of range
    lambda m: m["refine"].extend([m["refine"][0]] * 4),  # more entries than coded sets
    lambda m: m["refine"].pop(),  # fewer
    lambda m: m.update(refine={"w": [1]}),  # not a list
    lambda m: m.update(requires=[["refine"]]),  # unhashable feature name
], ids=["weight", "extra-sets", "missing-set", "not-a-list", "bad-requires"])
def test_damaged_refinement_is_corrupt(method, damage):
    plane = fine_texture((72, 90))
    streams = with_meta(method.encode(plane, 16), damage)
    with pytest.raises(CorruptStreamError):
        method.decode(streams, plane.shape, 16)


def test_neighbours_are_the_shifted_grids_with_replicated_edges():
    """ring.values(k) is x[i + dr, j + dc] of the k-th ring entry at every pixel of the set, edges
    replicated (split._shifted), in raster order, for any set of pixels."""
    rng = np.random.default_rng(0)
    plane = rng.integers(0, 4096, (37, 51))
    subs = sp.split(torch.from_numpy(plane), fill=0)
    for target in sp.PREDICTED:
        pixels = sp.valid_mask(37, 51, target).numpy() & (rng.random((19, 26)) < 0.7)
        own = subs[target].clone()
        ring = refine.NeighbourRing(target, subs, pixels, own)
        entries = [(subs[name], dr, dc) for name, dr, dc in refine.RING[target]]
        entries += [(own, dr, dc) for dr, dc in refine.OWN_ROW]
        for k, (grid, dr, dc) in enumerate(entries):
            assert np.array_equal(ring.values(k), sp._shifted(grid, dr, dc).numpy()[pixels])
