"""Test planes shared by the method tests: a smooth noisy image and the edge cases every method must
round-trip (1x1, one row, one column, odd sizes, flat, noise, extreme values, 1-bit)."""

import io

import numpy as np
from PIL import Image


def smooth(shape, bits, seed=0):
    """A smooth image with mild noise, of the given shape and bit depth (uint16)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0 : shape[0], 0 : shape[1]]
    base = (np.sin(x / 7.0) + np.cos(y / 11.0) + 2) / 4 * ((1 << bits) - 1)
    return np.clip(base + rng.normal(0, (1 << bits) / 200, shape), 0, (1 << bits) - 1).astype(np.uint16)


def noisy_ramp(shape=(96, 80), seed=5):
    """A 12-bit diagonal ramp with white noise of sd 30 (uint16): a plane the raster coder codes, its
    networks and tables all in use (the benchmark scripts' tests time and measure it)."""
    rng = np.random.default_rng(seed)
    ramp = np.add.outer(np.arange(shape[0]), np.arange(shape[1])) * 8
    return np.clip(ramp + rng.normal(0, 30, ramp.shape), 0, 4095).astype(np.uint16)


def fine_texture(shape, seed=0):
    """A 16-bit ramp over the whole range with a texture of +-40 levels: finer than the networks' input
    step (2**8 / 4 at this range), so only the full-resolution refinement can see it."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0 : shape[0], 0 : shape[1]]
    base = x * (60000 / shape[1]) + 2000
    texture = 40 * np.sin(x / 2.3 + y / 3.1) + rng.normal(0, 3, shape)
    return np.clip(base + texture, 0, 65535).astype(np.uint16)


def jpeg_blocked(shape, seed=0, quality=50):
    """An 8-bit image as archives hold many: a smooth noisy image JPEG-compressed once, then decoded
    (what the block-phase offsets are for: the residual depends on the place in the 8x8 grid)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0 : shape[0], 0 : shape[1]]
    base = 100 + 60 * np.sin(x / 9.0) * np.cos(y / 13.0) + rng.normal(0, 6, shape)
    buffer = io.BytesIO()
    Image.fromarray(np.clip(base, 0, 255).astype(np.uint8)).save(buffer, "JPEG", quality=quality)
    return np.asarray(Image.open(io.BytesIO(buffer.getvalue()))).astype(np.uint16)


def drifting_lattice(shape=(96, 112), seed=0):
    """An 8-bit radiograph-like plane stretched by 2.5 with a mapping that drifts across the columns (as
    local contrast equalisation leaves it): nearby pixels use the same 2 of every 5 values, which ones
    changes over tens of pixels; every value is used somewhere."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0 : shape[0], 0 : shape[1]]
    level = np.round(40 + 10 * np.sin(x / 17.0) + 8 * np.cos(y / 13.0) + rng.normal(0, 2.5, shape))
    return np.floor(2.5 * level + x / 23.0).clip(0, 255).astype(np.uint16)


def drifting_step_lattice(shape=(96, 112), seed=0):
    """An 8-bit radiograph-like plane whose values sit on a lattice of step 3 whose offset drifts across
    the image (a coarser image stretched, then shifted by a slowly varying amount): nearby pixels use
    every third value, which third changing over tens of pixels; the neighbours' own values cover only a
    few of the likely ones."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0 : shape[0], 0 : shape[1]]
    level = np.round(40 + 12 * np.sin(x / 19.0) + 9 * np.cos(y / 15.0) + rng.normal(0, 1.6, shape))
    phase = np.floor(1.5 + 1.49 * np.sin(x / 29.0 + y / 37.0))
    return (3 * level + phase).clip(0, 255).astype(np.uint16)


def uneven_values(shape=(64, 72), seed=0):
    """A 16-bit CT-like plane rescaled onto an uneven set of 300 values (a coarse rescale, as some
    scanners' exports): a palette index codes it, the raw values would waste the unused ones."""
    rng = np.random.default_rng(seed)
    levels = np.sort(rng.choice(np.arange(2000, 40000), 300, replace=False))
    y, x = np.mgrid[0 : shape[0], 0 : shape[1]]
    index = np.round(150 + 60 * np.sin(x / 7.0) + 40 * np.cos(y / 11.0) + rng.normal(0, 6, shape)).clip(0, 299)
    return levels[index.astype(int)].astype(np.uint16)


EDGE_CASES = {
    "1x1": (np.array([[7]], np.uint16), 8),
    "1xN": (np.arange(13, dtype=np.uint16)[None, :], 8),
    "Nx1": (np.arange(9, dtype=np.uint16)[:, None] * 1000, 16),
    "odd": (smooth((37, 53), 12), 12),
    "flat": (np.full((40, 40), 1234, np.uint16), 16),
    "noise": (np.random.default_rng(1).integers(0, 1 << 16, (31, 30)).astype(np.uint16), 16),
    "extremes16": (np.tile(np.array([[0, 65535], [65535, 0]], np.uint16), (9, 11)), 16),
    "extremes12": (np.tile(np.array([[0, 4095], [4095, 0]], np.uint16), (5, 8)), 12),
    "smooth8": (smooth((64, 80), 8), 8),
    "bits1": (np.random.default_rng(2).integers(0, 2, (20, 21)).astype(np.uint16), 1),
}


def regional_textures(shape=(144, 144), seed=0, tile=48):
    """12-bit noise smoothed along rows in some 48x48 tiles and along columns in the others (a checker):
    equal activity everywhere, so only classes that follow regions (raster block classes) tell them apart."""
    rng = np.random.default_rng(seed)
    noise = rng.normal(0, 40, (2,) + shape)
    along_rows, along_cols = noise[0].copy(), noise[1].copy()
    for j in range(1, shape[1]):
        along_rows[:, j] = 0.95 * along_rows[:, j - 1] + noise[0][:, j]
    for i in range(1, shape[0]):
        along_cols[i] = 0.95 * along_cols[i - 1] + noise[1][i]
    y, x = np.mgrid[0 : shape[0], 0 : shape[1]]
    checker = ((y // tile + x // tile) % 2).astype(bool)
    return (2048 + np.where(checker, along_rows, along_cols)).clip(0, 4095).astype(np.uint16)


def floored_noise(shape=(128, 150), seed=0):
    """12-bit noise on a ramp that runs below 0 at the left and is clipped there, every value from 0 up
    used (no palette): a plane whose floor holds many pixels (the raster method's value range)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0 : shape[0], 0 : shape[1]]
    ramp = 300 * x / shape[1] - 60 + 40 * np.sin(y / 7.0)
    return (ramp + rng.normal(0, 14, shape)).clip(0, 4095).astype(np.uint16)


def turning_stripes(shape=(96, 104), seed=0):
    """A 12-bit plane of stripes whose direction turns across the image, with mild noise: every region
    has its own linear predictor, which the per-plane weights cannot hold and a local fit follows (the
    raster coder's local least-squares blend)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float64)
    angle = np.pi * x / shape[1]
    phase = (np.cos(angle) * x + np.sin(angle) * y) / 2.5
    return np.clip(2000 + 600 * np.sin(phase) + rng.normal(0, 4, shape), 0, 4095).astype(np.uint16)


def upscaled(shape=(160, 176), factor=1.6, seed=0):
    """An 8-bit noisy texture scaled up by a non-integer factor with bilinear interpolation (Pillow), as many
    head CT PNGs were: every pixel a mix of the original samples that depends on where it falls between them."""
    rng = np.random.default_rng(seed)
    small = (int(round(shape[0] / factor)), int(round(shape[1] / factor)))
    y, x = np.mgrid[0 : small[0], 0 : small[1]]
    base = 120 + 50 * np.sin(x / 5.0) * np.cos(y / 7.0) + rng.normal(0, 12, small)
    image = Image.fromarray(np.clip(base, 0, 255).astype(np.uint8)).resize((shape[1], shape[0]), Image.BILINEAR)
    return np.asarray(image).astype(np.uint16)


def jpeg2000_history(shape=(128, 128), seed=5, quality=50):
    """A 12-bit plane through OpenJPEG's lossy reversible coding (a rate below lossless), decoded
    (uint16): its 5/3 coefficients keep a lossy decoder's low bits (``pipelines.jpeg2000_history``)."""
    import imagecodecs

    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0 : shape[0], 0 : shape[1]]
    signal = np.clip(2000 + 600 * np.sin(x / 9) + 500 * np.cos(y / 13) + rng.normal(0, 30, shape), 0, 4095)
    codestream = imagecodecs.jpeg2k_encode(signal.astype(np.uint16), level=quality, reversible=True, bitspersample=12)
    return imagecodecs.jpeg2k_decode(codestream).astype(np.uint16)
