"""The compiled wavefront arithmetic is raster's numpy definitions (which the encoder runs on whole
planes), pixel for pixel: neighbours, activity, classes (border, flat, activity, block or resampling phase), both stage
predictions, the linear scale and its key; and the grids' updates."""

import numpy as np
import pytest

from medcodec.pipelines import raster


def _model(rng, blocks, shape):
    """blocks: "blocks" (block classes), "phase" (resampling-phase classes) or "" (activity classes)."""
    classes = raster.layout.CLASSES
    block_classes = None
    if blocks == "blocks":
        block_classes = rng.integers(0, raster.layout.ACTIVITY_CLASSES, raster.layout.block_count(shape, 5))
    resampling = None
    if blocks == "phase":  # a period of ~2.6 pixels along the rows and ~3.4 down the columns, 3 x 4 bins
        resampling = (3, int(0.383 * raster.phase.PHASE_ONE), int(rng.integers(0, raster.phase.PHASE_ONE)),
                      4, int(0.294 * raster.phase.PHASE_ONE), int(rng.integers(0, raster.phase.PHASE_ONE)))
    return raster.side_info.RasterModel(
        pad=7, class_shift=int(rng.integers(0, 4)), shared=np.zeros(12, np.int64),
        first=rng.integers(-raster.layout.FIRST_LIMIT, raster.layout.FIRST_LIMIT, (classes, 12)),
        second=rng.integers(-raster.layout.COEF_LIMIT, raster.layout.COEF_LIMIT, (classes, raster.layout.ERROR_TAPS)),
        scale_weights=rng.integers(0, raster.layout.WEIGHT_LIMIT, raster.layout.SCALE_TAPS + 1), bucket_low=0,
        ell=np.zeros(1, np.int64), block_size=5 if block_classes is not None else 0, block_classes=block_classes,
        resampling=resampling)


@pytest.mark.parametrize("blocks", ["", "blocks", "phase"])
@pytest.mark.parametrize("shape", [(1, 1), (2, 9), (9, 1), (17, 23)])
def test_context_and_store_are_the_numpy_definitions(blocks, shape):
    rng = np.random.default_rng(shape[0] * 31 + shape[1])
    bits = 12
    top = (1 << bits) << 4
    model = _model(rng, blocks, shape)
    layout = raster.layout.Layout(shape)
    size = layout.padded_shape[0] * layout.padded_shape[1]
    # grids as a decoder holds them halfway: values (some flat patches) and errors up to the clamp
    grid = rng.integers(0, 1 << bits, size).astype(np.int32)
    grid[: size // 3] = 100
    grids = (grid, rng.integers(-raster.layout.ERROR_LIMIT, raster.layout.ERROR_LIMIT, size).astype(np.int32),
             rng.integers(-5000, 5000, size).astype(np.int32), rng.integers(-900, 900, size).astype(np.int32))
    plane = raster.decoder.wavefront_plane(model, layout, top)
    for t in range(layout.wavefronts):
        rows, cols = layout.wavefront(t)
        if rows.size == 0:
            continue
        ctx = raster.wavefront.context(plane, grids, rows, cols)
        index = layout.flat(rows, cols)
        taps = index[:, None] + layout.offsets[None, :]
        nb = grid[taps]
        activity = raster.prediction.activity(nb)
        cls = model.classes(activity, layout.border(rows, cols), rows, cols, layout.width)
        mu1 = raster.prediction.first_stage(nb, cls, model.first, top)
        mu2 = raster.prediction.second_stage(mu1, grids[1][taps[:, :raster.layout.ERROR_TAPS]], cls, model.second, top)
        scale_sum = raster.prediction.scale_sum(grids[2][taps[:, :raster.layout.SCALE_TAPS]], activity, model)
        for got, want in ((ctx.index, index), (ctx.nb, nb), (ctx.errors1, grids[1][taps]), (ctx.errors2, grids[2][taps]),
                          (ctx.errors_pre, grids[3][taps]), (ctx.activity, activity), (ctx.cls, cls), (ctx.mu1, mu1),
                          (ctx.mu2, mu2), (ctx.scale_sum, scale_sum), (ctx.keys, raster.prediction.linear_keys(scale_sum))):
            assert np.array_equal(got, want)
    # the store: values and their three errors, clamped
    rows, cols = layout.wavefront(layout.wavefronts // 2)
    ctx = raster.wavefront.context(plane, grids, rows, cols)
    values = rng.integers(0, 1 << bits, rows.size)
    mu = rng.integers(-(1 << 26), 1 << 26, rows.size)
    raster.wavefront.store(plane, grids, ctx, values, mu)
    index = layout.flat(rows, cols)
    for grid_, want in zip(grids, (values, raster.prediction.error(values, ctx.mu1), raster.prediction.error(values, mu),
                                   raster.prediction.error(values, ctx.mu2))):
        assert np.array_equal(grid_[index], want)
