"""Fast and slow subimage paths with the shipped weights: exact round trips, and the same bytes under
any thread count, oneDNN setting or batch, so a file encoded anywhere decodes anywhere."""

import numpy as np
import pytest

from medcodec.errors import CorruptStreamError
from medcodec.pipelines.base import Stream
from medcodec.pipelines.subimage import FastMethod, SlowMethod

from planes import EDGE_CASES, smooth
from torch_configs import assert_coding_is_configuration_independent


@pytest.fixture(scope="module", params=[FastMethod, SlowMethod], ids=["fast", "slow"])
def method(request):
    try:
        return request.param(device="cpu")
    except Exception as exc:  # a model without LC-L inputs cannot run the slow path
        pytest.skip(f"{request.param.name} unavailable with the shipped model: {exc}")


@pytest.mark.parametrize("case", sorted(EDGE_CASES))
def test_roundtrip_is_exact(method, case):
    plane, bits = EDGE_CASES[case]
    streams = method.encode(plane, bits)
    assert np.array_equal(method.decode(streams, plane.shape, bits), plane)


def test_flat_plane_costs_almost_nothing_beyond_subimage_a(method):
    plane, bits = EDGE_CASES["flat"]
    residual = sum(len(s.payload) for s in method.encode(plane, bits) if s.kind == 4)
    assert residual <= 64


def test_same_bytes_under_other_threads_and_onednn(method):
    assert_coding_is_configuration_independent(method, smooth((72, 90), 16, seed=5), 16)


def test_missing_stream_is_a_clear_error(method):
    plane, bits = EDGE_CASES["odd"]
    streams = [s for s in method.encode(plane, bits) if not (s.kind == 4 and s.index == 1)]
    with pytest.raises(CorruptStreamError):
        method.decode(streams, plane.shape, bits)


def test_damaged_side_information_is_a_clear_error(method):
    plane, bits = EDGE_CASES["odd"]
    streams = [Stream(s.kind, s.index, b"{}") if s.kind == 6 else s for s in method.encode(plane, bits)]
    with pytest.raises(CorruptStreamError):
        method.decode(streams, plane.shape, bits)


def test_tiled_prediction_roundtrip_and_bounded_windows(method, monkeypatch):
    """Large planes are predicted tile by tile; shrink the tile so a small plane crosses several."""
    import medcodec.pipelines.subimage as subimage

    monkeypatch.setattr(subimage, "TILE", 24)
    monkeypatch.setattr(subimage, "HALO", 8)
    seen = []
    run = subimage.SubimagePredictor._run_window

    def spy(self, net, target, window):
        seen.append(window.shape[-2:])
        return run(self, net, target, window)

    monkeypatch.setattr(subimage.SubimagePredictor, "_run_window", spy)
    plane, bits = smooth((101, 77), 16, seed=9), 16
    streams = method.encode(plane, bits)
    assert np.array_equal(method.decode(streams, plane.shape, bits), plane)
    assert max(h * w for h, w in seen) <= (24 + 16) ** 2


@pytest.mark.parametrize("choice", ["split", "whole"])
def test_slow_round_trips_either_way_of_coding_a_subimage(choice, monkeypatch):
    from medcodec.pipelines.base import unpack_side_info
    from medcodec.pipelines.subimage import WHOLE_SET

    slow = SlowMethod(device="cpu")
    monkeypatch.setattr(slow, "set_choice", choice)
    plane, bits = EDGE_CASES["odd"]
    streams = slow.encode(plane, bits)
    meta = unpack_side_info(next(s.payload for s in streams if s.kind == 6))
    residual_indices = sorted(s.index for s in streams if s.kind == 4)
    if choice == "whole":
        assert meta["left_pass"] == [WHOLE_SET] * 3 and "whole_set" in meta["requires"]
        assert residual_indices == [0, 1, 4, 5, 8, 9]  # each subimage's odd-column pair is absent
    else:
        assert WHOLE_SET not in meta["left_pass"] and residual_indices == list(range(12))
    assert np.array_equal(slow.decode(streams, plane.shape, bits), plane)


def test_slow_costs_no_more_than_fast():
    """Each subimage of the slow path may be coded whole, exactly as the fast path codes it; only the
    per-subimage choice in the side information is extra (an ensemble is kept only where it saves
    more than the side information it adds)."""
    from medcodec.container import SECTION_OVERHEAD

    fast, slow = FastMethod(device="cpu"), SlowMethod(device="cpu")
    for plane, bits in (EDGE_CASES["odd"], (smooth((96, 120), 12, seed=3), 12)):
        fast_bytes, slow_bytes = [sum(len(s.payload) + SECTION_OVERHEAD for s in m.encode(plane, bits))
                                  for m in (fast, slow)]
        assert slow_bytes <= fast_bytes + len('"left_pass":[2,2,2],"requires":["whole_set"],')


def test_unknown_left_pass_value_is_a_clear_error():
    from medcodec.pipelines.base import pack_side_info, unpack_side_info

    slow = SlowMethod(device="cpu")
    plane, bits = EDGE_CASES["odd"]
    streams = slow.encode(plane, bits)
    meta = unpack_side_info(next(s.payload for s in streams if s.kind == 6))
    meta["left_pass"][0] = 3
    damaged = [Stream(s.kind, s.index, pack_side_info(meta)) if s.kind == 6 else s for s in streams]
    with pytest.raises(CorruptStreamError):
        slow.decode(damaged, plane.shape, bits)
