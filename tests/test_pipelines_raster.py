"""Raster method: exact round trips of every edge case, the wavefront order, the shared integer
arithmetic, damaged streams as clear errors, and the codec keeping it where it is smallest."""

from pathlib import Path

import numpy as np
import pytest

from medcodec import codec
from medcodec.container.format import SectionKind
from medcodec.errors import CorruptStreamError, ModelMismatchError, UnsupportedVersionError
from medcodec.networks import raster_mlp
from medcodec.pipelines import get_method, raster
from medcodec.pipelines.base import Stream, pack_side_info, unpack_side_info
from medcodec.pipelines.raster import RasterMethod

from planes import (EDGE_CASES, drifting_lattice, drifting_step_lattice, floored_noise, regional_textures, smooth,
                    turning_stripes, uneven_values, upscaled)

EXAMPLES = Path(__file__).resolve().parent.parent / "medcodec" / "data" / "examples"


def noisy_ct(shape=(96, 80), seed=0):
    """A 12-bit CT-like slice: a disc of tissue with strong noise on a flat background, the kind of plane
    the raster method is for."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0 : shape[0], 0 : shape[1]]
    inside = (y - shape[0] / 2) ** 2 + (x - shape[1] / 2) ** 2 < (min(shape) / 2.4) ** 2
    tissue = 1000 + 60 * np.sin(x / 6.0) + 40 * np.cos(y / 9.0) + rng.normal(0, 18, shape)
    return np.where(inside, tissue, 24).clip(0, 4095).astype(np.uint16)


def dense_noise(shape=(48, 40), seed=0):
    """12-bit tissue-like noise on a smooth trend, every value between the extremes used (no palette)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0 : shape[0], 0 : shape[1]]
    return (1000 + 60 * np.sin(x / 6.0) + 40 * np.cos(y / 9.0) + rng.normal(0, 18, shape)).astype(np.uint16)


def round_trip(plane, bits, **options):
    method = RasterMethod(**options)
    streams = method.encode(plane, bits)
    decoded = method.decode(streams, plane.shape, bits)
    assert decoded.dtype == np.uint16 and np.array_equal(decoded, plane)
    return streams


@pytest.mark.parametrize("name", sorted(EDGE_CASES))
def test_edge_cases_round_trip(name):
    plane, bits = EDGE_CASES[name]
    round_trip(plane, bits)


@pytest.mark.parametrize("bits", [2, 8, 10, 14, 16])
def test_noise_of_every_depth_round_trips(bits):
    # uniform noise: escapes (16-bit raw values) and shed low bits in the raw-bit stream
    plane = np.random.default_rng(bits).integers(0, 1 << bits, (23, 29)).astype(np.uint16)
    round_trip(plane, bits)


def test_noisy_ct_round_trips_below_its_histogram_entropy():
    plane = noisy_ct()
    streams = round_trip(plane, 12)
    size = sum(len(s.payload) for s in streams)  # side information and raw low bits included
    values, counts = np.unique(plane, return_counts=True)
    order0 = -(counts * np.log2(counts / plane.size)).sum() / 8
    assert size < 0.95 * order0  # the prediction is doing work


def test_wavefronts_visit_every_pixel_once_after_its_neighbours():
    layout = raster.layout.Layout((7, 11))
    seen = np.full((7, 11), -1)
    for t in range(layout.wavefronts):
        rows, cols = layout.wavefront(t)
        assert (seen[rows, cols] == -1).all()
        seen[rows, cols] = t
    assert (seen >= 0).all()
    for dy, dx in raster.layout.OFFSETS:  # every in-plane neighbour is on an earlier wavefront
        for i in range(7):
            for j in range(11):
                if 0 <= i + dy < 7 and 0 <= j + dx < 11:
                    assert seen[i + dy, j + dx] < seen[i, j]


def test_template_stays_inside_the_padding():
    assert min(dy for dy, _ in raster.layout.OFFSETS) == -raster.layout.PAD_TOP
    assert min(dx for _, dx in raster.layout.OFFSETS) == -raster.layout.PAD_LEFT
    assert max(dx for _, dx in raster.layout.OFFSETS) == raster.layout.PAD_RIGHT
    assert all(dy < 0 or dx < 0 for dy, dx in raster.layout.OFFSETS)


def test_decoder_arithmetic_equals_the_encoders():
    # the encoder computes every pixel's table at once, the decoder wavefront by wavefront: same tables
    plane = noisy_ct((40, 33), seed=3)
    analysis = raster.analysis.Analysis(plane, 12)
    params = raster.coding.pixel_params(analysis.model, analysis.mu, analysis.buckets)
    layout = analysis.layout
    grid = analysis.grid.copy()
    size = grid.size
    errors1, errors2 = np.zeros(size, np.int64), np.zeros(size, np.int64)
    index = layout.flat(*np.divmod(np.arange(plane.size), plane.shape[1]))
    errors1[index] = raster.prediction.error(analysis.values, analysis.mu1)
    errors2[index] = analysis.errors2
    for t in (0, 5, 40, layout.wavefronts - 1):
        rows, cols = layout.wavefront(t)
        taps = layout.flat(rows, cols)[:, None] + layout.offsets[None, :]
        nb = grid[taps]
        activity = raster.prediction.activity(nb)
        cls = raster.prediction.classes(activity, layout.border(rows, cols), analysis.model.class_shift)
        mu1 = raster.prediction.first_stage(nb, cls, analysis.model.first, analysis.top)
        mu = raster.prediction.second_stage(mu1, errors1[taps[:, : raster.layout.ERROR_TAPS]], cls, analysis.model.second, analysis.top)
        scale_sum = raster.prediction.scale_sum(errors2[taps[:, : raster.layout.SCALE_TAPS]], activity, analysis.model)
        buckets = bucket_of(raster.prediction.linear_keys(scale_sum), analysis.model)
        flat = rows * plane.shape[1] + cols
        assert np.array_equal(raster.coding.pixel_params(analysis.model, mu, buckets).table, params.table[flat])


def test_encoder_neighbour_gathers_are_numpys_slices_and_fancy_indexing():
    # the compiled gathers that feed the encoder's fits and bands: the numpy definitions they replaced
    rng = np.random.default_rng(3)
    analysis = raster.analysis.Analysis(rng.integers(0, 4096, (37, 53)), 12)
    grid = analysis.grid.reshape(analysis.layout.padded_shape)
    for first_row, end_row in ((0, 37), (5, 6), (30, 37)):
        for taps in (len(raster.layout.OFFSETS), raster.layout.SCALE_TAPS):
            want = np.stack([grid[raster.layout.PAD_TOP + dy + first_row:raster.layout.PAD_TOP + dy + end_row,
                                  raster.layout.PAD_LEFT + dx:raster.layout.PAD_LEFT + dx + 53].ravel()
                             for dy, dx in raster.layout.OFFSETS[:taps]], axis=1)
            got = analysis._band_taps(grid, first_row, end_row, taps)
            assert got.dtype == grid.dtype and np.array_equal(got, want)
    index = analysis.sample_index
    want = analysis.grid[index[:, None] + analysis.layout.offsets[None, :]]
    assert np.array_equal(analysis._taps_at(grid, len(raster.layout.OFFSETS)), want)
    assert np.array_equal(analysis._taps_at(grid.astype(np.int32), 5, index[:7]), want[:7, :5])


def bucket_of(keys, model):
    """A pixel's scale bucket from its scale key, clamped to the model's table: the numpy definition the
    decoder's compiled pass (``residual_model.pixel_params_of_buckets``) computes it by."""
    return raster.prediction.clamp(keys - model.bucket_low, 0, model.ell.size - 1)



def _replace(streams, kind, payload):
    return [Stream(s.kind, s.index, payload(s.payload)) if s.kind == kind else s for s in streams]


def _decode_changed(plane, bits, change):
    """Encodes the plane, rewrites its side information with change(meta), decodes (tests expect an error)."""
    streams = RasterMethod().encode(plane, bits)
    meta = unpack_side_info(streams[0].payload)["raster"]
    bad = _replace(streams, SectionKind.PLANE_META, lambda p: pack_side_info({"raster": change(meta)}))
    return RasterMethod().decode(bad, plane.shape, bits)


@pytest.mark.parametrize("damage", [
    lambda s: _replace(s, SectionKind.RESIDUAL, lambda p: p[:-4]),
    lambda s: _replace(s, SectionKind.RESIDUAL, lambda p: p + b"\0\0\0\1"),
    lambda s: _replace(s, SectionKind.RESIDUAL, lambda p: p[:-1]),
    lambda s: _replace(s, SectionKind.METHOD_STREAM, lambda p: p[: len(p) // 2]),
    lambda s: _replace(s, SectionKind.METHOD_STREAM, lambda p: p + b"\xff"),
    lambda s: _replace(s, SectionKind.PLANE_META, lambda p: b"{}"),
    lambda s: _replace(s, SectionKind.PLANE_META, lambda p: b"garbage"),
    lambda s: s[:2],
], ids=["words-cut", "words-extra", "words-odd", "raw-cut", "raw-extra", "meta-empty", "meta-garbage", "missing"])
def test_damaged_streams_are_clear_errors(damage):
    plane = np.random.default_rng(5).integers(0, 1 << 14, (20, 24)).astype(np.uint16)
    streams = RasterMethod().encode(plane, 14)
    with pytest.raises(CorruptStreamError):
        decoded = RasterMethod().decode(damage(streams), plane.shape, 14)
        assert not np.array_equal(decoded, plane)  # a damage the stream cannot see is caught by the checksum
        raise CorruptStreamError("undetected here; the codec's pixel checksum catches it")


@pytest.mark.parametrize("change", [
    lambda m: {**m, "ell": [999]},
    lambda m: {**m, "ell": m["ell"] * 200},
    lambda m: {**m, "first": m["first"][:3]},
    lambda m: {**m, "w": [-1] * 9},
    lambda m: {**m, "pad": 1 << 20},
    lambda m: {**m, "cs": "x"},
    lambda m: {**m, "nn": 5},
    lambda m: {**m, "nn": ""},
], ids=["ell", "ell-length", "first-shape", "weights", "pad", "shift", "nn-type", "nn-empty"])
def test_out_of_range_side_information_is_refused(change):
    with pytest.raises(CorruptStreamError):
        _decode_changed(smooth((16, 16), 12), 12, change)


def _fitted_output_frame(monkeypatch):
    """A noisy CT plane's raster streams with the correction's output layer fitted to it (the margin that
    weighs the fit against its side information waived: the plane is small)."""
    monkeypatch.setattr(raster.analysis, "OUTPUT_FIT_MARGIN", float("-inf"))
    plane = noisy_ct()
    analysis = raster.analysis.Analysis(plane, 12, correction=raster.method.shipped_correction())
    assert analysis.model.correction is not None and analysis.model.output_delta is not None
    return plane, analysis.streams()


def test_output_layer_fit_round_trips_and_is_sent(monkeypatch):
    plane, streams = _fitted_output_frame(monkeypatch)
    meta = unpack_side_info(streams[0].payload)["raster"]
    net = raster.method.shipped_correction()
    assert len(meta["od"]) == net.weights[-1].shape[1] + 1 and any(meta["od"])
    assert np.array_equal(RasterMethod().decode(streams, plane.shape, 12), plane)
    # the decoder adds the delta: without it the same streams decode to other values, or fail
    bad = _replace(streams, SectionKind.PLANE_META,
                   lambda p: pack_side_info({"raster": {k: v for k, v in meta.items() if k != "od"}}))
    try:
        assert not np.array_equal(RasterMethod().decode(bad, plane.shape, 12), plane)
    except CorruptStreamError:
        pass


def test_without_the_output_fit_is_the_shipped_layers_analysis(monkeypatch):
    monkeypatch.setattr(raster.analysis, "OUTPUT_FIT_MARGIN", float("-inf"))
    plane, net = noisy_ct(), raster.method.shipped_correction()
    fitted = raster.analysis.Analysis(plane, 12, correction=net)
    other = fitted.without_output_fit()
    monkeypatch.setattr(raster.analysis, "ADAPT_OUTPUT", False)
    monkeypatch.setattr(raster.analysis, "CORRECTION_MIN_GAIN", float("-inf"))  # kept, as the fitted one was
    shipped = raster.analysis.Analysis(plane, 12, correction=net)
    assert other.model.output_delta is None and other.model.correction == shipped.model.correction
    assert np.array_equal(other.mu, shipped.mu) and not np.array_equal(fitted.mu, shipped.mu)
    assert other.estimated_bytes() == shipped.estimated_bytes()
    assert other.without_output_fit() is None and shipped.without_output_fit() is None


@pytest.mark.parametrize("change", [
    lambda m: {k: v for k, v in m.items() if k != "nn"},
    lambda m: {**m, "od": m["od"][:-1]},
    lambda m: {**m, "od": [1 << 20] * len(m["od"])},
    lambda m: {**m, "od": [0] * (len(m["od"]) - 1) + [1 << 42]},
    lambda m: {**m, "od": 5},
], ids=["without-nn", "length", "weights", "bias", "type"])
def test_bad_output_layer_fits_are_refused(change, monkeypatch):
    plane, streams = _fitted_output_frame(monkeypatch)
    meta = unpack_side_info(streams[0].payload)["raster"]
    bad = _replace(streams, SectionKind.PLANE_META, lambda p: pack_side_info({"raster": change(meta)}))
    with pytest.raises(CorruptStreamError):
        RasterMethod().decode(bad, plane.shape, 12)


def test_output_layer_fit_is_not_sent_where_it_cannot_pay():
    # a plane with fewer eligible pixels than OUTPUT_FIT_MIN: no fit, the shipped layer
    analysis = raster.analysis.Analysis(noisy_ct((40, 40)), 12, correction=raster.method.shipped_correction())
    assert analysis.model.output_delta is None and "od" not in analysis.model.to_json()


def _stacked_frame(monkeypatch):
    """A noisy CT plane's analysis with raster-nn-large-v1 stacked on raster-nn-xl-v1 (format 2.7; the
    correction kept whatever the proxy says of it: the plane is small)."""
    monkeypatch.setattr(raster.analysis, "CORRECTION_MIN_GAIN", float("-inf"))
    plane = noisy_ct((120, 100))
    first, second = raster.method.shipped_correction("raster-nn-xl-v1"), raster.method.shipped_correction("raster-nn-large-v1")
    if first is None or second is None:
        pytest.skip("the shipped correction networks are not installed")
    analysis = raster.analysis.Analysis(plane, 12, correction=first)
    assert analysis.model.correction is not None
    return plane, analysis, analysis.with_second_correction(second)


def _stacked_reference(analysis, stacked):
    """The stacked prediction restated from the two networks' corrections, as FORMAT.md defines it."""
    first, second = (raster.method.correction_named(tag) for tag in (analysis.model.correction, stacked.model.second_correction))
    if analysis.model.output_delta is not None:
        first = first.with_output_delta(analysis.model.output_delta)
    grids = (analysis.grid.reshape(analysis.layout.padded_shape),
             analysis._grid_of(raster.prediction.error(analysis.values, analysis.mu1)),
             analysis._grid_of(raster.prediction.error(analysis.values, analysis._uncorrected)))
    pixels = np.flatnonzero(analysis.cls < raster.layout.ACTIVITY_CLASSES)
    index = analysis.layout.flat(*np.divmod(pixels, analysis.width))
    feats, scale = raster_mlp.features(*(analysis._taps_at(g, len(raster.layout.OFFSETS), index) for g in grids),
                                       analysis.mu1[pixels], analysis._uncorrected[pixels], analysis.activity[pixels])
    w = stacked.model.stack_weights[analysis.cls[pixels].astype(np.int64)]
    total = w[:, 0] * first.correction(feats, scale) + w[:, 1] * second.correction(feats, scale)
    mu = analysis._uncorrected.astype(np.int64)
    mu[pixels] = np.clip(mu[pixels] + (total >> raster.layout.STACK_SHIFT), 0, analysis.top)
    return mu


def test_stacked_corrections_round_trip_and_are_sent(monkeypatch):
    plane, analysis, stacked = _stacked_frame(monkeypatch)
    model = stacked.model
    assert model.second_correction == raster.method.shipped_correction("raster-nn-large-v1").tag
    assert model.stack_weights.shape == (raster.layout.ACTIVITY_CLASSES, 2) and np.abs(model.stack_weights).max() <= raster.layout.STACK_LIMIT
    # the fitted classes weigh the second network in; the rest keep the first alone
    assert (model.stack_weights[:, 1] != 0).any()
    np.testing.assert_array_equal(stacked.mu, _stacked_reference(analysis, stacked))
    streams = stacked.streams()
    meta = unpack_side_info(streams[0].payload)["raster"]
    assert meta["n2"] == model.second_correction and meta["sk"] == model.stack_weights.ravel().tolist()
    assert np.array_equal(RasterMethod().decode(streams, plane.shape, 12), plane)
    # the decoder stacks: without it the same streams decode to other values, or fail
    bad = _replace(streams, SectionKind.PLANE_META,
                   lambda p: pack_side_info({"raster": {k: v for k, v in meta.items() if k not in ("n2", "sk")}}))
    try:
        assert not np.array_equal(RasterMethod().decode(bad, plane.shape, 12), plane)
    except CorruptStreamError:
        pass


def test_no_stack_without_a_correction_or_with_the_same_network(monkeypatch):
    plane, analysis, _ = _stacked_frame(monkeypatch)
    assert analysis.with_second_correction(raster.method.shipped_correction("raster-nn-xl-v1")) is None
    plain = analysis.without_correction()
    assert plain is not None and plain.with_second_correction(raster.method.shipped_correction("raster-nn-large-v1")) is None


@pytest.mark.parametrize("change", [
    lambda m: {k: v for k, v in m.items() if k != "nn"},
    lambda m: {k: v for k, v in m.items() if k != "sk"},
    lambda m: {k: v for k, v in m.items() if k != "n2"},
    lambda m: {**m, "sk": m["sk"][:-1]},
    lambda m: {**m, "sk": [raster.layout.STACK_LIMIT + 1] * len(m["sk"])},
    lambda m: {**m, "n2": 7},
    lambda m: {**m, "n2": "raster-nn-large-v1/0000000000000000"},
    lambda m: {**m, "n2": m["sn"]} if "sn" in m else {**m, "n2": "raster-scale-v1/f722761cff3b41c9"},
], ids=["without-nn", "without-weights", "without-name", "length", "weights", "type", "hash", "scale-net"])
def test_bad_stacked_corrections_are_refused(change, monkeypatch):
    plane, _, stacked = _stacked_frame(monkeypatch)
    streams = stacked.streams()
    meta = unpack_side_info(streams[0].payload)["raster"]
    bad = _replace(streams, SectionKind.PLANE_META, lambda p: pack_side_info({"raster": change(meta)}))
    with pytest.raises((CorruptStreamError, ModelMismatchError)):
        RasterMethod().decode(bad, plane.shape, 12)


def test_each_mode_stacks_the_other_network_of_its_pair():
    assert codec.raster_second("fast", None) is None and codec.raster_second("latent", None) is None
    assert codec.raster_second("slow", None) == "raster-nn-xl-v1"  # the default is raster-nn-large-v1
    assert codec.raster_second("slow", "raster-nn-xl-v1") == "raster-nn-large-v1"
    assert codec.raster_second("slow", "raster-nn-v1") is None


def test_registry_names_it_model_free():
    from medcodec.pipelines import MODEL_FREE

    assert "raster" in MODEL_FREE and isinstance(get_method("raster"), RasterMethod)


def test_codec_keeps_raster_where_smallest_and_decodes_it():
    # a real CT slice (pydicom's CT_small, bundled): raster beats the networks and JPEG-XL on it
    data = (EXAMPLES / "dicom16" / "CT_small.dcm").read_bytes()
    blob = codec.encode(data, mode="fast")
    assert [f["method"] for f in codec.info(blob)["frames"]] == ["raster"]
    assert codec.decode(blob).data == data
    assert len(blob) < 0.97 * len(codec.encode(data, mode="classical"))


def test_a_raster_frame_decodes_without_importing_torch(tmp_path):
    # torch's import was ~40 % of a command-line decode of a radiograph; the raster decoder needs numpy only
    import subprocess
    import sys

    data = (EXAMPLES / "dicom16" / "CT_small.dcm").read_bytes()
    blob = codec.encode(data, mode="fast")
    assert codec.info(blob)["frames"][0]["method"] == "raster"
    (tmp_path / "ct.mlc").write_bytes(blob)
    script = ("import sys; from pathlib import Path; from medcodec import codec; "
              f"decoded = codec.decode(Path({str(tmp_path / 'ct.mlc')!r}).read_bytes()); "
              "print(len(decoded.data), 'torch' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                          cwd=Path(__file__).resolve().parent.parent)
    assert done.stdout.split() == [str(len(data)), "False"]


@pytest.mark.parametrize("mode", ["fast", "slow"])
def test_each_mode_encodes_with_its_own_correction_and_the_decoder_loads_the_named_one(mode, monkeypatch):
    asked = []
    net = small_correction()
    monkeypatch.setattr(raster.method, "shipped_correction", lambda model_id=raster.method.CORRECTION_MODEL: asked.append(model_id) or net)
    monkeypatch.setattr(raster.analysis, "CORRECTION_MIN_GAIN", -1e9)  # used whatever it saves
    monkeypatch.setattr(raster.analysis.Analysis, "without_correction", lambda self: None)
    monkeypatch.setattr(raster.method, "correction_named", lambda tag: net if tag == net.tag else pytest.fail(tag))
    data = (EXAMPLES / "dicom16" / "CT_small.dcm").read_bytes()
    try:
        blob = codec.encode(data, mode=mode, device="cpu")
    except ModelMismatchError:
        pytest.skip("the shipped subimage model is not installed")
    assert set(asked) == set(codec.raster_corrections(mode))
    assert codec.decode(blob).data == data


def test_robust_fit_ignores_the_outliers_a_least_squares_fit_chases():
    rng = np.random.default_rng(0)
    features = np.c_[rng.normal(0, 10, (4000, 3)), np.ones(4000)]
    truth = np.array([0.5, -0.25, 1.0, 3.0])
    target = features @ truth + rng.laplace(0, 1, 4000)
    target[:200] += 400  # 5 % outliers, all one way (a bright rim)
    plain, robust = raster.fitting.lstsq(features, target), raster.fitting.robust_lstsq(features, target, 1.0)
    assert np.abs(robust - truth).max() < 0.2 < np.abs(plain - truth).max()
    assert np.abs(target - features @ robust).mean() < np.abs(target - features @ plain).mean()


def test_robust_fits_are_on_by_default_above_8_bits_only():
    assert [raster.fitting.default_robustness(bits) for bits in (2, 8, 9, 12, 16)] == [0, 0, 2, 2, 2]
    assert raster.analysis.Analysis(noisy_ct(), 12).robust == 2 and raster.analysis.Analysis(noisy_ct() >> 4, 8).robust == 0


@pytest.mark.parametrize("name", sorted(EDGE_CASES))
def test_edge_cases_round_trip_with_the_other_choice_of_fits(name):
    # the slow mode codes every plane with robust fits both off and on, whatever its depth
    plane, bits = EDGE_CASES[name]
    method = get_method("raster", robust=2 - raster.fitting.default_robustness(bits))
    assert np.array_equal(RasterMethod().decode(method.encode(plane, bits), plane.shape, bits), plane)


@pytest.mark.parametrize("robust", [0, 1, 2])
def test_every_choice_of_robust_fits_round_trips_with_the_same_decoder(robust):
    plane = noisy_ct(seed=robust)
    method = get_method("raster", robust=robust)
    streams = method.encode(plane, 12)
    assert np.array_equal(RasterMethod().decode(streams, plane.shape, 12), plane)


def test_slow_mode_tries_both_choices_of_robust_fits_and_fast_its_default(monkeypatch):
    """... and both modes offer both learned scales (raster-scale-v1, then -v2: codec.RASTER_SCALES); the
    slow mode's tries offer the other network of codec.RASTER_STACK stacked on their own, fast none."""
    asked, offered, shares, seconds = [], set(), set(), set()
    original = raster.analysis.analyse
    monkeypatch.setattr(raster.analysis, "analyse", lambda plane, bits, correction=None, robust=None, thorough=False, scale_nets=(),
                        local_min_share=None, local_radii=(), second=None:
                        asked.append((robust, thorough)) or offered.add(tuple(n.model_id for n in scale_nets))
                        or shares.add((local_min_share, local_radii))
                        or seconds.add((correction and correction.model_id, second and second.model_id))
                        or original(plane, bits, correction, robust, thorough, scale_nets, local_min_share, local_radii,
                                    second))
    scales = dict.fromkeys(("fast", "slow"), (raster.method.SCALE_MODEL, raster.method.WINDOW_SCALE_MODEL))
    stacked = {"fast": {(raster.method.CORRECTION_MODEL, None)},
               "slow": {("raster-nn-xl-v1", "raster-nn-large-v1"), ("raster-nn-large-v1", "raster-nn-xl-v1")}}
    data = (EXAMPLES / "dicom16" / "CT_small.dcm").read_bytes()
    # CT_small (128x128) is inside every sample: a thorough analysis would be the same, so not tried
    for mode, expected in (("fast", [(None, False)]), ("slow", [(None, False), (0, False), (2, False)])):
        asked.clear()
        offered.clear()
        shares.clear()
        seconds.clear()
        try:
            blob = codec.encode(data, mode=mode, device="cpu")
        except ModelMismatchError:
            pytest.skip("the shipped subimage model is not installed")
        assert asked == expected and codec.decode(blob).data == data
        assert offered == {tuple(m for m in scales[mode] if raster.method.shipped_scale(m) is not None)}
        # slow: any saving, and windows of other radii too; fast: the defaults
        assert shares == {(codec.RASTER_LOCAL_MIN_SHARE.get(mode), codec.RASTER_LOCAL_RADII.get(mode, ()))}
        assert seconds == stacked[mode]
    asked.clear()
    plane = noisy_ct(shape=(200, 180))
    assert raster.analysis.thorough_differs(plane.size) and not raster.analysis.thorough_differs(128 * 128)
    blob = codec.encode(plane, mode="slow", device="cpu")
    assert asked == [(None, False), (0, False), (2, False), (None, True)]
    assert np.array_equal(codec.decode(blob).planes[0], plane)


def test_a_thorough_analysis_looks_at_more_pixels_and_round_trips(monkeypatch):
    monkeypatch.setattr(raster.analysis, "FIT_SAMPLE", 1 << 12)
    plane = noisy_ct(shape=(96, 100))
    plain, thorough = raster.analysis.Analysis(plane, 12), raster.analysis.Analysis(plane, 12, thorough=True)
    assert plain.sample.size <= 1 << 12 < thorough.sample.size
    streams = RasterMethod(thorough=True).encode(plane, 12)
    assert np.array_equal(RasterMethod().decode(streams, plane.shape, 12), plane)


def test_huge_errors_and_weights_stay_in_range():
    # extreme side information a hostile file may carry: sums past 2**31 still give a valid bucket
    model = raster.side_info.RasterModel(pad=0, class_shift=0, shared=raster.layout.BORDER_DEFAULT.copy(),
                               first=np.zeros((raster.layout.CLASSES, len(raster.layout.OFFSETS)), np.int64),
                               second=np.zeros((raster.layout.CLASSES, raster.layout.ERROR_TAPS), np.int64),
                               scale_weights=np.full(raster.layout.SCALE_TAPS + 1, raster.layout.WEIGHT_LIMIT, np.int64),
                               bucket_low=0, ell=np.arange(128, dtype=np.int64))
    errors = np.full((3, raster.layout.SCALE_TAPS), raster.layout.ERROR_LIMIT, np.int64)
    buckets = bucket_of(raster.prediction.linear_keys(raster.prediction.scale_sum(errors, np.full(3, 5 * 65535, np.int64), model)),
                                model)
    assert (buckets == 123).all()  # floor(8 log2 (2**31 - 1)) // 2


def test_estimate_is_close_and_a_beaten_coding_is_not_run():
    plane = noisy_ct((64, 64), seed=2)
    analysis = raster.analysis.analyse(plane, 12, raster.method.shipped_correction(), scale_nets=[raster.method.shipped_scale()])  # as RasterMethod()
    coded = sum(len(s.payload) for s in analysis.streams())
    assert abs(analysis.estimated_bytes() - coded) < 0.01 * coded + 16
    method = RasterMethod()
    assert method.encode_alternatives(plane, 12, beaten_by=coded // 2) == []
    [(name, streams)] = method.encode_alternatives(plane, 12, beaten_by=coded)
    assert name == "raster" and sum(len(s.payload) for s in streams) == coded


def test_values_on_a_grid_are_coded_as_grid_indices():
    # 12-bit data stored << 4 into 16 bits, plus an offset: the low bits are not coded
    base = dense_noise(seed=4).astype(np.int64)
    plane = (base * 16 + 5).astype(np.uint16)
    streams = round_trip(plane, 16)
    meta = unpack_side_info(streams[0].payload)["raster"]
    assert meta["step"] == [16, 5]
    plain = sum(len(s.payload) for s in RasterMethod().encode(base.astype(np.uint16), 12))
    assert sum(len(s.payload) for s in streams) <= plain + 8


@pytest.mark.parametrize("step", [[0, 0], [16, 16], [1 << 16, 0], [3, -1]])
def test_bad_value_grid_is_refused(step):
    plane = (dense_noise((16, 16)).astype(np.int64) * 16).astype(np.uint16)
    with pytest.raises(CorruptStreamError):
        _decode_changed(plane, 16, lambda meta: {**meta, "step": step})


def test_quick_modes_keep_raster_only_where_it_saves_the_margin():
    def streams(size):
        return [Stream(SectionKind.METHOD_STREAM, 0, bytes(size))]

    base, fast = streams(1000), ("fast", streams(900))
    close, clear = ("raster", streams(895)), ("raster", streams(880))
    assert codec._choose(base, [fast, close], 0.01)[1] == {"method": "fast"}
    assert codec._choose(base, [fast, clear], 0.01)[1] == {"method": "raster"}
    assert codec._choose(base, [fast, close], 0.0)[1] == {"method": "raster"}
    assert codec._choose(base, [("raster", streams(995))], 0.01)[1] == {"method": "classical"}
    assert codec.RASTER_MARGIN == {"fast": 0.01, "latent": 0.01}  # the slow mode keeps every saving


def _with_and_without(monkeypatch, plane, bits, field, constant, off):
    """(streams, streams with the option switched off by setting raster.analysis.<constant> to off): the option's
    field in the first side information and not in the second."""
    streams = round_trip(plane, bits)
    monkeypatch.setattr(raster.analysis, constant, off)
    without = round_trip(plane, bits)
    assert field in unpack_side_info(streams[0].payload)["raster"]
    assert field not in unpack_side_info(without[0].payload)["raster"]
    return [sum(len(s.payload) for s in coded) for coded in (streams, without)]


def test_neighbour_value_boost_is_chosen_on_a_drifting_lattice_and_round_trips(monkeypatch):
    monkeypatch.setattr(raster.analysis, "OFFER_DIFFERENCES", False)  # they would take the boost's place
    boosted, plain = _with_and_without(monkeypatch, drifting_lattice(), 8, "nb", "BOOSTS", ())
    assert boosted < 0.95 * plain


def test_lattice_boost_is_chosen_on_a_drifting_step_lattice_and_round_trips(monkeypatch):
    monkeypatch.setattr(raster.analysis, "OFFER_DIFFERENCES", False)
    with_lattice, without = _with_and_without(monkeypatch, drifting_step_lattice(), 8, "lt", "LATTICES", ())
    assert with_lattice < 0.97 * without


def test_lattice_boost_is_not_sent_where_it_does_not_pay(monkeypatch):
    monkeypatch.setattr(raster.analysis, "OFFER_DIFFERENCES", False)
    streams = round_trip(drifting_lattice(), 8)  # its values keep a step of 2.5: no lattice of 2 or 3
    assert "lt" not in unpack_side_info(streams[0].payload)["raster"]


def test_difference_weights_replace_the_boost_on_a_drifting_lattice_and_round_trip(monkeypatch):
    # the tap-difference weights see the lattice's pattern around each neighbour (2 of every 5 values), the
    # boost only the values the neighbours hold (on a lattice of step 3 the boost's lattice is as good and
    # costs 2 numbers instead of 228: there they are not sent)
    meta = unpack_side_info(round_trip(drifting_lattice(), 8)[0].payload)["raster"]
    assert "nb" not in meta and "lt" not in meta
    with_weights, boosted = _with_and_without(monkeypatch, drifting_lattice(), 8, "dw", "OFFER_DIFFERENCES", False)
    assert with_weights < 0.9 * boosted


def test_agreement_weights_are_sent_with_the_difference_weights_where_they_pay_and_round_trip(monkeypatch):
    # on the drifting lattice a value two neighbours hold is likelier than two tap weights say
    with_agreement, taps_alone = _with_and_without(monkeypatch, drifting_lattice(), 8, "da", "OFFER_AGREEMENT", False)
    assert with_agreement < taps_alone


def test_difference_weights_are_not_sent_where_they_do_not_pay():
    streams = round_trip(dense_noise((96, 80)), 12)  # continuous noise: the neighbours' values say nothing
    assert "dw" not in unpack_side_info(streams[0].payload)["raster"]


def _with_weights(meta):
    return meta if "dw" in meta else {**meta, "dw": [1] * (raster.differences.TAPS * raster.differences.WIDTH)}


@pytest.mark.parametrize("change", [
    lambda meta: {**meta, "dw": meta["dw"][:-1]},
    lambda meta: {**meta, "dw": [0] * len(meta["dw"])},
    lambda meta: {**meta, "dw": [raster.differences.LIMIT + 1] + meta["dw"][1:]},
    lambda meta: {**meta, "dw": "x"},
    lambda meta: {**meta, "da": [1] * (raster.differences.AGREEMENT + 1)},
    lambda meta: {**meta, "da": [0] * raster.differences.AGREEMENT},
    lambda meta: {**meta, "da": [raster.differences.LIMIT + 1] * raster.differences.AGREEMENT},
    lambda meta: {key: value for key, value in meta.items() if key != "dw"} | {"da": [1] * raster.differences.AGREEMENT},
    lambda meta: {**meta, "nb": [16, 16]},
    lambda meta: {**meta, "lt": [3, 8]},
])
def test_bad_difference_weights_are_refused(change):
    with pytest.raises(CorruptStreamError):
        _decode_changed(drifting_step_lattice((32, 40)), 8, lambda meta: change(_with_weights(meta)))


@pytest.mark.parametrize("lattice", [[1, 8], [raster.layout.LATTICE_MAX_STEP + 1, 8], [3, 0], [3, raster.layout.LATTICE_LIMIT + 1],
                                     [3], "x"])
def test_bad_lattice_boost_is_refused(lattice):
    with pytest.raises(CorruptStreamError):
        _decode_changed(drifting_step_lattice((32, 40)), 8, lambda meta: {**meta, "lt": lattice})


def test_block_classes_are_chosen_on_regional_textures_and_round_trip(monkeypatch):
    monkeypatch.setattr(raster.analysis, "LOCAL_MIN_SHARE", float("inf"))  # the local fit would follow the regions too
    blocked, plain = _with_and_without(monkeypatch, regional_textures(), 12, "bc", "BLOCK_PROXY_GAIN", float("inf"))
    assert blocked < 0.98 * plain


def test_block_classes_are_not_sent_where_activity_classes_do_better():
    streams = round_trip(noisy_ct((96, 96), seed=3), 12)  # tissue and background: activity tells them apart
    assert "bc" not in unpack_side_info(streams[0].payload)["raster"]


@pytest.mark.parametrize("plane, blocked", [(regional_textures(), True), (noisy_ct((96, 96), seed=3), False)],
                         ids=["blocks-win", "blocks-lose"])
def test_large_planes_keep_one_analysis_alive_and_code_the_same(monkeypatch, plane, blocked):
    monkeypatch.setattr(raster.analysis, "BLOCK_PROXY_GAIN", -1e9)  # block classes tried on both planes
    both = RasterMethod().encode(plane, 12)
    monkeypatch.setattr(raster.analysis, "BLOCK_KEEP_BOTH", 0)  # as on a plane over the limit: drop, rebuild if they lose
    assert RasterMethod().encode(plane, 12) == both
    assert ("bc" in unpack_side_info(both[0].payload)["raster"]) == blocked


def test_block_class_labels_follow_the_blocks():
    model = raster.side_info.RasterModel(pad=0, class_shift=0, shared=raster.layout.BORDER_DEFAULT.copy(),
                               first=np.zeros((raster.layout.CLASSES, len(raster.layout.OFFSETS)), np.int64),
                               second=np.zeros((raster.layout.CLASSES, raster.layout.ERROR_TAPS), np.int64),
                               scale_weights=np.zeros(raster.layout.SCALE_TAPS + 1, np.int64), bucket_low=0,
                               ell=np.zeros(1, np.int64), block_size=4, block_classes=np.array([3, 7, 11, 0, 5, 9]))
    rows, cols = np.divmod(np.arange(8 * 10), 10)  # 8 x 10 plane: 2 x 3 blocks of 4
    border = np.full(rows.shape, -1)
    border[0] = 0
    activity = np.ones(rows.shape, np.int64)
    activity[1] = 0
    cls = model.classes(activity, border, rows, cols, 10)
    expected = np.array([3, 7, 11, 0, 5, 9])[(rows // 4) * 3 + cols // 4]
    assert cls[0] == raster.layout.ACTIVITY_CLASSES and cls[1] == raster.layout.FLAT_CLASS  # border and flat keep theirs
    assert np.array_equal(cls[2:], expected[2:])


@pytest.mark.parametrize("blocks", [[24, 0, 0], [24, 12], [24, -1], [0, 0], [24], 5, [1 << 17, 0]],
                         ids=["count", "class", "negative", "size-0", "no-classes", "not-a-list", "size"])
def test_bad_block_classes_are_refused(blocks):
    with pytest.raises(CorruptStreamError):
        _decode_changed(smooth((16, 16), 12), 12, lambda meta: {**meta, "bc": blocks})


def test_boost_is_not_sent_where_it_does_not_pay():
    streams = round_trip(dense_noise((96, 80)), 12)  # continuous noise: the neighbours' values say nothing
    assert "nb" not in unpack_side_info(streams[0].payload)["raster"]


@pytest.mark.parametrize("boost", [[-1, 0], [0, raster.layout.BOOST_LIMIT + 1], [16], "x"])
def test_bad_boost_is_refused(boost):
    with pytest.raises(CorruptStreamError):
        _decode_changed(drifting_lattice((32, 40)), 8, lambda meta: {**meta, "nb": boost})


def test_a_newer_writers_option_is_refused_as_newer():
    with pytest.raises(UnsupportedVersionError, match="newer medcodec"):
        _decode_changed(smooth((16, 16), 12), 12, lambda meta: {**meta, "future": 1})


def test_a_plane_on_an_uneven_value_set_is_coded_as_palette_indices(monkeypatch):
    palette, direct = _with_and_without(monkeypatch, uneven_values(), 16, "pal", "PALETTE_HOLES", 1.0)
    assert palette < 0.9 * direct


@pytest.mark.parametrize("values", [[7], [0, 1, 2, 3], [0, 2, 4, 9, 10, 11, 65535], [65534, 65535], [3, 100]])
def test_palette_runs_round_trip(values):
    palette = np.array(values, dtype=np.int64)
    runs = raster.side_info._palette_runs(palette)
    assert len(runs) % 2 == 0 and np.array_equal(raster.side_info._palette_of_runs(runs, 16), palette)


@pytest.mark.parametrize("runs", [[], [5], [-1, 3], [0, 0], [0, 2, 0, 1], [65535, 2], [0, 1, 1], "x", [0, 1.5]])
def test_bad_palette_is_refused(runs):
    def change(meta):
        assert "pal" in meta
        return {**meta, "pal": runs}

    with pytest.raises(CorruptStreamError):
        _decode_changed(uneven_values((24, 20)), 16, change)


def test_an_index_beyond_the_palette_is_corruption():
    plane = uneven_values((24, 20))
    streams = RasterMethod().encode(plane, 16)
    meta = unpack_side_info(streams[0].payload)["raster"]
    model = raster.side_info.RasterModel.from_json(meta, 16)
    assert model.coded_bits(16) == (model.palette.size - 1).bit_length()
    with pytest.raises(CorruptStreamError, match="beyond the plane's palette"):
        model.plane_of(np.array([model.palette.size]), 16)


def test_a_grid_and_a_palette_together_are_refused():
    with pytest.raises(CorruptStreamError):
        _decode_changed(uneven_values((24, 20)), 16, lambda meta: {**meta, "step": [2, 0]})


def small_correction(seed=0):
    """A random integer correction network (8 hidden units): not trained, but it changes predictions."""
    rng = np.random.default_rng(seed)
    sizes = [raster_mlp.FEATURES, 8, 8, 1]
    layers = [(rng.integers(-300, 301, (sizes[k + 1], sizes[k])), rng.integers(-(1 << 16), 1 << 16, sizes[k + 1]))
              for k in range(3)]
    return raster_mlp.from_integer_layers("test-nn", bytes(range(32)), layers)


def test_learned_correction_round_trips_and_names_its_weights(monkeypatch):
    net = small_correction()
    monkeypatch.setattr(raster.method, "shipped_correction", lambda *model: None)
    plain = RasterMethod().encode(noisy_ct(), 12)
    monkeypatch.setattr(raster.analysis, "CORRECTION_MIN_GAIN", -1e9)  # used whatever it saves
    monkeypatch.setattr(raster.analysis.Analysis, "without_correction", lambda self: None)
    monkeypatch.setattr(raster.method, "shipped_correction", lambda *model: net)
    monkeypatch.setattr(raster.method, "correction_named", lambda tag: net if tag == net.tag else pytest.fail(tag))
    corrected = round_trip(noisy_ct(), 12)
    assert unpack_side_info(corrected[0].payload)["raster"]["nn"] == net.tag
    assert corrected[1].payload != plain[1].payload  # the decoder really applied it
    other = small_correction(seed=1)
    monkeypatch.setattr(raster.method, "correction_named", lambda tag: other)  # other weights: never the same plane
    with pytest.raises(CorruptStreamError):
        decoded = RasterMethod().decode(corrected, noisy_ct().shape, 12)
        assert not np.array_equal(decoded, noisy_ct())
        raise CorruptStreamError("undetected here; the codec's pixel checksum catches it")


@pytest.mark.parametrize("gate", ["proxy", "estimate"])
def test_correction_is_not_sent_where_it_does_not_pay(monkeypatch, gate):
    monkeypatch.setattr(raster.method, "shipped_correction", lambda *model: small_correction())  # random: it costs bits
    if gate == "estimate":  # the proxy lets it through; the coded estimate with and without decides
        monkeypatch.setattr(raster.analysis, "CORRECTION_MIN_GAIN", -1e9)
    assert "nn" not in unpack_side_info(round_trip(noisy_ct(), 12)[0].payload)["raster"]


def test_a_frame_naming_weights_this_installation_lacks_is_a_model_mismatch(monkeypatch):
    monkeypatch.setattr(raster.method, "shipped_correction", lambda *model: None)
    with pytest.raises(ModelMismatchError, match="prediction-correction weights"):
        _decode_changed(noisy_ct(), 12, lambda m: {**m, "nn": "raster-nn-v1/0000000000000000"})
    with pytest.raises(ModelMismatchError, match="prediction-correction weights"):
        _decode_changed(noisy_ct(), 12, lambda m: {**m, "nn": "no-such-model/0000000000000000"})


@pytest.mark.parametrize("model_id", sorted({c for mode in ("fast", "slow", "latent") for c in codec.raster_corrections(mode)}))
def test_shipped_correction_codes_a_ct_like_plane_exactly(monkeypatch, model_id):
    net = raster.method.shipped_correction(model_id)
    if net is None:
        pytest.skip(f"{model_id} is not installed here")
    monkeypatch.setattr(raster.analysis, "CORRECTION_MIN_GAIN", -1e9)  # used whatever it saves
    monkeypatch.setattr(raster.analysis.Analysis, "without_correction", lambda self: None)
    method = RasterMethod(correction_model=model_id)
    plane = noisy_ct((128, 120), seed=4)
    streams = method.encode(plane, 12)
    assert unpack_side_info(streams[0].payload)["raster"]["nn"] == net.tag
    assert np.array_equal(RasterMethod().decode(streams, plane.shape, 12), plane)  # any instance: the frame names it


def small_scale(seed=0, inputs=raster_mlp.SCALE_FEATURES):
    """A random integer scale network (8 hidden units): not trained, but it moves pixels between buckets."""
    rng = np.random.default_rng(seed)
    sizes = [inputs, 8, 8, 1]
    layers = [(rng.integers(-300, 301, (sizes[k + 1], sizes[k])), rng.integers(-(1 << 16), 1 << 16, sizes[k + 1]))
              for k in range(3)]
    return raster_mlp.from_integer_layers("test-sn", bytes(range(1, 33)), layers, inputs)


@pytest.mark.parametrize("with_correction,inputs", [(False, raster_mlp.SCALE_FEATURES),
                                                    (True, raster_mlp.SCALE_FEATURES),
                                                    (False, raster_mlp.WINDOW_SCALE_FEATURES),
                                                    (True, raster_mlp.WINDOW_SCALE_FEATURES)],
                         ids=["scale-alone", "with-correction", "window-scale-alone", "window-with-correction"])
def test_learned_scale_round_trips_and_names_its_weights(monkeypatch, with_correction, inputs):
    net, correction = small_scale(inputs=inputs), small_correction() if with_correction else None
    monkeypatch.setattr(raster.analysis, "CORRECTION_MIN_GAIN", -1e9)
    monkeypatch.setattr(raster.analysis.Analysis, "without_correction", lambda self: None)
    monkeypatch.setattr(raster.method, "shipped_correction", lambda *model: correction)
    monkeypatch.setattr(raster.method, "correction_named", lambda tag: correction if tag == correction.tag else pytest.fail(tag))
    monkeypatch.setattr(raster.method, "shipped_scale", lambda *model: None)
    linear = RasterMethod().encode(noisy_ct(), 12)
    monkeypatch.setattr(raster.analysis, "SCALE_MIN_SAVING", -1e12)  # used whatever it saves
    monkeypatch.setattr(raster.method, "shipped_scale", lambda *model: net)
    monkeypatch.setattr(raster.method, "scale_named", lambda tag: net if tag == net.tag else pytest.fail(tag))
    learned = round_trip(noisy_ct(), 12)
    meta = unpack_side_info(learned[0].payload)["raster"]
    assert meta["sn"] == net.tag and ("nn" in meta) == with_correction
    assert learned[1].payload != linear[1].payload  # the decoder really bucketed by it
    assert RasterMethod(use_scale=False).encode(noisy_ct(), 12) == linear  # the ablation switch


def test_learned_scale_is_not_sent_where_it_does_not_pay(monkeypatch):
    monkeypatch.setattr(raster.method, "shipped_scale", lambda *model: small_scale())  # random: it costs bits
    monkeypatch.setattr(raster.analysis, "SCALE_MIN_SAVING", 1e12)
    assert "sn" not in unpack_side_info(round_trip(noisy_ct(), 12)[0].payload)["raster"]


def test_a_frame_naming_scale_weights_this_installation_lacks_is_a_model_mismatch(monkeypatch):
    monkeypatch.setattr(raster.method, "shipped_scale", lambda *model: None)
    with pytest.raises(ModelMismatchError, match="learned-scale weights"):
        _decode_changed(noisy_ct(), 12, lambda m: {**m, "sn": "no-such-model/0000000000000000"})
    if raster.method.shipped_correction() is not None:  # a correction network named as a scale network
        with pytest.raises(ModelMismatchError, match="learned-scale weights"):
            _decode_changed(noisy_ct(), 12, lambda m: {**m, "sn": raster.method.shipped_correction().tag})


def test_shipped_scale_codes_a_ct_like_plane_exactly(monkeypatch):
    net = raster.method.shipped_scale()
    if net is None:
        pytest.skip(f"{raster.method.SCALE_MODEL} is not installed here")
    monkeypatch.setattr(raster.analysis, "SCALE_MIN_SAVING", -1e12)
    plane = noisy_ct((128, 120), seed=4)
    streams = RasterMethod().encode(plane, 12)
    assert unpack_side_info(streams[0].payload)["raster"]["sn"] == net.tag
    assert np.array_equal(RasterMethod().decode(streams, plane.shape, 12), plane)


def clipped_ct(shape=(96, 80), seed=0):
    """A 12-bit CT-like slice whose air and padding sit on the plane's floor: noise clipped at 0, the
    values a scanner's rescale leaves (many pixels predicted near the floor)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0 : shape[0], 0 : shape[1]]
    inside = (y - shape[0] / 2) ** 2 + (x - shape[1] / 2) ** 2 < (min(shape) / 2.4) ** 2
    tissue = 1000 + 60 * np.sin(x / 6.0) + rng.normal(0, 18, shape)
    air = rng.normal(4, 12, shape)
    return np.where(inside, tissue, air).clip(0, 4095).astype(np.uint16)


def test_value_range_is_sent_where_a_plane_sits_on_its_floor_and_saves(monkeypatch):
    plane = clipped_ct()
    streams = round_trip(plane, 12)
    meta = unpack_side_info(streams[0].payload)["raster"]
    # in the coded plane's values: here palette indices (air and tissue leave a gap)
    assert "pal" in meta and meta["vr"][:2] == [0, np.unique(plane).size - 1]
    monkeypatch.setattr(raster.analysis, "RANGE_MIN_BYTES", 1 << 40)  # never pays: the tables as before
    without = round_trip(plane, 12)
    assert "vr" not in unpack_side_info(without[0].payload)["raster"]
    assert sum(len(s.payload) for s in streams) < sum(len(s.payload) for s in without) - 8


def test_value_range_without_a_palette_round_trips():
    plane = floored_noise()
    meta = unpack_side_info(round_trip(plane, 12)[0].payload)["raster"]
    assert "pal" not in meta and meta["vr"][:2] == [0, int(plane.max())]


def test_value_range_is_not_sent_where_it_does_not_pay():
    streams = round_trip(dense_noise((96, 80)), 12)  # few pixels are predicted near the extremes
    assert "vr" not in unpack_side_info(streams[0].payload)["raster"]



@pytest.mark.parametrize("value_range", [[5, 3, 0], [-1, 4, 0], [0, 1 << 12, 0], [0, 9, 4], [0, 9, -1], [0, 9],
                                         [7], "x"])
def test_bad_value_range_is_refused(value_range):
    with pytest.raises(CorruptStreamError):
        _decode_changed(clipped_ct((32, 32)), 12, lambda meta: {**meta, "vr": value_range})


def test_a_value_outside_the_sent_range_is_corruption():
    plane = clipped_ct((32, 32))
    with pytest.raises(CorruptStreamError):
        decoded = _decode_changed(plane, 12, lambda meta: {**meta, "vr": [1] + meta["vr"][1:]})
        assert not np.array_equal(decoded, plane)  # a damage the stream cannot see is caught by the checksum
        raise CorruptStreamError("undetected here; the codec's pixel checksum catches it")


def test_local_least_squares_is_sent_where_regions_need_their_own_predictor(monkeypatch):
    plane = turning_stripes()
    streams = round_trip(plane, 12)
    weights = unpack_side_info(streams[0].payload)["raster"]["lw"]
    assert len(weights) == raster.layout.CLASSES and max(weights) > 0 and min(weights) >= 0
    monkeypatch.setattr(raster.analysis, "LOCAL_MIN_SHARE", 1.0)  # never pays
    without = RasterMethod().encode(plane, 12)
    assert "lw" not in unpack_side_info(without[0].payload)["raster"]
    assert sum(len(s.payload) for s in streams) < sum(len(s.payload) for s in without)


def test_local_least_squares_is_not_sent_where_it_saves_too_little():
    streams = round_trip(dense_noise((96, 80)), 12)  # white noise: no neighbour predicts it
    assert "lw" not in unpack_side_info(streams[0].payload)["raster"]


@pytest.mark.parametrize("weights", [[1] * (raster.layout.CLASSES - 1), [-1] + [0] * (raster.layout.CLASSES - 1),
                                     [65] + [0] * (raster.layout.CLASSES - 1), 3, "x"])
def test_bad_local_weights_are_refused(weights):
    with pytest.raises(CorruptStreamError):
        _decode_changed(turning_stripes((40, 40)), 12, lambda meta: {**meta, "lw": weights})


def test_windows_of_other_radii_are_blended_in_where_they_code_smaller():
    plane = turning_stripes((40, 40))
    streams = round_trip(plane, 12, local_radii=(4, 14), local_min_share=0.0)
    extra = unpack_side_info(streams[0].payload)["raster"]["lx"]
    assert [entry[0] for entry in extra] == [4] and len(extra[0]) == raster.layout.CLASSES + 1 and max(extra[0][1:]) > 0
    alone = RasterMethod(local_min_share=0.0).encode(plane, 12)
    assert sum(len(s.payload) for s in streams) < sum(len(s.payload) for s in alone)


@pytest.mark.parametrize("extra", [[[4] + [1] * (raster.layout.CLASSES - 1)], [[9] + [1] * raster.layout.CLASSES],
                                   [[0] + [1] * raster.layout.CLASSES], [[33] + [1] * raster.layout.CLASSES],
                                   [[4] + [65] + [0] * (raster.layout.CLASSES - 1)], [[4] + [-1] * raster.layout.CLASSES],
                                   [[4] + [1] * raster.layout.CLASSES] * 2, [], 4, "x"])
def test_bad_local_radii_are_refused(extra):
    with pytest.raises(CorruptStreamError):
        _decode_changed(turning_stripes((40, 40)), 12, lambda meta: {**meta, "lx": extra})


def test_other_radii_without_the_blend_are_refused():
    plane = turning_stripes((40, 40))

    def change(meta):
        meta = {**meta, "lx": [[4] + [1] * raster.layout.CLASSES]}
        meta.pop("lw", None)
        return meta

    with pytest.raises(CorruptStreamError):
        _decode_changed(plane, 12, change)


def test_local_predictions_are_computed_once_per_plane(monkeypatch):
    calls = []
    original = raster.local_ls.plane_predictions
    monkeypatch.setattr(raster.local_ls, "plane_predictions", lambda *args: calls.append(1) or original(*args))
    raster.analysis._LOCAL_CACHE.clear()
    plane = turning_stripes((40, 40))
    coded = [RasterMethod(robust=robust).encode(plane, 12) for robust in (0, 2)]  # the slow mode's tries
    assert len(calls) == 1
    for streams in coded:
        assert np.array_equal(RasterMethod().decode(streams, plane.shape, 12), plane)
    RasterMethod().encode(turning_stripes((40, 40), seed=1), 12)
    assert len(calls) == 2


def test_local_predictions_are_computed_once_by_tries_side_by_side(torch_threads, monkeypatch):
    """The slow mode's raster tries of a plane in two threads: one computes each radius, the other waits
    for it; with a budget of two, two planes' predictions are kept (frames coded side by side)."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    torch_threads(2)
    calls = []
    original = raster.local_ls.plane_predictions
    release = threading.Event()

    def slow_predictions(*args):
        calls.append(threading.current_thread().name)
        release.wait(5)  # the other try asks meanwhile
        return original(*args)

    monkeypatch.setattr(raster.local_ls, "plane_predictions", slow_predictions)
    raster.analysis._LOCAL_CACHE.clear()
    plane = turning_stripes((40, 40))
    with ThreadPoolExecutor(max_workers=2) as pool:
        tries = [pool.submit(RasterMethod(robust=robust).encode, plane, 12) for robust in (0, 2)]
        threading.Timer(0.5, release.set).start()
        coded = [t.result() for t in tries]
    assert len(calls) == 1
    for streams in coded:
        assert np.array_equal(RasterMethod().decode(streams, plane.shape, 12), plane)
    other = turning_stripes((40, 40), seed=1)
    RasterMethod().encode(other, 12)
    RasterMethod().encode(plane, 12)  # still kept beside the other plane's
    assert len(calls) == 2 and len(raster.analysis._LOCAL_CACHE) == 2


def test_phase_classes_are_chosen_on_a_scaled_plane_and_round_trip(monkeypatch):
    plane = upscaled()
    streams = round_trip(plane, 8)
    meta = unpack_side_info(streams[0].payload)["raster"]
    assert meta["ph"] == list(raster.phase.detect(plane)) and "bc" not in meta
    monkeypatch.setattr(raster.phase, "MIN_STRENGTH", float("inf"))  # no plane shows a period
    without = round_trip(plane, 8)
    assert "ph" not in unpack_side_info(without[0].payload)["raster"]
    assert sum(len(s.payload) for s in streams) < 0.97 * sum(len(s.payload) for s in without)


def test_phase_classes_are_not_sent_where_they_do_not_pay(monkeypatch):
    # a period the plane does not have: the estimate keeps the activity classes
    monkeypatch.setattr(raster.phase, "detect", lambda plane: (4, 12345, 0, 3, 54321, 0))
    streams = round_trip(noisy_ct((96, 96), seed=3), 12)
    assert "ph" not in unpack_side_info(streams[0].payload)["raster"]


@pytest.mark.parametrize("plane, bits, keep_both, kept", [(upscaled(), 8, True, "ph"), (upscaled(), 8, False, "ph"),
                                                         (noisy_ct((96, 96), seed=3), 12, False, None),
                                                         (regional_textures(), 12, False, "bc")],
                         ids=["phase-wins", "phase-wins-large", "phase-loses-large", "phase-loses-to-blocks-large"])
def test_phase_classes_on_large_planes_keep_one_analysis_alive_and_code_the_same(monkeypatch, plane, bits, keep_both,
                                                                                 kept):
    monkeypatch.setattr(raster.phase, "MIN_STRENGTH", -1.0)  # offered on every plane
    monkeypatch.setattr(raster.analysis, "BLOCK_PROXY_GAIN", -1e9)  # block classes tried on every plane
    both = RasterMethod().encode(plane, bits)
    if not keep_both:  # as on a plane over the limit: drop, rebuild (with its own classes) if the other loses
        monkeypatch.setattr(raster.analysis, "BLOCK_KEEP_BOTH", 0)
    assert RasterMethod().encode(plane, bits) == both
    assert np.array_equal(RasterMethod().decode(both, plane.shape, bits), plane)
    meta = unpack_side_info(both[0].payload)["raster"]
    assert [field for field in ("ph", "bc") if field in meta] == ([kept] if kept else [])


@pytest.mark.parametrize("resampling", [[4, 1, 2, 3], [4, 0, 0, 4, 0, 0], [1, 0, 0, 1, 0, 0], [4, -1, 0, 3, 0, 0],
                                        [4, 0, 1 << 20, 3, 0, 0], [4, 0.5, 0, 3, 0, 0], "x"])
def test_bad_phase_classes_are_refused(resampling):
    with pytest.raises(CorruptStreamError):
        _decode_changed(upscaled((48, 56)), 8, lambda meta: {**meta, "ph": resampling})


def test_phase_and_block_classes_together_are_refused():
    with pytest.raises(CorruptStreamError):
        _decode_changed(upscaled((48, 56)), 8,
                        lambda meta: {**meta, "ph": [4, 1, 2, 3, 4, 5], "bc": [24, 0, 0, 0, 0, 0, 0]})


def test_class_key_offsets_round_trip_where_sent(monkeypatch):
    monkeypatch.setattr(raster.analysis, "KEY_OFFSET_MIN_SAVING", -float("inf"))  # sent wherever any is non-zero
    for plane, bits in ((upscaled(), 8), (noisy_ct((96, 96), seed=3), 12)):
        streams = round_trip(plane, bits)
        meta = unpack_side_info(streams[0].payload)["raster"]
        assert "ko" in meta and any(meta["ko"]) and len(meta["ko"]) == raster.layout.ACTIVITY_CLASSES


def test_class_key_offsets_pay_on_a_scaled_plane_and_are_not_sent_where_they_do_not(monkeypatch):
    plane = upscaled(seed=1)
    with_offsets = round_trip(plane, 8)
    monkeypatch.setattr(raster.analysis, "KEY_OFFSET_MIN_SAVING", float("inf"))
    without = round_trip(plane, 8)
    assert "ko" not in unpack_side_info(without[0].payload)["raster"]
    assert "ko" in unpack_side_info(with_offsets[0].payload)["raster"]  # the phase's spread differs per class
    assert sum(len(s.payload) for s in with_offsets) < sum(len(s.payload) for s in without)


def test_offset_keys_stay_in_the_buckets_bounds():
    by_class = np.zeros(raster.layout.CLASSES, np.int64)
    by_class[:raster.layout.ACTIVITY_CLASSES] = [-8, 8] * (raster.layout.ACTIVITY_CLASSES // 2)
    keys = np.array([0, 124, 3, 120, 50, 60])
    cls = np.array([0, 1, 0, 1, raster.layout.FLAT_CLASS, raster.layout.ACTIVITY_CLASSES])
    top = raster.layout.KEY_MAX
    assert raster.prediction.offset_keys(keys, by_class, cls).tolist() == [0, top, 0, top, 50, 60]


@pytest.mark.parametrize("offsets", [[1] * 11, [1] * 13, [9] + [0] * 11, [0] * 12, "x", [0.5] * 12])
def test_bad_class_key_offsets_are_refused(offsets):
    with pytest.raises(CorruptStreamError):
        _decode_changed(noisy_ct((24, 20)), 12, lambda meta: {**meta, "ko": offsets})
