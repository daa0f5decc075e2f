"""Bounded fuzzing of the decoder: damaged .mlc files of every method end in a clear medcodec error or
in exactly the original file, never in a wrong output, another exception or a hang.

Two layers are attacked: raw bytes (the container's CRCs must catch them) and section payloads
re-packed with valid CRCs (so the method decoders, rANS, JPEG-XL and the envelope parser see the
damage; the pixel and file checksums must catch what they cannot). `make fuzz` runs a longer campaign.
"""

import dataclasses
import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from medcodec import bands, codec
from medcodec.container import envelope as envelope_coding
from medcodec.container import format as container
from medcodec.container.format import SectionKind
from medcodec.errors import MedcodecError
from medcodec.pipelines import raster
from medcodec.pipelines.base import unpack_side_info

from planes import (drifting_lattice, drifting_step_lattice, floored_noise, jpeg2000_history, jpeg_blocked,
                    regional_textures, turning_stripes, uneven_values)

EXAMPLES = int(os.environ.get("MEDCODEC_FUZZ_EXAMPLES", "60"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


def _image(noise: float = 20) -> np.ndarray:
    """Large enough that the learned modes beat the classical size bound and keep their own streams."""
    rng = np.random.default_rng(7)
    y, x = np.mgrid[0:160, 0:151]
    return (2000 + 300 * np.sin(x / 5) + 200 * np.cos(y / 4) + rng.normal(0, noise, x.shape)).astype(np.uint16)


def _own_streams_file(original: np.ndarray, mode: str, method=None) -> bytes:
    """A file holding the mode's own streams even where encode would store the plane classically
    (the latent mode loses to JPEG-XL on this image) or in another layout (a slow plane whose
    subimages are all coded whole is kept in the fast layout): the fuzz is about the method's decoder."""
    from medcodec.io import source as io_source
    from medcodec.pipelines import get_method

    src = io_source.load(original)
    method = method or get_method(mode, "cpu")
    streams = method.encode(src.planes[0], src.bits)
    return codec._pack_file(src, envelope_coding.pack(src.envelope), method, [(streams, {"method": mode})])


def _slow_split_file(original: np.ndarray) -> bytes:
    """The slow path with every subimage in two column sets (LC-L or first pass on the odd columns):
    on this image the encoder codes all three whole, so that decoding path needs a file of its own."""
    from medcodec.pipelines.subimage import SlowMethod

    method = SlowMethod(device="cpu")
    method.set_choice = "split"
    return _own_streams_file(original, "slow", method)


def _slow_ensemble_file(original: np.ndarray) -> bytes:
    """The slow path with every subimage in two column sets, every pass a test-time ensemble (first pass
    and LC-L pass) and surprise offsets on every set, so those decoding paths are attacked too."""
    from medcodec.pipelines.subimage import SlowMethod
    method = SlowMethod(device="cpu")
    method.set_choice, method.ensemble_choice, method.surprise_choice = "split", "always", "always"
    return _own_streams_file(original, "slow", method)


def _window_scale_file(original: np.ndarray) -> bytes:
    """The raster method's streams with the learned scale that sees a wide window (the slow mode's
    offer), used whatever it saves: its decoder's integral images are fuzzed too."""
    saving, raster.analysis.SCALE_MIN_SAVING = raster.analysis.SCALE_MIN_SAVING, -1e12
    try:
        return _own_streams_file(original, "raster", raster.RasterMethod(scale_models=(raster.method.WINDOW_SCALE_MODEL,)))
    finally:
        raster.analysis.SCALE_MIN_SAVING = saving


def _output_fit_file(original: np.ndarray) -> bytes:
    """The raster method's streams with the correction's output layer fitted to the plane (format 2.6),
    sent whatever it saves: its adjusted weights are fuzzed too."""
    margin, raster.analysis.OUTPUT_FIT_MARGIN = raster.analysis.OUTPUT_FIT_MARGIN, float("-inf")
    shipped, raster.analysis.Analysis.without_output_fit = raster.analysis.Analysis.without_output_fit, lambda self: None
    try:
        return _own_streams_file(original, "raster")
    finally:
        raster.analysis.OUTPUT_FIT_MARGIN, raster.analysis.Analysis.without_output_fit = margin, shipped


def _stacked_file(original: np.ndarray) -> bytes:
    """The raster method's streams with raster-nn-large-v1 stacked on raster-nn-xl-v1 (format 2.7), sent
    whatever it saves: the stacking weights and the second network's pass are fuzzed too."""
    from medcodec.io import source as io_source
    from medcodec.pipelines import get_method

    src = io_source.load(original)
    first, second = raster.method.shipped_correction("raster-nn-xl-v1"), raster.method.shipped_correction("raster-nn-large-v1")
    if first is None or second is None:
        pytest.skip("the shipped correction networks are not installed")
    stacked = raster.analysis.Analysis(src.planes[0], src.bits, correction=first).with_second_correction(second)
    return codec._pack_file(src, envelope_coding.pack(src.envelope), get_method("raster"),
                            [(stacked.streams(), {"method": "raster"})])


def _ultrasound_crop() -> np.ndarray:
    """128x150 of the bundled breast ultrasound example, a plane the learned raster correction pays on."""
    from PIL import Image

    path = Path(codec.__file__).parent / "data" / "examples" / "png8" / "breast_us_busi_normal_046.png"
    return np.asarray(Image.open(path).convert("L"))[:128, :150].copy()


def _once_jpeg_annotated(cut: bool = False) -> np.ndarray:
    """A once-JPEG image with a line drawn on it after decoding: its jpeg frame carries a correction.
    cut: the image cut out of the decoded JPEG 3 rows and 5 columns in (a jpeg-crop frame)."""
    image = jpeg_blocked((131, 155))[3:, 5:] if cut else jpeg_blocked((128, 150))
    image = image.astype(np.uint8)
    image[60, 20:90] = 255
    return image


@pytest.fixture(scope="module", params=["classical", "classical-j2k", "fast", "fast-phase", "fast-bands", "slow",
                                        "slow-split", "slow-ensemble",
                                                  "latent", "jpeg", "jpeg-crop", "jpeg-dct", "raster",
                                                  "raster-boost", "raster-palette",
                                                  "raster-blocks", "raster-nn", "raster-window", "raster-range",
                                                  "raster-local", "raster-radii", "raster-fit",
                                                  "raster-stack", "raster-lattice", "raster-differences"])
def encoded(request):
    # fast-phase: a once-JPEG-compressed image, whose sets carry block-phase offsets; jpeg: the same
    # kind of image coded as its recovered JPEG (any learned mode chooses it), with a correction plane
    if request.param in ("jpeg", "jpeg-crop", "jpeg-dct"):  # jpeg-dct: cut, so its stream carries a cut
        original = _once_jpeg_annotated(cut=request.param != "jpeg")
    elif request.param in ("raster-boost", "raster-differences"):  # a drifting value lattice: the
        # tap-difference weights, or (with them not offered) the neighbour-value boost
        original = drifting_lattice().astype(np.uint8)
    elif request.param == "raster-lattice":  # a drifting lattice of step 3: the boost's lattice
        original = drifting_step_lattice().astype(np.uint8)
    elif request.param == "raster-palette":  # an uneven value set: coded as palette indices
        original = uneven_values()
    elif request.param == "raster-blocks":  # textures that change by region: block classes
        original = regional_textures()
    elif request.param == "raster-range":  # many pixels on the plane's floor: the value range
        original = floored_noise()
    elif request.param == "raster-local":  # stripes turning across the plane: the local least squares
        original = turning_stripes()
    elif request.param == "raster-radii":  # smaller: the slow mode's windows of other radii pay there too
        original = turning_stripes((40, 40))
    elif request.param in ("raster-nn", "raster-window", "raster-fit", "raster-stack"):  # an ultrasound crop:
        # the learned correction and the learned scale (raster-window: the one that sees a wide window;
        # raster-fit: the correction's output layer fitted to the plane; raster-stack: two corrections)
        original = _ultrasound_crop()
    elif request.param == "slow-ensemble":  # noisier: the LC-L pass codes some odd columns, so its ensemble is fuzzed
        original = _image(noise=40)
    elif request.param == "classical-j2k":  # a decoded lossy JPEG 2000: coded as lossless JPEG 2000 (2.23)
        original = jpeg2000_history()
    else:
        original = jpeg_blocked((128, 150)).astype(np.uint8) if request.param == "fast-phase" else _image()
    mode = request.param if request.param in ("jpeg-crop", "jpeg-dct") else request.param.split("-")[0]
    try:
        if request.param == "slow-split":
            blob = _slow_split_file(original)
        elif request.param == "slow-ensemble":
            blob = _slow_ensemble_file(original)
        elif request.param == "raster-window":
            blob = _window_scale_file(original)
        elif request.param == "raster-fit":
            blob = _output_fit_file(original)
        elif request.param == "raster-stack":
            blob = _stacked_file(original)
        elif request.param == "raster-radii":
            from medcodec.pipelines.raster import RasterMethod

            blob = _own_streams_file(original, "raster", RasterMethod(local_radii=codec.RASTER_LOCAL_RADII["slow"],
                                                                      local_min_share=0.0))
        elif request.param == "raster-boost":
            with pytest.MonkeyPatch.context() as patch:
                patch.setattr(raster.analysis, "OFFER_DIFFERENCES", False)
                blob = _own_streams_file(original, "raster")
        elif mode == "raster":  # offered beside every learned mode; its own streams here
            blob = _own_streams_file(original, "raster")
        elif request.param == "fast-bands":  # the plane in two bands (format 2.22), each its own frame
            with pytest.MonkeyPatch.context() as patch:
                patch.setattr(bands, "BAND_PIXELS", original.size // 2)
                blob = codec.encode(original, mode="fast", device="cpu", in_bands=True)
        else:
            blob = codec.encode(original, mode="fast" if mode.startswith("jpeg") else mode, device="cpu")
            if codec.info(blob)["frames"][0]["method"] != mode:
                blob = _own_streams_file(original, mode)
    except MedcodecError as exc:
        pytest.skip(f"mode {mode} unavailable: {exc}")
    frames = codec.info(blob)["frames"]
    if request.param == "fast-bands":
        assert container.unpack(blob)[0].meta["bands"] == [2] and len(frames) == 2, "fuzz a banded file"
    else:
        assert [f["method"] for f in frames] == [mode], "fuzz the method itself, not its fallback"
    if request.param == "classical-j2k":
        (plane,) = [s.payload for s in container.unpack(blob)[1] if s.kind == SectionKind.PLANE_CLASSICAL]
        assert plane[0] == 2, "fuzz the JPEG 2000 codestream"
    if request.param == "fast-phase":
        metas = [s.payload for s in container.unpack(blob)[1] if s.kind == SectionKind.PLANE_META]
        assert "phase" in unpack_side_info(metas[0])["requires"], "fuzz the block-phase offsets too"
    if request.param == "latent":
        metas = [s.payload for s in container.unpack(blob)[1] if s.kind == SectionKind.PLANE_META]
        assert "classes" in unpack_side_info(metas[0])["requires"], "fuzz the class offsets too (2.24)"
    if request.param == "raster-fit":
        metas = [s.payload for s in container.unpack(blob)[1] if s.kind == SectionKind.PLANE_META]
        assert "od" in unpack_side_info(metas[0])["raster"], "fuzz the fitted output layer too"
    if request.param == "slow-ensemble":
        metas = [s.payload for s in container.unpack(blob)[1] if s.kind == SectionKind.PLANE_META]
        meta = unpack_side_info(metas[0])
        assert "ensemble" in meta["requires"] and [8, 2] in meta["ensemble"], "fuzz both ensemble passes"
        assert all(s is not None for s in meta["surprise"]), "fuzz the surprise offsets too"
    if mode == "raster":
        metas = [s.payload for s in container.unpack(blob)[1] if s.kind == SectionKind.PLANE_META]
        options = {"raster-boost": ("nb",), "raster-lattice": ("lt",), "raster-differences": ("dw",),
                   "raster-palette": ("pal",),
                   "raster-blocks": ("bc",),
                   "raster-nn": ("nn", "sn"), "raster-window": ("nn", "sn"), "raster-range": ("vr",),
                   "raster-local": ("lw",), "raster-radii": ("lw", "lx"),
                   "raster-stack": ("nn", "n2", "sk")}.get(request.param, ())
        for option in options:
            assert option in unpack_side_info(metas[0])["raster"], f"fuzz the {option} path too"
        if request.param == "raster-window":
            assert unpack_side_info(metas[0])["raster"]["sn"].startswith(raster.method.WINDOW_SCALE_MODEL + "/")
    if request.param in ("jpeg", "jpeg-crop", "jpeg-dct"):
        indices = [s.index for s in container.unpack(blob)[1] if s.kind == SectionKind.METHOD_STREAM]
        assert indices == [0, 1], "fuzz the correction plane too"
    assert np.array_equal(codec.decode(blob, device="cpu").planes[0], original)
    return original, blob


def _outcome(original: np.ndarray, damaged: bytes) -> None:
    """The only acceptable outcomes: a MedcodecError, or the exact original."""
    try:
        decoded = codec.decode(damaged, device="cpu")
    except MedcodecError as exc:
        assert str(exc) and "\n" not in str(exc).strip()
        return
    assert len(decoded.planes) == 1 and np.array_equal(decoded.planes[0], original)


@FUZZ
@given(data=st.data())
def test_byte_damage(encoded, data):
    original, blob = encoded
    kind = data.draw(st.sampled_from(["flip", "truncate", "insert", "delete", "overwrite"]))
    at = data.draw(st.integers(0, len(blob) - 1))
    if kind == "flip":
        damaged = blob[:at] + bytes([blob[at] ^ (1 << data.draw(st.integers(0, 7)))]) + blob[at + 1:]
    elif kind == "truncate":
        damaged = blob[:at]
    elif kind == "insert":
        damaged = blob[:at] + data.draw(st.binary(min_size=1, max_size=8)) + blob[at:]
    elif kind == "delete":
        damaged = blob[:at] + blob[at + data.draw(st.integers(1, 8)):]
    else:
        damaged = blob[:at] + b"\xff" * 8 + blob[at + 8:]
    _outcome(original, damaged)


@FUZZ
@given(data=st.data())
def test_payload_damage_behind_valid_crcs(encoded, data):
    original, blob = encoded
    header, sections = container.unpack(blob)
    i = data.draw(st.integers(0, len(sections) - 1))
    payload = bytearray(sections[i].payload)
    kind = data.draw(st.sampled_from(["flip", "truncate", "extend", "empty"]))
    if kind == "flip" and payload:
        at = data.draw(st.integers(0, len(payload) - 1))
        payload[at] ^= 1 << data.draw(st.integers(0, 7))
    elif kind == "truncate":
        payload = payload[: data.draw(st.integers(0, max(0, len(payload) - 1)))]
    elif kind == "extend":
        payload += data.draw(st.binary(min_size=1, max_size=16))
    else:
        payload = bytearray()
    sections[i] = dataclasses.replace(sections[i], payload=bytes(payload))
    _outcome(original, container.pack(header, sections))


@FUZZ
@given(field=st.sampled_from(["height", "width", "frames", "bits_stored"]),
       value=st.sampled_from([0, 1, 3, 17, 2**16, 2**31 - 1, 2**32 - 1]))
def test_header_fields_at_extremes(encoded, field, value):
    original, blob = encoded
    header, sections = container.unpack(blob)
    try:
        damaged = container.pack(dataclasses.replace(header, **{field: value}), sections)
    except (MedcodecError, ValueError, OverflowError):
        return  # the writer itself refuses values it cannot represent
    _outcome(original, damaged)
