"""benchmarks/gpu_cpu_crosscheck.py: its packed planes come back exactly, one plane's check, and compare."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from medcodec.io.source import load

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
crosscheck = pytest.importorskip("gpu_cpu_crosscheck")


def test_packed_planes_are_the_corpus_planes(tmp_path):
    corpus = tmp_path / "corpus"
    (corpus / "ct").mkdir(parents=True)
    rng = np.random.default_rng(3)
    signed = rng.integers(-1024, 3000, (24, 20)).astype(np.int16)
    wide = rng.integers(0, 65536, (9, 13)).astype(np.uint16)
    np.save(corpus / "ct" / "signed.npy", signed)
    np.save(corpus / "wide.npy", wide)
    crosscheck.pack(corpus, tmp_path / "packed")
    unpacked = {file: (plane, bits) for file, plane, bits in crosscheck.packed_planes(tmp_path / "packed")}
    assert set(unpacked) == {"ct/signed.npy", "wide.npy"}
    for file in unpacked:  # what the codec's loader gives (a signed plane as stored, offset or not)
        source = load(corpus / file)
        plane, bits = unpacked[file]
        assert plane.dtype == source.planes[0].dtype and np.array_equal(plane, source.planes[0])
        assert bits == source.bits


def test_a_tampered_pack_is_refused(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    np.save(corpus / "a.npy", np.arange(64, dtype=np.uint16).reshape(8, 8))
    crosscheck.pack(corpus, tmp_path / "packed")
    index = json.loads((tmp_path / "packed" / crosscheck.PLANES_INDEX).read_text())
    index[0]["offset"] += 1
    (tmp_path / "packed" / crosscheck.PLANES_INDEX).write_text(json.dumps(index))
    with pytest.raises(SystemExit, match="does not unpack"):
        list(crosscheck.packed_planes(tmp_path / "packed"))


def test_one_plane_checked_and_two_runs_compared(tmp_path):
    plane = (np.add.outer(np.arange(40), np.arange(36)) * 7 % 1000).astype(np.uint16)
    crosscheck._start_worker(["fast"], "cpu", "cpu", reencode=True, deadline=float("inf"))
    record = crosscheck._check(("fast", "ramp.npy", plane, 10))
    assert record["status"] == "ok" and record["decoded_exactly"] and record["encoders_agree"]
    crosscheck._WORKER["deadline"] = 0.0
    assert crosscheck._check(("fast", "ramp.npy", plane, 10))["status"] == "not run (deadline)"

    first, second, out = tmp_path / "a.json", tmp_path / "b.json", tmp_path / "c.json"
    first.write_text(json.dumps({"images": [record]}))
    second.write_text(json.dumps({"images": [dict(record)]}))
    assert crosscheck.compare(argparse.Namespace(first=first, second=second, out=out)) == 0
    assert json.loads(out.read_text())["summary"]["fast"] == {"planes": 1, "same_streams": 1,
                                                              "decoded_exactly_both": 1}
    second.write_text(json.dumps({"images": [dict(record, streams_sha256="0" * 64)]}))
    assert crosscheck.compare(argparse.Namespace(first=first, second=second, out=out)) == 1
