"""benchmarks/decode_back_to_back.py: it decodes the given streams with both checkouts and reports each
file's best time per round and the totals' ratio."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from medcodec import codec

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
import decode_back_to_back  # noqa: E402


def test_both_trees_decode_every_file_and_the_ratio_is_of_the_totals(tmp_path, monkeypatch):
    plane = (np.add.outer(np.arange(40), np.arange(36)) * 3 % 251).astype(np.uint8)
    stream = tmp_path / "ramp.mlc"
    stream.write_bytes(codec.encode(plane, mode="classical"))
    out = tmp_path / "result.json"
    monkeypatch.setattr(sys, "argv", ["decode_back_to_back.py", str(ROOT), str(ROOT), str(stream), "--rounds", "1",
                                      "--out", str(out)])
    decode_back_to_back.main()
    result = json.loads(out.read_text())
    assert result["files"] == ["ramp.mlc"] and len(result["rounds"]) == 1
    assert set(result["rounds"][0]) == {"old", "new"} and all(t > 0 for t in result["total_s"].values())
    assert result["speedup"] > 0  # old total / new total (the totals are rounded to ms: a tiny file's are near 0)
