"""benchmarks/latent_ceiling.py: the discretised Laplace is a distribution, the factorised residual coder
prices white Laplace noise at its entropy, and a lossy point adds up its parts."""

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import latent_ceiling  # noqa: E402


def test_discretised_laplace_sums_to_one():
    values = np.arange(-60000, 60001)  # tails past it: exp(-30) at the widest scale
    for scale in (0.05, 1.0, 37.5, 2000.0):
        assert abs(float(np.sum(2.0 ** -latent_ceiling.laplace_bits(scale, values))) - 1.0) < 1e-6


def test_factorised_residual_prices_laplace_noise_at_its_entropy():
    rng = np.random.default_rng(3)
    scale = 6.0
    residual = np.round(rng.laplace(0, scale, (96, 80))).astype(np.int64)
    bits, scale_bits = latent_ceiling.factorised_residual_bits(residual)
    entropy = float(np.mean(latent_ceiling.laplace_bits(scale, residual)))
    # the best scale per block fits each block's sample a little better than the true scale does
    assert entropy - 0.15 < bits / residual.size < entropy
    assert 0 < scale_bits < 6 * (96 // 8) * (80 // 8)


def test_lossy_point_adds_latent_residual_and_scale_bits():
    y, x = np.mgrid[0:64, 0:64]
    plane = (2000 + 500 * np.sin(x / 9) + 300 * np.cos(y / 7)).astype(np.int64)
    point = latent_ceiling.lossy_point(plane - plane.min(), 12, 1.0)
    assert point["latent_bits"] > 0 and point["residual_bits"] > 0
    assert point["total_bits"] == point["latent_bits"] + point["residual_bits"] + point["scale_bits"]
