"""benchmarks/threads.py: one file coded on 1 and 2 threads in fresh processes, the same bytes, the times kept."""

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import threads  # noqa: E402


def test_measure_records_both_thread_counts_with_the_same_file(tmp_path):
    rng = np.random.default_rng(0)
    frames = (rng.normal(2000, 30, (3, 40, 48))).clip(0, 4095).astype(np.uint16)
    path = tmp_path / "frames.npy"
    np.save(path, frames)
    (record,) = threads.measure([f"{path}:fast"], [1, 2])
    assert record["frames"] == 3 and record["pixels"] == frames.size and record["bytes"] > 0
    assert [record["runs"][n]["budget"] for n in ("1", "2")] == [1, 2]
    assert record["runs"]["1"]["encode_speedup"] == 1.0
    assert all(record["runs"][n]["encode_s"] > 0 and record["runs"][n]["decode_s"] > 0 for n in ("1", "2"))
