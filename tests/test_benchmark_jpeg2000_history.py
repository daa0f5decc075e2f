"""benchmarks/jpeg2000_history.py: a decoded lossy JPEG 2000 plane's sizes, its fast-mode file smaller with the
JPEG 2000 candidate than without it."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import jpeg2000_history as benchmark  # noqa: E402

from medcodec.pipelines import jpeg2000_history  # noqa: E402
from planes import jpeg2000_history as history_plane  # noqa: E402


def test_measure_shows_what_the_candidate_saves():
    plane = history_plane()
    row = benchmark.measure(plane, 12)
    assert row["fast"] < row["fast without jpeg2000"] and row["fast / fast without"] < 1
    assert row["jpeg2000"] < row["jpeg2000 off the grid"] and row["jpeg2000"] < row["jxl9"]
    assert abs(row["jpeg2000 bpp"] - 8 * row["jpeg2000"] / plane.size) < 1e-3
    assert jpeg2000_history.carries_history.__module__ == jpeg2000_history.__name__  # the test put it back
