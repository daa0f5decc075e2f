"""The raster method's learned prediction correction: a small MLP, integer-exact on every machine.

Why: the raster method's prediction is linear (per-plane least-squares weights on 12 neighbours and
their first-stage errors). What is left in its error is partly non-linear (edges, where the right
weights depend on the local pattern, not only on the activity class), and the same across images
once scaled by the local error level. A network trained on the train split sees that: on held-out
train images the coded planes shrink 2-4 % on head/lung CT and brain MR PNGs, 1-3 % on 16-bit CT and
radiographs, ~0.2 % on chest radiographs (numbers in models/manifest.json and benchmarks/).

What it computes, per pixel that has a raster class (inner, not flat): from the neighbours' values,
their first- and second-stage errors and the two stage predictions, divided by a local scale ``s``
(mean of 8 neighbours' second-stage errors plus the activity), 38 features in 1/256; hidden layers
with ReLU (raster-nn-v1: two of 48; raster-nn-large-v1, the default since: three of 96; the slow
mode's raster-nn-xl-v1: four of 128); one output
o ~ error / s. The correction added to the prediction is o * s.

The same integer network shape serves the learned scale (raster-scale-v1, architecture
raster-scale-mlp/v1): from those 38 features, the 12 neighbours' final errors over the plane's linear
scale sum s and log2 s (51 inputs), one output o ~ log2(logistic scale / s); ``scale_keys`` turns it into
the pixel's scale bucket key floor(4 log2 (s 2**o)) in integers. raster-scale-v2 (architecture
raster-scale-mlp/v2, format 2.2) also sees three statistics of the final errors over a wide causal
window of ~70 pixels (``ErrorWindows``): 0.28 % fewer bits on held-out train pixels, for ~10 % more
decoding time where a frame uses it (every learned mode offers it after raster-scale-v1).

Exactness: features, weights and activations are integers; the matrix products run in float64 on
integers whose every partial sum stays below 2**53 (features < 2**14, weights < 2**14, activations
clamped below 2**20), so any summation order, BLAS, thread count or machine gives the same integers;
divisions and shifts are int64 floors. No exp, no float rounding between the pixels and the tables.
A layer whose partial sums are bounded below 2**24 on the pixels at hand (its inputs' largest values
times its weights' magnitudes, checked per call) runs in float32 instead, about twice as fast and just
as exact: the same integers, so which path runs never changes a bit.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass

import numpy as np

from medcodec.compiled import kernel
from medcodec.pipelines.surprise import log8_of

TAPS = 12  # the raster template's neighbours
FEATURES = (TAPS - 1) + 2 * TAPS + 2 + 1  # value differences from W, two stages' errors, two predictions, log2 s
FEATURE_SHIFT = 8  # features in 1/256
FEATURE_LIMIT = 50 << FEATURE_SHIFT  # features clamped to +-50 (a neighbour 50 local scales away is an edge)
WEIGHT_SHIFT = 10  # weights and biases in 1/1024
WEIGHT_LIMIT = (1 << 14) - 1  # |weight| < 16
BIAS_LIMIT = 1 << 40  # |bias| (1/2**(WEIGHT_SHIFT + FEATURE_SHIFT)): a layer's sums stay exact in float64
ACTIVATION_LIMIT = (1 << 20) - 1  # hidden activations (1/256) clamped below 4096
FLOAT32_EXACT = float(1 << 24)  # every integer of magnitude up to this is exact in float32
# oneMKL lets an environment variable trade single precision for speed (bfloat16 / TF32 products inside
# sgemm); where it is set, the float32 path is not IEEE float32 any more and every layer runs in float64
FLOAT32_PRODUCTS = not os.environ.get("MKL_BLAS_COMPUTE_MODE")
OUTPUT_LIMIT = 8 << (FEATURE_SHIFT + WEIGHT_SHIFT)  # |o| <= 8: the correction is at most 8 local scales
MIN_SCALE = 8  # 1/16 sample: half a sample
ARCHITECTURE = "raster-correction-mlp/v1"
# The scale network (raster-scale-*): the correction's features, the 12 neighbours' final |errors| over
# the plane's scale sum, and log2 of that sum; its output is log2(logistic scale / scale sum).
SCALE_ARCHITECTURE = "raster-scale-mlp/v1"
SCALE_FEATURES = FEATURES + TAPS + 1
SCALE_KEY_LIMIT = 127  # keys (quarter octaves of the logistic scale in 1/16 sample) are clamped to 0..this
# The wide-window scale network (raster-scale-v2 on): also the mean |final error|, its log2 and the mean
# signed final error over a wide causal window (``ErrorWindows``), over the scale sum; the 12 neighbours
# estimate the local noise level from few samples, the window from ~70.
WINDOW_SCALE_ARCHITECTURE = "raster-scale-mlp/v2"
WINDOW_FEATURES = 3
WINDOW_SCALE_FEATURES = SCALE_FEATURES + WINDOW_FEATURES
INPUTS = {ARCHITECTURE: FEATURES, SCALE_ARCHITECTURE: SCALE_FEATURES, WINDOW_SCALE_ARCHITECTURE: WINDOW_SCALE_FEATURES}
WINDOW_DEPTH = 6  # the window: rows i-6..i-2 at columns j-6..j+3, row i-1 at j-6..j+1, row i at j-6..j-1
WINDOW_HALF = 6
# rows per pass through the layers: a 65,536-row band in one pass took 1.8-2.5 us a pixel with
# raster-nn-large-v1 on the 2-core machine, in passes of 512-1,024 rows 1.0-1.1 (4,096 and up: 1.4-2.6,
# as the float64 activations of 96 columns leave the cache); the same integers either way
OUTPUT_ROWS = 1024


def features(nb: np.ndarray, errors1: np.ndarray, errors2: np.ndarray, mu1: np.ndarray, mu2: np.ndarray,
             activity: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(int64 [pixels, FEATURES] features in 1/256, int64 [pixels] scale s).

    nb: the 12 neighbours' values; errors1 / errors2: their first- / second-stage errors (1/16 sample,
    the raster grids' ``_error``); mu1 / mu2: the pixel's two stage predictions (1/16 sample). The first
    error tap of each kind is W's, already in (mu - 16 W) terms, so all 12 are kept; the value taps are
    differences from W (11). Each raw entry (the value differences times 16, the errors, mu2 - 16 W and
    mu1 - 16 W) is shifted by FEATURE_SHIFT, floor-divided by s and clamped to +-FEATURE_LIMIT; the last
    feature is log2 s in 1/256 (from floor(8 log2 s), exact: ``_log2_of``). Compiled a pixel at a time
    (the decoder's wavefronts)."""
    count = nb.shape[0]
    out = np.empty((count, FEATURES), dtype=np.int64)
    scale = np.empty(count, dtype=np.int64)
    _features(_c(nb), _c(errors1), _c(errors2), _c(mu1), _c(mu2), _c(activity), out, scale)
    return out, scale


def _c(x: np.ndarray) -> np.ndarray:
    """A C-ordered array, for the compiled loops (no copy when it is one already)."""
    return np.ascontiguousarray(x)


@kernel(inline=True)
def _log2_of(x):
    """log2 x in 1/256 (from floor(8 log2 x), exact) for int64 x >= 1, at most 255 / 8."""
    return min(log8_of(min(x, np.int64((1 << 31) - 1))), 255) << (FEATURE_SHIFT - 3)


@kernel(inline=True)
def _clamped_quotient(a, s, limit, inverse):
    """min(max(a // s, -FEATURE_LIMIT), FEATURE_LIMIT) for int64 a and s >= 1, given limit =
    FEATURE_LIMIT * s and inverse = 1.0 / s, without an integer division (~40 cycles each; a pixel's
    features took 38): outside +-limit the clamp decides; inside, |a| < 2**53 and the float quotient is
    within 2**-37 of a / s, so its floor is off by at most one, which one integer product corrects."""
    if a >= limit:
        return np.int64(FEATURE_LIMIT)
    if a < -limit:
        return np.int64(-FEATURE_LIMIT)
    q = np.int64(np.floor(np.float64(a) * inverse))
    if q * s > a:
        return q - 1
    if (q + 1) * s <= a:
        return q + 1
    return q


@kernel(inline=True)
def _scaled(raw, scale, limit, inverse):
    """(raw << FEATURE_SHIFT) // scale, clamped to +-FEATURE_LIMIT (``_clamped_quotient``)."""
    return _clamped_quotient(raw << FEATURE_SHIFT, scale, limit, inverse)


@kernel
def _features(nb, errors1, errors2, mu1, mu2, activity, out, scale):
    for p in range(nb.shape[0]):
        total = np.int64(activity[p]) << 5
        for k in range(8):
            total += abs(np.int64(errors2[p, k]))
        s = max(total >> 3, np.int64(MIN_SCALE))
        scale[p] = s
        limit, inverse = FEATURE_LIMIT * s, 1.0 / s
        west = np.int64(nb[p, 0]) << 4
        for k in range(TAPS - 1):
            out[p, k] = _scaled((np.int64(nb[p, k + 1]) << 4) - west, s, limit, inverse)
        for k in range(TAPS):
            out[p, TAPS - 1 + k] = _scaled(np.int64(errors1[p, k]), s, limit, inverse)
            out[p, 2 * TAPS - 1 + k] = _scaled(np.int64(errors2[p, k]), s, limit, inverse)
        out[p, FEATURES - 3] = _scaled(np.int64(mu2[p]) - west, s, limit, inverse)
        out[p, FEATURES - 2] = _scaled(np.int64(mu1[p]) - west, s, limit, inverse)
        out[p, FEATURES - 1] = _log2_of(s)


def scale_features(feats: np.ndarray, final_errors: np.ndarray, scale_sum: np.ndarray) -> np.ndarray:
    """int64 [pixels, SCALE_FEATURES]: the scale network's inputs, in 1/256.

    feats: the correction's ``features``; final_errors: the 12 neighbours' final errors (1/16 sample, the
    raster grids' ``errors2``); scale_sum: the plane's linear scale sum s (raster ``_scale_sum``, 1/16).
    Added: min((|e| << FEATURE_SHIFT) // s, FEATURE_LIMIT) per neighbour, then log2 s (s at least 1)."""
    out = np.empty((feats.shape[0], SCALE_FEATURES), dtype=np.int64)
    out[:, :FEATURES] = feats
    _scale_extra(_c(final_errors), _c(scale_sum), out)
    return out


@kernel
def _scale_extra(final_errors, scale_sum, out):
    for p in range(final_errors.shape[0]):
        s = max(np.int64(scale_sum[p]), np.int64(1))
        limit, inverse = FEATURE_LIMIT * s, 1.0 / s
        for k in range(TAPS):
            out[p, FEATURES + k] = _scaled(abs(np.int64(final_errors[p, k])), s, limit, inverse)
        out[p, FEATURES + TAPS] = _log2_of(s)




class ErrorWindows:
    """Sums of the final errors (|e| and e, 1/16 sample) over every pixel's wide causal window, from
    integral images: the decoder fills them a wavefront at a time (``add``), the encoder all at once
    (``of_plane``); both read the same integers, because a window only reaches pixels of earlier
    wavefronts (row i-2 up to column j+3, row i-1 up to j+1, row i up to j-1: 2 i + j falls by at least 1)
    and every integral entry it reads is the sum of a rectangle ending at such a pixel."""

    def __init__(self, height: int, width: int):
        self.height, self.width = height, width
        self.stride = width + 1
        # [entry, (|e|, e)]: one gather fetches both; row 0 and column 0 stay 0
        self.integral = np.zeros(((height + 1) * self.stride, 2), dtype=np.int64)

    @classmethod
    def of_plane(cls, errors: np.ndarray) -> "ErrorWindows":
        """The integral images of a whole plane's final errors ([height, width])."""
        out = cls(*errors.shape)
        errors = errors.astype(np.int64)
        both = np.stack([np.abs(errors), errors], axis=-1)
        out.integral.reshape(out.height + 1, out.stride, 2)[1:, 1:] = both.cumsum(axis=0).cumsum(axis=1)
        return out

    def add(self, rows: np.ndarray, cols: np.ndarray, errors: np.ndarray) -> None:
        """Enters one wavefront's final errors: I(i+1, j+1) = I(i, j+1) + I(i+1, j) - I(i, j) + e(i, j),
        whose other terms belong to earlier wavefronts (so a pixel at a time is all at once)."""
        _window_add(self.integral, self.stride, _c(rows), _c(cols), _c(errors))

    def features(self, rows: np.ndarray, cols: np.ndarray, scale_sum: np.ndarray) -> np.ndarray:
        """int64 [pixels, WINDOW_FEATURES] in 1/256: the window's mean |e| over the scale sum s, log2 of
        that mean, and its mean e over s (count and s at least 1).

        The window is three rectangles of integral rows (top..upper: rows i-6..i-2 to column j+3,
        upper..middle: row i-1 to j+1, middle..bottom: row i to j-1) sharing their left edge, so their
        left corners cancel but the outermost two: eight entries a pixel."""
        out = np.empty((rows.size, WINDOW_FEATURES), dtype=np.int64)
        _window_features(self.integral, self.width, _c(rows), _c(cols), _c(scale_sum), out)
        return out


@kernel
def _window_add(integral, stride, rows, cols, errors):
    for p in range(rows.size):
        here = (np.int64(rows[p]) + 1) * stride + cols[p] + 1
        error = np.int64(errors[p])
        integral[here, 0] = integral[here - stride, 0] + integral[here - 1, 0] - integral[here - stride - 1, 0] \
            + abs(error)
        integral[here, 1] = integral[here - stride, 1] + integral[here - 1, 1] - integral[here - stride - 1, 1] + error


@kernel
def _window_features(integral, width, rows, cols, scale_sum, out):
    """The window sums and the features from them, a pixel at a time (integers: any order)."""
    stride = width + 1
    for p in range(rows.size):
        i, j = np.int64(rows[p]), np.int64(cols[p])
        left = max(j - WINDOW_HALF, 0)
        top, upper = max(i - WINDOW_DEPTH, 0) * stride, max(i - 1, 0) * stride
        middle, bottom = i * stride, (i + 1) * stride
        wide, near = min(j + 4, width), min(j + 2, width)
        magnitude = np.int64(0)
        signed = np.int64(0)
        for at, sign in ((upper + wide, 1), (middle + near, 1), (bottom + j, 1), (top + left, 1),
                         (top + wide, -1), (upper + near, -1), (middle + j, -1), (bottom + left, -1)):
            magnitude += sign * integral[at, 0]
            signed += sign * integral[at, 1]
        count = max(((upper - top) * (wide - left) + (middle - upper) * (near - left)) // stride + j - left, 1)
        s = max(np.int64(scale_sum[p]), np.int64(1)) * count
        out[p, 0] = min((magnitude << FEATURE_SHIFT) // s, FEATURE_LIMIT)
        out[p, 1] = _log2_of(magnitude // count + 1)
        out[p, 2] = min(max((signed << FEATURE_SHIFT) // s, -FEATURE_LIMIT), FEATURE_LIMIT)


def scale_keys(net: "RasterCorrection", sfeats: np.ndarray, scale_sum: np.ndarray) -> np.ndarray:
    """int64 keys floor(4 log2 sigma) of sigma = s 2**o (o the network's output), clamped to
    0..SCALE_KEY_LIMIT: the raster scale buckets' units (a quarter octave), in integers only."""
    output = net.output(sfeats)
    keys = np.empty(output.shape, dtype=np.int64)
    _scale_keys(np.ascontiguousarray(scale_sum), output, keys)  # one compiled pass (the decoder's wavefronts)
    return keys


@kernel
def _scale_keys(scale_sum, output, keys):
    """keys = clamp(((floor(8 log2 s) << 17) + 4 o) >> 18, 0, SCALE_KEY_LIMIT), s = scale_sum clamped to
    1..2**31 - 1 (``log8_of``): the numpy steps of ``scale_keys`` before (the test keeps them), per pixel."""
    for p in range(output.size):
        s = min(max(np.int64(scale_sum[p]), np.int64(1)), np.int64((1 << 31) - 1))
        key = ((log8_of(s) << (FEATURE_SHIFT + WEIGHT_SHIFT - 1)) + (output[p] << 2)) >> (FEATURE_SHIFT + WEIGHT_SHIFT)
        keys[p] = min(max(key, np.int64(0)), np.int64(SCALE_KEY_LIMIT))


@dataclass(frozen=True)
class RasterCorrection:
    """The integer network: weights [out, in] and biases in 1/1024, loaded from models/."""

    model_id: str
    sha256: bytes
    weights: tuple[np.ndarray, ...]  # float64 holding integers (exact), one per layer
    biases: tuple[np.ndarray, ...]  # int64

    @property
    def tag(self) -> str:
        """What a raster frame's side information names: the id and the start of the weights' sha256."""
        return f"{self.model_id}/{self.sha256.hex()[:16]}"

    @property
    def inputs(self) -> int:
        """The width of the network's input: FEATURES, SCALE_FEATURES or WINDOW_SCALE_FEATURES."""
        return self.weights[0].shape[1]

    def output(self, feats: np.ndarray) -> np.ndarray:
        """int64 o per pixel, in 1/2**18 (clamped to +-OUTPUT_LIMIT).

        Every value stays an integer held in a float: products and sums below 2**53 (float64) or 2**24
        (float32, where a layer's bound allows) are exact, and scaling by 1/1024 then flooring is the int64
        ``>> 10`` exactly (a power of two), so the layers never go through int64 (round trips cost as
        much as the products)."""
        if feats.shape[0] <= OUTPUT_ROWS:  # the decoder's wavefronts: one pass
            return self._output_of(*self._hidden(feats))
        return self._in_passes(feats, (self,))[0]

    def _in_passes(self, feats: np.ndarray, heads: tuple["RasterCorrection", ...]) -> list[np.ndarray]:
        """Each head's output (networks differing from this one in the output layer only), the hidden
        layers computed once, OUTPUT_ROWS rows at a time (the encoder's bands: pieces whose activations
        stay in cache)."""
        parts: list[list[np.ndarray]] = [[] for _ in heads]
        for i in range(0, feats.shape[0], OUTPUT_ROWS):
            hidden = self._hidden(feats[i:i + OUTPUT_ROWS])[0]
            for part, head in zip(parts, heads):  # each head's own output-layer bound
                part.append(head.output_of_hidden(hidden))
        return [np.concatenate(part) if part else np.zeros(0, np.int64) for part in parts]

    def hidden(self, feats: np.ndarray) -> np.ndarray:
        """float64 [pixels, width of the last hidden layer]: its activations (integers, 1/256).

        OUTPUT_ROWS rows at a time, like ``_in_passes``: each piece's own bound then lets most of its
        products run in float32, where one bound over tens of thousands of rows (the output-layer fit's
        sample) sent whole layers to float64, ~10x slower a row. The same integers either way."""
        width = self.weights[-1].shape[1]
        parts = [self._hidden(feats[i:i + OUTPUT_ROWS])[0] for i in range(0, feats.shape[0], OUTPUT_ROWS)]
        return np.concatenate(parts).astype(np.float64) if parts else np.zeros((0, width))

    def _hidden(self, feats: np.ndarray) -> tuple[np.ndarray, float]:
        """(``hidden`` as float32 (activations below 2**20 are exact in it), the output layer's bound):
        each layer's product in float32 where its bound allows, else in float64 (``_layer_product``)."""
        if feats.dtype.kind not in "iu":
            raise TypeError(f"raster network features must be integers, not {feats.dtype}")
        h = np.empty(feats.shape, dtype=np.float32)
        bound = _to_float32(np.ascontiguousarray(feats), h, self._abs_transposed[0])
        if bound < 0:
            raise ValueError("raster network features beyond float32's exact integers (2**24)")
        for k, b in enumerate(self.float_biases[:-1]):
            acc = self._layer_product(k, h, bound)
            h = np.empty(acc.shape, dtype=np.float32)
            bound = _hidden_activation(acc, b, h, self._abs_transposed[k + 1])
        return h, bound

    def _layer_product(self, k: int, h: np.ndarray, bound: float) -> np.ndarray:
        """Layer k's products h @ W_k^T, exact either way: in float32 (about 2x faster) where no partial
        sum can reach 2**24, else in float64 (every partial sum below 2**53, the module docstring).

        Why a bound per call: every partial sum of output j, in any order, is at most
        sum_i |w_ji| max_p |h_pi| (the largest input of each column over these pixels; ``_bound``, which
        the compiled pass that makes h computes); where the largest of those is below 2**24, float32
        holds every product and partial sum exactly, so both paths give the same integers, and which one
        runs changes no bit. On the decoder's wavefronts 95-99 % of the hidden layers' products pass (a
        chest radiograph)."""
        if FLOAT32_PRODUCTS and bound < FLOAT32_EXACT:
            return h @ self._transposed32[k]
        return h.astype(np.float64) @ self._transposed64[k]

    @functools.cached_property
    def _transposed32(self) -> tuple[np.ndarray, ...]:
        """W_k^T per layer, C-ordered float32 (integers below 2**14: exact)."""
        return tuple(np.ascontiguousarray(w.T, dtype=np.float32) for w in self.weights)

    @functools.cached_property
    def _transposed64(self) -> tuple[np.ndarray, ...]:
        """W_k^T per layer, C-ordered float64: on the decoder's few hundred rows a C-ordered right-hand
        side is up to 1.6x faster than the transposed view (the same integers)."""
        return tuple(np.ascontiguousarray(w.T) for w in self.weights)

    @functools.cached_property
    def _abs_transposed(self) -> tuple[np.ndarray, ...]:
        """|W_k|^T per layer, [inputs, outputs] float64, C-ordered: what ``_bound`` takes."""
        return tuple(np.abs(w).T.copy() for w in self.weights)

    def output_of_hidden(self, h: np.ndarray) -> np.ndarray:
        """int64 o per pixel from the last hidden layer's activations (``hidden``)."""
        bound = _bound(np.abs(h).max(axis=0, initial=0.0).astype(np.float64), self._abs_transposed[-1])
        return self._output_of(h.astype(np.float32, copy=False), bound)

    def _output_of(self, h: np.ndarray, bound: float) -> np.ndarray:
        """``output_of_hidden`` of float32 activations whose output-layer bound is ``bound``."""
        acc = self._layer_product(len(self.weights) - 1, h, bound)[:, 0].astype(np.float64)
        acc += self.float_biases[-1][0]  # exact: an integer sum below 2**53
        return np.clip(acc, -OUTPUT_LIMIT, OUTPUT_LIMIT).astype(np.int64)

    def with_output_delta(self, delta: np.ndarray) -> "RasterCorrection":
        """This network with ``delta`` (int64: one per input of the output layer, then its bias) added to
        its output layer: a raster frame's fit of the output to its own plane (format 2.6). The id and
        sha256 stay the shipped network's, whose tag the frame names. Raises ValueError where a weight
        leaves the bounds that keep the sums exact."""
        delta = np.asarray(delta, dtype=np.int64)
        width = self.weights[-1].shape[1]
        if delta.shape != (width + 1,):
            raise ValueError(f"output-layer delta needs {width + 1} entries, has {delta.size}")
        layers = [(w.astype(np.int64), b) for w, b in zip(self.weights, self.biases)]
        w, b = layers[-1]
        layers[-1] = (w + delta[None, :width], b + delta[width])
        return from_integer_layers(self.model_id, self.sha256, layers, self.inputs)

    @functools.cached_property
    def float_biases(self) -> tuple[np.ndarray, ...]:
        """The biases as float64 (exact: below 2**40), as ``acc += b`` converted them."""
        return tuple(b.astype(np.float64) for b in self.biases)

    def correction(self, feats: np.ndarray, scale: np.ndarray) -> np.ndarray:
        """The correction to add to the prediction, int64 in 1/16 sample: o * s."""
        return correction_of(self.output(feats), scale)

    def outputs_with(self, fitted: "RasterCorrection", feats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(this network's output, ``fitted``'s), where fitted differs from it in the output layer only
        (``with_output_delta``): the hidden layers computed once."""
        plain, adjusted = self._in_passes(feats, (self, fitted))
        return plain, adjusted


def correction_of(output: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """A correction network's output o (1/2**18) as the correction in 1/16 sample: o * s, floored."""
    return (output * scale) >> (FEATURE_SHIFT + WEIGHT_SHIFT)


@kernel
def _hidden_activation(acc, bias, out, abs_next):
    """Per element: floor((acc + bias) / 1024) clamped to 0..ACTIVATION_LIMIT (ReLU, back to 1/256) into
    out (float32: exact below 2**24); returns the next layer's ``_bound`` (abs_next: its |W|^T). The add
    in float64 (acc, float32 or float64, holds an exact integer; the sum stays below 2**53), the multiply
    by 2**-10 (exact), floor and the clamp: one IEEE operation each, in one pass."""
    column_max = np.zeros(acc.shape[1])
    for i in range(acc.shape[0]):
        for j in range(acc.shape[1]):
            v = min(max(np.floor((np.float64(acc[i, j]) + bias[j]) * (1.0 / (1 << WEIGHT_SHIFT))), 0.0),
                    float(ACTIVATION_LIMIT))
            out[i, j] = v
            column_max[j] = max(column_max[j], v)
    return _bound(column_max, abs_next)


@kernel
def _to_float32(feats, out, abs_first):
    """The integer features as float32 into out; returns the first layer's ``_bound`` (abs_first: its
    |W|^T), or -1 where a feature is too large for float32 to hold exactly (they are clamped far below)."""
    column_max = np.zeros(feats.shape[1])
    for i in range(feats.shape[0]):
        for j in range(feats.shape[1]):
            out[i, j] = feats[i, j]
            column_max[j] = max(column_max[j], np.float64(abs(feats[i, j])))
    for j in range(feats.shape[1]):
        if column_max[j] >= FLOAT32_EXACT:
            return -1.0
    return _bound(column_max, abs_first)


@kernel
def _bound(column_max, abs_transposed):
    """max_j sum_i |w_ji| column_max_i (abs_transposed: |W|^T, [inputs, outputs]): no partial sum of the
    layer's products on these pixels is larger. Exact (integers below 2**53), summed row by row."""
    sums = np.zeros(abs_transposed.shape[1])
    for i in range(abs_transposed.shape[0]):
        if column_max[i] != 0.0:
            for j in range(abs_transposed.shape[1]):
                sums[j] += column_max[i] * abs_transposed[i, j]
    return sums.max() if sums.size else 0.0


def quantise_layers(layers: list[tuple[np.ndarray, np.ndarray]]) -> list[tuple[np.ndarray, np.ndarray]]:
    """Float (weight [out, in], bias [out]) per layer -> integer ones in the units ``output`` uses: weights
    in 1/1024; biases in 1/2**18 (the accumulator's unit: 1/256 inputs times 1/1024 weights)."""
    out = []
    for w, b in layers:
        wq = np.clip(np.round(np.asarray(w, dtype=np.float64) * (1 << WEIGHT_SHIFT)), -WEIGHT_LIMIT, WEIGHT_LIMIT)
        bq = np.round(np.asarray(b, dtype=np.float64) * (1 << (WEIGHT_SHIFT + FEATURE_SHIFT)))
        out.append((wq.astype(np.int64), bq.astype(np.int64)))
    return out


def from_integer_layers(model_id: str, sha256: bytes, layers: list[tuple[np.ndarray, np.ndarray]],
                        inputs: int = FEATURES) -> RasterCorrection:
    """A RasterCorrection from integer (weight, bias) pairs, checked against the exactness bounds
    (``inputs``: FEATURES for a correction network, SCALE_FEATURES for a scale network)."""
    weights, biases = [], []
    for k, (w, b) in enumerate(layers):
        w, b = np.asarray(w, dtype=np.int64), np.asarray(b, dtype=np.int64)
        if w.ndim != 2 or w.shape[1] != inputs or b.shape != (w.shape[0],) or np.abs(w).max() > WEIGHT_LIMIT \
                or np.abs(b).max() > BIAS_LIMIT:
            raise ValueError(f"raster correction layer {k} has the wrong shape or out-of-range weights")
        weights.append(w.astype(np.float64))
        biases.append(b)
        inputs = w.shape[0]
    if inputs != 1 or len(layers) < 2:
        raise ValueError("raster correction network must end in one output")
    # worst partial sum: inputs x largest activation x largest weight, below 2**53
    if max(w.shape[1] for w in weights) * max(FEATURE_LIMIT, ACTIVATION_LIMIT) * WEIGHT_LIMIT >= 1 << 53:
        raise ValueError("raster correction network too wide for exact float64 sums")
    return RasterCorrection(model_id, sha256, tuple(weights), tuple(biases))


def load(model_id: str) -> RasterCorrection:
    """The shipped network ``model_id`` from models/ (sha256 checked against the manifest, no pickle):
    safetensors layers ``raster.l<k>.weight`` / ``.bias`` of integers; a correction or a scale network
    by its architecture."""
    from medcodec.errors import ModelMismatchError
    from medcodec.models import load_model

    loaded = load_model(model_id)
    inputs = INPUTS.get(loaded.metadata.get("architecture"))
    if inputs is None:
        raise ModelMismatchError(f"model {model_id!r} is not a raster network "
                                 f"(architecture {loaded.metadata.get('architecture')!r})")
    layers = loaded.params.get("raster", {})
    ordered = [layers[f"l{k}"] for k in range(len(layers))]
    return from_integer_layers(model_id, loaded.sha256,
                               [(t["weight"], t["bias"]) for t in ordered], inputs)
