"""Encoder-fitted refinement of the network's per-pixel (mu, ell) from full-resolution neighbours.

Why: the networks see every plane at 8 bits of range plus 2 fraction bits (``split.normalise``). On
12-16-bit CT and MR that quantisation hides the noise-level detail a predictor needs, and no network
trained on mixed data is calibrated for every scanner. So, per coded pixel set, the encoder fits

    mu' = mu + floor(sum_k w_k * (16 * n_k - mu) / 256)

over the raw values n_k of the pixel's nearest already-coded neighbours (robust least squares: a few
rounds of iteratively reweighted least squares, i.e. close to the code length of heavy-tailed
residuals), then calibrates scale and mean per *activity bin* (the bit length of how much those
neighbours disagree). It keeps the refinement only when it codes the set in fewer bits than the plain
per-set calibration (``residual_model.best_adjustment``) and sends the integer weights and bin offsets
in the plane's side information. The decoder applies them in int64: exact on every machine.

Measured on the test split's 16-bit DICOM, stream-only, lch-v2: 5-10 % fewer bits on CT (e.g. GE head
CT D/B/C), about 1 % on the 8-bit groups (``benchmarks/results/subimage_ablation.json``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..entropy import residual_model as rm
from . import split as sp
from .base import pack_side_info

WEIGHT_ONE = 256  # weights are sent in 1/256
MAX_WEIGHT = 16 * WEIGHT_ONE
ACTIVITY_BINS = 16
FIT_SAMPLE = 1 << 15  # pixels the encoder fits on (an even stride through the set); judged on rm.SEARCH_SAMPLE
FIT_ROUNDS = 4

# The nearest coded neighbours of each predicted subimage, (subimage, drow, dcol) on the subimage grid;
# the first four are split.NEIGHBOURS (they also define the activity), then the next ring.
RING = {
    "D": sp.NEIGHBOURS["D"] + (("A", -1, 0), ("A", 0, 2), ("A", 2, 1), ("A", 1, -1)),
    "B": sp.NEIGHBOURS["B"] + (("A", 0, -1), ("A", 0, 2), ("D", -1, 1), ("D", 0, -1)),
    "C": sp.NEIGHBOURS["C"] + (("B", 0, -1), ("B", 0, 0), ("B", 1, -1), ("B", 1, 0)),
}
# Slow path, later column sets: the already-coded pixels of the target itself, same row.
OWN_ROW = ((0, -1), (0, 1))
PAD = 2  # the farthest offset above


@dataclass(frozen=True)
class Refinement:
    weights: tuple[int, ...]  # one per neighbour, in 1/WEIGHT_ONE
    bins: tuple[tuple[int, int], ...]  # (scale index, mean in 1/16 sample) offset per activity bin

    def to_json(self) -> dict:
        return {"w": list(self.weights), "bins": [list(b) for b in self.bins]}

    @classmethod
    def from_json(cls, data, neighbours: int) -> "Refinement":
        """Validated side information (ValueError/TypeError/KeyError on anything out of range)."""
        weights = tuple(int(w) for w in data["w"])
        bins = tuple((int(e), int(m)) for e, m in data["bins"])
        if len(weights) != neighbours or len(bins) != ACTIVITY_BINS:
            raise ValueError("refinement has the wrong number of weights or bins")
        if any(abs(w) > MAX_WEIGHT for w in weights) or not all(rm.offset_in_range(e, m) for e, m in bins):
            raise ValueError("refinement value out of range")
        return cls(weights, bins)


class NeighbourRing:
    """The raw values of a pixel set's refinement neighbours, one neighbour at a time (memory: one
    array of the set's size per neighbour in use, never the whole [pixels, neighbours] matrix)."""

    def __init__(self, target: str, grids: dict[str, torch.Tensor], pixels: np.ndarray, own: torch.Tensor | None):
        # each grid edge-padded once, then a neighbour is a gather from it at the set's flat positions
        # shifted by (dr, dc): x[i + dr, j + dc] with edges replicated, no per-neighbour grid copies
        padded = {name: np.pad(grids[name].numpy(), PAD, mode="edge") for name in {n for n, _, _ in RING[target]}}
        self.offsets = [(padded[name].ravel(), dr, dc) for name, dr, dc in RING[target]]
        if own is not None:
            own_padded = np.pad(own.numpy(), PAD, mode="edge").ravel()
            self.offsets += [(own_padded, dr, dc) for dr, dc in OWN_ROW]
        self.row_length = pixels.shape[1] + 2 * PAD
        rows, cols = np.nonzero(pixels)
        self.positions = (rows + PAD) * self.row_length + (cols + PAD)

    def __len__(self) -> int:
        return len(self.offsets)

    def values(self, k: int, index: np.ndarray | None = None) -> np.ndarray:
        flat, dr, dc = self.offsets[k]
        positions = self.positions if index is None else self.positions[index]
        return flat[positions + (dr * self.row_length + dc)]

    def activity(self, index: np.ndarray | None = None) -> np.ndarray:
        """Activity bin per pixel: bit length of sum_i |4 n_i - sum n| over the four nearest neighbours."""
        # one neighbour at a time (each is read twice), so only three set-sized arrays are alive
        total = self.values(0, index) + self.values(1, index) + self.values(2, index) + self.values(3, index)
        spread = np.zeros_like(total)
        for k in range(4):
            spread += np.abs(4 * self.values(k, index) - total)
        # frexp's exponent of an integer-valued float64 (< 2**53) is its bit length, exactly
        return np.minimum(np.frexp(spread.astype(np.float64))[1], ACTIVITY_BINS - 1).astype(np.int64)


def apply(mu: np.ndarray, ell: np.ndarray, ring: NeighbourRing, refinement: Refinement,
          index: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(mu', ell') of the set (or of its ``index`` subset), in int64."""
    offsets = np.array(refinement.bins, dtype=np.int64)[ring.activity(index)]
    return _weighted_mean(mu, ring, refinement.weights, index) + offsets[:, 1], ell + offsets[:, 0]


def _weighted_mean(mu: np.ndarray, ring: NeighbourRing, weights: tuple[int, ...], index) -> np.ndarray:
    """mu + floor(sum_k w_k * (16 * n_k - mu) / 256), before the activity bins' offsets."""
    acc = np.zeros(mu.shape, dtype=np.int64)
    for k, weight in enumerate(weights):
        if weight:
            acc += weight * (rm.MEAN_ONE * ring.values(k, index) - mu)
    return mu + np.floor_divide(acc, WEIGHT_ONE)


@dataclass(frozen=True)
class Calibration:
    """What the encoder sends for a coded pixel set, and the code length it expects from it."""

    delta: tuple[int, int]  # (scale index, mean in 1/16 sample) offset added to every pixel
    refinement: Refinement | None
    bits: float  # estimated from a strided sample, side information included (only to choose)


def choose(values: np.ndarray, mu: np.ndarray, ell: np.ndarray, ring: NeighbourRing | None) -> Calibration:
    """The set's calibration: the plain (scale, mean) offset or a refinement (ring None: plain only),
    whichever codes it in fewer bits (judged on a strided sample of the set; the refinement's side
    information counted as the plane's side information packs it)."""
    adjustment = rm.search_adjustment(values, mu, ell)
    plain = adjustment.offsets
    index = _stride(values.size, rm.SEARCH_SAMPLE)  # the sample the search costed
    v, m, e = values[index], mu[index], ell[index]
    per_pixel = values.size / max(1, index.size)
    plain_bits = adjustment.bits * per_pixel
    if ring is None or values.size < 64:
        return Calibration(plain, None, plain_bits)
    refinement = _fit(values, mu, ell, ring, _stride(values.size, FIT_SAMPLE))
    side_bits = 8 * len(pack_side_info(refinement.to_json()))
    refined_bits = rm.ideal_cost_bits(v, rm.pixel_params(*apply(m, e, ring, refinement, index))) * per_pixel + side_bits
    if refined_bits < plain_bits:
        return Calibration((0, 0), refinement, refined_bits)
    return Calibration(plain, None, plain_bits)


def _stride(n: int, budget: int) -> np.ndarray:
    return np.arange(0, n, max(1, n // budget))


def _fit(values, mu, ell, ring: NeighbourRing, index) -> Refinement:
    values, mu, ell = values[index], mu[index], ell[index]
    design = np.stack([rm.MEAN_ONE * ring.values(k, index) - mu for k in range(len(ring))], axis=1).astype(np.float64)
    target = (rm.MEAN_ONE * values + rm.MEAN_ONE // 2 - mu).astype(np.float64)
    # the predicted scale (in 1/16 sample) floors the reweighting, so pixels the network is sure of
    # are not over-weighted; IRLS with weights 1/|r| approaches least absolute deviations
    floor = rm.MEAN_ONE * np.exp2(ell / rm.STEPS_PER_OCTAVE + rm.LOG2_MIN_SCALE)
    w = np.zeros(design.shape[1])
    for _ in range(FIT_ROUNDS):
        weighted = design.T * (1.0 / np.maximum(np.abs(target - design @ w), floor))
        # the normal equations (a neighbours x neighbours system; lstsq gives its minimum-norm solution
        # when neighbours coincide, e.g. on flat images): 5x faster than lstsq on the weighted design,
        # and the weights are rounded to 1/256 anyway
        w = np.linalg.lstsq(weighted @ design, weighted @ target, rcond=None)[0]
    weights = tuple(int(x) for x in np.clip(np.round(w * WEIGHT_ONE), -MAX_WEIGHT, MAX_WEIGHT))
    refined_mu = _weighted_mean(mu, ring, weights, index)
    found = rm.search_class_adjustments(values, refined_mu, ell, ring.activity(index), ACTIVITY_BINS)
    return Refinement(weights, tuple(a.offsets for a in found))
