"""Raster method: every pixel predicted from its causal neighbours, for noise-dominated planes.

Why: the subimage methods predict a quarter of the plane at a time from what is already coded, so no
pixel sees its left neighbour in the same subimage, and subimage A goes to JPEG-XL at a quarter of the
resolution. On 8-bit images with structure the networks make up for it; on 12-16-bit CT and MR, whose
bits are mostly noise, they lose to JPEG-XL (which codes in raster order) and the codec falls back to
it. This method codes in raster order with a context model JPEG-XL does not have, fitted to the plane:

* prediction (1/16 sample units): per class of pixels, least-squares weights on the 12 causal
  neighbours' differences from the left neighbour W (first stage), plus weights on the 12 neighbours'
  first-stage errors (second stage: the local bias the first stage leaves; 1.5 % smaller files).
  Classes: 12 by local activity, 4 for the border rows and columns (whose out-of-plane neighbours read
  a constant), 1 for flat pixels (activity 0); or, where it codes smaller, the 12 activity slots named
  per 24x24 block instead (block classes fitted as MRP fits its classes: regions, not activity).
* scale: integer weights on 8 neighbours' final errors and the activity give a sum s; its bucket
  ``floor(8 log2 (s + 1)) // 2`` indexes a per-plane scale index: the encoder searches the index that
  codes each bucket's pixels in fewest bits.
* coding: the learned methods' residual tables (``entropy.residual_model``), one table per pixel,
  rANS via constriction; the low bits a wide distribution sheds and escaped values go to a raw bit
  stream in the same order.

Everything between the pixels and the tables is integer arithmetic (int64), so every machine computes
the same tables. The weights are fitted in floating point by the encoder only, then rounded and sent.

Decoding is sequential but vectorised along wavefronts: pixel (i, j) needs only neighbours with a
smaller ``2 i + j`` (the template reaches one column right on the row above, two on the row above
that), so each of the ``2 H + W - 2`` wavefronts is decoded as one batch: its per-pixel arithmetic in
compiled loops (``raster_wavefront``, ``raster_tables``, ``local_ls``), the networks' products in numpy.

A plane whose values all lie on a grid ``step * k + offset`` (12-bit data stored shifted into 16
bits) is coded as its k; one that uses few of the values between its extremes may be coded as the
index of each value in its sorted value set (a palette).

Streams: PLANE_META (the weights: a JSON object, ``base.pack_side_info``), RESIDUAL 0 (rANS words),
METHOD_STREAM 0 (raw bits).
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import hashlib
import threading
from collections import OrderedDict
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Callable, Sequence

import constriction
import numpy as np

from medcodec import parallel
from medcodec.compiled import kernel
from medcodec.container.format import SectionKind
from medcodec.entropy import residual_model as rm
from medcodec.errors import CorruptStreamError, ModelMismatchError, UnsupportedVersionError
from medcodec.networks import raster_mlp
from medcodec.pipelines import local_ls, raster_tables, raster_wavefront
from medcodec.pipelines.base import Method, Stream, check_decoded, check_plane, pack_side_info, unpack_side_info
from medcodec.pipelines.surprise import log8

# (dy, dx) of the causal template; W first (the reference the others are differenced against).
OFFSETS = ((0, -1), (-1, 0), (-1, -1), (-1, 1), (0, -2), (-2, 0), (-1, -2), (-2, -1), (-2, 1), (-2, -2),
           (-2, 2), (0, -3))
ERROR_TAPS = 12  # second stage: first-stage errors of all 12 neighbours (6: 0.3 % larger)
SCALE_TAPS = 8  # scale: final errors of OFFSETS[:8]
PAD_TOP, PAD_LEFT, PAD_RIGHT = 2, 3, 2
COEF_SHIFT = 8  # weights in 1/256 (1/1024 sent 15 % more side information for no smaller residuals)
COEF_LIMIT = 1 << 15  # second-stage weights (128 in 1/256)
FIRST_LIMIT = 1 << 21  # first-stage weights and intercepts (an intercept may be a whole 16-bit range)
WEIGHT_BITS = 12  # what one sent weight is reckoned to cost when deciding whether a class gets its own
ACTIVITY_CLASSES = 12
BORDER_CLASSES = 4  # row 0, row 1, columns 0-2, the last two columns
FLAT_CLASS = ACTIVITY_CLASSES + BORDER_CLASSES  # inside, activity 0: padding, air, saturated regions
CLASSES = FLAT_CLASS + 1
WEIGHT_LIMIT = 1 << 10  # scale weights in 1/16, 0..this
ERROR_LIMIT = 1 << 24  # errors (1/16 sample) are clamped to +-this before they feed a later pixel
FIT_SAMPLE = 1 << 18  # pixels (an even stride) the least-squares fits look at
SEARCH_SAMPLE = 1 << 17  # pixels the scale search looks at
BAND_PIXELS = 1 << 16  # the encoder computes bands of about this many pixels at a time
CHUNK = 1 << 15  # pixels per constriction call on the encoder's side
RAW_ESCAPE_BITS = 16
BOOST_LIMIT = 64  # neighbour-value boost weights (1/16)
# (seen, per-count) boosts the encoder tries, and the scale-index steps it tries with them per bucket
BOOSTS = ((16, 0), (0, 16), (16, 16), (32, 8))
BOOST_ELL_STEPS = (0, 2, 4)
# (step, weight per neighbour in 1/16) lattices the encoder tries on top of the best boost (format 2.8)
LATTICES = ((2, 8), (2, 24), (2, 64), (3, 8), (3, 24), (3, 64))
LATTICE_MAX_STEP = 16
LATTICE_LIMIT = 256  # its weight (1/16 per neighbour): entries stay below 2**31, as the boost's
BOOST_SAMPLE = 1 << 15  # pixels the boost search looks at
ESTIMATE_MARGIN = 1.01  # the coded streams are within 0.2 % of the estimate on the train planes
KEY = "raster"
SIDE_INFO_FIELDS = frozenset({"pad", "cs", "g", "first", "second", "w", "blo", "ell", "step", "nb", "pal", "bc", "nn",
                              "sn", "vr", "lw", "lx", "od", "n2", "sk", "lt"})
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
SCALE_MIN_SAVING = 0.0  # estimated bytes the learned scale must save over the linear buckets
CORRECTION_MIN_GAIN = 0.01  # bits per corrected pixel (code-length proxy) the correction must promise
# The per-plane fit of the correction network's output layer (format 2.6, _Analysis._output_delta):
# pixels it looks at, the fewest worth a fit, and how many times its side information the held-out
# proxy must promise to save.
ADAPT_OUTPUT = True
OUTPUT_FIT_SAMPLE = 1 << 16
OUTPUT_FIT_MIN = 2048
OUTPUT_FIT_MARGIN = 2.0
OUTPUT_BIAS_LIMIT = 1 << 40
OUTPUT_RIDGE = 1e-3
# Stacked corrections (format 2.7, _Analysis.with_second_correction): a frame may add a second correction
# network's correction, each activity class weighting the two by its own integer weights (1/64, within
# +-STACK_LIMIT) fitted to the plane; a class with fewer than STACK_MIN_PIXELS pixels keeps the first
# network's correction alone.
STACK_SHIFT = 6
STACK_LIMIT = 4 << STACK_SHIFT
STACK_MIN_PIXELS = 256
BLOCK = 24  # side of the square blocks that may each name their activity-slot class (16: 0.2 % larger)
BLOCK_ITERATIONS = 4  # alternations of the block-class fit (8: within 0.05 %)
BLOCK_SAMPLE = 1 << 18  # pixels the block-class fit looks at
# A thorough analysis (the slow mode's extra try) looks at this many times more pixels in each of the
# samples above: on planes larger than a sample, fits and searches nearer the whole plane's optimum.
THOROUGH_SCALE = 4
# Robust (IRLS, _robust_lstsq) weight fits on planes of more than 8 bits: every stage's (the first
# stage's, the second's and the scale's). Estimated size on train planes: five of 10-16 bits (CR, XA, CT,
# MR) 0.27-0.97 % smaller (the second stage and scale alone: 0.22-0.74 %); fast-mode files of 26 train
# 10-16-bit files 0.41 % smaller in total (XA 1.2 %, CR 1.0 %, a 19-frame MR 0.8 %; the worst, a
# 12-bit CT and a phantom slice, 0.07-0.08 % larger); on 8-bit planes it is
# mixed (chest radiographs and a lung CT 0.01-0.17 % larger, a head CT and a breast US ~0.3 % smaller),
# so there it is only one of the slow mode's alternatives (codec.RASTER_TRIES).
ROBUST_ABOVE_BITS = 8
ROBUST_EPSILON = 16.0  # 1/16 sample: residuals under one sample weigh as one sample
FIRST_STAGE_EPSILON = 1.0  # the same floor for the first stage, whose targets are in whole samples
ROBUST_ITERATIONS = 4
BLOCK_CLASS_BITS = 3.6  # what one block's class is reckoned to cost in the side information
BLOCK_PROXY_GAIN = 0.01  # block classes are tried when their code-length proxy promises this share
BLOCK_KEEP_BOTH = 1 << 21  # pixels up to which the analyses with and without block classes coexist
# The plane's value range is sent (tables hold nothing outside it: _probabilities) where the estimate says
# it saves this many bytes, about its side information; elsewhere no table is rebuilt for it.
RANGE_MIN_BYTES = 8
# The local least-squares blend is sent where it saves this share of the frame's estimate: it about
# doubles the frame's decoding time (train planes: 16-bit CTs -3.5..-3.8 %, an MP-RAGE slice -2.7 %, head
# and lung CT -0.7..-0.9 %; 12-bit MR, radiographs and ultrasound save less than this)
LOCAL_MIN_SHARE = 0.005
PALETTE_HOLES = 0.05  # a palette is tried when this share of the values between the extremes is unused
MAX_PALETTE_RUNS = 1 << 16


@dataclass
class RasterModel:
    """The per-plane weights; what PLANE_META carries."""

    pad: int  # value of every out-of-plane neighbour
    class_shift: int  # activity class = clamp(bit_length(activity) - class_shift, 0, 11)
    shared: np.ndarray  # int64 [12]: the first-stage weights of activity classes without their own
    first: np.ndarray  # int64 [CLASSES, 12]: 11 difference weights + intercept (1/256 sample)
    second: np.ndarray  # int64 [CLASSES, ERROR_TAPS] (1/256)
    scale_weights: np.ndarray  # int64 [SCALE_TAPS + 1] (1/16): errors, then 16 * activity
    bucket_low: int  # first bucket with its own scale index; lower buckets use it, higher ones the last
    ell: np.ndarray  # int64 [buckets]: scale index of each bucket
    step: int = 1  # the plane is step * (coded plane) + offset (values on a grid: 12-bit data stored << 4)
    offset: int = 0
    boost: tuple[int, int] = (0, 0)  # neighbour-value boost (seen, per count), 1/16; (0, 0) = none
    lattice: tuple[int, int] = (0, 0)  # the boost's lattice (step, weight in 1/16), format 2.8; (0, 0) = none
    palette: np.ndarray | None = None  # the plane's sorted distinct values: the coded plane is their index
    block_size: int = 0  # > 0: inner pixels with activity take their class from blocks of this side
    block_classes: np.ndarray | None = None  # int64 [block rows * block columns], row-major: 0..11
    correction: str | None = None  # the learned correction's tag (raster_mlp.RasterCorrection.tag), if used
    scale_net: str | None = None  # the learned scale's tag, if used (the buckets of the corrected pixels)
    # (lo, hi, censor) of the coded plane: the tables hold nothing outside [lo, hi]; censor bit 0 (1): the
    # mass below lo goes to lo's entry instead of being dropped, bit 1 (2): the mass above hi to hi's
    value_range: tuple[int, int, int] | None = None
    # int64 [CLASSES] in 1/64: how far each class's prediction moves towards the local least-squares one
    # (pipelines.local_ls); None: not used
    local_weights: np.ndarray | None = None
    # (radius, int64 [CLASSES] weights) of windows of other radii blended in as well (format 2.5; with
    # local_weights only)
    local_extra: tuple[tuple[int, np.ndarray], ...] = ()
    # int64 [width of the correction's last hidden layer + 1]: additions to its output layer's weights and
    # bias fitted to this plane (format 2.6; with a correction only); None: the shipped layer
    output_delta: np.ndarray | None = None
    # the second correction network's tag and int64 [ACTIVITY_CLASSES, 2] weights (1/64) of the two
    # networks' corrections per class (format 2.7; with a correction only); None: the first network alone
    second_correction: str | None = None
    stack_weights: np.ndarray | None = None

    @property
    def boost_terms(self) -> tuple[int, int, int, int]:
        """The boost and its lattice, as the tables take them (raster_tables.boost_terms)."""
        return (*self.boost, *self.lattice)

    @property
    def boosted(self) -> bool:
        """Whether the tables look at the neighbours' values (a boost or a lattice is sent)."""
        return any(self.boost) or self.lattice[1] > 0

    def local_blends(self) -> list[tuple[int, np.ndarray]]:
        """(window radius, weights per class) of every local least-squares prediction blended in."""
        if self.local_weights is None:
            return []
        return [(local_ls.RADIUS, self.local_weights), *self.local_extra]

    def classes(self, activity: np.ndarray, border: np.ndarray, rows: np.ndarray, cols: np.ndarray,
                width: int) -> np.ndarray:
        """Each pixel's class: by activity, or by its block where the plane sends block classes."""
        blocks = None
        if self.block_classes is not None:
            blocks = self.block_classes[_block_index(rows, cols, width, self.block_size)]
        return _classes(activity, border, self.class_shift, blocks)

    def check_blocks(self, shape: tuple[int, int]) -> None:
        """Block classes must cover the plane exactly (the shape is not in the side information)."""
        if self.block_classes is not None:
            count = _block_count(shape, self.block_size)
            if self.block_classes.size != count:
                raise CorruptStreamError(f"raster side information has {self.block_classes.size} block classes, "
                                         f"the plane needs {count}")

    def coded_bits(self, bits: int) -> int:
        if self.palette is not None:
            return _index_bits(self.palette.size)
        return _coded_bits(bits, self.step, self.offset)

    def plane_of(self, coded: np.ndarray, bits: int) -> np.ndarray:
        """The plane's values from the coded plane's (an index beyond the palette is corruption)."""
        if self.palette is None:
            return coded * self.step + self.offset
        if coded.size and int(coded.max()) >= self.palette.size:
            raise CorruptStreamError("raster stream decodes to an index beyond the plane's palette")
        return self.palette[coded]

    def to_json(self) -> dict:
        """Rows equal to their default are sent as null: a small plane cannot pay for 16 classes' weights."""
        first = [None if np.array_equal(row, default) else row.tolist()
                 for row, default in zip(self.first, _default_first(self.shared))]
        second = [row.tolist() if row.any() else None for row in self.second]
        return {"pad": self.pad, "cs": self.class_shift, "g": self.shared.tolist(), "first": first,
                "second": second, "w": self.scale_weights.tolist(), "blo": self.bucket_low,
                "ell": (self.ell - _start_ell(self.bucket_low, self.ell.size)).tolist(),
                **({"step": [self.step, self.offset]} if self.step > 1 else {}),
                **({"nb": list(self.boost)} if any(self.boost) else {}),
                **({"lt": list(self.lattice)} if self.lattice[1] else {}),
                **({"pal": _palette_runs(self.palette)} if self.palette is not None else {}),
                **({"bc": [self.block_size] + self.block_classes.tolist()} if self.block_classes is not None else {}),
                **({"nn": self.correction} if self.correction is not None else {}),
                **({"sn": self.scale_net} if self.scale_net is not None else {}),
                **({"vr": list(self.value_range)} if self.value_range is not None else {}),
                **({"lw": self.local_weights.tolist()} if self.local_weights is not None else {}),
                **({"lx": [[radius] + weights.tolist() for radius, weights in self.local_extra]}
                   if self.local_extra else {}),
                **({"od": self.output_delta.tolist()} if self.output_delta is not None else {}),
                **({"n2": self.second_correction, "sk": self.stack_weights.ravel().tolist()}
                   if self.second_correction is not None else {})}

    @classmethod
    def from_json(cls, data: dict, bits: int) -> "RasterModel":
        """Validated: a damaged side information is a CorruptStreamError, never an out-of-range index; a
        field this reader does not know (a newer medcodec's coding option) is an UnsupportedVersionError."""
        unknown = sorted(set(data) - SIDE_INFO_FIELDS) if isinstance(data, dict) else []
        if unknown:
            raise UnsupportedVersionError(f"raster frame uses coding options this medcodec does not know "
                                          f"({', '.join(unknown)}): it was written by a newer medcodec — "
                                          f"upgrade medcodec to decode it")
        try:
            shared = np.array(data["g"], dtype=np.int64)
            if shared.shape != (len(OFFSETS),) or len(data["first"]) != CLASSES or len(data["second"]) != CLASSES:
                raise ValueError("wrong number of weights")
            first = np.array([default if row is None else row
                              for row, default in zip(data["first"], _default_first(shared).tolist())], dtype=np.int64)
            second = np.array([[0] * ERROR_TAPS if row is None else row for row in data["second"]], dtype=np.int64)
            bucket_low, ell = int(data["blo"]), np.array(data["ell"], dtype=np.int64)
            if ell.ndim != 1 or not 1 <= ell.size <= 128 or not 0 <= bucket_low <= 128 or np.abs(ell).max() > rm.MAX_ELL:
                raise ValueError("bad scale buckets")
            step, offset = (int(v) for v in data.get("step", (1, 0)))
            if not (1 <= step < (1 << bits) and 0 <= offset < step):
                raise ValueError("bad value grid")
            if "pal" in data and step > 1:
                raise ValueError("both a value grid and a palette")
            boost = tuple(int(v) for v in data.get("nb", (0, 0)))
            if len(boost) != 2 or min(boost) < 0 or max(boost) > BOOST_LIMIT:
                raise ValueError("bad neighbour-value boost")
            lattice = tuple(int(v) for v in data.get("lt", (0, 0)))
            if "lt" in data and (len(lattice) != 2 or not 2 <= lattice[0] <= LATTICE_MAX_STEP
                                 or not 1 <= lattice[1] <= LATTICE_LIMIT):
                raise ValueError("bad lattice boost")
            palette = _palette_of_runs(data["pal"], bits) if "pal" in data else None
            block_size, block_classes = 0, None
            if "bc" in data:
                if not isinstance(data["bc"], list) or len(data["bc"]) < 2:
                    raise ValueError("bad block classes")
                block_size, block_classes = int(data["bc"][0]), np.array(data["bc"][1:], dtype=np.int64)
                if not 1 <= block_size <= 1 << 16 or block_classes.ndim != 1 \
                        or block_classes.min() < 0 or block_classes.max() >= ACTIVITY_CLASSES:
                    raise ValueError("bad block classes")
            correction, scale_net, second_correction = data.get("nn"), data.get("sn"), data.get("n2")
            for name in (correction, scale_net, second_correction):
                if name is not None and (not isinstance(name, str) or not 0 < len(name) <= 200):
                    raise ValueError("bad network name")
            value_range = None
            if "vr" in data:
                if not isinstance(data["vr"], list) or len(data["vr"]) != 3:
                    raise ValueError("bad value range")
                value_range = (int(data["vr"][0]), int(data["vr"][1]), int(data["vr"][2]))
            local_weights = None
            if "lw" in data:
                local_weights = np.array(data["lw"], dtype=np.int64)
                if local_weights.shape != (CLASSES,) or local_weights.min() < 0 \
                        or local_weights.max() > local_ls.WEIGHT_ONE:
                    raise ValueError("bad local least-squares weights")
            local_extra = _local_extra(data["lx"], local_weights) if "lx" in data else ()
            output_delta = None
            if "od" in data:  # its length and bounds are checked against the network it adjusts
                output_delta = np.array(data["od"], dtype=np.int64)
                if correction is None or output_delta.ndim != 1:
                    raise ValueError("bad output-layer delta")
            stack_weights = None
            if "n2" in data or "sk" in data:
                stack_weights = np.array(data["sk"], dtype=np.int64)
                if correction is None or second_correction is None or stack_weights.shape != (2 * ACTIVITY_CLASSES,) \
                        or np.abs(stack_weights).max() > STACK_LIMIT:
                    raise ValueError("bad stacked corrections")
                stack_weights = stack_weights.reshape(ACTIVITY_CLASSES, 2)
            model = cls(pad=int(data["pad"]), class_shift=int(data["cs"]), shared=shared, first=first, second=second,
                        scale_weights=np.array(data["w"], dtype=np.int64), bucket_low=bucket_low,
                        ell=ell + _start_ell(bucket_low, ell.size), step=step, offset=offset,
                        boost=boost, lattice=lattice, palette=palette, block_size=block_size,
                        block_classes=block_classes,
                        correction=correction, scale_net=scale_net, value_range=value_range,
                        local_weights=local_weights, local_extra=local_extra, output_delta=output_delta,
                        second_correction=second_correction, stack_weights=stack_weights)
        except (KeyError, TypeError, ValueError, OverflowError) as exc:
            raise CorruptStreamError(f"raster side information is malformed ({exc})") from None
        ok = (0 <= model.pad < (1 << model.coded_bits(bits)) and 0 <= model.class_shift <= 16
              and model.first.shape == (CLASSES, len(OFFSETS)) and model.second.shape == (CLASSES, ERROR_TAPS)
              and model.scale_weights.shape == (SCALE_TAPS + 1,)
              and np.abs(model.first).max() <= FIRST_LIMIT and np.abs(model.second).max() <= COEF_LIMIT
              and model.scale_weights.min() >= 0 and model.scale_weights.max() <= WEIGHT_LIMIT
              and model.ell.min() >= 0 and model.ell.max() < rm.MAX_ELL
              and (model.value_range is None
                   or (0 <= model.value_range[0] <= model.pad <= model.value_range[1] < (1 << model.coded_bits(bits))
                       and 0 <= model.value_range[2] <= 3)))
        if not ok:
            raise CorruptStreamError("raster side information is out of range")
        return model


# A border class, or the flat class, without its own weights predicts its left neighbour (the intercept
# centres the mean): in a flat region every error is then 0, so is the scale sum, and bucket 0 codes
# such pixels in hundredths of a bit (pooled with the lowest-activity class they cost 0.75 bit on CT
# padding).
BORDER_DEFAULT = np.array([0] * (len(OFFSETS) - 1) + [1 << (COEF_SHIFT - 1)], dtype=np.int64)


def _local_extra(entries, local_weights: np.ndarray | None) -> tuple[tuple[int, np.ndarray], ...]:
    """The side information's "lx": [[radius, 17 weights], ...], validated (ValueError)."""
    if local_weights is None or not isinstance(entries, list) or not entries:
        raise ValueError("bad local least-squares radii")
    out = []
    for entry in entries:
        if not isinstance(entry, list) or len(entry) != CLASSES + 1:
            raise ValueError("bad local least-squares radii")
        radius, weights = int(entry[0]), np.array(entry[1:], dtype=np.int64)
        if not 1 <= radius <= local_ls.RADIUS_LIMIT or radius == local_ls.RADIUS \
                or radius in [r for r, _ in out] or weights.min() < 0 or weights.max() > local_ls.WEIGHT_ONE:
            raise ValueError("bad local least-squares radii")
        out.append((radius, weights))
    return tuple(out)


def _start_ell(bucket_low: int, count: int) -> np.ndarray:
    """The scale index of a logistic whose mean absolute deviation is a bucket's s (ell ~ 8 log2 s - 4):
    where the encoder's search starts, and what the sent indices are differences from."""
    return np.clip(2 * (np.arange(count, dtype=np.int64) + bucket_low) + 1 - 4, 0, rm.MAX_ELL - 1)


def _default_first(shared: np.ndarray) -> np.ndarray:
    return np.array([shared] * ACTIVITY_CLASSES + [BORDER_DEFAULT] * (BORDER_CLASSES + 1), dtype=np.int64)


# -- the shared arithmetic (encoder: all pixels at once; decoder: one wavefront at a time) ---------------
class _Layout:
    """Flat indices into the padded plane: PAD_TOP rows above, PAD_LEFT / PAD_RIGHT columns beside."""

    def __init__(self, shape: tuple[int, int]):
        self.height, self.width = shape
        self.stride = self.width + PAD_LEFT + PAD_RIGHT
        self.padded_shape = (self.height + PAD_TOP, self.stride)
        self.offsets = np.array([dy * self.stride + dx for dy, dx in OFFSETS], dtype=np.int64)

    def flat(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        return (rows + PAD_TOP) * self.stride + cols + PAD_LEFT

    def border(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """-1 inside, else the border class offset 0..3 (row 0, row 1, left columns, right columns)."""
        out = np.full(rows.shape, -1, dtype=np.int64)
        out[cols >= self.width - PAD_RIGHT] = 3
        out[cols < PAD_LEFT] = 2
        out[rows == 1] = 1
        out[rows == 0] = 0
        return out

    def wavefront(self, t: int) -> tuple[np.ndarray, np.ndarray]:
        """Rows and columns of the pixels with 2 i + j == t, by row."""
        low = max(0, -(-(t - self.width + 1) // 2))
        high = min(self.height - 1, t // 2)
        rows = np.arange(low, high + 1, dtype=np.int64)
        return rows, t - 2 * rows

    @property
    def wavefronts(self) -> int:
        return 2 * (self.height - 1) + self.width


def _clamp(x: np.ndarray, low: int, high: int) -> np.ndarray:
    # np.clip's Python-level checks cost more than the clamp on a wavefront's few hundred pixels
    return np.minimum(np.maximum(x, low), high)


def _block_count(shape: tuple[int, int], size: int) -> int:
    """Blocks of size x size covering a plane (the last row and column of blocks may be partial)."""
    return -(-shape[0] // size) * -(-shape[1] // size)


def _block_index(rows: np.ndarray, cols: np.ndarray, width: int, size: int) -> np.ndarray:
    """The row-major index of each pixel's block: the order of the side information's block classes."""
    return (rows // size) * -(-width // size) + cols // size


def _activity(nb: np.ndarray) -> np.ndarray:
    w, n, nw, ne, ww, nn = (nb[:, k] for k in range(6))
    return np.abs(w - nw) + np.abs(n - nw) + np.abs(n - ne) + np.abs(w - ww) + np.abs(n - nn)


def _classes(activity: np.ndarray, border: np.ndarray, class_shift: int,
             blocks: np.ndarray | None = None) -> np.ndarray:
    """Each pixel's class: border, flat, else its activity class, or its block's class (``blocks``)."""
    if blocks is None:
        bit_length = np.frexp(activity.astype(np.float64))[1].astype(np.int64)  # exact for integers < 2**53
        cls = _clamp(bit_length - class_shift, 0, ACTIVITY_CLASSES - 1)
    else:
        cls = blocks
    cls = np.where(activity == 0, FLAT_CLASS, cls)
    return np.where(border >= 0, ACTIVITY_CLASSES + border, cls)


def _first_stage(nb: np.ndarray, cls: np.ndarray, first: np.ndarray, top: int) -> np.ndarray:
    """Prediction in 1/16 sample (clamped to the plane's range) from the neighbours and weights."""
    diffs = nb[:, 1:] - nb[:, :1]
    weights = first[cls]
    acc = (diffs * weights[:, :-1]).sum(axis=1) + weights[:, -1]
    mu = (nb[:, 0] << 4) + (acc >> (COEF_SHIFT - 4))
    return _clamp(mu, 0, top)


def _second_stage(mu1: np.ndarray, errors1: np.ndarray, cls: np.ndarray, second: np.ndarray, top: int) -> np.ndarray:
    return _clamp(mu1 + ((errors1 * second[cls]).sum(axis=1) >> COEF_SHIFT), 0, top)


def _corrected_prediction(net: raster_mlp.RasterCorrection, feats: np.ndarray, feature_scale: np.ndarray,
                          mu2: np.ndarray, top: int) -> np.ndarray:
    """The second-stage prediction plus the learned correction, clamped to the plane's range, from the
    pixels' ``raster_mlp.features`` (encoder and decoder)."""
    return _clamp(mu2 + net.correction(feats, feature_scale), 0, top)


def _stacked_prediction(corrections: np.ndarray, weights: np.ndarray, cls: np.ndarray, mu2: np.ndarray,
                        top: int) -> np.ndarray:
    """The second-stage prediction plus floor((w0 c0 + w1 c1) / 64), clamped to the plane's range: the two
    networks' corrections ([pixels, 2], 1/16 sample) weighted by their class's stacking weights
    (``RasterModel.stack_weights``; every product is an int64 well below 2**62: |c| < 2**29,
    |w| <= STACK_LIMIT). Encoder and decoder."""
    w = weights[cls.astype(np.int64)]
    c = corrections.astype(np.int64)
    return _clamp(mu2 + ((w[:, 0] * c[:, 0] + w[:, 1] * c[:, 1]) >> STACK_SHIFT), 0, top)


def scale_inputs(nb: np.ndarray, errors1: np.ndarray, errors_pre: np.ndarray, final: np.ndarray, mu1: np.ndarray,
                 mu2: np.ndarray, activity: np.ndarray, scale_sum: np.ndarray) -> np.ndarray:
    """The learned scale's inputs (encoder; the decoder shares the correction's features instead): the 12
    neighbours' values, first-stage, uncorrected second-stage and final errors; the pixel's two stage
    predictions, activity and linear scale sum."""
    feats, _ = raster_mlp.features(nb, errors1, errors_pre, mu1, mu2, activity)
    return raster_mlp.scale_features(feats, final, scale_sum)


def _scale_sum(errors2: np.ndarray, activity: np.ndarray, model: RasterModel) -> np.ndarray:
    """The linear scale sum s (1/16 sample): the plane's weights on 8 neighbours' final errors and the activity."""
    w = model.scale_weights
    return ((np.abs(errors2) * w[:-1]).sum(axis=1) + w[-1] * (activity << 4)) >> 4


def _linear_keys(scale_sum: np.ndarray) -> np.ndarray:
    """floor(4 log2 (s + 1)): a pixel's scale key without the learned scale."""
    return log8(np.minimum(scale_sum, (1 << 31) - 2) + 1) >> 1  # log8 takes x < 2**31


def _error(values: np.ndarray, mu: np.ndarray) -> np.ndarray:
    return _clamp((values << 4) + 8 - mu, -ERROR_LIMIT, ERROR_LIMIT)


@functools.lru_cache(maxsize=1)
def _float_tables() -> np.ndarray:
    """The residual tables as probabilities: integer / 2**20, exact in float64, so the same on every machine."""
    return rm.tables().astype(np.float64) / float(rm.TOTAL)


_FAMILY = constriction.stream.model.Categorical(perfect=False)


def _coding(model: RasterModel, mu: np.ndarray, buckets: np.ndarray) -> rm.PixelParams:
    return rm.pixel_params(mu, model.ell[buckets])


def _in_range_entries(params: rm.PixelParams, value_range: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """(first, last) per pixel: the table entries whose values can lie in the plane's range [lo, hi] are
    first..last (entry s holds the values v with v >> b = s - SUPPORT + base); either may lie beyond
    the table's 2 * SUPPORT + 1 entries, and then escaped values can be in the range."""
    lo, hi = value_range[:2]
    first = (lo >> params.low_bits) - params.base + rm.SUPPORT
    last = (hi >> params.low_bits) - params.base + rm.SUPPORT
    return first, last


def _clipped(first: np.ndarray, last: np.ndarray) -> np.ndarray:
    """The pixels whose tables hold entries for values outside the range only (the ones clipped)."""
    return (first > 0) | (last < 2 * rm.SUPPORT)


def _can_escape(first: np.ndarray, last: np.ndarray) -> np.ndarray:
    """Whether an escaped value (beyond the table's value entries) can lie in the range."""
    return (first < 0) | (last > 2 * rm.SUPPORT)


def _is_entry(entry: np.ndarray) -> np.ndarray:
    """Whether these positions are value entries of a table (the ones a censored mass can go onto)."""
    return (entry >= 0) & (entry < rm.ESCAPE)


def _range_masses(table: np.ndarray, first: np.ndarray, last: np.ndarray) -> tuple[np.ndarray, ...]:
    """int64 per pixel, of its plain table (total rm.TOTAL): the mass of the entries below first, of those
    above last, and of the escape where no escaped value can lie in the range; 0 on unclipped pixels."""
    sums = raster_tables.prefix_sums()
    size = rm.ESCAPE
    clipped = _clipped(first, last)
    below = np.where(clipped, sums[table, np.clip(first, 0, size)], 0)
    above = np.where(clipped, sums[table, size] - sums[table, np.clip(last + 1, 0, size)], 0)
    escape = np.where(clipped & ~_can_escape(first, last), rm.tables()[table, rm.ESCAPE], 0)
    return below, above, escape


def _probabilities(model: RasterModel, params: rm.PixelParams, nb: np.ndarray | None) -> np.ndarray:
    """float64 [pixels, ALPHABET] probabilities for the coder: f / sum(f) of integer frequencies f, built by
    ``raster_tables.probabilities`` (which defines them) from the pixels' residual tables and:

    * the neighbour-value boost, where sent: the values a pixel's 12 neighbours hold made likelier. On
      planes whose values sit on a lattice that drifts across the image (contrast-stretched or locally
      equalised radiographs: 2 of 3 values used, which ones changing over tens of pixels) the values the
      neighbours hold are the likely ones; a global histogram does not see it (train chest radiographs:
      12-14 % smaller on such planes, ~1 % on the others).
    * the value range, where sent: a pixel's entries for values outside it get frequency 0 (the coder's
      leaky quantisation still gives them its smallest probability) and their mass is dropped or,
      censored, moved onto the range's end: a pixel predicted near a plane's floor or ceiling (CT padding
      and air, saturated CT windows and radiographs) no longer spends probability on values the plane
      never holds."""
    return raster_tables.probabilities(params.table, params.low_bits, params.base, nb, model.boost_terms,
                                       model.value_range)


def _range_savings(values: np.ndarray, params: rm.PixelParams, value_range: tuple[int, int]) -> list[float]:
    """Bits the value range saves on these pixels' plain tables, for each censor choice 0..3: a pixel
    codes in log2((f' / T') / (f / T)) fewer bits, f its value's entry and T the table's total before
    (T = rm.TOTAL) and after clipping (its own value is never dropped). Only the clipped pixels
    (``_clipped``) are visited: on the others nothing is dropped and both logarithms are 0, and they
    are most pixels of a plane whose tables rarely reach its extremes."""
    first, last = _in_range_entries(params, value_range)
    clipped = np.flatnonzero(_clipped(first, last))
    if clipped.size < values.size:
        params = rm.PixelParams(params.table[clipped], params.low_bits[clipped], params.base[clipped])
        values, first, last = values[clipped], first[clipped], last[clipped]
    below, above, escape = _range_masses(params.table, first, last)
    symbols, escaped = rm.coded_symbols(values, params)
    own = rm.tables()[params.table, symbols]
    savings = []
    for censor in range(4):
        kept_below = np.where(_is_entry(first), below, 0) if censor & 1 else 0
        kept_above = np.where(_is_entry(last), above, 0) if censor & 2 else 0
        total = rm.TOTAL - below - above - escape + kept_below + kept_above
        gained = own + np.where(symbols == first, kept_below, 0) + np.where(symbols == last, kept_above, 0)
        gained = np.where(escaped, own, gained)
        savings.append(float(np.log2(gained / own).sum() + np.log2(rm.TOTAL / total).sum()))
    return savings


def _cost_bits(values: np.ndarray, params: rm.PixelParams, nb: np.ndarray, boost: tuple[int, ...],
               value_range: tuple[int, int, int] | None = None) -> np.ndarray:
    """Per pixel code length under the boosted frequencies and the value range (float; encoder choices
    only), from the taps alone (raster_tables.boosted_code_terms): no [pixels, ALPHABET] array."""
    symbols, escaped = rm.coded_symbols(values, params)
    total, own = raster_tables.boosted_code_terms(params.table, params.low_bits, params.base, nb, symbols, boost,
                                                  value_range)
    return np.log2(total / own) + np.where(escaped, RAW_ESCAPE_BITS, params.low_bits)


def _extra_widths(values: np.ndarray, params: rm.PixelParams) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(main symbol, raw bit count, raw bits) per pixel: the low bits, or the whole value when escaped."""
    symbols, escaped = rm.coded_symbols(values, params)
    widths = np.where(escaped, RAW_ESCAPE_BITS, params.low_bits)
    raw = np.where(escaped, values, values & ((1 << params.low_bits) - 1))
    return symbols, widths, raw


def _pack_bits(widths: np.ndarray, values: np.ndarray) -> bytes:
    """values[i] in widths[i] bits, most significant first, one after another; zero-padded to a byte."""
    starts = np.cumsum(widths) - widths
    bits = np.zeros(int(widths.sum()) if widths.size else 0, dtype=np.uint8)
    for k in range(int(widths.max()) if widths.size else 0):
        mask = widths > k
        bits[starts[mask] + k] = (values[mask] >> (widths[mask] - 1 - k)) & 1
    return np.packbits(bits).tobytes()


_TRUNCATED, _OUT_OF_RANGE = -1, -2  # what _read_values returns instead of the new cursor


@kernel
def _read_values(symbols, low_bits, base, bits, cursor, low, high, out):
    for p in range(symbols.size):
        escaped = symbols[p] == rm.ESCAPE
        width = RAW_ESCAPE_BITS if escaped else low_bits[p]
        if cursor + width > bits.size:
            return _TRUNCATED
        extra = np.int64(0)
        for k in range(width):
            extra = (extra << 1) | bits[cursor + k]
        cursor += width
        value = extra if escaped else ((symbols[p] - rm.SUPPORT + base[p]) << low_bits[p]) + extra
        if value < low or value > high:
            return _OUT_OF_RANGE
        out[p] = value
    return cursor


class _BitReader:
    def __init__(self, payload: bytes):
        self.bits = np.unpackbits(np.frombuffer(payload, dtype=np.uint8)).astype(np.int64)
        self.cursor = 0

    def values(self, symbols: np.ndarray, params: rm.PixelParams, low: int, high: int) -> np.ndarray:
        """The pixels' values from their main symbols and raw bits: an escaped one's RAW_ESCAPE_BITS bits,
        else ((symbol - SUPPORT + base) << b) + its b low bits, in one compiled pass (the tests keep the
        numpy definition: the widths' bits read, then two ``np.where``). CorruptStreamError where the bits
        run out or a value leaves [low, high]."""
        out = np.empty(symbols.size, dtype=np.int64)
        cursor = _read_values(np.ascontiguousarray(symbols, dtype=np.int64), params.low_bits, params.base,
                              self.bits, self.cursor, low, high, out)
        if cursor == _TRUNCATED:
            raise CorruptStreamError("raster raw-bit stream is truncated")
        if cursor == _OUT_OF_RANGE:
            raise CorruptStreamError("raster stream decodes to a value outside the plane's range")
        self.cursor = cursor
        return out

    def finish(self) -> None:
        rest = self.bits[self.cursor:]
        if rest.size >= 8 or rest.any():
            raise CorruptStreamError("raster raw-bit stream has bits left over after the last pixel")


# -- encoder -------------------------------------------------------------------------------------------
def _lstsq(features: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Least-squares weights through the normal equations (the encoder's fits solve hundreds of these on
    up to 2**18 pixels: 4x faster than an SVD of the pixels; the weights are rounded to 1/256 anyway)."""
    if target.size < 2 * features.shape[1]:
        return np.zeros(features.shape[1])
    return np.linalg.lstsq(features.T @ features, features.T @ target, rcond=None)[0]


def _output_delta_of(solution: np.ndarray, weights: np.ndarray, bias: int) -> np.ndarray:
    """A fitted output-layer change (float: weights, then bias, in the layer's integer units) rounded to
    integers that keep the adjusted layer within the network's exactness bounds."""
    delta = np.round(solution).astype(np.int64)
    limit = raster_mlp.WEIGHT_LIMIT
    delta[:-1] = np.clip(delta[:-1], -limit - weights, limit - weights)
    delta[-1] = int(np.clip(delta[-1], -OUTPUT_BIAS_LIMIT - bias, OUTPUT_BIAS_LIMIT - bias))
    return delta


def default_robustness(bits: int) -> int:
    """Which of the encoder's fits are robust on a plane coded with this many bits (_Analysis.robust)."""
    return 2 if bits > ROBUST_ABOVE_BITS else 0


def _robust_lstsq(features: np.ndarray, target: np.ndarray, epsilon: float = ROBUST_EPSILON,
                  ridge: float | None = None) -> np.ndarray:
    """Weights near the least-absolute-deviations fit: iteratively reweighted least squares from the
    least-squares start, each pixel weighted 1 / max(|residual|, epsilon) (one sample, in the target's
    units). Why: a few large errors (edges, text, the collimator's rim) pull a squared-error fit away
    from what the many ordinary pixels need, and the coder pays by code length, closer to |error| than
    to its square.

    With a ridge, every solve adds ridge times the mean diagonal of its Gram matrix to the diagonal
    (shrinking towards 0) and is solved directly: the output-layer fit's (``_Analysis._output_delta``),
    whose hidden units move together and would otherwise take large opposite weights whose rounding to
    integers no longer cancels.

    Each solve's Gram matrix X^T S X is taken as R^T R with R = sqrt(S) X: numpy hands a product of an
    array with its own transpose to BLAS's symmetric rank-k update, which does half the work of a general
    product (the output-layer fits, ~130 columns on 2**16 pixels: 2.5x faster). The weights are rounded
    to integers or 1/256 afterwards; the two forms differ in the last bits of the float sums only."""
    if ridge is None and target.size < 2 * features.shape[1]:
        return _lstsq(features, target)
    weights = _lstsq(features, target) if ridge is None else None
    root = np.ones(target.size)
    for _ in range(ROBUST_ITERATIONS + (ridge is not None)):
        if weights is not None:
            root = np.sqrt(1.0 / np.maximum(np.abs(target - features @ weights), epsilon))
        weighted = features * root[:, None]
        gram = weighted.T @ weighted
        moment = weighted.T @ (target * root)
        if ridge is None:
            weights = np.linalg.lstsq(gram, moment, rcond=None)[0]
        else:
            gram[np.diag_indices_from(gram)] += ridge * np.diag(gram).mean() + 1e-12
            weights = np.linalg.solve(gram, moment)
    return weights


def _sample(count: int, limit: int, width: int) -> np.ndarray:
    """About ``limit`` of ``count`` pixels at an even stride that is coprime with the plane's width, so
    the sample visits every column (a stride of 8 on a 512-wide plane would see only the columns of
    8x8 block edges of a once-JPEG image)."""
    stride = max(1, count // limit)
    while stride > 1 and np.gcd(stride, width) > 1:
        stride += 1
    return np.arange(0, count, stride, dtype=np.int64)


def _blend_weights(deltas: list[np.ndarray], target: np.ndarray, cls: np.ndarray) -> list[np.ndarray]:
    """Per class, the least-squares weights (1/64, clipped to 0..64) of the local predictions' moves
    (deltas, one per radius) that best explain the errors (target): one weight is a ratio of sums, as
    the decoder needs nothing of this; several are solved together, a singular class getting none."""
    if len(deltas) == 1:
        moved = np.bincount(cls, deltas[0] * target, CLASSES)
        power = np.bincount(cls, deltas[0] * deltas[0], CLASSES)
        ratios = np.divide(moved, power, out=np.zeros(CLASSES), where=power > 0)[None]
    else:
        k = len(deltas)
        gram = np.array([[np.bincount(cls, a * b, CLASSES) for b in deltas] for a in deltas]).transpose(2, 0, 1)
        moved = np.array([np.bincount(cls, a * target, CLASSES) for a in deltas]).T
        ratios = np.zeros((k, CLASSES))
        for c in range(CLASSES):
            if np.linalg.matrix_rank(gram[c]) == k:
                ratios[:, c] = np.linalg.solve(gram[c], moved[c])
    return list(np.clip(np.round(ratios * local_ls.WEIGHT_ONE), 0, local_ls.WEIGHT_ONE).astype(np.int64))


# _Analysis._local_predictions': per plane key (the most recent ones, as many as the thread budget: the
# frames coded side by side), per radius a Future of the predictions (computed by the first analysis to
# ask, the others in any thread wait for it: the slow mode's raster tries run side by side)
_LOCAL_CACHE: "OrderedDict[tuple, dict[int, Future]]" = OrderedDict()
_LOCAL_LOCK = threading.Lock()  # encoders in several threads share the cache


class _Analysis:
    """The encoder's pass over the whole plane: fits the model, then everything the decoder will compute.

    The same integer functions as the decoder's, applied to bands of rows at once (neighbours as slices of
    the padded plane, so no per-pixel gather over the whole plane); the fits look at an even stride."""

    def __init__(self, plane: np.ndarray, bits: int, block_classes: np.ndarray | None = None,
                 correction: raster_mlp.RasterCorrection | None = None, robust: int | None = None,
                 thorough: bool = False):
        self.bits = bits
        self.thorough = thorough
        self.sample_scale = THOROUGH_SCALE if thorough else 1
        # which fits are robust (_robust_lstsq): 0 none, 1 the second stage and the scale, 2 the first
        # stage too; by default 2 above ROBUST_ABOVE_BITS bits, else 0
        self.robust = robust if robust is not None else default_robustness(bits)
        self.top = (1 << bits) << 4
        self.layout = layout = _Layout(plane.shape)
        self.height, self.width = height, width = plane.shape
        rows, cols = np.divmod(np.arange(height * width, dtype=np.int64), width)
        self.values = plane.astype(np.int64).ravel()
        self.value_range = (int(self.values.min()), int(self.values.max())) if self.values.size else (0, 0)
        self.border = layout.border(rows, cols).astype(np.int8)
        self.order = np.lexsort((rows, 2 * rows + cols))  # decode order: wavefront, then row
        self.sample = _sample(self.values.size, FIT_SAMPLE * self.sample_scale, width)
        self.sample_index = layout.flat(rows[self.sample], cols[self.sample])
        del rows, cols
        # per-pixel results are stored as int32 (values < 2**21, errors within +-2**24; every product and
        # sum is taken in int64), so a 4096^2 plane's encoder needs about what the fast path's does
        pad = int(np.median(self.values))
        grid = np.full(layout.padded_shape, pad, dtype=np.int64)
        grid[PAD_TOP:, PAD_LEFT:PAD_LEFT + width] = plane
        self.grid = grid.ravel()
        self.activity = self._by_bands(grid, len(OFFSETS), lambda nb, band: _activity(nb)).astype(np.int32)
        inner = self.activity[self.border < 0]
        median_activity = int(np.median(inner)) if inner.size else 0
        class_shift = max(0, int(np.frexp(float(median_activity))[1]) - 6)
        self.cls = _classes(self.activity, self.border, class_shift).astype(np.int8)
        if block_classes is not None:  # each pixel's block class (_block_index's order), as int8 repeats
            # of the block grid: no whole-plane int64 rows and columns
            per_block = block_classes.astype(np.int8).reshape(-1, -(-width // BLOCK))
            per_pixel = np.repeat(np.repeat(per_block, BLOCK, axis=0)[:height], BLOCK, axis=1)[:, :width].ravel()
            self.cls = _classes(self.activity, self.border, class_shift, per_pixel).astype(np.int8)
        shared, first = self._fit_first(self._taps_at(grid, len(OFFSETS)))
        self.mu1 = self._by_bands(grid, len(OFFSETS),
                                  lambda nb, band: _first_stage(nb, self.cls[band], first, self.top)).astype(np.int32)
        errors1 = self._grid_of(_error(self.values, self.mu1))
        second = self._fit_second(self._taps_at(errors1, ERROR_TAPS), _error(self.values[self.sample], self.mu1[self.sample]))
        self.mu = self._by_bands(errors1, ERROR_TAPS,
                                 lambda e1, band: _second_stage(self.mu1[band], e1, self.cls[band], second,
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
                                 block_classes=block_classes,
                                 output_delta=self.output_delta if corrected is not None else None)
        self._finish(self.mu if corrected is None else corrected, None if corrected is None else correction.tag)

    def _finish(self, mu: np.ndarray, correction_tag: str | None) -> None:
        """Everything after the final prediction: errors, scale weights, buckets and their scale indices."""
        self.mu = mu
        self.model.correction = correction_tag
        if correction_tag is None:
            self.model.output_delta = self.model.second_correction = self.model.stack_weights = None
        self.errors2 = _error(self.values, self.mu).astype(np.int32)
        errors2 = self._grid_of(self.errors2)
        self.model.scale_weights = self._fit_scale(self._taps_at(errors2, SCALE_TAPS))
        self._settle(self._by_bands(errors2, SCALE_TAPS, lambda e2, band: _linear_keys(
            _scale_sum(e2, self.activity[band], self.model))), None)

    def offer_learned_scales(self, nets: Sequence[raster_mlp.RasterCorrection]) -> None:
        """Takes each learned scale's buckets (``_learned_keys``), in turn, where they code smaller than
        the buckets kept so far (at first the linear ones). Offered once, to the analysis the other
        choices settled on: offered to every candidate analysis it saved 0.37 % instead of 0.35 % on 16
        held-out train files for ~50 % more encoder time instead of ~15-30 %. The networks' inputs are
        computed once for all of them."""
        if not nets:
            return
        errors2 = self._grid_of(self.errors2)
        scale_sum = self._by_bands(errors2, SCALE_TAPS, lambda e2, band: _scale_sum(e2, self.activity[band], self.model))
        linear_keys = self.buckets.astype(np.int64) + self.model.bucket_low  # as _settle made them
        learned = self._learned_keys(nets, linear_keys, scale_sum, errors2)
        del scale_sum, errors2, linear_keys
        for net, keys in zip(nets, learned):
            estimate, kept = self.estimated_bytes(), self._bucket_state()
            self._settle(keys, net.tag)
            if self.estimated_bytes() >= estimate - SCALE_MIN_SAVING:
                self._set_bucket_state(kept)

    def _settle(self, keys: np.ndarray, scale_tag: str | None) -> None:
        """Buckets from every pixel's scale key; their scale indices and the boost fitted."""
        low, high = int(keys.min()), int(keys.max())
        self.buckets = (keys - low).astype(np.int16)
        self.model.bucket_low = low
        self.model.scale_net = scale_tag
        self.model.boost, self.model.lattice = (0, 0), (0, 0)
        self.model.ell = self.plain_ell = self._fit_buckets(low, high - low + 1)
        self.plain_cost_bits: float | None = None
        self.range_saving_bits, self.range_censor = 0.0, 0
        self._settle_range()  # first: the boost search weighs the boost on the tables the range leaves
        self.boost_ratio = self._fit_boost()

    def _bucket_state(self) -> tuple:
        m = self.model
        return (self.buckets, m.bucket_low, m.scale_net, m.boost, m.lattice, m.ell, self.plain_ell, self.boost_ratio,
                self.plain_cost_bits, self.range_saving_bits, self.range_censor, m.value_range)

    def _set_bucket_state(self, state: tuple) -> None:
        m = self.model
        (self.buckets, m.bucket_low, m.scale_net, m.boost, m.lattice, m.ell, self.plain_ell, self.boost_ratio,
         self.plain_cost_bits, self.range_saving_bits, self.range_censor, m.value_range) = state

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
            inputs = scale_inputs(*taps, self.mu1[pixels], pre_mu[pixels], self.activity[pixels], scale_sum[pixels])
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
        errors_pre = errors2 if self._uncorrected is None else self._grid_of(_error(self.values, pre_mu))
        return pre_mu, (self.grid.reshape(self.layout.padded_shape), self._grid_of(_error(self.values, self.mu1)),
                        errors_pre, errors2)

    def scale_samples(self, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(scale network inputs with the window features, linear scale sums) of these pixels (flat
        indices, each with a raster class): what the learned scale sees there, for training it
        (``train.raster_scale``; a network without the window takes the first SCALE_FEATURES columns)."""
        pre_mu, grids = self._scale_grids(self._grid_of(self.errors2))
        index = self.layout.flat(*np.divmod(pixels, self.width))
        nb, errors1, errors_pre, final = (self._taps_at(g, len(OFFSETS), index) for g in grids)
        scale_sum = _scale_sum(final[:, :SCALE_TAPS], self.activity[pixels], self.model)
        inputs = scale_inputs(nb, errors1, errors_pre, final, self.mu1[pixels], pre_mu[pixels], self.activity[pixels],
                              scale_sum)
        window = self._windows().features(*np.divmod(pixels, self.width), scale_sum)
        return np.concatenate([inputs, window], axis=1), scale_sum

    def without_correction(self) -> "_Analysis | None":
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

    def without_output_fit(self) -> "_Analysis | None":
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

    def with_second_correction(self, second: raster_mlp.RasterCorrection) -> "_Analysis | None":
        """This analysis with a second correction network's correction stacked on its own (format 2.7), the
        rest refitted; None where it has no correction or ``second`` is the network it has. Each activity
        class weights the two corrections by least absolute deviations (``_robust_lstsq``) of the
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
        grids = (self.grid.reshape(self.layout.padded_shape), self._grid_of(_error(self.values, self.mu1)),
                 self._grid_of(_error(self.values, pre)))
        corrections = np.zeros((self.values.size, 2), dtype=np.int32)  # |c| <= 8 s < 2**29
        for first_row, end_row, inside, pixels in self._bands_of(eligible):
            feats, feature_scale = raster_mlp.features(
                *(self._band_taps(g, first_row, end_row, len(OFFSETS))[inside] for g in grids),
                self.mu1[pixels], pre[pixels], self.activity[pixels])
            for k, net in enumerate((first, second)):
                corrections[pixels, k] = net.correction(feats, feature_scale)
        del grids
        target = _error(self.values, pre).astype(np.float64)
        weights = np.tile(np.array([1 << STACK_SHIFT, 0], dtype=np.int64), (ACTIVITY_CLASSES, 1))
        cls = self.cls.astype(np.int64)
        for k in range(ACTIVITY_CLASSES):
            members = np.flatnonzero(cls == k)
            if members.size >= STACK_MIN_PIXELS:
                fitted = _robust_lstsq(corrections[members].astype(np.float64), target[members])
                weights[k] = np.clip(np.round(fitted * (1 << STACK_SHIFT)), -STACK_LIMIT, STACK_LIMIT)
        mu = self.mu.copy()
        chosen = np.flatnonzero(eligible)
        mu[chosen] = _stacked_prediction(corrections[chosen], weights, cls[chosen], pre[chosen], self.top)
        del corrections
        other = copy.copy(self)
        other.model = dataclasses.replace(self.model, second_correction=second.tag, stack_weights=weights)
        other._finish(mu, self.model.correction)
        return other

    def with_local_ls(self, extra_radii: Sequence[int] = ()) -> "_Analysis | None":
        """This analysis with its prediction moved towards the local least-squares one
        (``pipelines.local_ls``) by a weight per class, fitted on every pixel (least squares, clipped to
        0..1), the rest refitted; None where no class takes any. With extra_radii, also the blends of
        the RADIUS window's prediction with those of each and all of these radii (fitted jointly), the
        smallest estimate kept. The caller keeps whichever estimate is smaller than this one's."""
        cls = self.cls.astype(np.int64)
        target = _error(self.values, self.mu).astype(np.float64)
        choices = [(local_ls.RADIUS,)] + [(local_ls.RADIUS, r) for r in extra_radii]
        if len(extra_radii) > 1:
            choices.append((local_ls.RADIUS, *extra_radii))
        # each radius's moves once, for every choice that holds it
        deltas = {radius: np.clip(prediction - self.mu, -local_ls.DELTA_LIMIT, local_ls.DELTA_LIMIT)
                  for radius, prediction in self._local_predictions((local_ls.RADIUS, *extra_radii)).items()}
        moves = {radius: delta.astype(np.float64) for radius, delta in deltas.items()}
        best = None
        for radii in choices:
            weights = _blend_weights([moves[radius] for radius in radii], target, cls)
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
        errors2 = self._grid_of(_error(self.values, self.mu))  # the decoder's pre-correction error grid
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
                mu[pixels] = _corrected_prediction(net, feats, feature_scale, self.mu[pixels], self.top)
                continue
            plain, adjusted = net.outputs_with(fitted, feats)
            for out, output in ((shipped, plain), (mu, adjusted)):
                out[pixels] = _clamp(self.mu[pixels] + raster_mlp.correction_of(output, feature_scale), 0, self.top)
        self._shipped_output = shipped
        del errors2
        values = self.values[sample]
        before = np.log2(np.abs(_error(values, self.mu[sample])) / 16 + 0.6)
        after = np.log2(np.abs(_error(values, mu[sample])) / 16 + 0.6)
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
        mu2, target = self.mu[pixels].astype(np.int64), (self.values[pixels].astype(np.int64) << 4) + 8  # as _error
        # [hidden activations, 1] times each pixel's scale, written in place (~50 MB a copy on 2**16 pixels)
        factor = scale / float(1 << (raster_mlp.FEATURE_SHIFT + raster_mlp.WEIGHT_SHIFT))
        design = np.empty((pixels.size, hidden.shape[1] + 1))
        np.multiply(hidden, factor[:, None], out=design[:, :-1])
        design[:, -1] = factor
        left = target - mu2 - design @ np.r_[net.weights[-1][0], net.biases[-1][0]]  # the plain output's error
        last = net.weights[-1][0].astype(np.int64), int(net.biases[-1][0])

        def proxy(delta, chosen):
            adjusted = net if delta is None else net.with_output_delta(delta)
            mu = _clamp(mu2[chosen] + raster_mlp.correction_of(adjusted.output_of_hidden(hidden[chosen]),
                                                               scale[chosen]), 0, self.top)
            return float(np.log2(np.abs(target[chosen] - mu) / 16 + 0.6).sum())

        def fit(chosen):
            return _output_delta_of(_robust_lstsq(design[chosen], left[chosen], ridge=OUTPUT_RIDGE), *last)

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
            return _robust_lstsq(features, target, epsilon)
        return _lstsq(features, target)

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
        first = _default_first(shared)
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
        count = _block_count((self.height, width), BLOCK)
        sample = _sample(self.values.size, BLOCK_SAMPLE * self.sample_scale, width)
        sample = sample[self.cls[sample] < ACTIVITY_CLASSES]
        if sample.size < 64 * len(OFFSETS) or count < 2:
            return None
        rows, cols = np.divmod(sample, width)
        block = _block_index(rows, cols, width, BLOCK)
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
                    weights[k] = _lstsq(x[part], y[part])
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
        """Per bucket the scale index that codes its pixels in fewest bits, searched around ``_start_ell``.
        (A mean offset per bucket was tried: 0.003 % smaller, not worth its side information.)"""
        start = _start_ell(low, count)
        members = _sample(self.values.size, SEARCH_SAMPLE * self.sample_scale, self.width)
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
        members = _sample(self.values.size, BOOST_SAMPLE * self.sample_scale, self.width)
        values, mu, buckets = self.values[members], self.mu[members], self.buckets[members].astype(np.int64)
        if (rm.pixel_params(mu, self.model.ell[buckets]).low_bits > 0).mean() > 0.9:
            return 1.0  # wide 16-bit residuals: the boost does not apply
        nb = self._neighbour_values(members)
        count = self.model.ell.size

        params_at: dict[int, rm.PixelParams] = {}  # per scale step: the same for every boost tried

        def bucket_costs(boost, step):
            if step not in params_at:
                params_at[step] = rm.pixel_params(mu, np.clip(self.model.ell + step, 0, rm.MAX_ELL - 1)[buckets])
            costs = _cost_bits(values, params_at[step], nb, boost, self.model.value_range)
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

    def _settle_range(self) -> None:
        """The plain code length, and whether the value range is sent: where it saves RANGE_MIN_BYTES."""
        if self.plain_cost_bits is None:  # once: the residuals' part is a pass over every pixel
            params = rm.pixel_params(self.mu, self.plain_ell[self.buckets])
            self.plain_cost_bits = rm.ideal_cost_bits(self.values, params)
            savings = _range_savings(self.values, params, self.value_range)
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
            params = _coding(self.model, self.mu[chosen], self.buckets[chosen])
            symbol, width, raw = _extra_widths(self.values[chosen], params)
            symbols.append(symbol.astype(np.int32))
            tables.append(params.table.astype(np.int16))
            widths.append(width.astype(np.uint8))
            raws.append(raw.astype(np.int32))
        coder = constriction.stream.stack.AnsCoder()
        probabilities = _float_tables()
        for start, symbol, table in zip(reversed(chunks), reversed(symbols), reversed(tables)):
            # ANS is a stack: the last chunk first
            if self.model.boosted or self.model.value_range is not None:
                chosen = self.order[start:start + CHUNK]
                chunk_probabilities = _probabilities(self.model, _coding(self.model, self.mu[chosen], self.buckets[chosen]),
                                                     self._neighbour_values(chosen) if self.model.boosted else None)
            else:
                chunk_probabilities = probabilities[table]
            coder.encode_reverse(symbol, _FAMILY, chunk_probabilities)
        words = coder.get_compressed().astype("<u4", copy=False).tobytes()
        raw_bits = _pack_bits(np.concatenate(widths).astype(np.int64), np.concatenate(raws).astype(np.int64)) \
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


# -- decoder -------------------------------------------------------------------------------------------
def _wavefront_plane(model: RasterModel, layout: _Layout, top: int) -> raster_wavefront.Plane:
    """What the compiled wavefront arithmetic needs of a plane (the definitions: ``_activity``,
    ``_classes``, ``_first_stage``, ``_second_stage``, ``_scale_sum``, ``_linear_keys``, ``_error``)."""
    return raster_wavefront.Plane(
        stride=layout.stride, width=layout.width, offsets=layout.offsets, pad_top=PAD_TOP, pad_left=PAD_LEFT,
        pad_right=PAD_RIGHT, class_shift=model.class_shift, blocks=model.block_classes, block_size=model.block_size,
        first=np.ascontiguousarray(model.first, dtype=np.int64),
        second=np.ascontiguousarray(model.second[:, :ERROR_TAPS], dtype=np.int64),
        scale_weights=np.ascontiguousarray(model.scale_weights, dtype=np.int64), activity_classes=ACTIVITY_CLASSES,
        flat_class=FLAT_CLASS, coef_shift=COEF_SHIFT, top=top, error_limit=ERROR_LIMIT)


def _decode(model: RasterModel, words: bytes, raw: bytes, shape: tuple[int, int], bits: int,
            net: raster_mlp.RasterCorrection | None = None,
            scale_net: raster_mlp.RasterCorrection | None = None,
            second: raster_mlp.RasterCorrection | None = None) -> np.ndarray:
    """The coded plane from a raster frame's streams; net: its correction (with its output-layer delta),
    second: the correction stacked on it (``RasterModel.stack_weights``), scale_net: its learned scale."""
    layout = _Layout(shape)
    top = (1 << bits) << 4
    size = layout.padded_shape[0] * layout.padded_shape[1]
    # int32 storage (values < 2**16, errors within +-2**24) halves the decoder's memory; every product
    # and sum is taken in int64 (numpy promotes int32 with the int64 weights)
    grid = np.full(size, model.pad, dtype=np.int32)
    errors1 = np.zeros(size, dtype=np.int32)
    errors2 = np.zeros(size, dtype=np.int32)
    errors_pre = np.zeros(size, dtype=np.int32) if net is not None else None  # second stage's, uncorrected
    if len(words) % 4:
        raise CorruptStreamError("raster rANS stream length is not a multiple of 4 bytes")
    try:
        coder = constriction.stream.stack.AnsCoder(np.frombuffer(words, dtype="<u4").astype(np.uint32))
    except Exception as exc:  # constriction reports invalid data as ValueError; catch its whole family
        raise CorruptStreamError(f"raster rANS stream is damaged: {exc}") from None
    reader = _BitReader(raw)
    windows = raster_mlp.ErrorWindows(*shape) \
        if scale_net is not None and scale_net.inputs == raster_mlp.WINDOW_SCALE_FEATURES else None
    low, high = model.value_range[:2] if model.value_range is not None else (0, (1 << bits) - 1)
    # each blended radius's weights and running window sums
    local = [(weights, local_ls.RunningSums(*shape, radius)) for radius, weights in model.local_blends()]
    plane = _wavefront_plane(model, layout, top)
    grids = (grid, errors1, errors2, errors_pre)
    for t in range(layout.wavefronts):
        rows, cols = layout.wavefront(t)
        if rows.size == 0:  # a one-column plane has pixels on every other wavefront only
            continue
        ctx = raster_wavefront.context(plane, grids, rows, cols)
        nb, cls = ctx.nb, ctx.cls
        mu = ctx.mu2
        keys = ctx.keys
        if net is not None or scale_net is not None:
            inside = np.flatnonzero(cls < ACTIVITY_CLASSES)
            if inside.size:
                # without a correction the uncorrected second-stage errors are the final ones
                feats, feature_scale = raster_mlp.features(nb[inside], ctx.errors1[inside],
                                                           (ctx.errors2 if errors_pre is None else ctx.errors_pre)[inside],
                                                           ctx.mu1[inside], ctx.mu2[inside], ctx.activity[inside])
                if net is not None:
                    mu = ctx.mu2.copy()
                    if second is None:
                        mu[inside] = _corrected_prediction(net, feats, feature_scale, ctx.mu2[inside], top)
                    else:
                        both = np.stack([n.correction(feats, feature_scale) for n in (net, second)], axis=1)
                        mu[inside] = _stacked_prediction(both, model.stack_weights, cls[inside], ctx.mu2[inside], top)
                if scale_net is not None:
                    scale_sum = ctx.scale_sum[inside]
                    sfeats = raster_mlp.scale_features(feats, ctx.errors2[inside], scale_sum)
                    if windows is not None:
                        sfeats = np.concatenate([sfeats, windows.features(rows[inside], cols[inside], scale_sum)],
                                                axis=1)
                    keys[inside] = raster_mlp.scale_keys(scale_net, sfeats, scale_sum)
        if local:
            shifts = np.zeros(mu.size, dtype=np.int64)
            for class_weights, sums in local:
                weights = class_weights[cls]
                moving = np.flatnonzero(weights)  # a class with weight 0 keeps its prediction: no solve there
                if moving.size:
                    shifts[moving] += local_ls.shift(mu[moving], sums.predict(rows[moving], cols[moving], nb[moving],
                                                                              top), weights[moving])
            mu = local_ls.moved(mu, shifts)
        params = rm.pixel_params_of_buckets(mu, keys - model.bucket_low, model.ell)  # buckets clamped to ell's
        try:
            symbols = np.asarray(coder.decode(_FAMILY, _probabilities(model, params, nb)), dtype=np.int64)
        except Exception as exc:
            raise CorruptStreamError(f"raster rANS stream is damaged: {exc}") from None
        values = reader.values(symbols, params, low, high)
        raster_wavefront.store(plane, grids, ctx, values, mu)
        for _, sums in local:
            sums.add(rows, cols, nb, values)
        if windows is not None:
            windows.add(rows, cols, errors2[ctx.index])
    if not coder.is_empty():
        raise CorruptStreamError("raster rANS stream is damaged: data left over after the last pixel")
    reader.finish()
    return grid.reshape(layout.padded_shape)[PAD_TOP:, PAD_LEFT:PAD_LEFT + layout.width]


def _palette_runs(palette: np.ndarray) -> list[int]:
    """A sorted value set as [first value, run of used values, run of unused, run of used, ...]."""
    breaks = np.flatnonzero(np.diff(palette) > 1)
    starts = np.r_[palette[0], palette[breaks + 1]]
    ends = np.r_[palette[breaks], palette[-1]] + 1  # one past each run of used values
    runs = np.empty(2 * starts.size - 1, dtype=np.int64)
    runs[0::2] = ends - starts
    runs[1::2] = starts[1:] - ends[:-1]
    return [int(palette[0])] + runs.tolist()


def _palette_of_runs(runs, bits: int) -> np.ndarray:
    """The inverse of ``_palette_runs``; ValueError unless it is a valid set of ``bits``-bit values."""
    if not isinstance(runs, list) or not 2 <= len(runs) <= MAX_PALETTE_RUNS or len(runs) % 2:
        raise ValueError("bad palette")
    runs = np.array(runs, dtype=np.int64)
    if runs[0] < 0 or runs[1:].min() < 1 or runs[0] + runs[1:].sum() > (1 << bits):
        raise ValueError("bad palette")
    used = np.zeros(int(runs[1:].sum()), dtype=bool)
    edges = np.cumsum(runs[1:])
    for start, end in zip(np.r_[0, edges[1::2]], edges[0::2]):
        used[start:end] = True
    return runs[0] + np.flatnonzero(used)


def thorough_differs(pixels: int) -> bool:
    """Whether a thorough analysis of a plane of this many pixels can differ from the plain one: only
    when some sample of the plain one leaves pixels out."""
    return pixels > min(FIT_SAMPLE, SEARCH_SAMPLE, BOOST_SAMPLE, BLOCK_SAMPLE)


def _coded_bits(bits: int, step: int, offset: int) -> int:
    """Bits of the coded plane: enough for the largest value of ``bits`` on the grid."""
    return max(1, (((1 << bits) - 1 - offset) // step).bit_length())


def _index_bits(count: int) -> int:
    """Bits of the coded plane of palette indices 0..count-1."""
    return max(1, (count - 1).bit_length())


def _first_analysis(plane: np.ndarray, bits: int, correction: raster_mlp.RasterCorrection | None = None,
                    robust: int | None = None, thorough: bool = False) -> _Analysis:
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
        analysis = _Analysis(plane, bits, correction=correction, robust=robust, thorough=thorough)
    else:
        offset = int(values[0]) % step
        coded = ((plane.astype(np.int64) - offset) // step).astype(np.uint16)
        analysis = _Analysis(coded, _coded_bits(bits, step, offset), correction=correction, robust=robust,
                             thorough=thorough)
        analysis.model.step, analysis.model.offset = step, offset
    grid_points = (int(values[-1]) - int(values[0])) // step + 1
    if bits > 8 and values.size < (1 - PALETTE_HOLES) * grid_points:
        indices = np.searchsorted(values, plane).astype(np.uint16)
        palette = _Analysis(indices, _index_bits(values.size), correction=correction, robust=robust,
                            thorough=thorough)
        palette.model.palette = values.astype(np.int64)
        if palette.estimated_bytes() < analysis.estimated_bytes():
            analysis = palette
    return analysis


def _analyse(plane: np.ndarray, bits: int, correction: raster_mlp.RasterCorrection | None = None,
             robust: int | None = None, thorough: bool = False,
             scale_nets: Sequence[raster_mlp.RasterCorrection] = (),
             local_min_share: float | None = None, local_radii: Sequence[int] = (),
             second: raster_mlp.RasterCorrection | None = None) -> _Analysis:
    """``_first_analysis``, or the same coded plane's with block classes where they look promising and
    code smaller; then, where the learned correction was applied, the same without it if that codes
    smaller; then, where a correction is kept and a second network is given, the two stacked if that
    codes smaller; then the local least-squares blend where it saves local_min_share of the estimate (None:
    LOCAL_MIN_SHARE), with windows of local_radii blended in too where that codes smaller; then each
    learned scale offered, in turn, where it codes smaller than what is kept. On a large plane only one
    block-class analysis is alive at a time (a 4096^2 plane's is ~1.4 GB): the first is dropped while
    the second is built, and rebuilt if the block classes lose."""
    analysis = _with_block_classes(_first_analysis(plane, bits, correction, robust, thorough), correction)
    for alternative in (_Analysis.without_output_fit, _Analysis.without_correction):
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
    return analysis


def _with_block_classes(analysis: _Analysis, correction: raster_mlp.RasterCorrection | None) -> _Analysis:
    classes = analysis.block_classes()
    if classes is None:
        return analysis
    estimate = analysis.estimated_bytes()
    coded, coded_bits = analysis.values.reshape(analysis.height, analysis.width), analysis.bits
    step, offset, palette = analysis.model.step, analysis.model.offset, analysis.model.palette
    corrected = analysis.model.correction is not None  # the block-class analysis corrects where the first did
    robust, thorough = analysis.robust, analysis.thorough

    def build(block_classes: np.ndarray | None) -> _Analysis:
        out = _Analysis(coded, coded_bits, block_classes, correction if corrected else None, robust, thorough)
        out.model.step, out.model.offset, out.model.palette = step, offset, palette
        return out

    if coded.size > BLOCK_KEEP_BOTH:
        analysis = None
    blocked = build(classes)
    if blocked.estimated_bytes() < estimate:
        return blocked
    del blocked
    return analysis if analysis is not None else build(None)


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
        self.robust = robust  # the encoder's robust fits (_Analysis.robust; None: by bit depth)
        self.thorough = thorough  # the encoder's larger samples (_Analysis.thorough)
        self.local_min_share = local_min_share  # what the local least-squares blend must save (_analyse)
        self.local_radii = local_radii  # the windows blended in besides local_ls.RADIUS's, where they pay
        self.second_model = second_model  # the correction stacked on the first where that pays (None: never)

    def _correction(self) -> raster_mlp.RasterCorrection | None:
        return shipped_correction(self.correction_model) if self.use_correction else None

    def _analyse(self, plane: np.ndarray, bits: int) -> _Analysis:
        nets = [shipped_scale(m) for m in self.scale_models] if self.use_scale else []
        second = shipped_correction(self.second_model) if self.use_correction and self.second_model else None
        return _analyse(check_plane(plane, bits), bits, self._correction(), self.robust, self.thorough,
                        [net for net in nets if net is not None], self.local_min_share, self.local_radii, second)

    def encode(self, plane: np.ndarray, bits: int) -> list[Stream]:
        return self._analyse(plane, bits).streams()

    def encode_alternatives(self, plane: np.ndarray, bits: int,
                            beaten_by: int | Callable[[], int | None] | None = None) -> list[tuple[str, list[Stream]]]:
        """The raster streams, or none when their estimated size is over ``beaten_by`` bytes (another
        coding's size) by more than the estimate's error: the rANS coding is then not run (a third of
        the encoder's time). beaten_by may be a function, asked once the analysis is done (another
        coding made meanwhile in another thread)."""
        analysis = self._analyse(plane, bits)
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
        coded = _decode(model, found[needed[1]], found[needed[2]], shape, model.coded_bits(bits), net, scale_net,
                        second)
        return check_decoded(model.plane_of(coded, bits), shape, bits, "raster")
