"""LVPNet (Song et al.): a global latent z of the whole image, then every pixel predicted from z in one pass.

Encoder only (float, never needed to decode): the Global Multi-scale Sensing Module (GMSM) turns the
normalised image into y. Each level halves the resolution with ``f_{t+1} = Conv(f_t) + Pool(f_t)``: Conv
is a 2x2 stride-2 convolution (then a 1x1 mix), Pool is the volume-preserving 2x2 pooling
(space-to-depth, C x H x W -> 4C x H/2 x W/2), so every level keeps the feature volume and the last one
still carries the earlier levels' features; a 1x1 convolution samples y from it (ratio
r = latent_channels / 4**levels). ``plain=True`` is the paper's "CNN" ablation: no Pool skips.

Sent: z = floor(y / q_step), clipped to [Z_MIN, Z_MAX] (int8).

Decoder (integer-exact, so any machine computes the same probabilities from z): the Quantisation
Compensation Module (QCM: residual blocks, ReLU output, global shortcut) adds a non-negative correction c
to the dequantised latent, y_c = z * q_step + c, computed exactly as the integer ``z * 2**K + c`` in
units of q_step / 2**K; then nearest upsampling and convolutions predict, per pixel, the mean in 1/16
normalised units (no subimage base: the mean is absolute) and the scale index of the residual model.
As in ``lch``, one ``_run_decoder`` graph is walked by a training ops object and an integer ops object.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .quant import ACT_MAX, QConv2d, exact_conv, fast_layout, floor_ste, requantise, round_ste

Z_MIN, Z_MAX = -128, 127  # z is int8; its integer is the decoder's first input, in units of q_step
COMP_BITS = 4  # K: the compensation is in units of q_step / 16
COMP_MAX = 255  # c in [0, 255] units: up to 16 quantisation steps
MEAN_FRACTION = 16  # mu is predicted in 1/16 normalised units
MEAN_LIMIT = 256 * MEAN_FRACTION  # normalised samples lie in [0, 256)


class GMSM(nn.Module):
    """Float sampling network: normalised image [N, 1, H, W] (H, W multiples of 2**levels) -> y."""

    def __init__(self, levels: int, latent_channels: int, plain: bool = False):
        super().__init__()
        self.levels, self.plain = levels, plain
        self.down = nn.ModuleList()
        self.mix = nn.ModuleList()
        for t in range(levels):
            c = 4**t
            hidden = max(16, 4 * c)
            self.down.append(nn.Conv2d(c, hidden, 2, stride=2))
            self.mix.append(nn.Conv2d(hidden, 4 * c, 1))
        self.sample = nn.Conv2d(4**levels, latent_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = x
        for down, mix in zip(self.down, self.mix):
            conv = mix(F.leaky_relu(down(f), 0.1))
            f = F.leaky_relu(conv, 0.1) if self.plain else conv + F.pixel_unshuffle(f, 2)
        return self.sample(f)


class LVPNet(nn.Module):
    def __init__(self, levels: int = 3, latent_channels: int = 4, q_step: float = 1 / 32,
                 qcm_width: int = 16, qcm_blocks: int = 3, widths: tuple[int, ...] = (32, 24, 16, 16),
                 use_qcm: bool = True, plain: bool = False):
        super().__init__()
        if len(widths) != levels + 1:
            raise ValueError("widths needs one entry per resolution (levels + 1)")
        self.levels, self.latent_channels, self.q_step = levels, latent_channels, float(q_step)
        self.qcm_width, self.qcm_blocks, self.widths = qcm_width, qcm_blocks, tuple(widths)
        self.use_qcm, self.plain = use_qcm, plain
        self.gmsm = GMSM(levels, latent_channels, plain)
        # training-only rate proxy for z: a learned logistic per latent channel (the stream uses Huffman)
        self.prior_loc = nn.Parameter(torch.zeros(latent_channels))
        self.prior_log_scale = nn.Parameter(torch.full((latent_channels,), 1.0))
        L = nn.ModuleDict()
        if use_qcm:
            L["qcm_in"] = QConv2d(latent_channels, qcm_width)
            for i in range(qcm_blocks):
                L[f"qcm{i}a"] = QConv2d(qcm_width, qcm_width)
                L[f"qcm{i}b"] = QConv2d(qcm_width, qcm_width, output="linear")  # out_mult set at run time
            L["qcm_out"] = QConv2d(qcm_width, latent_channels, output="linear",
                                   out_mult=((1 << COMP_BITS) / self.q_step,) * latent_channels)
        L["dec_in"] = QConv2d(latent_channels, widths[0])
        for level in range(levels):
            L[f"up{level}a"] = QConv2d(widths[level], widths[level + 1])
            L[f"up{level}b"] = QConv2d(widths[level + 1], widths[level + 1])
        L["head"] = QConv2d(widths[-1], 2, kernel=1, output="linear", out_mult=(MEAN_FRACTION, 1.0))
        with torch.no_grad():  # start near a mid-grey mean and a wide (scale ~4 samples) distribution
            L["head"].conv.bias.copy_(torch.tensor([64.0, 48.0]))
        self.layers = L

    @property
    def multiple(self) -> int:
        return 2**self.levels

    def config(self) -> dict:
        return {"levels": self.levels, "latent_channels": self.latent_channels, "q_step": self.q_step,
                "qcm_width": self.qcm_width, "qcm_blocks": self.qcm_blocks, "widths": list(self.widths),
                "use_qcm": self.use_qcm, "plain": self.plain}

    def latent_shape(self, height: int, width: int) -> tuple[int, int, int]:
        m = self.multiple
        return self.latent_channels, -(-height // m), -(-width // m)

    def set_mode(self, *, quantised: bool, calibrating: bool = False) -> None:
        for layer in self.layers.values():
            layer.quantised = quantised
            layer.calibrating = calibrating

    # -- encoder side ------------------------------------------------------------------------------
    def latent(self, v: torch.Tensor) -> torch.Tensor:
        """Normalised inputs [N, 1, H, W] in [0, 1023] (sides multiples of ``multiple``) -> real z (STE floor)."""
        y = self.gmsm(v / 512.0 - 1.0)
        return floor_ste(y / self.q_step).clamp(Z_MIN, Z_MAX)

    def z_bits(self, z: torch.Tensor) -> torch.Tensor:
        """Rate proxy: -log2 P(z) per value, P the logistic mass of [z, z + 1) (z = floor(y / q))."""
        loc = self.prior_loc.view(1, -1, 1, 1)
        inv = torch.exp(-self.prior_log_scale).view(1, -1, 1, 1)
        upper, lower = (z + 1 - loc) * inv, (z - loc) * inv
        p = torch.sigmoid(upper) - torch.sigmoid(lower)
        # the tails beyond the int8 clip are folded into the end bins
        p = torch.where(z <= Z_MIN, torch.sigmoid(upper), p)
        p = torch.where(z >= Z_MAX, 1 - torch.sigmoid(lower), p)
        return -torch.log2(p.clamp_min(1e-9))

    # -- decoder side ------------------------------------------------------------------------------
    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Real z [N, C, h, w] -> (mean in 1/16 normalised units, scale index), real-valued, full resolution."""
        ops = _TrainOps(self)
        out, _ = self._run_decoder(z, ops)
        return out[:, 0] * MEAN_FRACTION, out[:, 1]

    def forward_integer(self, z: torch.Tensor, params: dict[str, dict]) -> tuple[torch.Tensor, torch.Tensor]:
        """Integer-exact: z int [N, C, h, w] in [Z_MIN, Z_MAX] -> int64 (mean in 1/16 units, scale index)."""
        out, _ = self._run_decoder(fast_layout(z.to(torch.float32)), _IntegerOps(params))
        out = out.to(torch.int64)
        return out[:, 0], out[:, 1]

    def _run_decoder(self, z, ops):
        zs = torch.full((self.latent_channels,), self.q_step, device=z.device)
        if self.use_qcm:
            h, hs = ops.conv("qcm_in", z, zs)
            for i in range(self.qcm_blocks):
                h, hs = ops.residual(f"qcm{i}", h, hs)
            c = ops.compensation("qcm_out", h, hs)
            y, ys = z * (1 << COMP_BITS) + c, zs / (1 << COMP_BITS)  # global shortcut: y_c = z q + c
        else:
            y, ys = z, zs
        x, s = ops.conv("dec_in", y, ys)
        for level in range(self.levels):
            x = F.interpolate(x, scale_factor=2, mode="nearest")  # a copy: exact
            x, s = ops.conv(f"up{level}a", x, s)
            x, s = ops.conv(f"up{level}b", x, s)
        return ops.conv("head", x, s)

    def input_bound(self, name: str) -> int:
        """Largest |integer input| of a layer (for the exactness bound of its export)."""
        if name == "qcm_in" or (name == "dec_in" and not self.use_qcm):
            return max(-Z_MIN, Z_MAX)
        if name == "dec_in":
            return max(-Z_MIN, Z_MAX) * (1 << COMP_BITS) + COMP_MAX
        return ACT_MAX

    def export_integer(self) -> dict[str, dict]:
        """Integer parameters of every decoder layer (the model file's content)."""
        self.set_mode(quantised=True)
        ops = _TrainOps(self, record=True)
        with torch.no_grad():
            self._run_decoder(torch.zeros(1, self.latent_channels, 2, 2), ops)
        return {name: layer.export(*ops.seen[name]) for name, layer in self.layers.items()}

    def float_state(self) -> dict[str, dict[str, torch.Tensor]]:
        """The encoder-only GMSM weights, float32, as {layer: {name: tensor}} for the model file."""
        out: dict[str, dict[str, torch.Tensor]] = {}
        for key, value in self.gmsm.state_dict().items():
            layer, name = key.rsplit(".", 1)
            out.setdefault(layer.replace(".", "_"), {})[name] = value.detach().float().cpu().clone()
        return out

    def load_float_state(self, state: dict[str, dict[str, torch.Tensor]]) -> None:
        flat = {}
        for key in self.gmsm.state_dict():
            layer, name = key.rsplit(".", 1)
            flat[key] = state[layer.replace(".", "_")][name]
        self.gmsm.load_state_dict(flat)


class _TrainOps:
    def __init__(self, net: LVPNet, record: bool = False):
        self.net = net
        self.record = record
        self.seen: dict[str, tuple[torch.Tensor, int]] = {}

    def conv(self, name, x, s):
        if self.record:
            self.seen[name] = (s.detach().cpu().clone(), self.net.input_bound(name))
        return self.net.layers[name](x, s)

    def residual(self, prefix, x, s):
        """x + body(x) in x's own integer units, saturated like a ReLU activation."""
        r, rs = self.conv(prefix + "a", x, s)
        layer = self.net.layers[prefix + "b"]
        layer.out_mult = (1.0 / s).detach().to(x.device)  # the residual comes out in x's units
        out, _ = self.conv(prefix + "b", r, rs)
        if layer.quantised:
            return (x + round_ste(out * layer.out_mult.view(1, -1, 1, 1))).clamp(0, ACT_MAX), s
        return F.relu(x + out), s

    def compensation(self, name, h, s):
        layer = self.net.layers[name]
        c, _ = self.conv(name, h, s)
        c = c * layer.out_mult.view(1, -1, 1, 1)
        if layer.quantised:
            c = round_ste(c)
        return c.clamp(0, COMP_MAX)  # the paper's ReLU output: the floor only ever lowers y


class _IntegerOps:
    def __init__(self, params: dict[str, dict]):
        self.params = params

    def _acc(self, name, x):
        layer = self.params[name]
        return layer, exact_conv(x, layer, padding=layer["weight"].shape[-1] // 2)

    def conv(self, name, x, _s):
        layer, acc = self._acc(name, x)
        if name == "head":
            return requantise(acc, layer, None, None), None
        return requantise(acc, layer, 0, ACT_MAX), None

    def residual(self, prefix, x, s):
        r, _ = self.conv(prefix + "a", x, s)
        layer, acc = self._acc(prefix + "b", r)
        return (x + requantise(acc, layer, None, None).to(torch.float32)).clamp_(0, ACT_MAX), None

    def compensation(self, name, h, _s):
        layer, acc = self._acc(name, h)
        return requantise(acc, layer, 0, COMP_MAX)
