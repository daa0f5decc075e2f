"""benchmarks/encoder_steps.py: it times the raster analysis' steps from outside, changes no byte, and
leaves the codec as it found it."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from medcodec import codec
from medcodec.pipelines import raster

from planes import noisy_ramp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
encoder_steps = pytest.importorskip("encoder_steps")

EXAMPLES = Path(__file__).resolve().parent.parent / "medcodec" / "data" / "examples"


def test_steps_are_timed_and_the_bytes_are_the_codecs(tmp_path):
    np.save(tmp_path / "noisy.npy", noisy_ramp())
    paths = [tmp_path / "noisy.npy", EXAMPLES / "dicom16" / "MR_small.dcm"]
    expected = [len(codec.encode(path, mode="fast")) for path in paths]
    before = (raster.analysis.analyse, raster.analysis.Analysis.streams, raster.analysis.Analysis.with_local_ls)

    threads = torch.get_num_threads()
    result = encoder_steps.measure(paths, "fast")

    assert torch.get_num_threads() == threads  # timed on one thread, the budget given back
    assert (raster.analysis.analyse, raster.analysis.Analysis.streams, raster.analysis.Analysis.with_local_ls) == before
    assert [row["bytes"] for row in result["files"]] == expected
    steps = result["steps"]
    assert {"first analysis", "block classes", "learned scales", "rANS coding"} <= set(steps)
    timed = sum(row["seconds"] for step, row in steps.items() if not step.startswith("rest"))
    assert 0 < timed <= result["total"]["encode_s"] + 0.05
    for row in steps.values():
        if "offered" in row:
            assert 0 <= row["kept"] <= row["offered"]
            assert row["saved_bytes"] >= 0 or row["offered"] == 0  # kept candidates were the smaller ones
    assert steps["block classes"]["offered"] == len(paths)  # one block-class try per raster plane


def test_a_kept_candidate_is_one_a_later_step_started_from():
    log = encoder_steps.StepLog()

    class Candidate:
        def __init__(self, estimate):
            self.estimate = estimate

        def estimated_bytes(self):
            return self.estimate

    taken, dropped = Candidate(90.0), Candidate(95.0)
    log.offer("local least squares", 100.0, taken)
    log.offer("refit checks", 100.0, dropped)
    log.offer("refit checks", 100.0, None)
    log.used(taken)
    offered, kept, saved = log.kept()
    assert offered == {"local least squares": 1, "refit checks": 2}
    assert kept == {"local least squares": 1} and saved == {"local least squares": 10.0}
