"""Latent mode: exact round trips through LatentMethod with a tiny calibrated network (no shipped model
needed), the same bytes under any thread count or oneDNN setting, and damaged streams refused."""

import json

import numpy as np
import pytest

import medcodec.pipelines.latent as latent_module
from medcodec.container.format import SectionKind
from medcodec.errors import CorruptStreamError, ModelMismatchError, UnsupportedVersionError
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
    extra = streams[3].payload  # escapes' raw bytes under uniform tables: a word more may decode to other
    # values (the file's pixel checksum refuses them), never to the original
    with pytest.raises(CorruptStreamError):
        method.decode(_replace(streams, SectionKind.RESIDUAL, 1, extra[:-1]), plane.shape, bits)
    try:
        decoded = method.decode(_replace(streams, SectionKind.RESIDUAL, 1, extra + b"\x01\x00\x00\x00"),
                                plane.shape, bits)
    except CorruptStreamError:
        return
    assert not np.array_equal(decoded, plane)


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


def _background_plane():
    """12-bit noise on two thirds of the plane, zero elsewhere: the mammogram's case for class offsets."""
    rng = np.random.default_rng(11)
    plane = np.zeros((96, 120), dtype=np.uint16)
    plane[:, 40:] = np.clip(2000 + rng.normal(0, 40, (96, 80)), 0, 4095).astype(np.uint16)
    return plane, 12


def test_classes_follow_the_scale_and_the_extremes():
    norm = latent_module.sp.Normalisation(100, 2)
    ell = np.array([16, 16 + 4, 16 + 4 * 40, 0, 16, 16], dtype=np.int64)  # 16 = 8 * shift: normalised 0
    mu = np.array([1700, 1700, 1700, 1700, 1600, 16 * 900], dtype=np.int64)
    assert latent_module.pixel_classes(mu, ell, norm, 900).tolist() == [
        0, 1, latent_module.SCALE_CLASSES - 1, 0, latent_module.FLOOR_CLASS, latent_module.CEILING_CLASS]


def test_class_offsets_are_sent_where_they_pay_and_decode_exactly(method):
    plane, bits = _background_plane()
    streams = method.encode(plane, bits)
    meta = unpack_side_info(streams[0].payload)
    assert meta["requires"] == ["classes"] and meta["hi"] == int(plane.max()) and meta["scale_adjust"] == 0
    assert len(meta["class_offsets"]) == latent_module.CLASSES
    assert np.array_equal(method.decode(streams, plane.shape, bits), plane)


def test_a_frame_without_class_offsets_still_decodes(method, monkeypatch):
    """A 2.23 frame (one calibration for the plane) is what the encoder writes where offsets do not pay."""
    plane, bits = _background_plane()
    monkeypatch.setattr(latent_module.class_offsets, "fit", lambda *a, **k: ((0, 0),) * latent_module.CLASSES)
    streams = method.encode(plane, bits)
    meta = unpack_side_info(streams[0].payload)
    assert "class_offsets" not in meta and "requires" not in meta
    assert np.array_equal(method.decode(streams, plane.shape, bits), plane)


@pytest.mark.parametrize("change", [{"hi": 5000}, {"hi": "x"}, {"class_offsets": [[0, 0]] * 3},
                                    {"class_offsets": [[999, 0]] * 18}, {"requires": []}])
def test_damaged_class_offsets_are_refused(method, change):
    plane, bits = _background_plane()
    streams = method.encode(plane, bits)
    meta = {**unpack_side_info(streams[0].payload), **change}
    with pytest.raises(CorruptStreamError):
        method.decode(_replace(streams, SectionKind.PLANE_META, 0, json.dumps(meta).encode()), plane.shape, bits)


def test_a_feature_from_a_newer_medcodec_is_refused_as_such(method):
    plane, bits = EDGE_CASES["odd"]
    streams = method.encode(plane, bits)
    meta = {**unpack_side_info(streams[0].payload), "requires": ["a-later-feature"]}
    with pytest.raises(UnsupportedVersionError, match="upgrade medcodec"):
        method.decode(_replace(streams, SectionKind.PLANE_META, 0, json.dumps(meta).encode()), plane.shape, bits)


def test_shipped_model_round_trip():
    try:
        method = LatentMethod(device="cpu")
    except ModelMismatchError as exc:
        pytest.skip(f"latent-v2 is not installed: {exc}")
    plane, bits = smooth((96, 104), 12, seed=7), 12
    assert np.array_equal(method.decode(method.encode(plane, bits), plane.shape, bits), plane)
