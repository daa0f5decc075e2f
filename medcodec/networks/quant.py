"""Integer-exact layers: trained with fake quantisation, run with integer arithmetic only.

Why: the decoder must compute the same probabilities as the encoder on any CPU or GPU. Float
convolutions differ between code paths, so the probability path runs on integers:

* activations are unsigned integers (0..255 after a ReLU; the network input is 0..1023),
* weights are int8 per output channel, with the scale of each *input* channel folded in first, so
  a layer consumes raw integer activations whatever scale each channel had (concatenations are free),
* a convolution is evaluated on integer-valued floats; every partial sum is an integer whose magnitude
  is bounded by ``sum|w| * max|a| + |b|``. Below 2**24 float32 is exact, below 2**53 float64 is exact,
  so any summation order (threads, blocking, GPU GEMM) gives the same integers,
* requantisation to the next layer is ``(acc * M + 2**(S-1)) >> S`` in int64, with integer M, S.

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
SHIFT = 30  # fixed-point fraction bits of requantisation multipliers
EXACT_F32 = 2**24
EXACT_F64 = 2**53


def round_ste(x: torch.Tensor) -> torch.Tensor:
    """Round to nearest (half up, as the integer path does) with a straight-through gradient."""
    return x + (torch.floor(x + 0.5) - x).detach()


def floor_ste(x: torch.Tensor) -> torch.Tensor:
    return x + (torch.floor(x) - x).detach()


class QConv2d(nn.Module):
    """A convolution (or, with kernel 1, a linear layer) that can be trained quantised and exported to integers.

    ``output`` says what follows the accumulator: 'relu' (uint8 activation), 'gate' (hard-sigmoid
    gate in 1/256 steps, for SE attention) or 'linear' (real value, quantised by the caller).
    """

    def __init__(self, cin: int, cout: int, kernel: int = 3, output: str = "relu"):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, padding=kernel // 2)
        self.output = output
        self.register_buffer("act_range", torch.zeros(()))  # calibrated max of the ReLU output
        self.quantised = False
        self.calibrating = False

    # -- training / float forward ---------------------------------------------------------------
    def effective_weight(self, in_scale: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Weights acting on integer inputs, their int8 scale per output channel, and the bias."""
        w = self.conv.weight * in_scale.view(1, -1, 1, 1)
        scale = w.detach().abs().amax(dim=(1, 2, 3)).clamp_min(1e-12) / WEIGHT_MAX
        return w, scale, self.conv.bias

    def forward(self, x: torch.Tensor, in_scale: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        w, w_scale, b = self.effective_weight(in_scale)
        if self.quantised:
            w = round_ste(w / w_scale.view(-1, 1, 1, 1)).clamp(-WEIGHT_MAX, WEIGHT_MAX) * w_scale.view(-1, 1, 1, 1)
            b = round_ste(b / w_scale) * w_scale
        y = F.conv2d(x, w, b, padding=self.conv.padding)
        if self.output == "relu":
            y = F.relu(y)
            if self.calibrating:
                with torch.no_grad():
                    q = torch.quantile(y.detach().flatten()[:: max(1, y.numel() // 100000)].float(), 0.9995)
                    self.act_range.copy_(torch.maximum(self.act_range * 0.99, q) if self.act_range > 0 else q)
            if self.quantised:
                s = self.out_scale()
                return round_ste(y / s).clamp(0, ACT_MAX), s.expand(y.shape[1])
            return y, torch.ones(y.shape[1], device=y.device)
        if self.output == "gate":
            g = y * (256.0 / 6.0) + 128.0
            if self.quantised:
                g = round_ste(g)
            return g.clamp(0, 256), torch.ones(y.shape[1], device=y.device)
        return y, torch.ones(y.shape[1], device=y.device)

    def out_scale(self) -> torch.Tensor:
        return self.act_range.clamp_min(1e-6) / ACT_MAX

    # -- export ---------------------------------------------------------------------------------
    def export(self, in_scale: torch.Tensor, in_max: int, out_mult: torch.Tensor | None = None) -> dict:
        """Integer parameters of this layer, given the scale and bound of its integer inputs.

        out_mult: for 'linear' outputs, the real-to-integer factor per output channel (e.g. 16 for Q4).
        """
        with torch.no_grad():
            w, w_scale, b = self.effective_weight(in_scale.double().float())
            w_int = torch.round(w / w_scale.view(-1, 1, 1, 1)).clamp(-WEIGHT_MAX, WEIGHT_MAX)
            b_int = torch.floor(b / w_scale + 0.5)
            if self.output == "relu":
                mult = w_scale / self.out_scale()
                offset = 0
            elif self.output == "gate":
                mult = w_scale * (256.0 / 6.0)
                offset = 128
            else:
                mult = w_scale * out_mult
                offset = 0
            m_int = torch.round(mult.double() * 2**SHIFT).to(torch.int64)
            bound = (w_int.abs().sum(dim=(1, 2, 3)) * in_max + b_int.abs()).max().item()
        return {
            "weight": w_int.to(torch.int8),
            "bias": b_int.to(torch.int64),
            "mult": m_int,
            "offset": torch.tensor(offset, dtype=torch.int64),
            "bound": torch.tensor(int(bound), dtype=torch.int64),
        }


def exact_conv(x: torch.Tensor, layer: dict, padding: int) -> torch.Tensor:
    """Integer convolution: int64 accumulators, exact for any summation order (see module docstring)."""
    bound = int(layer["bound"])
    if bound >= EXACT_F64:
        raise ValueError("layer accumulator bound exceeds float64's exact integer range")
    dtype = torch.float32 if bound < EXACT_F32 else torch.float64
    w = layer["weight"].to(device=x.device, dtype=dtype)
    acc = _conv_no_fast_algorithms(x.to(dtype), w, padding)
    acc = acc.to(torch.int64) + layer["bias"].to(x.device).view(1, -1, 1, 1)
    return acc


def _conv_no_fast_algorithms(x: torch.Tensor, w: torch.Tensor, padding: int) -> torch.Tensor:
    """A convolution whose every partial sum is a plain product sum (no Winograd/FFT, no TF32)."""
    if x.is_cuda:
        # cuDNN may pick Winograd or FFT kernels, whose transforms are not integer-exact; the native
        # CUDA path is im2col + cuBLAS GEMM, exact on integer-valued floats with TF32 off.
        tf32 = torch.backends.cuda.matmul.allow_tf32
        torch.backends.cuda.matmul.allow_tf32 = False
        try:
            with torch.backends.cudnn.flags(enabled=False):
                return F.conv2d(x, w, padding=padding)
        finally:
            torch.backends.cuda.matmul.allow_tf32 = tf32
    return F.conv2d(x, w, padding=padding)


def requantise(acc: torch.Tensor, layer: dict, lo: int | None, hi: int | None) -> torch.Tensor:
    """``clamp(((acc * M + 2**(S-1)) >> S) + offset, lo, hi)`` in int64, per output channel."""
    m = layer["mult"].to(acc.device).view(1, -1, 1, 1)
    y = torch.bitwise_right_shift(acc * m + (1 << (SHIFT - 1)), SHIFT) + int(layer["offset"])
    if lo is not None or hi is not None:
        y = y.clamp(lo, hi)
    return y


def check_exact_product_bound(acc_bound: int, mult: torch.Tensor) -> None:
    """acc * M must fit in int64; refuse weights that would overflow rather than compute garbage."""
    if acc_bound * int(mult.abs().max()) + (1 << SHIFT) >= 2**63:
        raise ValueError("requantisation would overflow int64")


def bits_needed(n: int) -> int:
    return max(1, math.ceil(math.log2(n + 1)))
