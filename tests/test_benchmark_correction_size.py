"""benchmarks/correction_size.py: one plane coded with each shipped correction, decoded and timed."""

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import correction_size  # noqa: E402


def test_measure_codes_decodes_and_compares_both_networks(tmp_path):
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:48, 0:64]
    plane = (2000 + 300 * np.sin(x / 5) + 200 * np.cos(y / 4) + rng.normal(0, 20, x.shape)).astype(np.uint16)
    path = tmp_path / "plane.npy"
    np.save(path, plane)
    record = correction_size.measure(path)
    assert record["pixels"] == plane.size and record["bits"] == 16  # a uint16 .npy: 16-bit planes
    for name in correction_size.NETWORKS:
        assert record[name]["bytes"] > 0 and record[name]["decode_s"] > 0
    large, small = (record[n]["bytes"] for n in correction_size.NETWORKS)
    assert record["bytes_change"] == round(small / large - 1, 5)
