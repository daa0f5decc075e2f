"""Per-class (scale, mean) offsets of a coded pixel set: fitted by the encoder, sent, added by the decoder.

Why one module: the block-phase classes (place in an earlier JPEG's 8x8 grid, ``block_phase``) and the
surprise classes (how wrong the network was at a pixel's coded neighbours, ``surprise``) differ only in
how a pixel gets its class. What happens next is the same: the encoder searches one (scale index, mean
in 1/16 sample) offset per class on top of the set's model, keeps the table when the bits it saves exceed
its side information, and the decoder adds the class's offset to every pixel in int64 - exact on every
machine.
"""

from __future__ import annotations

import numpy as np

from ..entropy import residual_model as rm
from .base import pack_side_info

Offsets = tuple[tuple[int, int], ...]  # (scale index, mean in 1/16 sample) per class


def apply(mu: np.ndarray, ell: np.ndarray, pixel_classes: np.ndarray, offsets: Offsets) -> tuple[np.ndarray, np.ndarray]:
    table = np.asarray(offsets, dtype=np.int64).reshape(len(offsets), 2)[pixel_classes]
    return mu + table[:, 1], ell + table[:, 0]


def fit(values: np.ndarray, mu: np.ndarray, ell: np.ndarray, pixel_classes: np.ndarray, n_classes: int,
        sample: np.ndarray, key: str, scale_limit: int, always: bool = False) -> Offsets | None:
    """The per-class offsets for a set coded with (mu, ell), searched on the ``sample`` (indices into the
    set), or None when the bits they save (scaled from each class's sample to the whole class) do not
    exceed their side information under ``key`` (always: keep them anyway, for tests and worst cases)."""
    sizes = np.bincount(pixel_classes, minlength=n_classes)
    sampled = np.bincount(pixel_classes[sample], minlength=n_classes)
    found = rm.search_class_adjustments(values[sample], mu[sample], ell[sample], pixel_classes[sample], n_classes,
                                        limit=scale_limit)
    offsets, saved = [], 0.0
    for k, adjustment in enumerate(found):
        if adjustment.offsets != (0, 0):
            saved += (adjustment.bits_unadjusted - adjustment.bits) * sizes[k] / sampled[k]
        offsets.append(adjustment.offsets)
    result = tuple(offsets)
    if not always and saved <= 8 * side_bytes(key, result):
        return None
    return result


def side_bytes(key: str, offsets: Offsets) -> int:
    """What the offsets add to the plane's side information (packed alone: an upper bound)."""
    return len(pack_side_info({key: to_json(offsets)}))


def to_json(offsets: Offsets) -> list[list[int]]:
    return [list(pair) for pair in offsets]


def from_json(data, n_classes: int, what: str) -> Offsets:
    """Validated offsets (ValueError/TypeError on anything malformed or out of range)."""
    if not isinstance(data, list) or len(data) != n_classes:
        raise ValueError(f"{what} offsets: {n_classes} pairs expected")
    pairs = []
    for pair in data:
        if not isinstance(pair, list) or len(pair) != 2 or not all(type(x) is int for x in pair):
            raise ValueError(f"{what} offsets: each entry is [scale, mean]")
        d_ell, d_mu = pair
        if not rm.offset_in_range(d_ell, d_mu):
            raise ValueError(f"{what} offsets out of range")
        pairs.append((d_ell, d_mu))
    return tuple(pairs)
