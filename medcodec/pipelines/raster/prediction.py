"""The raster coding's integer arithmetic from a pixel's causal neighbours to its prediction and scale
key: activity, class, the two least-squares stages, the learned corrections added, the linear scale.

The encoder applies these to whole planes (``analysis``); the decoder's compiled wavefront loops
(``wavefront``) are the same arithmetic a pixel at a time, and its tests compare the two."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from medcodec.networks import raster_mlp
from medcodec.pipelines.raster.layout import (ACTIVITY_CLASSES, COEF_SHIFT, ERROR_LIMIT, FLAT_CLASS, KEY_MAX,
                                              STACK_SHIFT)
from medcodec.pipelines.surprise import log8

if TYPE_CHECKING:
    from medcodec.pipelines.raster.side_info import RasterModel


def clamp(x: np.ndarray, low: int, high: int) -> np.ndarray:
    # np.clip's Python-level checks cost more than the clamp on a wavefront's few hundred pixels
    return np.minimum(np.maximum(x, low), high)


def activity(nb: np.ndarray) -> np.ndarray:
    w, n, nw, ne, ww, nn = (nb[:, k] for k in range(6))
    return np.abs(w - nw) + np.abs(n - nw) + np.abs(n - ne) + np.abs(w - ww) + np.abs(n - nn)


def classes(activity: np.ndarray, border: np.ndarray, class_shift: int,
             blocks: np.ndarray | None = None) -> np.ndarray:
    """Each pixel's class: border, flat, else its activity class, or its block's class (``blocks``)."""
    if blocks is None:
        bit_length = np.frexp(activity.astype(np.float64))[1].astype(np.int64)  # exact for integers < 2**53
        cls = clamp(bit_length - class_shift, 0, ACTIVITY_CLASSES - 1)
    else:
        cls = blocks
    cls = np.where(activity == 0, FLAT_CLASS, cls)
    return np.where(border >= 0, ACTIVITY_CLASSES + border, cls)


def first_stage(nb: np.ndarray, cls: np.ndarray, first: np.ndarray, top: int) -> np.ndarray:
    """Prediction in 1/16 sample (clamped to the plane's range) from the neighbours and weights."""
    diffs = nb[:, 1:] - nb[:, :1]
    weights = first[cls]
    acc = (diffs * weights[:, :-1]).sum(axis=1) + weights[:, -1]
    mu = (nb[:, 0] << 4) + (acc >> (COEF_SHIFT - 4))
    return clamp(mu, 0, top)


def second_stage(mu1: np.ndarray, errors1: np.ndarray, cls: np.ndarray, second: np.ndarray, top: int) -> np.ndarray:
    return clamp(mu1 + ((errors1 * second[cls]).sum(axis=1) >> COEF_SHIFT), 0, top)


def corrected(net: raster_mlp.RasterCorrection, feats: np.ndarray, feature_scale: np.ndarray,
                          mu2: np.ndarray, top: int) -> np.ndarray:
    """The second-stage prediction plus the learned correction, clamped to the plane's range, from the
    pixels' ``raster_mlp.features`` (encoder and decoder)."""
    return clamp(mu2 + net.correction(feats, feature_scale), 0, top)


def stacked(corrections: np.ndarray, weights: np.ndarray, cls: np.ndarray, mu2: np.ndarray,
                        top: int) -> np.ndarray:
    """The second-stage prediction plus floor((w0 c0 + w1 c1) / 64), clamped to the plane's range: the two
    networks' corrections ([pixels, 2], 1/16 sample) weighted by their class's stacking weights
    (``RasterModel.stack_weights``; every product is an int64 well below 2**62: |c| < 2**29,
    |w| <= STACK_LIMIT). Encoder and decoder."""
    w = weights[cls.astype(np.int64)]
    c = corrections.astype(np.int64)
    return clamp(mu2 + ((w[:, 0] * c[:, 0] + w[:, 1] * c[:, 1]) >> STACK_SHIFT), 0, top)


def scale_inputs(nb: np.ndarray, errors1: np.ndarray, errors_pre: np.ndarray, final: np.ndarray, mu1: np.ndarray,
                 mu2: np.ndarray, activity: np.ndarray, scale_sum: np.ndarray) -> np.ndarray:
    """The learned scale's inputs (encoder; the decoder shares the correction's features instead): the 12
    neighbours' values, first-stage, uncorrected second-stage and final errors; the pixel's two stage
    predictions, activity and linear scale sum."""
    feats, _ = raster_mlp.features(nb, errors1, errors_pre, mu1, mu2, activity)
    return raster_mlp.scale_features(feats, final, scale_sum)


def scale_sum(errors2: np.ndarray, activity: np.ndarray, model: RasterModel) -> np.ndarray:
    """The linear scale sum s (1/16 sample): the plane's weights on 8 neighbours' final errors and the activity."""
    w = model.scale_weights
    return ((np.abs(errors2) * w[:-1]).sum(axis=1) + w[-1] * (activity << 4)) >> 4


def linear_keys(scale_sum: np.ndarray) -> np.ndarray:
    """floor(4 log2 (s + 1)): a pixel's scale key without the learned scale."""
    return log8(np.minimum(scale_sum, (1 << 31) - 2) + 1) >> 1  # log8 takes x < 2**31


def offset_keys(keys: np.ndarray, by_class: np.ndarray, cls: np.ndarray) -> np.ndarray:
    """Scale keys with each class's offset added (``RasterModel.keys_by_class``), kept in 0..KEY_MAX (the
    side information's bounds on buckets)."""
    return clamp(keys + by_class[cls], 0, KEY_MAX)


def error(values: np.ndarray, mu: np.ndarray) -> np.ndarray:
    return clamp((values << 4) + 8 - mu, -ERROR_LIMIT, ERROR_LIMIT)
