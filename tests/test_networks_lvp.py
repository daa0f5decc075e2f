"""LVPNet: the integer decoder equals the quantised training graph, whatever threads, backend or banding."""

import pytest
import torch

from medcodec.networks.lvp import COMP_MAX, Z_MAX, Z_MIN, LVPNet
from medcodec.networks.quant import requant_dtype
from medcodec.train.latent import batch_bits

from torch_configs import under_two_configurations


def tiny_net(seed: int = 0, **kwargs) -> LVPNet:
    """A small LVPNet with calibrated ranges; weights scaled up so the outputs vary from pixel to pixel."""
    torch.manual_seed(seed)
    net = LVPNet(widths=(8, 8, 8, 8), qcm_width=8, qcm_blocks=2, **kwargs)
    with torch.no_grad():
        for p in net.layers.parameters():
            p.mul_(3.0)
    net.set_mode(quantised=False, calibrating=True)
    with torch.no_grad():
        net(net.latent(torch.randint(0, 1024, (2, 1, 32, 32)).float()))
    net.set_mode(quantised=True)
    return net


@pytest.mark.parametrize("use_qcm", [True, False], ids=["qcm", "no-qcm"])
def test_integer_decoder_equals_quantised_training_graph(use_qcm):
    net = tiny_net(use_qcm=use_qcm)
    params = net.export_integer()
    z = torch.randint(Z_MIN, Z_MAX + 1, (2, 4, 5, 6))
    with torch.no_grad():
        mu, ell = net(z.float())
    mu_i, ell_i = net.forward_integer(z, params)
    assert mu_i.shape == (2, 40, 48) and mu_i.dtype == torch.int64
    assert mu_i.unique().numel() > 20  # a non-trivial prediction
    # float32 training and exact integers differ only by rounding ties, which can cascade by a unit or two
    diff = (torch.floor(mu + 0.5) - mu_i).float()
    assert (diff.abs() <= 1).float().mean() > 0.95 and abs(float(diff.mean())) < 0.1
    assert ((torch.floor(ell + 0.5) - ell_i).abs() <= 1).float().mean() > 0.95


def test_integer_decoder_same_under_threads_onednn_and_batch():
    net = tiny_net(seed=3)
    params = net.export_integer()
    z = torch.randint(Z_MIN, Z_MAX + 1, (3, 4, 7, 5))
    one, other = under_two_configurations(lambda: net.forward_integer(z, params))
    single = net.forward_integer(z[1:2], params)
    assert torch.equal(one[0], other[0]) and torch.equal(one[1], other[1])
    assert torch.equal(single[0][0], one[0][1])


def test_exported_layers_are_int8_with_exact_bounds():
    net = tiny_net()
    params = net.export_integer()
    assert set(params) == set(net.layers)
    for layer in params.values():
        assert layer["weight"].dtype == torch.int8
        requant_dtype(layer)  # raises when a layer could leave float64's exact range
    # the first decoder layer sees z * 16 + c, not an activation
    first = params["dec_in"]
    assert int(first["bound"]) >= int(first["weight"].to(torch.int64).abs().sum(dim=(1, 2, 3)).max()) * (
        128 * 16 + COMP_MAX)


def test_gmsm_keeps_feature_volume_and_plain_variant_differs():
    net, plain = tiny_net(), tiny_net(plain=True)
    x = torch.rand(1, 1, 24, 16) * 1023
    assert net.latent(x).shape == (1, 4, 3, 2) == plain.latent(x).shape
    assert net.latent_shape(17, 9) == (4, 3, 2)
    f = x
    for down, mix in zip(net.gmsm.down, net.gmsm.mix):
        f = mix(down(f))
        assert f.numel() == x.numel()  # f_{t+1} = Conv(f_t) + Pool(f_t): 4C x H/2 x W/2


def test_training_loss_is_finite_and_reaches_every_part():
    net = tiny_net()
    crops = torch.randint(0, 4096, (2, 32, 32))
    bits = batch_bits(net, crops, torch.zeros(2, dtype=torch.int64), torch.full((2,), 4))
    bits["total"].backward()
    assert torch.isfinite(bits["total"]) and float(bits["z"].detach()) > 0
    assert net.gmsm.sample.weight.grad.abs().sum() > 0  # through the straight-through floor
    assert net.layers["qcm_in"].conv.weight.grad.abs().sum() > 0
    assert net.prior_log_scale.grad.abs().sum() > 0
