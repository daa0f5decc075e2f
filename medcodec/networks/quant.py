"""Integer-exact layers: trained with fake quantisation, run with integer arithmetic only.

Why: the decoder must compute the same probabilities as the encoder on any CPU or GPU. Float
convolutions differ between code paths, so the probability path runs on integers:

* activations are unsigned integers (0..255 after a ReLU; the network input is 0..1023),
* weights are int8 per output channel, with the scale of each *input* channel folded in first, so
  a layer consumes raw integer activations whatever scale each channel had (concatenations are free),
* a convolution is evaluated on integer-valued floats; every partial sum is an integer whose magnitude
  is bounded by ``sum|w| * max|a| + |b|``. Below 2**24 float32 is exact, below 2**53 float64 is exact,
  so any summation order (threads, blocking, GPU GEMM) gives the same integers,
* requantisation to the next layer is ``floor(acc * M / 2**S + 1/2)`` with integer M, S, evaluated
  in float64 where every step is exact (see ``requantise``).

In training the same layers run in float with straight-through rounding, carrying each tensor as
integer-valued activations plus a per-channel scale, so the trained network is the one that is run.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

ACT_MAX = 255  # activations are uint8 after every ReLU
WEIGHT_MAX = 127  # int8 weights
EXACT_F32 = 2**24
EXACT_F64 = 2**53
MIN_SHIFT = -8  # a multiplier of up to 256 (tiny activation scales)
MAX_SHIFT = 40


def round_ste(x: torch.Tensor) -> torch.Tensor:
    """Round to nearest (half up, as the integer path does) with a straight-through gradient."""
    return x + (torch.floor(x + 0.5) - x).detach()


def floor_ste(x: torch.Tensor) -> torch.Tensor:
    return x + (torch.floor(x) - x).detach()


class QConv2d(nn.Module):
    """A convolution (or, with kernel 1, a linear layer) that can be trained quantised and exported to integers.

    ``output`` says what follows the accumulator: 'relu' (uint8 activation), 'gate' (hard-sigmoid
    gate in 1/256 steps, for SE attention) or 'linear' (real values times ``out_mult``, rounded by
    the caller). Weight scales are chosen so that the requantisation multiplier of every output
    channel is a power of two, 2**-S: requantising is then an exact shift, cheap in float32.
    """

    def __init__(self, cin: int, cout: int, kernel: int = 3, output: str = "relu",
                 out_mult: tuple[float, ...] | None = None):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, padding=kernel // 2)
        self.output = output
        self.register_buffer("act_range", torch.zeros(()))  # calibrated max of the ReLU output
        self.register_buffer("out_mult", torch.tensor(out_mult if out_mult else (1.0,) * cout), persistent=False)
        self.quantised = False
        self.calibrating = False

    # -- the integer grid ------------------------------------------------------------------------
    def target_multiplier(self) -> torch.Tensor:
        """Per output channel: what one accumulator unit times 2**S must equal in output units."""
        cout = self.conv.out_channels
        if self.output == "relu":
            return self.out_scale().expand(cout)
        if self.output == "gate":
            return torch.full((cout,), 6.0 / 256.0, device=self.act_range.device)
        return 1.0 / self.out_mult

    def weight_grid(self, in_scale: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Weights acting on integer inputs, their quantisation step per output channel, and S."""
        w = self.conv.weight * in_scale.view(1, -1, 1, 1)
        target = self.target_multiplier()
        peak = w.detach().abs().amax(dim=(1, 2, 3)).clamp_min(1e-12)
        shift = torch.floor(torch.log2(WEIGHT_MAX * target / peak)).clamp(MIN_SHIFT, MAX_SHIFT)
        return w, target * torch.exp2(-shift), shift

    # -- training / float forward ---------------------------------------------------------------
    def forward(self, x: torch.Tensor, in_scale: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b = self.conv.bias
        if self.quantised:
            w, step, _ = self.weight_grid(in_scale)
            w = round_ste(w / step.view(-1, 1, 1, 1)).clamp(-WEIGHT_MAX, WEIGHT_MAX) * step.view(-1, 1, 1, 1)
            b = round_ste(b / step) * step
        else:
            w = self.conv.weight * in_scale.view(1, -1, 1, 1)
        y = F.conv2d(x, w, b, padding=self.conv.padding)
        ones = torch.ones(y.shape[1], device=y.device)
        if self.output == "relu":
            y = F.relu(y)
            if self.calibrating:
                with torch.no_grad():
                    q = torch.quantile(y.detach().flatten()[:: max(1, y.numel() // 100000)].float(), 0.9995)
                    self.act_range.copy_(torch.maximum(self.act_range * 0.99, q) if self.act_range > 0 else q)
            if self.quantised:
                s = self.out_scale()
                return round_ste(y / s).clamp(0, ACT_MAX), s.expand(y.shape[1])
            return y, ones
        if self.output == "gate":
            g = y * (256.0 / 6.0) + 128.0
            if self.quantised:
                g = round_ste(g)
            return g.clamp(0, 256), ones
        return y, ones

    def out_scale(self) -> torch.Tensor:
        return self.act_range.clamp_min(1e-6) / ACT_MAX

    # -- export ---------------------------------------------------------------------------------
    def export(self, in_scale: torch.Tensor, in_max: int) -> dict:
        """Integer parameters of this layer, given the scale and bound of its integer inputs."""
        with torch.no_grad():
            w, step, shift = self.weight_grid(in_scale.float())
            w_int = torch.round(w / step.view(-1, 1, 1, 1)).clamp(-WEIGHT_MAX, WEIGHT_MAX)
            b_int = torch.floor(self.conv.bias / step + 0.5)
            bound = int((w_int.abs().sum(dim=(1, 2, 3)) * in_max + b_int.abs()).max().item())
        return {
            "weight": w_int.to(torch.int8),
            "bias": b_int.to(torch.int64),
            "shift": shift.to(torch.int64),
            "offset": torch.tensor(128 if self.output == "gate" else 0, dtype=torch.int64),
            "bound": torch.tensor(bound, dtype=torch.int64),
        }


def fast_layout(x: torch.Tensor) -> torch.Tensor:
    """x [N, C, H, W] in the memory layout the integer networks run fastest in on this device.

    On the CPU, channels-last: oneDNN's direct convolution over it took the LC-H network 23 ms instead
    of 48 ms on a 5 x 256 x 320 input (2 threads). The layout changes only the order in which exact
    integer partial sums are added (``exact_conv``), so the outputs are the same integers.
    """
    if x.device.type == "cpu" and x.dim() == 4:
        return x.contiguous(memory_format=torch.channels_last)
    return x


def exact_conv(x: torch.Tensor | list[torch.Tensor], layer: dict, padding: int) -> torch.Tensor:
    """``(conv(x, W) + bias + 2**(S-1)) * 2**-S`` per output channel, computed exactly.

    The power-of-two factor is folded into the weights and bias: scaling by 2**-S changes only
    exponents, so every partial sum is an integer (< 2**24 for float32, < 2**53 for float64, see
    ``requant_dtype``) times 2**-S and is exactly representable, in any summation order. What remains
    of requantisation is a floor (and a clamp), both exact.

    x may be a list of channel groups (a concatenation not yet made): each group is convolved with its
    slice of the weights and the results added - one more summation order, so the same integers, and
    no copy of the concatenated input.
    """
    groups = x if isinstance(x, list) else [x]
    device = groups[0].device
    dtype = requant_dtype(layer)
    shift = layer["shift"].to(device=device, dtype=dtype)
    scale = torch.exp2(-shift)
    half = torch.where(shift > 0, torch.exp2(shift - 1), torch.zeros_like(shift))
    w = layer["weight"].to(device=device, dtype=dtype) * scale.view(-1, 1, 1, 1)
    b = (layer["bias"].to(device=device, dtype=dtype) + half) * scale
    acc, first = None, 0
    for group in groups:
        part = w[:, first:first + group.shape[1]].contiguous()
        first += group.shape[1]
        if acc is None:
            acc = _conv_no_fast_algorithms(group.to(dtype), part, b, padding)
        else:
            acc += _conv_no_fast_algorithms(group.to(dtype), part, None, padding)
    if first != w.shape[1]:
        raise ValueError(f"convolution over {first} input channels, its weights take {w.shape[1]}")
    return acc


def _conv_no_fast_algorithms(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor, padding: int) -> torch.Tensor:
    """A convolution whose every partial sum is a plain product sum (no Winograd/FFT, no TF32)."""
    if x.is_cuda:
        # cuDNN may pick Winograd or FFT kernels, whose transforms are not integer-exact; the native
        # CUDA path is im2col + cuBLAS GEMM, exact on integer-valued floats with TF32 off.
        tf32 = torch.backends.cuda.matmul.allow_tf32
        torch.backends.cuda.matmul.allow_tf32 = False
        try:
            with torch.backends.cudnn.flags(enabled=False):
                return F.conv2d(x, w, b, padding=padding)
        finally:
            torch.backends.cuda.matmul.allow_tf32 = tf32
    return F.conv2d(x, w, b, padding=padding)


def requantise(scaled: torch.Tensor, layer: dict, lo: int | None, hi: int | None) -> torch.Tensor:
    """``clamp(floor(scaled) + offset, lo, hi)``: the rest of requantisation after ``exact_conv``."""
    y = torch.floor_(scaled)
    offset = int(layer["offset"])
    if offset:
        y += offset
    if lo is not None and hi is not None:
        return y.clamp_(lo, hi).to(torch.float32)
    return y


def requant_dtype(layer: dict) -> torch.dtype:
    """float32 when every partial sum of ``exact_conv`` is below 2**24 (in 2**-S units), else float64."""
    shift = layer["shift"]
    largest = (int(layer["bound"]) + (1 << max(0, int(shift.max()) - 1))) << max(0, -int(shift.min()))
    if largest < EXACT_F32:
        return torch.float32
    if largest < EXACT_F64:
        return torch.float64
    raise ValueError("requantisation exceeds float64's exact integer range")


def bits_needed(n: int) -> int:
    return max(1, math.ceil(math.log2(n + 1)))
