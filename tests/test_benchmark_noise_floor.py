"""benchmarks/noise_floor.py: both noise estimates recover the noise of a smooth plane plus white noise."""

import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import noise_floor  # noqa: E402


def test_gaussian_entropy_is_the_differential_entropy_for_wide_noise():
    assert abs(noise_floor.gaussian_entropy(8.0) - math.log2(8.0 * math.sqrt(2 * math.pi * math.e))) < 1e-3
    assert noise_floor.gaussian_entropy(0.05) < 1e-6  # all mass on one value: no bits


def test_both_estimates_find_the_noise_under_a_smooth_signal():
    rng = np.random.default_rng(1)
    y, x = np.mgrid[0:256, 0:256]
    signal = 2000 + 400 * np.sin(x / 40) + 300 * np.cos(y / 55) + 0.5 * x
    plane = np.round(signal + rng.normal(0, 4.0, signal.shape)).astype(np.uint16)
    assert abs(noise_floor.corner_sigma(plane) - 4.0) < 0.15
    sigmas = noise_floor.block_sigmas(plane)
    assert sigmas.size == (254 // 16) ** 2 and abs(float(np.median(sigmas)) - 4.0) < 0.3
    row = noise_floor.measure(plane, 16)
    assert abs(row["blocks bpp"] - noise_floor.gaussian_entropy(4.0)) < 0.1 and row["jxl9 bpp"] > row["blocks bpp"]
