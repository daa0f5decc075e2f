"""Block-phase offsets: the documented integer rule, the encoder's keep-or-drop decision, validation of
the side information, and exact round trips of planes that use them."""

import numpy as np
import pytest

from medcodec.entropy import residual_model as rm
from medcodec.errors import CorruptStreamError
from medcodec.pipelines import block_phase
from medcodec.pipelines.base import unpack_side_info
from medcodec.pipelines.subimage import FastMethod, SlowMethod

from planes import jpeg_blocked, smooth
from side_info import assert_feature_used_exact_and_paying, with_meta
from torch_configs import assert_coding_is_configuration_independent


@pytest.fixture(scope="module", params=[FastMethod, SlowMethod], ids=["fast", "slow"])
def method(request):
    return request.param(device="cpu")


def test_class_is_the_place_in_the_8x8_grid_of_the_full_image():
    pixels = np.zeros((9, 10), bool)
    pixels[::2, 1:] = True
    rows, cols = np.nonzero(pixels)
    assert np.array_equal(block_phase.classes(pixels), (rows % 4) * 4 + cols % 4)


def test_apply_adds_each_class_offset():
    offsets = tuple((k, -k) for k in range(block_phase.CLASSES))
    mu, ell = np.array([160, 160, 0]), np.array([10, 10, 0])
    got_mu, got_ell = block_phase.apply(mu, ell, np.array([0, 5, 15]), offsets)
    assert got_mu.tolist() == [160, 155, -15] and got_ell.tolist() == [10, 15, 15]


def _synthetic(bias_class=None, bias=0):
    rng = np.random.default_rng(0)
    pixel_classes = np.tile(np.arange(block_phase.CLASSES), 4000)
    mu = np.full(pixel_classes.size, 100 * rm.MEAN_ONE + rm.MEAN_ONE // 2)
    values = 100 + np.round(rng.logistic(0, 2.0, pixel_classes.size)).astype(np.int64)
    if bias_class is not None:
        values[pixel_classes == bias_class] += bias
    ell = np.full(pixel_classes.size, 40)  # scale 2 samples, as drawn
    return values, mu, ell, pixel_classes


def test_fit_drops_offsets_that_do_not_pay():
    assert block_phase.fit(*_synthetic()) is None


def test_fit_finds_a_biased_class():
    offsets = block_phase.fit(*_synthetic(bias_class=7, bias=3))
    assert offsets is not None
    assert offsets[7][1] > 0 and all(abs(m) <= 2 for k, (_, m) in enumerate(offsets) if k != 7)


@pytest.mark.parametrize("bad", [
    [[0, 0]] * 15,  # too few classes
    [[0, 0, 0]] * 16,  # not pairs
    [[0, True]] * 16,  # a JSON boolean is not an offset
    [[0, 999]] * 16,  # mean out of range
    [[10**6, 0]] * 16,  # scale out of range
    {"0": [0, 0]},  # not a list
])
def test_side_information_is_validated(bad):
    with pytest.raises((ValueError, TypeError)):
        block_phase.from_json(bad)


def test_jpeg_blocked_plane_uses_offsets_and_is_exact(method):
    # and they pay: without them the same plane costs more
    assert_feature_used_exact_and_paying(method, jpeg_blocked((96, 120)), 8, "phase", use_block_phase=False)


def test_a_plane_without_blocks_carries_no_offsets():
    streams = FastMethod(device="cpu").encode(smooth((64, 80), 8), 8)
    assert "phase" not in unpack_side_info(streams[0].payload)


def test_same_bytes_under_other_configurations(method):
    assert_coding_is_configuration_independent(method, jpeg_blocked((64, 72), seed=3), 8)


@pytest.mark.parametrize("damage", [
    lambda m: m["phase"].append(None),  # more entries than coded sets
    lambda m: m["phase"].pop(),  # fewer
    lambda m: m.update(phase=[[[0, 99]] * 16] * len(m["phase"])),  # out of range
    lambda m: m.update(phase="none"),  # not a list
], ids=["extra-sets", "missing-set", "range", "not-a-list"])
def test_damaged_offsets_are_corrupt(method, damage):
    plane = jpeg_blocked((96, 120))
    streams = with_meta(method.encode(plane, 8), damage)
    with pytest.raises(CorruptStreamError):
        method.decode(streams, plane.shape, 8)
