"""The raster encoder's pass over a whole plane (``Analysis``): fits the per-plane weights and choices
(classes, the two stages, the learned corrections, the local least-squares blend, the scale buckets,
the boost and value range), estimates the frame's size, and writes its streams; ``analyse`` tries the
alternatives (value grid or palette, block classes, with or without each network) and keeps the
smallest. The numbers below tune the encoder only: a decoder reads whatever a frame sends."""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import threading
from collections import OrderedDict
from concurrent.futures import Future
from typing import Sequence

import constriction
import numpy as np

from medcodec import parallel
from medcodec.compiled import kernel
from medcodec.container.format import SectionKind
from medcodec.entropy import residual_model as rm
from medcodec.networks import raster_mlp
from medcodec.pipelines.base import Stream, pack_side_info
from medcodec.pipelines.raster import coding, differences, fitting, local_ls, phase, prediction, side_info
from medcodec.pipelines.raster.fitting import FIRST_STAGE_EPSILON, ROBUST_EPSILON
from medcodec.pipelines.raster.layout import (ACTIVITY_CLASSES, BORDER_DEFAULT, CLASSES, COEF_LIMIT, COEF_SHIFT,
                                              ERROR_TAPS, FIRST_LIMIT, KEY_OFFSET_LIMIT, OFFSETS, PAD_LEFT, PAD_TOP,
                                              SCALE_TAPS, STACK_LIMIT, STACK_SHIFT, WEIGHT_LIMIT, Layout, block_count,
                                              block_index)
from medcodec.pipelines.raster.side_info import KEY, RasterModel

WEIGHT_BITS = 12  # what one sent weight is reckoned to cost when deciding whether a class gets its own
FIT_SAMPLE = 1 << 18  # pixels (an even stride) the least-squares fits look at
SEARCH_SAMPLE = 1 << 17  # pixels the scale search looks at
KEY_OFFSET_MIN_SAVING = 16  # bytes the per-class key offsets must save (their side information: ~10)
BAND_PIXELS = 1 << 16  # the encoder computes bands of about this many pixels at a time
CHUNK = 1 << 15  # pixels per constriction call on the encoder's side
# (seen, per-count) boosts the encoder tries, and the scale-index steps it tries with them per bucket
BOOSTS = ((16, 0), (0, 16), (16, 16), (32, 8))
BOOST_ELL_STEPS = (0, 2, 4)
# (step, weight per neighbour in 1/16) lattices the encoder tries on top of the best boost (format 2.8)
LATTICES = ((2, 8), (2, 24), (2, 64), (3, 8), (3, 24), (3, 64))
BOOST_SAMPLE = 1 << 15  # pixels the boost search looks at
# Tap-difference weights (format 2.20, Analysis.offer_difference_weights): the scale-index step (of the plain
# tables) they are fitted at, and the steps then tried per bucket (they make the tables peakier, so wider
# tables pay: train chest radiographs fitted best 2-4 steps wider)
OFFER_DIFFERENCES = True
DIFFERENCE_FIT_STEP = 2
DIFFERENCE_ELL_STEPS = (0, 2, 4, 6)
DIFFERENCE_MIN_SAVING = 0.005  # of the held-out half's code length
OFFER_AGREEMENT = True  # agreement weights with them (format 2.21); False: the 2.20 tap-difference weights alone
SCALE_MIN_SAVING = 0.0  # estimated bytes the learned scale must save over the linear buckets
CORRECTION_MIN_GAIN = 0.01  # bits per corrected pixel (code-length proxy) the correction must promise
# The per-plane fit of the correction network's output layer (format 2.6, Analysis._output_delta):
# pixels it looks at, the fewest worth a fit, and how many times its side information the held-out
# proxy must promise to save.
ADAPT_OUTPUT = True
OUTPUT_FIT_SAMPLE = 1 << 16
OUTPUT_FIT_MIN = 2048
OUTPUT_FIT_MARGIN = 2.0
OUTPUT_RIDGE = 1e-3
# Stacked corrections (format 2.7, Analysis.with_second_correction): a class with fewer than
# STACK_MIN_PIXELS pixels keeps the first network's correction alone.
STACK_MIN_PIXELS = 256
BLOCK = 24  # side of the square blocks that may each name their activity-slot class (16: 0.2 % larger)
BLOCK_ITERATIONS = 4  # alternations of the block-class fit (8: within 0.05 %)
BLOCK_SAMPLE = 1 << 18  # pixels the block-class fit looks at
# A thorough analysis (the slow mode's extra try) looks at this many times more pixels in each of the
# samples above: on planes larger than a sample, fits and searches nearer the whole plane's optimum.
THOROUGH_SCALE = 4
BLOCK_CLASS_BITS = 3.6  # what one block's class is reckoned to cost in the side information
BLOCK_PROXY_GAIN = 0.01  # block classes are tried when their code-length proxy promises this share
BLOCK_KEEP_BOTH = 1 << 21  # pixels up to which the analyses with and without block classes coexist
# The plane's value range is sent (tables hold nothing outside it: coding.probabilities) where the estimate says
# it saves this many bytes, about its side information; elsewhere no table is rebuilt for it.
RANGE_MIN_BYTES = 8
# The local least-squares blend is sent where it saves this share of the frame's estimate: it about
# doubles the frame's decoding time (train planes: 16-bit CTs -3.5..-3.8 %, an MP-RAGE slice -2.7 %, head
# and lung CT -0.7..-0.9 %; 12-bit MR, radiographs and ultrasound save less than this)
LOCAL_MIN_SHARE = 0.005
PALETTE_HOLES = 0.05  # a palette is tried when this share of the values between the extremes is unused

# Analysis._local_predictions': per plane key (the most recent ones, as many as the thread budget: the
# frames coded side by side), per radius a Future of the predictions (computed by the first analysis to
# ask, the others in any thread wait for it: the slow mode's raster tries run side by side)
_LOCAL_CACHE: "OrderedDict[tuple, dict[int, Future]]" = OrderedDict()
_LOCAL_LOCK = threading.Lock()  # encoders in several threads share the cache


class Analysis:
    """The encoder's pass over the whole plane: fits the model, then everything the decoder will compute.

    The same integer functions as the decoder's, applied to bands of rows at once (neighbours as slices of
    the padded plane, so no per-pixel gather over the whole plane); the fits look at an even stride."""

    def __init__(self, plane: np.ndarray, bits: int, block_classes: np.ndarray | None = None,
                 correction: raster_mlp.RasterCorrection | None = None, robust: int | None = None,
                 thorough: bool = False, resampling: tuple[int, int, int, int, int, int] | None = None):
        self.bits = bits
        self.thorough = thorough
        self.sample_scale = THOROUGH_SCALE if thorough else 1
        # which fits are robust (fitting.robust_lstsq): 0 none, 1 the second stage and the scale, 2 the first
        # stage too; by default 2 above ROBUST_ABOVE_BITS bits, else 0
        self.robust = robust if robust is not None else fitting.default_robustness(bits)
        self.top = (1 << bits) << 4
        self.layout = layout = Layout(plane.shape)
        self.height, self.width = height, width = plane.shape
        rows, cols = np.divmod(np.arange(height * width, dtype=np.int64), width)
        self.values = plane.astype(np.int64).ravel()
        self.value_range = (int(self.values.min()), int(self.values.max())) if self.values.size else (0, 0)
        self.border = layout.border(rows, cols).astype(np.int8)
        self.order = np.lexsort((rows, 2 * rows + cols))  # decode order: wavefront, then row
        self.sample = fitting.strided_sample(self.values.size, FIT_SAMPLE * self.sample_scale, width)
        self.sample_index = layout.flat(rows[self.sample], cols[self.sample])
        del rows, cols
        # per-pixel results are stored as int32 (values < 2**21, errors within +-2**24; every product and
        # sum is taken in int64), so a 4096^2 plane's encoder needs about what the fast path's does
        pad = int(np.median(self.values))
        grid = np.full(layout.padded_shape, pad, dtype=np.int64)
        grid[PAD_TOP:, PAD_LEFT:PAD_LEFT + width] = plane
        self.grid = grid.ravel()
        self.activity = self._by_bands(grid, len(OFFSETS), lambda nb, band: prediction.activity(nb)).astype(np.int32)
        inner = self.activity[self.border < 0]
        median_activity = int(np.median(inner)) if inner.size else 0
        class_shift = max(0, int(np.frexp(float(median_activity))[1]) - 6)
        per_pixel = None  # the inner pixels' classes where not by activity
        if block_classes is not None:  # each pixel's block class (block_index's order), as int8 repeats
            # of the block grid: no whole-plane int64 rows and columns
            per_block = block_classes.astype(np.int8).reshape(-1, -(-width // BLOCK))
            per_pixel = np.repeat(np.repeat(per_block, BLOCK, axis=0)[:height], BLOCK, axis=1)[:, :width].ravel()
        elif resampling is not None:  # each pixel's resampling-phase class (raster.phase)
            by_row, by_column = phase.row_and_column_parts((height, width), resampling)
            per_pixel = (by_row.astype(np.int8)[:, None] + by_column.astype(np.int8)[None, :]).ravel()
        self.cls = prediction.classes(self.activity, self.border, class_shift, per_pixel).astype(np.int8)
        shared, first = self._fit_first(self._taps_at(grid, len(OFFSETS)))
        self.mu1 = self._by_bands(grid, len(OFFSETS), lambda nb, band: prediction.first_stage(
            nb, self.cls[band], first, self.top)).astype(np.int32)
        errors1 = self._grid_of(prediction.error(self.values, self.mu1))
        second = self._fit_second(self._taps_at(errors1, ERROR_TAPS),
                                  prediction.error(self.values[self.sample], self.mu1[self.sample]))
        self.mu = self._by_bands(errors1, ERROR_TAPS,
                                 lambda e1, band: prediction.second_stage(self.mu1[band], e1, self.cls[band], second,
                                                                self.top)).astype(np.int32)
        self.output_delta: np.ndarray | None = None  # set by _corrected
        self._correction_net = correction  # the shipped network (with_second_correction adds the frame's delta)
        self._shipped_output: np.ndarray | None = None  # the prediction with the shipped output layer, if fitted
        corrected = self._corrected(correction, errors1) if correction is not None else None
        del errors1
        self._uncorrected = self.mu if corrected is not None else None  # for without_correction()
        self._before_local: np.ndarray | None = None  # the prediction the local least squares moved
        self.model = RasterModel(pad=pad, class_shift=class_shift, shared=shared, first=first, second=second,
                                 scale_weights=np.zeros(SCALE_TAPS + 1, np.int64), bucket_low=0,
                                 ell=np.zeros(128, np.int64), block_size=BLOCK if block_classes is not None else 0,
                                 block_classes=block_classes, resampling=resampling,
                                 output_delta=self.output_delta if corrected is not None else None)
        self._finish(self.mu if corrected is None else corrected, None if corrected is None else correction.tag)

    def _finish(self, mu: np.ndarray, correction_tag: str | None) -> None:
        """Everything after the final prediction: errors, scale weights, buckets and their scale indices."""
        self.mu = mu
        self.model.correction = correction_tag
        if correction_tag is None:
            self.model.output_delta = self.model.second_correction = self.model.stack_weights = None
        self.errors2 = prediction.error(self.values, self.mu).astype(np.int32)
        errors2 = self._grid_of(self.errors2)
        self.model.scale_weights = self._fit_scale(self._taps_at(errors2, SCALE_TAPS))
        self._settle(self._by_bands(errors2, SCALE_TAPS, lambda e2, band: prediction.linear_keys(
            prediction.scale_sum(e2, self.activity[band], self.model))), None)

    def offer_learned_scales(self, nets: Sequence[raster_mlp.RasterCorrection]) -> None:
        """Takes each learned scale's buckets (``_learned_keys``), in turn, where they code smaller than
        the buckets kept so far (at first the linear ones). Offered once, to the analysis the other
        choices settled on: offered to every candidate analysis it saved 0.37 % instead of 0.35 % on 16
        held-out train files for ~50 % more encoder time instead of ~15-30 %. The networks' inputs are
        computed once for all of them."""
        if not nets:
            return
        errors2 = self._grid_of(self.errors2)
        scale_sum = self._by_bands(errors2, SCALE_TAPS,
                                   lambda e2, band: prediction.scale_sum(e2, self.activity[band], self.model))
        linear_keys = self.buckets.astype(np.int64) + self.model.bucket_low  # as _settle made them
        learned = self._learned_keys(nets, linear_keys, scale_sum, errors2)
        del scale_sum, errors2, linear_keys
        for net, keys in zip(nets, learned):
            self._settle_if_smaller(keys, net.tag, self.model.key_offsets, SCALE_MIN_SAVING)

    def _settle_if_smaller(self, keys: np.ndarray, scale_tag: str | None, key_offsets: np.ndarray | None,
                           min_saving: float) -> None:
        """Buckets settled on keys (made with key_offsets), kept where the estimate drops by more than
        min_saving bytes; otherwise the buckets kept so far are restored."""
        estimate, kept = self.estimated_bytes(), self._bucket_state()
        self.model.key_offsets = key_offsets
        self._settle(keys, scale_tag)
        if self.estimated_bytes() >= estimate - min_saving:
            self._set_bucket_state(kept)

    def _settle(self, keys: np.ndarray, scale_tag: str | None) -> None:
        """Buckets from every pixel's scale key; their scale indices and the boost fitted."""
        low, high = int(keys.min()), int(keys.max())
        self.buckets = (keys - low).astype(np.int16)
        self.model.bucket_low = low
        self.model.scale_net = scale_tag
        self.model.boost, self.model.lattice, self.model.differences = (0, 0), (0, 0), None
        self.model.ell = self.plain_ell = self._fit_buckets(low, high - low + 1)
        self.plain_cost_bits: float | None = None
        self.range_saving_bits, self.range_censor = 0.0, 0
        self._settle_range()  # first: the boost search weighs the boost on the tables the range leaves
        self.boost_ratio = self._fit_boost()

    def offer_key_offsets(self) -> None:
        """Per activity-slot class, an offset of its inner pixels' scale keys (``RasterModel.key_offsets``),
        kept where the plane's estimate is smaller with them.

        Why: neither the linear nor the learned scale sees a pixel's class, and on a resampled plane (phase
        classes) the residual's spread depends on the phase: pixels that fall on original samples carry
        the full noise, interpolated ones less. Train head CTs with phase classes: 1.0-3.0 % smaller
        (per-class best offsets by search, each refitted); a plane classed by activity 0.14 %.
        The offsets are each class's best scale-index offset on a sample under the current tables
        (``rm.search_class_adjustments``, eighth octaves), halved to the keys' quarter octaves; the
        buckets are then settled again on the shifted keys."""
        members = fitting.strided_sample(self.values.size, SEARCH_SAMPLE * self.sample_scale, self.width)
        members = members[self.cls[members] < ACTIVITY_CLASSES]
        if members.size < 64 * ACTIVITY_CLASSES:
            return
        found = rm.search_class_adjustments(self.values[members], self.mu[members],
                                            self.plain_ell[self.buckets[members]], self.cls[members].astype(np.int64),
                                            ACTIVITY_CLASSES)
        offsets = np.clip(np.round(np.array([a.offsets[0] for a in found]) / 2), -KEY_OFFSET_LIMIT,
                          KEY_OFFSET_LIMIT).astype(np.int64)
        if not offsets.any():
            return
        keys = prediction.offset_keys(self.buckets.astype(np.int64) + self.model.bucket_low,
                                      side_info.keys_by_class(offsets), self.cls)
        self._settle_if_smaller(keys, self.model.scale_net, offsets, KEY_OFFSET_MIN_SAVING)

    def _bucket_state(self) -> tuple:
        m = self.model
        return (self.buckets, m.bucket_low, m.scale_net, m.key_offsets, m.boost, m.lattice, m.differences, m.ell,
                self.plain_ell, self.boost_ratio, self.plain_cost_bits, self.range_saving_bits, self.range_censor,
                m.value_range)

    def _set_bucket_state(self, state: tuple) -> None:
        m = self.model
        (self.buckets, m.bucket_low, m.scale_net, m.key_offsets, m.boost, m.lattice, m.differences, m.ell,
         self.plain_ell, self.boost_ratio, self.plain_cost_bits, self.range_saving_bits, self.range_censor,
         m.value_range) = state

    def _learned_keys(self, nets: Sequence[raster_mlp.RasterCorrection], keys: np.ndarray, scale_sum: np.ndarray,
                      errors2: np.ndarray) -> list[np.ndarray]:
        """For each network, the scale keys with its keys on the pixels with a raster class (inner, not
        flat), as the decoder computes them; none where there are no such pixels. errors2: the final
        errors' grid. A network with the window's inputs gets them appended to the others'."""
        eligible = self.cls < ACTIVITY_CLASSES
        if not eligible.any():
            return []
        pre_mu, grids = self._scale_grids(errors2)
        windows = self._windows() if any(n.inputs == raster_mlp.WINDOW_SCALE_FEATURES for n in nets) else None
        out = [keys.copy() for _ in nets]
        for first_row, end_row, inside, pixels in self._bands_of(eligible):
            taps = (self._band_taps(g, first_row, end_row, len(OFFSETS))[inside] for g in grids)
            inputs = prediction.scale_inputs(*taps, self.mu1[pixels], pre_mu[pixels], self.activity[pixels],
                                             scale_sum[pixels])
            wide = None if windows is None else np.concatenate(
                [inputs, windows.features(*np.divmod(pixels, self.width), scale_sum[pixels])], axis=1)
            for net, keyed in zip(nets, out):
                chosen = wide if net.inputs == raster_mlp.WINDOW_SCALE_FEATURES else inputs
                keyed[pixels] = raster_mlp.scale_keys(net, chosen, scale_sum[pixels])
        return out

    def _windows(self) -> raster_mlp.ErrorWindows:
        return raster_mlp.ErrorWindows.of_plane(self.errors2.reshape(self.height, self.width))

    def _scale_grids(self, errors2: np.ndarray) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
        """(the uncorrected second-stage prediction, the padded grids of the values and of the first-stage,
        uncorrected second-stage and final errors): what the learned scale's inputs are taken from.
        errors2: the final errors' grid (without a correction, also the uncorrected ones)."""
        pre_mu = self._uncorrected if self._uncorrected is not None else \
            self.mu if self._before_local is None else self._before_local
        errors_pre = errors2 if self._uncorrected is None else self._grid_of(prediction.error(self.values, pre_mu))
        return pre_mu, (self.grid.reshape(self.layout.padded_shape),
                        self._grid_of(prediction.error(self.values, self.mu1)), errors_pre, errors2)

    def scale_samples(self, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(scale network inputs with the window features, linear scale sums) of these pixels (flat
        indices, each with a raster class): what the learned scale sees there, for training it
        (``train.raster_scale``; a network without the window takes the first SCALE_FEATURES columns)."""
        pre_mu, grids = self._scale_grids(self._grid_of(self.errors2))
        index = self.layout.flat(*np.divmod(pixels, self.width))
        nb, errors1, errors_pre, final = (self._taps_at(g, len(OFFSETS), index) for g in grids)
        scale_sum = prediction.scale_sum(final[:, :SCALE_TAPS], self.activity[pixels], self.model)
        inputs = prediction.scale_inputs(nb, errors1, errors_pre, final, self.mu1[pixels], pre_mu[pixels],
                                         self.activity[pixels], scale_sum)
        window = self._windows().features(*np.divmod(pixels, self.width), scale_sum)
        return np.concatenate([inputs, window], axis=1), scale_sum

    def without_correction(self) -> "Analysis | None":
        """This analysis again without the learned correction (None where it has none): the same fits up
        to the second stage, the rest refitted. The caller keeps whichever estimate is smaller: on the
        train split the proxy that chose the correction was wrong only on planes of mostly flat
        background (MR at 0.4 bpp: +0.4-5 %)."""
        if self._uncorrected is None:
            return None
        other = copy.copy(self)
        other.model = dataclasses.replace(self.model)
        other._uncorrected = None
        other._finish(self._uncorrected, None)
        return other

    def without_output_fit(self) -> "Analysis | None":
        """This analysis again with the correction's shipped output layer (None where its output layer was
        not fitted to the plane), the rest refitted. The fit is chosen by a code-length proxy; the caller
        keeps whichever estimate is smaller (on 8-bit head CTs the proxy's choice was 0.1-0.2 % larger)."""
        if self._shipped_output is None or self.model.output_delta is None:
            return None
        other = copy.copy(self)
        other.model = dataclasses.replace(self.model, output_delta=None)
        other._shipped_output = None
        other._finish(self._shipped_output, self.model.correction)
        return other

    def with_second_correction(self, second: raster_mlp.RasterCorrection) -> "Analysis | None":
        """This analysis with a second correction network's correction stacked on its own (format 2.7), the
        rest refitted; None where it has no correction or ``second`` is the network it has. Each activity
        class weights the two corrections by least absolute deviations (``fitting.robust_lstsq``) of the
        uncorrected error on them, over every pixel of the class. The caller keeps whichever estimate is
        smaller.

        Why: the two shipped networks (raster-nn-xl-v1, raster-nn-large-v1) were trained apart and err
        apart; their weighted sum predicts better than either, and a class's weights also rescale
        corrections that are too timid or too bold on this plane (train planes, first analyses: -0.3 to
        -1.4 %, -0.1 to -0.9 % after the local least-squares blend). The decoder pays a second network pass."""
        if self._uncorrected is None or self._correction_net is None or second.tag == self.model.correction:
            return None
        first = self._correction_net if self.model.output_delta is None \
            else self._correction_net.with_output_delta(self.model.output_delta)
        eligible = self.cls < ACTIVITY_CLASSES
        pre = self._uncorrected
        grids = (self.grid.reshape(self.layout.padded_shape), self._grid_of(prediction.error(self.values, self.mu1)),
                 self._grid_of(prediction.error(self.values, pre)))
        corrections = np.zeros((self.values.size, 2), dtype=np.int32)  # |c| <= 8 s < 2**29
        for first_row, end_row, inside, pixels in self._bands_of(eligible):
            feats, feature_scale = raster_mlp.features(
                *(self._band_taps(g, first_row, end_row, len(OFFSETS))[inside] for g in grids),
                self.mu1[pixels], pre[pixels], self.activity[pixels])
            for k, net in enumerate((first, second)):
                corrections[pixels, k] = net.correction(feats, feature_scale)
        del grids
        target = prediction.error(self.values, pre).astype(np.float64)
        weights = np.tile(np.array([1 << STACK_SHIFT, 0], dtype=np.int64), (ACTIVITY_CLASSES, 1))
        cls = self.cls.astype(np.int64)
        for k in range(ACTIVITY_CLASSES):
            members = np.flatnonzero(cls == k)
            if members.size >= STACK_MIN_PIXELS:
                fitted = fitting.robust_lstsq(corrections[members].astype(np.float64), target[members])
                weights[k] = np.clip(np.round(fitted * (1 << STACK_SHIFT)), -STACK_LIMIT, STACK_LIMIT)
        mu = self.mu.copy()
        chosen = np.flatnonzero(eligible)
        mu[chosen] = prediction.stacked(corrections[chosen], weights, cls[chosen], pre[chosen], self.top)
        del corrections
        other = copy.copy(self)
        other.model = dataclasses.replace(self.model, second_correction=second.tag, stack_weights=weights)
        other._finish(mu, self.model.correction)
        return other

    def with_local_ls(self, extra_radii: Sequence[int] = ()) -> "Analysis | None":
        """This analysis with its prediction moved towards the local least-squares one
        (``local_ls``) by a weight per class, fitted on every pixel (least squares, clipped to
        0..1), the rest refitted; None where no class takes any. With extra_radii, also the blends of
        the RADIUS window's prediction with those of each and all of these radii (fitted jointly), the
        smallest estimate kept. The caller keeps whichever estimate is smaller than this one's."""
        cls = self.cls.astype(np.int64)
        target = prediction.error(self.values, self.mu).astype(np.float64)
        choices = [(local_ls.RADIUS,)] + [(local_ls.RADIUS, r) for r in extra_radii]
        if len(extra_radii) > 1:
            choices.append((local_ls.RADIUS, *extra_radii))
        # each radius's moves once, for every choice that holds it
        deltas = {radius: np.clip(prediction - self.mu, -local_ls.DELTA_LIMIT, local_ls.DELTA_LIMIT)
                  for radius, prediction in self._local_predictions((local_ls.RADIUS, *extra_radii)).items()}
        moves = {radius: delta.astype(np.float64) for radius, delta in deltas.items()}
        best = None
        for radii in choices:
            weights = fitting.blend_weights([moves[radius] for radius in radii], target, cls)
            if not weights[0].any() and len(radii) == 1:
                return None
            kept = [(radius, w) for radius, w in zip(radii[1:], weights[1:]) if w.any()]
            if len(radii) > 1 and len(kept) < len(radii) - 1:
                continue  # the same as a smaller choice (or no blend of its own)
            shifts = sum(w[cls] * deltas[radius] for w, radius in zip(weights, radii))
            other = copy.copy(self)
            other.model = dataclasses.replace(self.model, local_weights=weights[0], local_extra=tuple(kept))
            other._before_local = self.mu
            other._finish(local_ls.moved(self.mu.astype(np.int64), shifts).astype(np.int32), self.model.correction)
            if best is None or other.estimated_bytes() < best.estimated_bytes():
                best = other
        return best

    def _local_predictions(self, radii: Sequence[int]) -> dict[int, np.ndarray]:
        """Every pixel's local least-squares prediction with a window of each of these radii (they
        depend on the coded plane alone: the slow mode's tries of one plane compute them once, side by
        side or not; the last planes' are kept, as many as the thread budget)."""
        key = (self.height, self.width, self.top, hashlib.blake2b(self.values.tobytes(), digest_size=16).digest())
        out = {}
        for radius in radii:
            with _LOCAL_LOCK:
                planes = _LOCAL_CACHE.setdefault(key, {})
                _LOCAL_CACHE.move_to_end(key)
                while len(_LOCAL_CACHE) > max(1, parallel.thread_budget()):  # before computing: a 4096^2
                    _LOCAL_CACHE.popitem(last=False)  # plane's are 128 MB a radius
                pending = planes.get(radius)
                if pending is None:
                    pending = planes[radius] = Future()
                    mine = True
                else:
                    mine = False
            if mine:
                try:
                    predictions = local_ls.plane_predictions(
                        lambda first, end: self._band_taps(self.grid.reshape(self.layout.padded_shape), first, end,
                                                           len(OFFSETS)),
                        self.values, self.height, self.width, self.top, max(1, BAND_PIXELS // self.width), radius)
                except BaseException as exc:
                    with _LOCAL_LOCK:
                        planes.pop(radius, None)  # a later analysis computes it again
                    pending.set_exception(exc)
                    raise
                predictions.flags.writeable = False  # shared between analyses
                pending.set_result(predictions)
            out[radius] = pending.result()
        return out

    def _corrected(self, net: raster_mlp.RasterCorrection, errors1: np.ndarray) -> np.ndarray | None:
        """The second-stage prediction plus the learned correction on every pixel with a raster class
        (inner, not flat), or None where the correction does not save CORRECTION_MIN_GAIN bits a pixel
        by the code-length proxy log2(|error| + 0.6) on the fit sample (it can cost: a plane unlike
        the training images)."""
        eligible = self.cls < ACTIVITY_CLASSES
        sample = self.sample[eligible[self.sample]]
        if sample.size == 0:
            return None
        errors2 = self._grid_of(prediction.error(self.values, self.mu))  # the decoder's pre-correction error grid
        grid = self.grid.reshape(self.layout.padded_shape)
        self.output_delta = self._output_delta(net, (grid, errors1, errors2), sample) if ADAPT_OUTPUT else None
        fitted = net.with_output_delta(self.output_delta) if self.output_delta is not None else None
        mu = self.mu.copy()
        shipped = self.mu.copy() if fitted is not None else None  # the shipped layer's, for without_output_fit
        for first_row, end_row, inside, pixels in self._bands_of(eligible):
            feats, feature_scale = raster_mlp.features(
                *(self._band_taps(g, first_row, end_row, len(OFFSETS))[inside] for g in (grid, errors1, errors2)),
                self.mu1[pixels], self.mu[pixels], self.activity[pixels])
            if fitted is None:
                mu[pixels] = prediction.corrected(net, feats, feature_scale, self.mu[pixels], self.top)
                continue
            plain, adjusted = net.outputs_with(fitted, feats)
            for out, output in ((shipped, plain), (mu, adjusted)):
                out[pixels] = prediction.clamp(self.mu[pixels] + raster_mlp.correction_of(output, feature_scale), 0,
                                               self.top)
        self._shipped_output = shipped
        del errors2
        values = self.values[sample]
        before = np.log2(np.abs(prediction.error(values, self.mu[sample])) / 16 + 0.6)
        after = np.log2(np.abs(prediction.error(values, mu[sample])) / 16 + 0.6)
        return mu if float((before - after).mean()) > CORRECTION_MIN_GAIN else None

    def _output_delta(self, net: raster_mlp.RasterCorrection, grids: tuple[np.ndarray, ...],
                      sample: np.ndarray) -> np.ndarray | None:
        """Integer additions to the correction's output layer (its last hidden activations' weights, then
        its bias) fitted to this plane, or None where they do not pay for their side information.

        Why: the network was trained on many planes; its last layer is a linear map of 48-128 features
        it computes, and the best map differs per plane (detector noise, resampling, contrast). A fit
        of that map to the plane's own errors is a least-squares problem of ~100 unknowns on the fit
        sample (L1 by reweighting, as the code length is nearer |error| than error**2); the decoder
        just uses the adjusted weights. Fitted on half the sample and judged on the other half by the
        code-length proxy, then refitted on all of it."""
        pixels = sample[::max(1, sample.size // OUTPUT_FIT_SAMPLE)]
        if pixels.size < OUTPUT_FIT_MIN:
            return None
        index = self.layout.flat(*np.divmod(pixels, self.width))
        feats, scale = raster_mlp.features(*(self._taps_at(g, len(OFFSETS), index) for g in grids),
                                           self.mu1[pixels], self.mu[pixels], self.activity[pixels])
        hidden = net.hidden(feats)
        # the target as prediction.error takes it
        mu2, target = self.mu[pixels].astype(np.int64), (self.values[pixels].astype(np.int64) << 4) + 8
        # [hidden activations, 1] times each pixel's scale, written in place (~50 MB a copy on 2**16 pixels)
        factor = scale / float(1 << (raster_mlp.FEATURE_SHIFT + raster_mlp.WEIGHT_SHIFT))
        design = np.empty((pixels.size, hidden.shape[1] + 1))
        np.multiply(hidden, factor[:, None], out=design[:, :-1])
        design[:, -1] = factor
        left = target - mu2 - design @ np.r_[net.weights[-1][0], net.biases[-1][0]]  # the plain output's error
        last = net.weights[-1][0].astype(np.int64), int(net.biases[-1][0])

        def proxy(delta, chosen):
            adjusted = net if delta is None else net.with_output_delta(delta)
            mu = prediction.clamp(mu2[chosen] + raster_mlp.correction_of(adjusted.output_of_hidden(hidden[chosen]),
                                                               scale[chosen]), 0, self.top)
            return float(np.log2(np.abs(target[chosen] - mu) / 16 + 0.6).sum())

        def fit(chosen):
            solution = fitting.robust_lstsq(design[chosen], left[chosen], ridge=OUTPUT_RIDGE)
            return fitting.output_delta_of(solution, *last)

        half = np.arange(pixels.size) % 2 == 0
        held_out = ~half
        trial = fit(half)
        saved = (proxy(None, held_out) - proxy(trial, held_out)) / held_out.sum() * (self.cls < ACTIVITY_CLASSES).sum()
        if saved < OUTPUT_FIT_MARGIN * 8 * len(pack_side_info({"d": trial.tolist()})):
            return None
        return fit(np.ones(pixels.size, dtype=bool))

    def _bands_of(self, chosen: np.ndarray):
        """(first row, end row, indices within the band, plane indices) of the chosen pixels (a boolean
        per pixel), a band of about BAND_PIXELS at a time; bands without one are skipped."""
        rows = max(1, BAND_PIXELS // self.width)
        for first_row in range(0, self.height, rows):
            end_row = min(self.height, first_row + rows)
            inside = np.flatnonzero(chosen[first_row * self.width:end_row * self.width])
            if inside.size:
                yield first_row, end_row, inside, inside + first_row * self.width

    def _band_taps(self, grid: np.ndarray, first_row: int, end_row: int, taps: int) -> np.ndarray:
        """The first ``taps`` neighbours [pixels, taps] of every pixel of rows first_row..end_row - 1, in a
        padded grid (2-D), of the grid's dtype."""
        out = np.empty(((end_row - first_row) * self.width, taps), dtype=grid.dtype)
        _gather_band(grid, first_row + PAD_TOP, end_row + PAD_TOP, PAD_LEFT, self.width, _TEMPLATE[:taps], out)
        return out

    def _by_bands(self, grid: np.ndarray, taps: int, compute) -> np.ndarray:
        """compute(neighbours [pixels, taps], slice of the band's pixels) over bands of rows, concatenated."""
        rows = max(1, BAND_PIXELS // self.width)
        out = []
        for first_row in range(0, self.height, rows):
            end_row = min(self.height, first_row + rows)
            band = slice(first_row * self.width, end_row * self.width)
            out.append(compute(self._band_taps(grid, first_row, end_row, taps), band))
        return np.concatenate(out)

    def _taps_at(self, grid: np.ndarray, taps: int, index: np.ndarray | None = None) -> np.ndarray:
        """The first ``taps`` neighbours, in a padded grid, of the pixels at these padded indices (default:
        the sampled pixels)."""
        index = self.sample_index if index is None else index
        out = np.empty((index.size, taps), dtype=grid.dtype)
        _gather_at(grid.ravel(), np.ascontiguousarray(index, dtype=np.int64), self.layout.offsets[:taps], out)
        return out

    def _grid_of(self, errors: np.ndarray) -> np.ndarray:
        grid = np.zeros(self.layout.padded_shape, dtype=np.int64)
        grid[PAD_TOP:, PAD_LEFT:PAD_LEFT + self.width] = errors.reshape(self.height, self.width)
        return grid

    def _fit(self, features: np.ndarray, target: np.ndarray, robust_from: int,
             epsilon: float = ROBUST_EPSILON) -> np.ndarray:
        """Weights of one of the encoder's fits: robust where this analysis's level (self.robust) is at
        least robust_from (1: second stage and scale, 2: first stage), least squares otherwise."""
        if self.robust >= robust_from:
            return fitting.robust_lstsq(features, target, epsilon)
        return fitting.lstsq(features, target)

    def _fit_first(self, nb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(shared row, per-class rows) from the sampled pixels' neighbours nb: a class keeps its own
        weights only where they save more bits (its pixels times log2 of the ratio of mean absolute
        errors) than they cost to send."""
        values, cls = self.values[self.sample], self.cls[self.sample]
        counts = np.bincount(self.cls, minlength=CLASSES)

        def fit(members):
            diffs = (nb[members, 1:] - nb[members, :1]).astype(np.float64)
            target = (values[members] - nb[members, 0]).astype(np.float64) + 0.5
            coef = self._fit(np.c_[diffs, np.ones(members.size)], target, 2, FIRST_STAGE_EPSILON)
            return np.clip(np.round(coef * (1 << COEF_SHIFT)), -FIRST_LIMIT, FIRST_LIMIT).astype(np.int64)

        def mean_error(members, row):
            diffs = (nb[members, 1:] - nb[members, :1]).astype(np.float64)
            pred = (diffs @ row[:-1] + row[-1]) / (1 << COEF_SHIFT)
            return float(np.abs(values[members] - nb[members, 0] + 0.5 - pred).mean()) + 1e-3

        inner = np.flatnonzero(cls < ACTIVITY_CLASSES)
        shared = fit(inner) if inner.size else BORDER_DEFAULT.copy()
        first = side_info.default_first(shared)
        for k in range(CLASSES):
            members = np.flatnonzero(cls == k)
            if members.size < 4 * len(OFFSETS):
                continue
            own = fit(members)
            saving = counts[k] * np.log2(mean_error(members, first[k]) / mean_error(members, own))
            if saving > WEIGHT_BITS * len(OFFSETS):
                first[k] = own
        return shared, first

    def block_classes(self) -> np.ndarray | None:
        """Per BLOCK x BLOCK block, which of the 12 activity-slot classes its inner pixels (not border,
        not flat) use, or None where the activity classes are expected to code smaller.

        Why: a plane's texture changes by region more than by local activity alone (ribs, lung field,
        soft tissue and collimator edge in a chest radiograph); classes that follow regions predict them
        better (train chest radiographs 0.4-1.2 % smaller, MR ~3 %). Fitted as MRP does (Matsuda et al.):
        blocks start in classes by their mean activity, then alternately each class's least-squares
        weights are fitted on its blocks' pixels and each block takes the class whose weights give its
        pixels the smallest sum of log2(|error| + 0.6), a code-length proxy; on a strided sample. Offered
        when that proxy, scaled to the plane, beats the activity classes' by BLOCK_PROXY_GAIN after the
        classes' side information (the proxy ignores the second stage and the scale: on train CTs it
        promised 0.8-1.9 % where the coded plane grew 0.7-1.4 %, so the caller codes both and compares)."""
        width = self.width
        count = block_count((self.height, width), BLOCK)
        sample = fitting.strided_sample(self.values.size, BLOCK_SAMPLE * self.sample_scale, width)
        sample = sample[self.cls[sample] < ACTIVITY_CLASSES]
        if sample.size < 64 * len(OFFSETS) or count < 2:
            return None
        rows, cols = np.divmod(sample, width)
        block = block_index(rows, cols, width, BLOCK)
        nb = self.grid[self.layout.flat(rows, cols)[:, None] + self.layout.offsets[None, :]]
        features = np.ones((sample.size, nb.shape[1]))  # the neighbours' differences from W, then 1
        features[:, :-1] = nb[:, 1:] - nb[:, :1]
        target = (self.values[sample] - nb[:, 0]).astype(np.float64) + 0.5
        del nb

        def class_weights(labels):
            """[ACTIVITY_CLASSES, features] least-squares weights per label (normal equations on the
            label-sorted sample; a class with too few pixels predicts nothing: a row of zeros)."""
            order = np.argsort(labels, kind="stable")
            bounds = np.searchsorted(labels[order], np.arange(ACTIVITY_CLASSES + 1))
            x, y = features[order], target[order]
            weights = np.zeros((ACTIVITY_CLASSES, features.shape[1]))
            for k in range(ACTIVITY_CLASSES):
                part = slice(bounds[k], bounds[k + 1])
                if bounds[k + 1] - bounds[k] >= 4 * features.shape[1]:
                    weights[k] = fitting.lstsq(x[part], y[part])
            return weights

        def proxy_costs(weights):
            """[pixels, classes] code-length proxy of every sampled pixel under every class's weights."""
            return np.log2(np.abs(target[:, None] - features @ weights.T) + 0.6)

        activity_class = self.cls[sample].astype(np.int64)
        costs = proxy_costs(class_weights(activity_class))
        by_activity = float(costs[np.arange(sample.size), activity_class].sum())
        # start: blocks in classes by mean activity (quantiles); blocks without sampled pixels stay in 0
        pixels = np.maximum(np.bincount(block, minlength=count), 1)
        mean_activity = np.bincount(block, self.activity[sample], minlength=count) / pixels
        classes = np.searchsorted(np.quantile(mean_activity, np.linspace(0, 1, ACTIVITY_CLASSES + 1)[1:-1]),
                                  mean_activity, side="right").astype(np.int64)
        for _ in range(BLOCK_ITERATIONS):
            costs = proxy_costs(class_weights(classes[block]))
            table = np.stack([np.bincount(block, costs[:, k], minlength=count)
                              for k in range(ACTIVITY_CLASSES)], axis=1)
            classes = table.argmin(axis=1)
        by_blocks = float(table[np.arange(count), classes].sum())
        inner = int(np.count_nonzero(self.cls < ACTIVITY_CLASSES))
        saving = (by_activity - by_blocks) * inner / sample.size - BLOCK_CLASS_BITS * count
        if not (by_activity > 0 and saving > BLOCK_PROXY_GAIN * by_activity * inner / sample.size):
            return None
        # the most frequent class first: the side information codes small numbers in fewer bits
        rank = np.empty(ACTIVITY_CLASSES, dtype=np.int64)
        rank[np.argsort(-np.bincount(classes, minlength=ACTIVITY_CLASSES), kind="stable")] = np.arange(ACTIVITY_CLASSES)
        return rank[classes]

    def _fit_second(self, e1: np.ndarray, own: np.ndarray) -> np.ndarray:
        """Per class, weights on the neighbours' first-stage errors (e1: the sampled pixels'; own: theirs),
        where they pay (as ``_fit_first``)."""
        cls = self.cls[self.sample]
        counts = np.bincount(self.cls, minlength=CLASSES)
        second = np.zeros((CLASSES, ERROR_TAPS), dtype=np.int64)
        for k in range(CLASSES):
            members = np.flatnonzero(cls == k)
            if members.size < 4 * ERROR_TAPS:
                continue
            features, target = e1[members].astype(np.float64), own[members].astype(np.float64)
            row = np.clip(np.round(self._fit(features, target, 1) * (1 << COEF_SHIFT)), -COEF_LIMIT, COEF_LIMIT)
            after = np.abs(target - features @ row / (1 << COEF_SHIFT)).mean() + 1e-3
            saving = counts[k] * np.log2((np.abs(target).mean() + 1e-3) / after)
            if saving > WEIGHT_BITS * ERROR_TAPS:
                second[k] = row
        return second

    def _fit_scale(self, e2: np.ndarray) -> np.ndarray:
        """Weights of the scale sum: least squares of the sampled pixels' |error| on their neighbours'."""
        features = np.c_[np.abs(e2), self.activity[self.sample] << 4].astype(np.float64)
        coef = self._fit(features, np.abs(self.errors2[self.sample]).astype(np.float64), 1)
        weights = np.clip(np.round(coef * 16), 0, WEIGHT_LIMIT).astype(np.int64)
        if not weights.any():
            weights[0] = 16
        return weights

    def _fit_buckets(self, low: int, count: int) -> np.ndarray:
        """Per bucket the scale index that codes its pixels in fewest bits, searched around ``side_info.start_ell``.
        (A mean offset per bucket was tried: 0.003 % smaller, not worth its side information.)"""
        start = side_info.start_ell(low, count)
        members = fitting.strided_sample(self.values.size, SEARCH_SAMPLE * self.sample_scale, self.width)
        found = rm.search_class_adjustments(self.values[members], self.mu[members], start[self.buckets[members]],
                                            self.buckets[members], count)
        return np.clip(start + np.array([a.offsets[0] for a in found]), 0, rm.MAX_ELL - 1).astype(np.int64)

    def _neighbour_values(self, pixels: np.ndarray) -> np.ndarray:
        """The 12 template neighbours' values of these pixels (flat plane indices), as the decoder sees them."""
        return self._taps_at(self.grid, len(OFFSETS), self.layout.flat(*np.divmod(pixels, self.width)))

    def _fit_boost(self) -> float:
        """Tries each neighbour-value boost in BOOSTS, each bucket's scale index widened by each of
        BOOST_ELL_STEPS (the boosted tables are peakier where the neighbours agree), on a sample; keeps
        the best when it saves over 0.2 %. Every cost is taken on the tables the settled value range
        leaves (where the frame sends one): both save on the same pixels (CT air on the floor, whose
        neighbours all hold it), and weighed apart the boost was kept on train lung CTs where it made the
        coding up to 1.2 % larger. Returns the sample's code length ratio, boosted / plain (the size
        estimate scales by it: the boosted cost of every pixel would cost a table build each)."""
        if not BOOSTS:
            return 1.0
        members = fitting.strided_sample(self.values.size, BOOST_SAMPLE * self.sample_scale, self.width)
        if self._mostly_wide(members):
            return 1.0  # wide 16-bit residuals: the boost does not apply
        values, mu, buckets = self.values[members], self.mu[members], self.buckets[members].astype(np.int64)
        nb = self._neighbour_values(members)
        count = self.model.ell.size

        params_at: dict[int, rm.PixelParams] = {}  # per scale step: the same for every boost tried

        def bucket_costs(boost, step):
            if step not in params_at:
                params_at[step] = rm.pixel_params(mu, np.clip(self.model.ell + step, 0, rm.MAX_ELL - 1)[buckets])
            costs = coding.cost_bits(values, params_at[step], nb, boost, self.model.value_range)
            return np.bincount(buckets, costs, minlength=count)

        plain = float(bucket_costs((0, 0), 0).sum())
        # every boost at the middle step, then each lattice on the best one, then the other steps for the
        # best of all only (13 evaluations instead of 33, within 0.05 % on the train planes)
        middle = BOOST_ELL_STEPS[len(BOOST_ELL_STEPS) // 2]
        first = {boost: bucket_costs(boost, middle) for boost in BOOSTS}
        boost = min(BOOSTS, key=lambda b: float(first[b].sum()))
        first.update({(*boost, *lattice): bucket_costs((*boost, *lattice), middle) for lattice in LATTICES})
        boost = min(first, key=lambda b: float(first[b].sum()))
        table = np.stack([first[boost] if step == middle else bucket_costs(boost, step) for step in BOOST_ELL_STEPS])
        best = float(table.min(axis=0).sum())
        if best >= plain * 0.998:
            return 1.0
        self.model.boost, self.model.lattice = boost[:2], tuple(boost[2:]) or (0, 0)
        self.model.ell = np.clip(self.plain_ell + np.array(BOOST_ELL_STEPS)[table.argmin(axis=0)], 0, rm.MAX_ELL - 1)
        return best / plain

    def _mostly_wide(self, members: np.ndarray) -> bool:
        """Whether over 90 % of these pixels' tables have low bits (wide 16-bit residuals, where an entry is
        a range of values): the boost and the tap-difference weights leave such tables as they are."""
        params = rm.pixel_params(self.mu[members], self.model.ell[self.buckets[members]])
        return bool((params.low_bits > 0).mean() > 0.9)

    def offer_difference_weights(self) -> None:
        """Tap-difference weights (``differences``) fitted at DIFFERENCE_FIT_STEP to half of a sample, each
        bucket's scale index then the best of DIFFERENCE_ELL_STEPS; kept instead of the boost where their
        exact code length on the other half, scaled to the plane, saves DIFFERENCE_MIN_SAVING of it and their
        side information (weighed on the pixels they were fitted to, the saving looked larger than it was:
        a train DX 0.1 % larger with them). The agreement weights (format 2.21) are fitted with them and
        sent where the held-out half says they pay for themselves."""
        if not OFFER_DIFFERENCES:
            return
        members = fitting.strided_sample(self.values.size, BOOST_SAMPLE * self.sample_scale, self.width)
        if self._mostly_wide(members):
            return  # wide 16-bit residuals: the weights do not apply

        def params_at(pixels, ell):
            return rm.pixel_params(self.mu[pixels], np.clip(ell, 0, rm.MAX_ELL - 1)[self.buckets[pixels]])

        fitted = members[0::2]
        weights = differences.fit(self.values[fitted], params_at(fitted, self.plain_ell + DIFFERENCE_FIT_STEP),
                                  self._neighbour_values(fitted), OFFER_AGREEMENT)
        if weights is None:
            return
        held_out = members[1::2]
        values, nb, buckets = self.values[held_out], self._neighbour_values(held_out), self.buckets[held_out]
        current = float(coding.cost_bits(values, params_at(held_out, self.model.ell), nb, self.model.boost_terms,
                                         self.model.value_range).sum())
        params = [params_at(held_out, self.plain_ell + step) for step in DIFFERENCE_ELL_STEPS]
        scale = self.values.size / held_out.size

        def offer(weights):  # (the plane's estimated bits with these weights, them, their table, their side bits)
            table = np.stack([np.bincount(buckets, coding.difference_cost_bits(values, at, nb, weights,
                                                                               self.model.value_range),
                                          minlength=self.model.ell.size) for at in params])
            sent = dataclasses.replace(self.model, differences=weights).to_json()
            side_bits = 8 * len(pack_side_info({KEY: {key: sent[key] for key in ("dw", "da") if key in sent}}))
            return float(table.min(axis=0).sum()) * scale + side_bits, weights, table, side_bits

        # with the agreement weights fitted with the others, and without them (where they do not pay, the
        # others alone code about as well)
        candidates = [weights]
        if weights[differences.TAPS].any() and weights[:differences.TAPS].any():
            candidates.append(np.concatenate([weights[:differences.TAPS], np.zeros_like(weights[:1])]))
        _, weights, table, side_bits = min((offer(w) for w in candidates), key=lambda chosen: chosen[0])
        best = float(table.min(axis=0).sum())
        saved = (current - best) * scale
        if saved <= side_bits or best > (1 - DIFFERENCE_MIN_SAVING) * current:
            return
        self.model.boost, self.model.lattice, self.model.differences = (0, 0), (0, 0), weights
        self.model.ell = np.clip(self.plain_ell + np.array(DIFFERENCE_ELL_STEPS)[table.argmin(axis=0)], 0,
                                 rm.MAX_ELL - 1)
        self.boost_ratio *= best / current

    def _settle_range(self) -> None:
        """The plain code length, and whether the value range is sent: where it saves RANGE_MIN_BYTES."""
        if self.plain_cost_bits is None:  # once: the residuals' part is a pass over every pixel
            params = rm.pixel_params(self.mu, self.plain_ell[self.buckets])
            self.plain_cost_bits = rm.ideal_cost_bits(self.values, params)
            savings = coding.range_savings(self.values, params, self.value_range)
            self.range_censor = int(np.argmax(savings))
            self.range_saving_bits = savings[self.range_censor]
        pays = self.range_saving_bits >= 8 * RANGE_MIN_BYTES
        self.model.value_range = (*self.value_range, self.range_censor) if pays else None

    def estimated_bytes(self) -> float:
        """The streams' size from the ideal code length (the coder adds a few words) and the side information
        (the value range's saving is reckoned on the plain tables; the boost's ratio, taken with the range,
        scales the rest)."""
        self._settle_range()
        saved = self.range_saving_bits if self.model.value_range is not None else 0.0
        return (self.plain_cost_bits - saved) * self.boost_ratio / 8 + len(pack_side_info({KEY: self.model.to_json()}))

    def streams(self) -> list[Stream]:
        """The three streams. Pixels are taken in decoding order a chunk at a time, keeping only int32
        symbols, int16 table rows and the raw bits' widths and values (a 4096^2 plane in ~2x less memory);
        with the neighbour-value boost or a value range the chunk's tables are rebuilt when it is coded."""
        self._settle_range()
        chunks = range(0, self.order.size, CHUNK)
        symbols, tables, widths, raws = [], [], [], []
        for start in chunks:
            chosen = self.order[start:start + CHUNK]
            params = coding.pixel_params(self.model, self.mu[chosen], self.buckets[chosen])
            symbol, width, raw = coding.extra_widths(self.values[chosen], params)
            symbols.append(symbol.astype(np.int32))
            tables.append(params.table.astype(np.int16))
            widths.append(width.astype(np.uint8))
            raws.append(raw.astype(np.int32))
        coder = constriction.stream.stack.AnsCoder()
        probabilities = coding.float_tables()
        for start, symbol, table in zip(reversed(chunks), reversed(symbols), reversed(tables)):
            # ANS is a stack: the last chunk first
            if self.model.boosted or self.model.value_range is not None:
                chosen = self.order[start:start + CHUNK]
                params = coding.pixel_params(self.model, self.mu[chosen], self.buckets[chosen])
                chunk_probabilities = coding.probabilities(
                    self.model, params, self._neighbour_values(chosen) if self.model.boosted else None)
            else:
                chunk_probabilities = probabilities[table]
            coder.encode_reverse(symbol, coding.FAMILY, chunk_probabilities)
        words = coder.get_compressed().astype("<u4", copy=False).tobytes()
        raw_bits = coding.pack_bits(np.concatenate(widths).astype(np.int64), np.concatenate(raws).astype(np.int64)) \
            if widths else b""
        return [Stream(SectionKind.PLANE_META, 0, pack_side_info({KEY: self.model.to_json()})),
                Stream(SectionKind.RESIDUAL, 0, words),
                Stream(SectionKind.METHOD_STREAM, 0, raw_bits)]


_TEMPLATE = np.array(OFFSETS, dtype=np.int64)  # (dy, dx) rows, for the encoder's band gathers


@kernel
def _gather_band(grid, first, end, left, width, offsets, out):
    """out[p, k] = grid[row + dy_k, left + col + dx_k] for the p-th pixel of padded rows first..end - 1
    (one pass; numpy's stack of a dozen strided slices copied each twice)."""
    p = 0
    for r in range(first, end):
        for c in range(left, left + width):
            for k in range(offsets.shape[0]):
                out[p, k] = grid[r + offsets[k, 0], c + offsets[k, 1]]
            p += 1


@kernel
def _gather_at(grid, index, offsets, out):
    """out[p, k] = grid[index[p] + offsets[k]] (flat padded indices), without numpy's [pixels, taps] index array."""
    for p in range(index.size):
        for k in range(offsets.size):
            out[p, k] = grid[index[p] + offsets[k]]


def thorough_differs(pixels: int) -> bool:
    """Whether a thorough analysis of a plane of this many pixels can differ from the plain one: only
    when some sample of the plain one leaves pixels out."""
    return pixels > min(FIT_SAMPLE, SEARCH_SAMPLE, BOOST_SAMPLE, BLOCK_SAMPLE)


def first_analysis(plane: np.ndarray, bits: int, correction: raster_mlp.RasterCorrection | None = None,
                    robust: int | None = None, thorough: bool = False) -> Analysis:
    """The analysis of the plane (activity classes), or of (plane - offset) / step when all its values lie
    on such a grid (a 12-bit CT stored shifted into 16 bits; the raw low bits would otherwise cost 4 bits a pixel), or
    of the index of each value among the plane's distinct values (a palette) when many values between the
    extremes are unused and that codes smaller (ideal code lengths before the boost, train planes: an
    ankle CT rescaled to 125 values 1.50 -> 1.18 bpp, a CT with a padding value far below air 3.24 ->
    3.14; an even grid or a few missing values code better directly). Not tried on 8-bit planes: their unused values come from
    contrast stretching whose lattice drifts across the image (the boost's case); on the train split a
    palette never won there, and the second analysis doubles the encoder's time."""
    values = np.flatnonzero(np.bincount(plane.ravel()))  # the distinct values (a count, not a sort)
    step = int(np.gcd.reduce(values - values[0])) if values.size > 1 else 1
    if step <= 1:
        analysis = Analysis(plane, bits, correction=correction, robust=robust, thorough=thorough)
    else:
        offset = int(values[0]) % step
        coded = ((plane.astype(np.int64) - offset) // step).astype(np.uint16)
        analysis = Analysis(coded, side_info.coded_bits(bits, step, offset), correction=correction, robust=robust,
                             thorough=thorough)
        analysis.model.step, analysis.model.offset = step, offset
    grid_points = (int(values[-1]) - int(values[0])) // step + 1
    if bits > 8 and values.size < (1 - PALETTE_HOLES) * grid_points:
        indices = np.searchsorted(values, plane).astype(np.uint16)
        palette = Analysis(indices, side_info.index_bits(values.size), correction=correction, robust=robust,
                            thorough=thorough)
        palette.model.palette = values.astype(np.int64)
        if palette.estimated_bytes() < analysis.estimated_bytes():
            analysis = palette
    return analysis


def analyse(plane: np.ndarray, bits: int, correction: raster_mlp.RasterCorrection | None = None,
             robust: int | None = None, thorough: bool = False,
             scale_nets: Sequence[raster_mlp.RasterCorrection] = (),
             local_min_share: float | None = None, local_radii: Sequence[int] = (),
             second: raster_mlp.RasterCorrection | None = None) -> Analysis:
    """``first_analysis``, or the same coded plane's with block classes where they look promising and
    code smaller, or with resampling-phase classes where the plane shows a resampling period and they code
    smaller still; then, where the learned correction was applied, the same without it if that codes
    smaller; then, where a correction is kept and a second network is given, the two stacked if that
    codes smaller; then the local least-squares blend where it saves local_min_share of the estimate (None:
    LOCAL_MIN_SHARE), with windows of local_radii blended in too where that codes smaller; then each
    learned scale offered, in turn, where it codes smaller than what is kept; then per-class scale-key offsets
    and tap-difference weights, each where it codes smaller. On a large plane only one
    whole-plane analysis is alive at a time (a 4096^2 plane's is ~1.4 GB): the one kept so far is dropped
    while the other classes' is built, and rebuilt if those lose."""
    analysis = with_block_classes(first_analysis(plane, bits, correction, robust, thorough), correction)
    analysis = with_phase_classes(analysis, correction)
    for alternative in (Analysis.without_output_fit, Analysis.without_correction):
        other = alternative(analysis)
        if other is not None and other.estimated_bytes() < analysis.estimated_bytes():
            analysis = other
        del other
    stacked = analysis.with_second_correction(second) if second is not None else None
    if stacked is not None and stacked.estimated_bytes() < analysis.estimated_bytes():
        analysis = stacked
    del stacked
    local = analysis.with_local_ls(local_radii)
    local_min_share = LOCAL_MIN_SHARE if local_min_share is None else local_min_share
    if local is not None and local.estimated_bytes() < (1 - local_min_share) * analysis.estimated_bytes():
        analysis = local
    analysis.offer_learned_scales(scale_nets)
    analysis.offer_key_offsets()
    analysis.offer_difference_weights()
    return analysis


def with_block_classes(analysis: Analysis, correction: raster_mlp.RasterCorrection | None) -> Analysis:
    """The analysis, or the same coded plane's with block classes where they look promising and code smaller."""
    classes = analysis.block_classes()
    return analysis if classes is None else _with_classes(analysis, correction, block_classes=classes)


def with_phase_classes(analysis: Analysis, correction: raster_mlp.RasterCorrection | None) -> Analysis:
    """The analysis, or the same coded plane's with resampling-phase classes (raster.phase) where the plane
    shows a resampling period and they code smaller."""
    found = phase.detect(analysis.values.reshape(analysis.height, analysis.width))
    return analysis if found is None else _with_classes(analysis, correction, resampling=found)


def _with_classes(analysis: Analysis, correction: raster_mlp.RasterCorrection | None, **classes) -> Analysis:
    """The analysis, or the same coded plane's with the other classes (Analysis' block_classes or
    resampling) where that codes smaller. On a plane of more than BLOCK_KEEP_BOTH pixels the analysis is
    dropped while the other is built, and rebuilt (with its own classes) if the other loses."""
    estimate = analysis.estimated_bytes()
    coded, coded_bits = analysis.values.reshape(analysis.height, analysis.width), analysis.bits
    step, offset, palette = analysis.model.step, analysis.model.offset, analysis.model.palette
    corrected = analysis.model.correction is not None  # the other analysis corrects where the first did
    robust, thorough = analysis.robust, analysis.thorough
    own = {"block_classes": analysis.model.block_classes, "resampling": analysis.model.resampling}

    def build(chosen: dict) -> Analysis:
        out = Analysis(coded, coded_bits, correction=correction if corrected else None, robust=robust,
                       thorough=thorough, **chosen)
        out.model.step, out.model.offset, out.model.palette = step, offset, palette
        return out

    if coded.size > BLOCK_KEEP_BOTH:
        analysis = None
    other = build(classes)
    if other.estimated_bytes() < estimate:
        return other
    del other
    return analysis if analysis is not None else build(own)
