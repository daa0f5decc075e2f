"""The raster method (``RasterMethod``): the encoder's analysis and the decoder behind the ``Method``
interface, and the learned networks a frame may name (loaded and checked by their weights' hash)."""

from __future__ import annotations

import functools
from typing import Callable, Sequence

import numpy as np

from medcodec.container.format import SectionKind
from medcodec.errors import CorruptStreamError, ModelMismatchError
from medcodec.networks import raster_mlp
from medcodec.pipelines.base import Method, Stream, check_decoded, check_plane, unpack_side_info
from medcodec.pipelines.raster import analysis, decoder
from medcodec.pipelines.raster.side_info import KEY, RasterModel

# encode_alternatives skips its rANS pass where the estimate is over this times another coding's size (the
# coded streams are within 0.2 % of the estimate on the train planes)
ESTIMATE_MARGIN = 1.01
# The learned prediction correction the encoder offers (models/). raster-nn-v1 (two layers of 48) was
# the default until raster-nn-large-v1 (three of 96): ~1 % smaller raster frames for ~1.4x the decoding
# time (benchmarks/results/raster_ablation.json); files naming v1 still decode with it.
CORRECTION_MODEL = "raster-nn-large-v1"
# The learned scale the encoder offers (models/): a network that, on the pixels the correction sees, puts
# each pixel in a scale bucket by its estimate of the residual's logistic scale instead of by the plane's
# linear scale sum (raster_mlp.scale_keys). Estimate on 22 held-out train planes 0.9 % smaller in total
# (head/lung CT, brain MR, breast US 1-2 %, 3D MR with background 8-10 %, chest radiographs 0.2 %); test
# planes' raster streams 0.84 % (benchmarks/README.md). The encoder keeps the linear buckets where they
# code smaller.
SCALE_MODEL = "raster-scale-v1"
# The learned scale that also sees a wide causal window's errors (raster_mlp.ErrorWindows, format 2.2):
# held-out train pixels 0.28 % fewer bits than raster-scale-v1 (3.205 vs 3.214), test planes' raster
# streams 0.13 % smaller (16-bit CT 0.2-0.4 %, some lung CT 0.1-0.2 % larger), for ~10 % more decoding
# time where a frame uses it: every learned mode offers it after raster-scale-v1 (codec.RASTER_SCALES).
WINDOW_SCALE_MODEL = "raster-scale-v2"
SCALE_INPUTS = (raster_mlp.SCALE_FEATURES, raster_mlp.WINDOW_SCALE_FEATURES)  # raster-scale-v1, -v2 on


@functools.lru_cache(maxsize=4)
def shipped_correction(model_id: str = CORRECTION_MODEL) -> raster_mlp.RasterCorrection | None:
    """The learned correction ``model_id`` the encoder offers, or None where its weights are not
    installed: the raster method then codes without it, as releases before it did."""
    try:
        return raster_mlp.load(model_id)
    except ModelMismatchError:
        return None


@functools.lru_cache(maxsize=2)
def shipped_scale(model_id: str = SCALE_MODEL) -> raster_mlp.RasterCorrection | None:
    """The learned scale ``model_id`` the encoder offers, or None where its weights are not installed."""
    try:
        net = raster_mlp.load(model_id)
    except ModelMismatchError:
        return None
    return net if net.inputs in SCALE_INPUTS else None


def _network_named(tag: str, what: str, inputs: tuple[int, ...]) -> raster_mlp.RasterCorrection:
    """The network a raster frame names ("<model id>/<sha256 prefix>"), loaded and checked; a clear
    ModelMismatchError when this installation lacks those exact weights."""
    model_id = tag.split("/", 1)[0]
    try:
        net = raster_mlp.load(model_id)
    except ModelMismatchError as exc:
        raise ModelMismatchError(f"raster frame needs the {what} weights {tag} ({exc})") from None
    if net.tag != tag or net.inputs not in inputs:
        raise ModelMismatchError(f"raster frame needs the {what} weights {tag}; this installation "
                                 f"has {net.tag}: install the medcodec release that wrote the file")
    return net


def correction_named(tag: str) -> raster_mlp.RasterCorrection:
    """The prediction-correction network a raster frame names."""
    return _network_named(tag, "prediction-correction", (raster_mlp.FEATURES,))


def scale_named(tag: str) -> raster_mlp.RasterCorrection:
    """The scale network a raster frame names."""
    return _network_named(tag, "learned-scale", SCALE_INPUTS)


class RasterMethod(Method):
    """Raster-order prediction with per-plane least-squares weights (see the module docstring)."""

    name = "raster"

    def __init__(self, use_correction: bool = True, correction_model: str = CORRECTION_MODEL,
                 robust: int | None = None, thorough: bool = False, use_scale: bool = True,
                 scale_models: tuple[str, ...] = (SCALE_MODEL,), local_min_share: float | None = None,
                 local_radii: tuple[int, ...] = (), second_model: str | None = None):
        self.use_correction = use_correction  # False: never the learned correction (ablations)
        self.use_scale = use_scale  # False: never the learned scale (ablations)
        self.scale_models = scale_models  # the learned scales the encoder offers, in turn
        self.correction_model = correction_model  # the encoder's; the decoder uses the one a frame names
        self.robust = robust  # the encoder's robust fits (Analysis.robust; None: by bit depth)
        self.thorough = thorough  # the encoder's larger samples (Analysis.thorough)
        self.local_min_share = local_min_share  # what the local least-squares blend must save (_analyse)
        self.local_radii = local_radii  # the windows blended in besides local_ls.RADIUS's, where they pay
        self.second_model = second_model  # the correction stacked on the first where that pays (None: never)

    def _correction(self) -> raster_mlp.RasterCorrection | None:
        return shipped_correction(self.correction_model) if self.use_correction else None

    def _analysis_of(self, plane: np.ndarray, bits: int) -> analysis.Analysis:
        nets = [shipped_scale(m) for m in self.scale_models] if self.use_scale else []
        second = shipped_correction(self.second_model) if self.use_correction and self.second_model else None
        return analysis.analyse(check_plane(plane, bits), bits, self._correction(), self.robust, self.thorough,
                        [net for net in nets if net is not None], self.local_min_share, self.local_radii, second)

    def encode(self, plane: np.ndarray, bits: int) -> list[Stream]:
        return self._analysis_of(plane, bits).streams()

    def encode_alternatives(self, plane: np.ndarray, bits: int,
                            beaten_by: int | Callable[[], int | None] | None = None) -> list[tuple[str, list[Stream]]]:
        """The raster streams, or none when their estimated size is over ``beaten_by`` bytes (another
        coding's size) by more than the estimate's error: the rANS coding is then not run (a third of
        the encoder's time). beaten_by may be a function, asked once the analysis is done (another
        coding made meanwhile in another thread)."""
        analysis = self._analysis_of(plane, bits)
        if callable(beaten_by):
            beaten_by = beaten_by()
        if beaten_by is not None and analysis.estimated_bytes() > ESTIMATE_MARGIN * beaten_by:
            return []
        return [(self.name, analysis.streams())]

    def decode(self, streams: Sequence[Stream], shape: tuple[int, int], bits: int) -> np.ndarray:
        found = {(s.kind, s.index): s.payload for s in streams}
        needed = [(SectionKind.PLANE_META, 0), (SectionKind.RESIDUAL, 0), (SectionKind.METHOD_STREAM, 0)]
        if len(streams) != len(needed) or any(k not in found for k in needed):
            raise CorruptStreamError("raster frame needs its side information, rANS and raw-bit streams")
        try:
            meta = unpack_side_info(found[needed[0]])[KEY]
        except (ValueError, TypeError, KeyError) as exc:
            raise CorruptStreamError(f"raster side information is damaged ({exc})") from None
        model = RasterModel.from_json(meta, bits)
        model.check_blocks(shape)
        net = correction_named(model.correction) if model.correction is not None else None
        if model.output_delta is not None:
            try:
                net = net.with_output_delta(model.output_delta)
            except ValueError as exc:
                raise CorruptStreamError(f"raster side information is out of range ({exc})") from None
        scale_net = scale_named(model.scale_net) if model.scale_net is not None else None
        second = correction_named(model.second_correction) if model.second_correction is not None else None
        coded = decoder.decode(model, found[needed[1]], found[needed[2]], shape, model.coded_bits(bits), net, scale_net,
                        second)
        return check_decoded(model.plane_of(coded, bits), shape, bits, "raster")
