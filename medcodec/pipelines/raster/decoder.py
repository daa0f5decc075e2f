"""The raster decoder: a frame's streams back to the coded plane, one wavefront (pixels with equal
``2 i + j``) at a time, computing every table exactly as the encoder did."""

from __future__ import annotations

import constriction
import numpy as np

from medcodec.entropy import residual_model as rm
from medcodec.errors import CorruptStreamError
from medcodec.networks import raster_mlp
from medcodec.pipelines.raster import coding, local_ls, phase, prediction, wavefront
from medcodec.pipelines.raster.layout import (ACTIVITY_CLASSES, COEF_SHIFT, ERROR_LIMIT, ERROR_TAPS, FLAT_CLASS,
                                              PAD_LEFT, PAD_RIGHT, PAD_TOP, Layout)
from medcodec.pipelines.raster.side_info import RasterModel


def wavefront_plane(model: RasterModel, layout: Layout, top: int) -> wavefront.Plane:
    """What the compiled wavefront arithmetic needs of a plane (the definitions: ``prediction``'s
    ``activity``, ``classes``, ``first_stage``, ``second_stage``, ``scale_sum``, ``linear_keys``, ``error``)."""
    by_row, by_column = phase.row_and_column_parts((layout.height, layout.width), model.resampling) \
        if model.resampling is not None else (None, None)
    return wavefront.Plane(
        stride=layout.stride, width=layout.width, offsets=layout.offsets, pad_top=PAD_TOP, pad_left=PAD_LEFT,
        pad_right=PAD_RIGHT, class_shift=model.class_shift, blocks=model.block_classes, block_size=model.block_size,
        phase_rows=by_row, phase_columns=by_column,
        first=np.ascontiguousarray(model.first, dtype=np.int64),
        second=np.ascontiguousarray(model.second[:, :ERROR_TAPS], dtype=np.int64),
        scale_weights=np.ascontiguousarray(model.scale_weights, dtype=np.int64), activity_classes=ACTIVITY_CLASSES,
        flat_class=FLAT_CLASS, coef_shift=COEF_SHIFT, top=top, error_limit=ERROR_LIMIT)


def decode(model: RasterModel, words: bytes, raw: bytes, shape: tuple[int, int], bits: int,
            net: raster_mlp.RasterCorrection | None = None,
            scale_net: raster_mlp.RasterCorrection | None = None,
            second: raster_mlp.RasterCorrection | None = None) -> np.ndarray:
    """The coded plane from a raster frame's streams; net: its correction (with its output-layer delta),
    second: the correction stacked on it (``RasterModel.stack_weights``), scale_net: its learned scale."""
    layout = Layout(shape)
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
    reader = coding.BitReader(raw)
    windows = raster_mlp.ErrorWindows(*shape) \
        if scale_net is not None and scale_net.inputs == raster_mlp.WINDOW_SCALE_FEATURES else None
    low, high = model.value_range[:2] if model.value_range is not None else (0, (1 << bits) - 1)
    # each blended radius's weights and running window sums
    local = [(weights, local_ls.RunningSums(*shape, radius)) for radius, weights in model.local_blends()]
    plane = wavefront_plane(model, layout, top)
    key_offsets = model.keys_by_class()  # what each class adds to its pixels' scale keys, if sent
    grids = (grid, errors1, errors2, errors_pre)
    for t in range(layout.wavefronts):
        rows, cols = layout.wavefront(t)
        if rows.size == 0:  # a one-column plane has pixels on every other wavefront only
            continue
        ctx = wavefront.context(plane, grids, rows, cols)
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
                        mu[inside] = prediction.corrected(net, feats, feature_scale, ctx.mu2[inside], top)
                    else:
                        both = np.stack([n.correction(feats, feature_scale) for n in (net, second)], axis=1)
                        mu[inside] = prediction.stacked(both, model.stack_weights, cls[inside], ctx.mu2[inside], top)
                if scale_net is not None:
                    scale_sum = ctx.scale_sum[inside]
                    sfeats = raster_mlp.scale_features(feats, ctx.errors2[inside], scale_sum)
                    if windows is not None:
                        sfeats = np.concatenate([sfeats, windows.features(rows[inside], cols[inside], scale_sum)],
                                                axis=1)
                    keys[inside] = raster_mlp.scale_keys(scale_net, sfeats, scale_sum)
        if key_offsets is not None:
            keys = prediction.offset_keys(keys, key_offsets, cls)
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
            symbols = np.asarray(coder.decode(coding.FAMILY, coding.probabilities(model, params, nb)), dtype=np.int64)
        except Exception as exc:
            raise CorruptStreamError(f"raster rANS stream is damaged: {exc}") from None
        values = reader.values(symbols, params, low, high)
        wavefront.store(plane, grids, ctx, values, mu)
        for _, sums in local:
            sums.add(rows, cols, nb, values)
        if windows is not None:
            windows.add(rows, cols, errors2[ctx.index])
    if not coder.is_empty():
        raise CorruptStreamError("raster rANS stream is damaged: data left over after the last pixel")
    reader.finish()
    return grid.reshape(layout.padded_shape)[PAD_TOP:, PAD_LEFT:PAD_LEFT + layout.width]
