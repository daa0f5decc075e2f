"""The 2x2 subimage split and the integer context each predictor sees; shared by coding and training.

Subimage names follow the papers: A = even rows/even columns (coded by JPEG-XL), D = odd/odd
(predicted from A), B = even/odd (from A, D), C = odd/even (from A, D, B). An odd-sized image is padded
to even sides with its minimum value ``lo``; padded pixels are never coded, and encoder and decoder
fill them the same way.

Normalisation makes one network serve 8 to 16 bits: a plane with value range [lo, hi] is seen as
``v = ((x - lo) << 2) >> G`` with ``G = max(0, bitlen(hi - lo) - 8)``: 8 bits of range and 2 fraction
bits, integers in [0, 1023]. Predictions come back in the same units and are scaled up by 2**G.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

SUBIMAGES = ("A", "B", "C", "D")
PREDICTED = ("D", "B", "C")  # coding order
CONTEXT = {"D": ("A",), "B": ("A", "D"), "C": ("A", "D", "B")}
# (row, col) offset of each subimage inside its 2x2 cell
PHASE = {"A": (0, 0), "B": (0, 1), "C": (1, 0), "D": (1, 1)}
# the four nearest coded neighbours of a pixel of each predicted subimage, as (subimage, drow, dcol)
NEIGHBOURS = {
    "D": (("A", 0, 0), ("A", 0, 1), ("A", 1, 0), ("A", 1, 1)),
    "B": (("A", 0, 0), ("A", 0, 1), ("D", -1, 0), ("D", 0, 0)),
    "C": (("A", 0, 0), ("A", 1, 0), ("D", 0, -1), ("D", 0, 0)),
}
INPUT_FRACTION_BITS = 2
INPUT_MAX = (256 << INPUT_FRACTION_BITS) - 1


@dataclass(frozen=True)
class Normalisation:
    lo: int
    shift: int  # G

    @classmethod
    def of(cls, lo: int, hi: int) -> "Normalisation":
        return cls(int(lo), max(0, int(hi - lo).bit_length() - 8))


def normalise(x: torch.Tensor, lo: torch.Tensor | int, shift: torch.Tensor | int) -> torch.Tensor:
    """Raw int64 samples -> network input units (int64 in [0, 1023])."""
    return torch.bitwise_right_shift(torch.bitwise_left_shift(x - lo, INPUT_FRACTION_BITS), shift)


def split(plane: torch.Tensor, fill: int) -> dict[str, torch.Tensor]:
    """[..., H, W] -> four [..., ceil(H/2), ceil(W/2)] subimages, padding with ``fill``."""
    h, w = plane.shape[-2:]
    padded = plane
    if h % 2 or w % 2:
        shape = plane.shape[:-2] + (h + h % 2, w + w % 2)
        padded = torch.full(shape, fill, dtype=plane.dtype, device=plane.device)
        padded[..., :h, :w] = plane
    return {name: padded[..., r::2, c::2] for name, (r, c) in PHASE.items()}


def merge(subimages: dict[str, torch.Tensor], height: int, width: int) -> torch.Tensor:
    a = subimages["A"]
    out = torch.empty(a.shape[:-2] + (a.shape[-2] * 2, a.shape[-1] * 2), dtype=a.dtype, device=a.device)
    for name, (r, c) in PHASE.items():
        out[..., r::2, c::2] = subimages[name]
    return out[..., :height, :width]


def valid_mask(height: int, width: int, name: str, device=None) -> torch.Tensor:
    """Which pixels of subimage ``name`` lie inside the real (unpadded) image."""
    r, c = PHASE[name]
    rows = torch.arange((height + 1) // 2, device=device) * 2 + r < height
    cols = torch.arange((width + 1) // 2, device=device) * 2 + c < width
    return rows[:, None] & cols[None, :]


def _shifted(x: torch.Tensor, drow: int, dcol: int) -> torch.Tensor:
    """x[i + drow, j + dcol] with edge replication."""
    h, w = x.shape[-2:]
    rows = (torch.arange(h, device=x.device) + drow).clamp(0, h - 1)
    cols = (torch.arange(w, device=x.device) + dcol).clamp(0, w - 1)
    return x[..., rows, :][..., cols]


def base_prediction(target: str, normalised: dict[str, torch.Tensor]) -> torch.Tensor:
    """Mean of the four nearest coded neighbours, in 1/16 input units (sum of four Q2 values)."""
    total = None
    for name, drow, dcol in NEIGHBOURS[target]:
        term = _shifted(normalised[name], drow, dcol)
        total = term if total is None else total + term
    return total


def even_columns(like: torch.Tensor) -> torch.Tensor:
    """Boolean [w] mask of the even columns of a subimage grid: the 'left' half of the slow path."""
    return torch.arange(like.shape[-1], device=like.device) % 2 == 0


def network_input(target: str, normalised: dict[str, torch.Tensor], left: torch.Tensor | None = None) -> torch.Tensor:
    """Context planes, then the known-left plane and its mask, stacked as channels: [..., C + 2, h, w].

    One network serves LC-H (left unknown: both extra planes blank) and LC-L (the even columns of the
    target are known: their values, and a mask of INPUT_MAX where known), as the LC-TMNet paper
    suggests, so the slow path costs no extra weights or memory.
    """
    planes = [normalised[name] for name in CONTEXT[target]]
    ref = planes[0]
    if left is None:
        planes += [torch.zeros_like(ref), torch.zeros_like(ref)]
    else:
        known = even_columns(ref).to(ref.dtype)
        planes += [left * known, torch.full_like(ref, INPUT_MAX) * known]
    return torch.stack(planes, dim=-3)


def input_channels(target: str) -> int:
    return len(CONTEXT[target]) + 2
