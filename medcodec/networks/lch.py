"""LC-H: the SE-attention U-Net that predicts one subimage from the subimages already coded.

One network structure, two ways to run it: ``forward`` (float or fake-quantised, for training) and
``forward_integer`` (integer-exact, for coding). Both walk the same ``_run`` graph, so they cannot
drift apart. Outputs per pixel: the mean correction in 1/16 input units (Q4, relative to the
integer base prediction) and a log-scale index of the residual distribution.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .quant import ACT_MAX, EXACT_F32, QConv2d, exact_conv, fast_layout, floor_ste, requantise

INPUT_MAX = 1023  # network inputs are 10-bit (8 bits of range + 2 fraction bits, see pipelines.split)
MEAN_FRACTION = 16  # the mean correction is predicted in 1/16 input units


class LCHNet(nn.Module):
    def __init__(self, in_channels: int, widths: tuple[int, ...] = (16, 24, 32, 48)):
        super().__init__()
        self.in_channels = in_channels
        self.widths = tuple(widths)
        depth = len(widths)
        self.layers = nn.ModuleDict()
        prev = in_channels
        for level, width in enumerate(widths):
            self.layers[f"enc{level}a"] = QConv2d(prev, width)
            self.layers[f"enc{level}b"] = QConv2d(width, width)
            prev = width
        for level in reversed(range(depth - 1)):
            width = widths[level]
            self.layers[f"dec{level}a"] = QConv2d(prev + width, width)
            self.layers[f"dec{level}b"] = QConv2d(width, width)
            self.layers[f"se{level}a"] = QConv2d(width, max(4, width // 4), kernel=1)
            self.layers[f"se{level}b"] = QConv2d(max(4, width // 4), width, kernel=1, output="gate")
            prev = width
        self.layers["head"] = QConv2d(prev, 2, kernel=1, output="linear", out_mult=(MEAN_FRACTION, 1.0))

    @property
    def multiple(self) -> int:
        """Input sides must be a multiple of this (one halving per level below the top)."""
        return 2 ** (len(self.widths) - 1)

    def config(self) -> dict:
        return {"in_channels": self.in_channels, "widths": list(self.widths)}

    def set_mode(self, *, quantised: bool, calibrating: bool = False) -> None:
        for layer in self.layers.values():
            layer.quantised = quantised
            layer.calibrating = calibrating

    # ------------------------------------------------------------------------------------------
    def forward(self, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """v: [N, C, H, W] integer-valued inputs. Returns (mean correction in Q4 units, log-scale index), real-valued."""
        ops = _TrainOps(self)
        out, _ = self._run(v.float(), torch.ones(v.shape[1], device=v.device), ops)
        return out[:, 0] * MEAN_FRACTION, out[:, 1]

    def forward_integer(self, v: torch.Tensor, params: dict[str, dict]) -> tuple[torch.Tensor, torch.Tensor]:
        """Integer-exact forward: v [N, C, H, W] integers in [0, 1023]. Returns int64 (mean Q4, scale index).

        Activations travel as float32 tensors holding exact integers (see ``quant``)."""
        ops = _IntegerOps(params)
        out, _ = self._run(fast_layout(v.to(torch.float32)), None, ops)
        out = out.to(torch.int64)
        return out[:, 0], out[:, 1]

    def _run(self, x, s, ops):
        depth = len(self.widths)
        skips = []
        for level in range(depth):
            if level > 0:
                x = ops.pool(x)
            x, s = ops.conv(f"enc{level}a", x, s)
            x, s = ops.conv(f"enc{level}b", x, s)
            skips.append((x, s))
        for level in reversed(range(depth - 1)):
            x = ops.upsample(x)
            skip_x, skip_s = skips[level]
            x, s = ops.cat(skip_x, skip_s, x, s)
            x, s = ops.conv(f"dec{level}a", x, s)
            x, s = ops.conv(f"dec{level}b", x, s)
            x, s = ops.squeeze_excite(f"se{level}", x, s)
        return ops.conv("head", x, s)

    # ------------------------------------------------------------------------------------------
    def export_integer(self) -> dict[str, dict]:
        """Integer parameters of every layer (the model file's content)."""
        self.set_mode(quantised=True)
        ops = _TrainOps(self, record=True)
        with torch.no_grad():
            probe = torch.zeros(1, self.in_channels, self.multiple * 2, self.multiple * 2)
            self._run(probe, torch.ones(self.in_channels), ops)
        params = {}
        for name, layer in self.layers.items():
            in_scale, in_max = ops.seen[name]
            params[name] = layer.export(in_scale, in_max)
        return params


class _TrainOps:
    def __init__(self, net: LCHNet, record: bool = False):
        self.net = net
        self.seen: dict[str, tuple[torch.Tensor, int]] = {}
        self.record = record

    def conv(self, name, x, s):
        layer = self.net.layers[name]
        if self.record:
            in_max = INPUT_MAX if name == "enc0a" else ACT_MAX
            self.seen[name] = (s.detach().cpu().clone(), in_max)
        return layer(x, s)

    @staticmethod
    def pool(x):
        return F.max_pool2d(x, 2)

    @staticmethod
    def upsample(x):
        return F.interpolate(x, scale_factor=2, mode="nearest")

    @staticmethod
    def cat(xa, sa, xb, sb):
        return torch.cat([xa, xb], 1), torch.cat([sa, sb])

    def squeeze_excite(self, prefix, x, s):
        quantised = self.net.layers[prefix + "a"].quantised
        z = x.mean(dim=(2, 3), keepdim=True)
        if quantised:
            z = floor_ste(z)
        h, hs = self.conv(prefix + "a", z, s)
        gate, _ = self.conv(prefix + "b", h, hs)
        y = x * gate / 256.0
        if quantised:
            y = floor_ste(x * gate / 256.0 + 0.5)
        return y, s


class _IntegerOps:
    def __init__(self, params: dict[str, dict]):
        self.params = params

    def conv(self, name, x, _s):
        layer = self.params[name]
        kernel = layer["weight"].shape[-1]
        acc = exact_conv(x, layer, padding=kernel // 2)  # exact, already scaled by 2**-S
        if name.startswith("se") and name.endswith("b"):
            return requantise(acc, layer, 0, 256), None
        if name == "head":
            return requantise(acc, layer, None, None), None
        return requantise(acc, layer, 0, ACT_MAX), None

    @staticmethod
    def pool(x):
        return F.max_pool2d(x, 2)  # a max of exact integers is exact

    @staticmethod
    def upsample(x):
        return F.interpolate(x, scale_factor=2, mode="nearest")  # a copy, exact

    @staticmethod
    def cat(xa, _sa, xb, _sb):
        # not copied into one tensor: the next convolution takes the channel groups one by one
        return [xa, xb], None

    def squeeze_excite(self, prefix, x, s):
        area = x.shape[2] * x.shape[3]
        # A sum of integers is exact in any order while every partial sum stays below 2**24 (float32):
        # bands of rows that small are summed in float32 (fast in the channels-last layout), the band
        # sums in float64 (exact below 2**53); the division is done on int64
        band = (EXACT_F32 - 1) // (x.shape[3] * ACT_MAX)
        if band:
            total = sum(part.sum(dim=(2, 3), keepdim=True).to(torch.float64) for part in torch.split(x, band, dim=2))
        else:  # rows too long for float32: all in float64
            total = x.to(torch.float64).sum(dim=(2, 3), keepdim=True)
        total = total.to(torch.int64)
        z = torch.div(total, area, rounding_mode="floor").to(torch.float32)
        h, _ = self.conv(prefix + "a", z, None)
        gate, _ = self.conv(prefix + "b", h, None)
        # x * gate + 128 < 2**17, and scaling by 2**-8 is exact in float32
        y = x * gate
        return y.add_(128).mul_(1.0 / 256).floor_(), s
