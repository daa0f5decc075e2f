"""Latent mode: exact round trips through LatentMethod with a tiny calibrated network (no shipped model
needed), the same bytes under any thread count or oneDNN setting, and damaged streams refused."""

import json

import numpy as np
import pytest
import torch

import medcodec.pipelines.latent as latent_module
from medcodec.container.format import SectionKind
from medcodec.errors import CorruptStreamError, ModelMismatchError
from medcodec.pipelines.base import Stream
from medcodec.pipelines.latent import LatentMethod, LatentPredictor

from test_networks_lvp import tiny_net


@pytest.fixture(scope="module")
def method():
    net = tiny_net(seed=1)
    return LatentMethod(predictor=LatentPredictor(net, net.export_integer(), "cpu"))


def _smooth(shape, bits, seed=0):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0 : shape[0], 0 : shape[1]]
    base = (np.sin(x / 7.0) + np.cos(y / 11.0) + 2) / 4 * ((1 << bits) - 1)
    return np.clip(base + rng.normal(0, (1 << bits) / 200, shape), 0, (1 << bits) - 1).astype(np.uint16)


CASES = {
    "1x1": (np.array([[7]], np.uint16), 8),
    "1xN": (np.arange(13, dtype=np.uint16)[None, :], 8),
    "Nx1": (np.arange(9, dtype=np.uint16)[:, None] * 1000, 16),
    "odd": (_smooth((37, 53), 12), 12),
    "flat": (np.full((40, 40), 1234, np.uint16), 16),
    "noise": (np.random.default_rng(1).integers(0, 1 << 16, (31, 30)).astype(np.uint16), 16),
    "extremes16": (np.tile(np.array([[0, 65535], [65535, 0]], np.uint16), (9, 11)), 16),
    "extremes12": (np.tile(np.array([[0, 4095], [4095, 0]], np.uint16), (5, 8)), 12),
    "smooth8": (_smooth((64, 80), 8), 8),
    "bits1": (np.random.default_rng(2).integers(0, 2, (20, 21)).astype(np.uint16), 1),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_roundtrip_is_exact(method, case):
    plane, bits = CASES[case]
    streams = method.encode(plane, bits)
    assert [(int(s.kind), s.index) for s in streams] == [
        (SectionKind.PLANE_META, 0), (SectionKind.LATENT_Z, 0), (SectionKind.RESIDUAL, 0), (SectionKind.RESIDUAL, 1)]
    assert np.array_equal(method.decode(streams, plane.shape, bits), plane)


def test_meta_reports_the_bits_of_z_and_residuals(method):
    plane, bits = CASES["odd"]
    streams = method.encode(plane, bits)
    meta = json.loads(streams[0].payload)
    assert meta["latent"] == [4, 5, 7]
    assert meta["z_bits"] == 8 * len(streams[1].payload)
    assert meta["residual_bits"] == 8 * (len(streams[2].payload) + len(streams[3].payload))


def test_banded_prediction_equals_one_pass(method, monkeypatch):
    plane, bits = _smooth((150, 60), 16, seed=3), 16
    whole = method.encode(plane, bits)
    monkeypatch.setattr(latent_module, "BAND_ROWS", 3)  # many bands, each with its halo
    assert method.encode(plane, bits) == whole
    assert np.array_equal(method.decode(whole, plane.shape, bits), plane)


def test_same_bytes_under_other_threads_and_onednn(method):
    plane, bits = _smooth((72, 90), 16, seed=5), 16
    old = torch.get_num_threads(), torch.backends.mkldnn.enabled
    try:
        torch.set_num_threads(1)
        torch.backends.mkldnn.enabled = False
        one_way = method.encode(plane, bits)
        torch.set_num_threads(2)
        torch.backends.mkldnn.enabled = True
        other_way = method.encode(plane, bits)
        decoded = method.decode(one_way, plane.shape, bits)
    finally:
        torch.set_num_threads(old[0])
        torch.backends.mkldnn.enabled = old[1]
    assert one_way == other_way
    assert np.array_equal(decoded, plane)


def _replace(streams, kind, index, payload):
    return [Stream(s.kind, s.index, payload) if (int(s.kind), s.index) == (kind, index) else s for s in streams]


@pytest.mark.parametrize("kind,index", [(SectionKind.LATENT_Z, 0), (SectionKind.RESIDUAL, 0),
                                        (SectionKind.RESIDUAL, 1), (SectionKind.PLANE_META, 0)])
def test_missing_stream_is_a_clear_error(method, kind, index):
    plane, bits = CASES["odd"]
    streams = [s for s in method.encode(plane, bits) if (int(s.kind), s.index) != (kind, index)]
    with pytest.raises(CorruptStreamError):
        method.decode(streams, plane.shape, bits)


def test_damaged_latent_is_refused(method):
    plane, bits = CASES["odd"]
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
    plane, bits = CASES["noise"]
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
    plane, bits = CASES["noise"]
    streams = method.encode(plane, bits)
    try:
        decoded = method.decode(_replace(streams, SectionKind.RESIDUAL, 1, streams[3].payload[:-4]), plane.shape, bits)
    except CorruptStreamError:
        return
    assert not np.array_equal(decoded, plane)


@pytest.mark.parametrize("change", [{"latent": [4, 9, 9]}, {"lo": -1}, {"shift": 9}, {"scale_adjust": 10**6},
                                    {"latent": "x"}])
def test_damaged_side_information_is_refused(method, change):
    plane, bits = CASES["odd"]
    streams = method.encode(plane, bits)
    meta = {**json.loads(streams[0].payload), **change}
    with pytest.raises(CorruptStreamError):
        method.decode(_replace(streams, SectionKind.PLANE_META, 0, json.dumps(meta).encode()), plane.shape, bits)


def test_shipped_model_round_trip():
    try:
        method = LatentMethod(device="cpu")
    except ModelMismatchError as exc:
        pytest.skip(f"latent-v1 is not installed: {exc}")
    plane, bits = _smooth((96, 104), 12, seed=7), 12
    assert np.array_equal(method.decode(method.encode(plane, bits), plane.shape, bits), plane)
