"""Latent mode: exact round trips through LatentMethod with a tiny calibrated network (no shipped model
needed), the same bytes under any thread count or oneDNN setting, and damaged streams refused."""

import json

import numpy as np
import pytest

import medcodec.pipelines.latent as latent_module
from medcodec.container.format import SectionKind
from medcodec.errors import CorruptStreamError, ModelMismatchError
from medcodec.pipelines.base import Stream, unpack_side_info
from medcodec.pipelines.latent import LatentMethod, LatentPredictor

from planes import EDGE_CASES, smooth
from torch_configs import under_two_configurations
from test_networks_lvp import tiny_net


@pytest.fixture(scope="module")
def method():
    net = tiny_net(seed=1)
    return LatentMethod(predictor=LatentPredictor(net, net.export_integer(), "cpu"))


@pytest.mark.parametrize("case", sorted(EDGE_CASES))
def test_roundtrip_is_exact(method, case):
    plane, bits = EDGE_CASES[case]
    streams = method.encode(plane, bits)
    assert [(int(s.kind), s.index) for s in streams] == [
        (SectionKind.PLANE_META, 0), (SectionKind.LATENT_Z, 0), (SectionKind.RESIDUAL, 0), (SectionKind.RESIDUAL, 1)]
    assert np.array_equal(method.decode(streams, plane.shape, bits), plane)


def test_meta_reports_the_bits_of_z_and_residuals(method):
    plane, bits = EDGE_CASES["odd"]
    streams = method.encode(plane, bits)
    meta = unpack_side_info(streams[0].payload)
    assert meta["latent"] == [4, 5, 7]
    assert meta["z_bits"] == 8 * len(streams[1].payload)
    assert meta["residual_bits"] == 8 * (len(streams[2].payload) + len(streams[3].payload))


def test_banded_prediction_equals_one_pass(method, monkeypatch):
    plane, bits = smooth((150, 60), 16, seed=3), 16
    whole = method.encode(plane, bits)
    monkeypatch.setattr(latent_module, "BAND_ROWS", 3)  # many bands, each with its halo
    assert method.encode(plane, bits) == whole
    assert np.array_equal(method.decode(whole, plane.shape, bits), plane)


def test_same_bytes_under_other_threads_and_onednn(method):
    plane, bits = smooth((72, 90), 16, seed=5), 16
    one_way, other_way = under_two_configurations(lambda: method.encode(plane, bits))
    assert one_way == other_way
    decoded, _ = under_two_configurations(lambda: method.decode(one_way, plane.shape, bits))
    assert np.array_equal(decoded, plane)


def _replace(streams, kind, index, payload):
    return [Stream(s.kind, s.index, payload) if (int(s.kind), s.index) == (kind, index) else s for s in streams]


@pytest.mark.parametrize("kind,index", [(SectionKind.LATENT_Z, 0), (SectionKind.RESIDUAL, 0),
                                        (SectionKind.RESIDUAL, 1), (SectionKind.PLANE_META, 0)])
def test_missing_stream_is_a_clear_error(method, kind, index):
    plane, bits = EDGE_CASES["odd"]
    streams = [s for s in method.encode(plane, bits) if (int(s.kind), s.index) != (kind, index)]
    with pytest.raises(CorruptStreamError):
        method.decode(streams, plane.shape, bits)


def test_damaged_latent_is_refused(method):
    plane, bits = EDGE_CASES["odd"]
    streams = method.encode(plane, bits)
    z = streams[1].payload
    damaged = [z[:-1], z + b"\x00", z[:-3] + bytes([z[-3] ^ 0x10]) + z[-2:]]
    # a z of another latent's size, and values outside int8
    from medcodec.entropy.huffman import huffman_encode
    damaged += [huffman_encode(np.zeros(4 * 5 * 6, np.int64)), huffman_encode(np.full(4 * 5 * 7, 300))]
    for payload in damaged:
        with pytest.raises(CorruptStreamError):
            method.decode(_replace(streams, SectionKind.LATENT_Z, 0, payload), plane.shape, bits)


def test_damaged_residuals_are_refused(method):
    plane, bits = EDGE_CASES["noise"]
    streams = method.encode(plane, bits)
    r = streams[2].payload
    for payload in (r[:-4], r + b"\x01\x00\x00\x00", r[:-1]):
        with pytest.raises(CorruptStreamError):
            method.decode(_replace(streams, SectionKind.RESIDUAL, 0, payload), plane.shape, bits)
    extra = streams[3].payload
    for payload in (extra + b"\x01\x00\x00\x00", extra[:-1]):
        with pytest.raises(CorruptStreamError):
            method.decode(_replace(streams, SectionKind.RESIDUAL, 1, payload), plane.shape, bits)


def test_damaged_raw_bits_never_pass_as_the_original(method):
    """Uniform raw low bits carry no redundancy: a dropped word can decode to other values, which the
    codec's pixel checksum then refuses; the method itself must never return the original by luck."""
    plane, bits = EDGE_CASES["noise"]
    streams = method.encode(plane, bits)
    try:
        decoded = method.decode(_replace(streams, SectionKind.RESIDUAL, 1, streams[3].payload[:-4]), plane.shape, bits)
    except CorruptStreamError:
        return
    assert not np.array_equal(decoded, plane)


@pytest.mark.parametrize("change", [{"latent": [4, 9, 9]}, {"lo": -1}, {"shift": 9}, {"scale_adjust": 10**6},
                                    {"latent": "x"}])
def test_damaged_side_information_is_refused(method, change):
    plane, bits = EDGE_CASES["odd"]
    streams = method.encode(plane, bits)
    meta = {**unpack_side_info(streams[0].payload), **change}
    with pytest.raises(CorruptStreamError):
        method.decode(_replace(streams, SectionKind.PLANE_META, 0, json.dumps(meta).encode()), plane.shape, bits)


def test_shipped_model_round_trip():
    try:
        method = LatentMethod(device="cpu")
    except ModelMismatchError as exc:
        pytest.skip(f"latent-v2 is not installed: {exc}")
    plane, bits = smooth((96, 104), 12, seed=7), 12
    assert np.array_equal(method.decode(method.encode(plane, bits), plane.shape, bits), plane)
