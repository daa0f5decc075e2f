"""benchmarks/finer_tree.py: a finer subimage tree's size from the fast path's codings of every level."""

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import finer_tree  # noqa: E402

from medcodec.pipelines.raster.method import RasterMethod  # noqa: E402
from medcodec.pipelines.subimage import FastMethod  # noqa: E402


def test_tree_levels_add_up_from_verified_codings():
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:72, 0:70]
    plane = (120 + 60 * np.sin(x / 6) + 40 * np.cos(y / 5) + rng.normal(0, 4, x.shape)).clip(0, 255).astype(np.uint16)
    fast, raster = FastMethod(device="cpu"), RasterMethod()
    row = finer_tree.measure(fast, raster, plane, 8, 3, "synthetic")
    a_bytes, rest = finer_tree.fast_parts(fast, plane, 8, "synthetic")
    assert row["fast"] == a_bytes + rest and a_bytes > 0
    a_plane = plane[0::2, 0::2]  # 36x35: split again once; its own A (18x18) is too small for a third level
    assert row["tree2"] == rest + sum(finer_tree.fast_parts(fast, a_plane, 8, "A"))
    assert "tree3" not in row
    raster_a = sum(len(s.payload) for s in finer_tree.verified_streams(raster, a_plane, 8, "A"))
    assert row["hybrid"] == rest + raster_a
    assert row["floor"] == rest * plane.size / (plane.size - a_plane.size)
