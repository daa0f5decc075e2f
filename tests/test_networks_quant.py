"""The integer path is exact: same integers on any summation order, thread count, backend or batch."""

import numpy as np
import pytest
import torch

from medcodec.networks.lch import INPUT_MAX, LCHNet
from medcodec.networks.quant import EXACT_F32, exact_conv, requant_dtype


def _trained_like_net(in_channels=2, widths=(8, 12, 16), seed=0) -> LCHNet:
    """A small net with calibrated activation ranges, as export requires."""
    torch.manual_seed(seed)
    net = LCHNet(in_channels, widths)
    net.set_mode(quantised=False, calibrating=True)
    with torch.no_grad():
        net(torch.randint(0, INPUT_MAX + 1, (2, in_channels, 32, 32)).float())
    net.set_mode(quantised=True)
    return net


def _random_layer(cin=24, cout=16, kernel=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    w = torch.randint(-127, 128, (cout, cin, kernel, kernel), generator=g, dtype=torch.int64).to(torch.int8)
    bias = torch.randint(-5000, 5000, (cout,), generator=g)
    shift = torch.randint(0, 12, (cout,), generator=g)
    bound = int((w.abs().to(torch.int64).sum(dim=(1, 2, 3)) * 255 + bias.abs()).max())
    return {"weight": w, "bias": bias, "shift": shift, "offset": torch.tensor(0), "bound": torch.tensor(bound)}


def test_exact_conv_equals_int64_reference():
    layer = _random_layer()
    x = torch.randint(0, 256, (1, 24, 40, 37)).float()
    got = exact_conv(x, layer, padding=1)
    # reference: int64 arithmetic, one multiply-add at a time
    xi = torch.nn.functional.pad(x.to(torch.int64), (1, 1, 1, 1))
    acc = torch.zeros(1, 16, 40, 37, dtype=torch.int64)
    w = layer["weight"].to(torch.int64)
    for dy in range(3):
        for dx in range(3):
            acc += torch.einsum("oc,nchw->nohw", w[:, :, dy, dx], xi[:, :, dy:dy + 40, dx:dx + 37])
    shift = layer["shift"].view(1, -1, 1, 1)
    half = torch.where(shift > 0, 1 << (shift - 1).clamp_min(0), torch.zeros_like(shift))
    expected = torch.div(acc + layer["bias"].view(1, -1, 1, 1) + half, 1 << shift, rounding_mode="floor")
    assert torch.equal(torch.floor(got).to(torch.int64), expected)


def test_exact_conv_over_channel_groups_equals_the_concatenation():
    # the U-Net's skip concatenations are never copied: each group meets its slice of the weights
    layer = _random_layer()
    x = torch.randint(0, 256, (1, 24, 33, 29)).float()
    whole = exact_conv(x, layer, padding=1)
    assert torch.equal(exact_conv([x[:, :10], x[:, 10:]], layer, padding=1), whole)
    assert torch.equal(exact_conv([x[:, :3], x[:, 3:17], x[:, 17:]], layer, padding=1), whole)
    with pytest.raises(ValueError, match="input channels"):
        exact_conv([x[:, :10]], layer, padding=1)


@pytest.mark.parametrize("width", [37, 4000, 70000])
def test_squeeze_excite_mean_is_exact_for_any_row_length(width):
    # its channel sums run in float32 over bands of rows short enough to stay exact (16 rows per band
    # at 4000 wide; in float64 when one row is too long): each must equal the int64 sum
    from medcodec.networks.lch import _IntegerOps

    torch.manual_seed(width)
    x = torch.randint(200, 256, (1, 4, 5 if width > 10000 else 40, width)).float()
    seen = {}

    class Probe(_IntegerOps):
        def conv(self, name, inputs, _s):
            seen.setdefault(name, inputs)
            return torch.zeros(1, 4, 1, 1), None

    Probe({}).squeeze_excite("se0", x, None)
    expected = torch.div(x.to(torch.int64).sum(dim=(2, 3), keepdim=True), x.shape[2] * width, rounding_mode="floor")
    assert torch.equal(seen["se0a"], expected.float())


def test_requant_dtype_follows_the_bound():
    layer = _random_layer()
    assert requant_dtype(layer) == torch.float32
    layer["bound"] = torch.tensor(EXACT_F32)
    assert requant_dtype(layer) == torch.float64


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("mkldnn", [True, False])
def test_integer_forward_is_identical_across_backends_and_threads(threads, mkldnn):
    net = _trained_like_net()
    params = net.export_integer()
    v = torch.randint(0, INPUT_MAX + 1, (1, 2, 48, 40))
    reference = net.forward_integer(v, params)
    old_threads, old_mkldnn = torch.get_num_threads(), torch.backends.mkldnn.enabled
    try:
        torch.set_num_threads(threads)
        torch.backends.mkldnn.enabled = mkldnn
        got = net.forward_integer(v, params)
    finally:
        torch.set_num_threads(old_threads)
        torch.backends.mkldnn.enabled = old_mkldnn
    assert torch.equal(got[0], reference[0]) and torch.equal(got[1], reference[1])


def test_float64_forward_gives_the_same_integers():
    """A float64 evaluation (different kernels, different rounding if anything were inexact) agrees."""
    net = _trained_like_net(seed=3)
    params = net.export_integer()
    v = torch.randint(0, INPUT_MAX + 1, (1, 2, 32, 32))
    a = net.forward_integer(v, params)
    big = {k: dict(layer, bound=torch.tensor(EXACT_F32)) for k, layer in params.items()}  # forces float64
    b = net.forward_integer(v, big)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_batch_gives_the_same_integers_as_single_images():
    net = _trained_like_net(seed=1)
    params = net.export_integer()
    v = torch.randint(0, INPUT_MAX + 1, (3, 2, 32, 32))
    batch = net.forward_integer(v, params)
    for i in range(3):
        single = net.forward_integer(v[i:i + 1], params)
        assert torch.equal(batch[0][i], single[0][0]) and torch.equal(batch[1][i], single[1][0])


def test_integer_forward_tracks_the_quantised_training_forward():
    """The exported integers implement the fake-quantised network (up to rare rounding ties)."""
    net = _trained_like_net(seed=2)
    params = net.export_integer()
    v = torch.randint(0, INPUT_MAX + 1, (1, 2, 32, 32))
    with torch.no_grad():
        delta, ell = net(v.float())
    mu_i, ell_i = net.forward_integer(v, params)
    agree = (torch.floor(delta + 0.5).to(torch.int64) - mu_i).abs() <= 1
    assert agree.float().mean() > 0.95
    assert np.isfinite(ell.numpy()).all()
