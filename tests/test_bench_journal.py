"""The bench's journal: a run appends each image's record as it is measured, a rerun takes them instead of
measuring again, a run cut short resumes, and a journal of other settings or code is refused."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from medcodec.bench import journal
from medcodec.bench.cli import bench_command
from medcodec.bench.runner import BenchSettings, run_bench
from medcodec.errors import InvalidInputError


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "images"
    root.mkdir()
    rng = np.random.default_rng(0)
    for k in range(3):
        np.save(root / f"{k}.npy", rng.integers(0, 256, (24 + k, 20)).astype(np.uint8))
    return root


def _settings() -> BenchSettings:
    return BenchSettings(modes=[], codecs=["jxl9", "png"])


def _never(raw: bytes):
    pytest.fail("an image the journal holds was measured again")


def _sizes(records: list[dict]) -> dict[str, dict[str, int]]:
    return {Path(r["path"]).name: {name: result["bytes"] for name, result in r["results"].items()} for r in records}


def test_a_rerun_takes_every_record_from_the_journal(folder: Path, tmp_path: Path) -> None:
    path = tmp_path / "run.jsonl"
    first = run_bench([folder], _settings(), progress=False, journal=path)
    lines = path.read_text().splitlines()
    assert json.loads(lines[0])["settings"] == {"modes": [], "codecs": ["jxl9", "png"], "device": "auto",
                                                 "threads": 1}
    assert [json.loads(line)["path"] for line in lines[1:]] == [r["path"] for r in first]
    settings = _settings()
    again = run_bench([folder], settings, progress=False, journal=path, loader=_never)
    assert _sizes(again) == _sizes(first)
    assert any(note.startswith("3 of 3 image(s) taken from the journal") for note in settings.notes)
    assert path.read_text().splitlines() == lines  # nothing appended


def test_a_run_cut_short_resumes_where_it_stopped(folder: Path, tmp_path: Path) -> None:
    whole = tmp_path / "whole.jsonl"
    first = run_bench([folder], _settings(), progress=False, journal=whole)
    lines = whole.read_text().splitlines(keepends=True)
    cut = tmp_path / "cut.jsonl"
    cut.write_text("".join(lines[:2]) + lines[2][:40])  # the header, one image, half of the next one's line
    measured = []

    def counting(raw: bytes):
        from medcodec.io.source import load

        measured.append(len(raw))
        return load(raw)

    resumed = run_bench([folder], _settings(), progress=False, journal=cut, loader=counting)
    assert len(measured) == 2  # the half-written image and the one after it
    assert _sizes(resumed) == _sizes(first)
    assert [json.loads(line)["path"] for line in cut.read_text().splitlines()[1:]] == [r["path"] for r in first]


@pytest.mark.parametrize("change", [
    lambda header: {**header, "settings": {**header["settings"], "codecs": ["jxl9"]}},
    lambda header: {**header, "code": "0" * 16},
    lambda header: {**header, "journal": 99},
    lambda header: ["not", "a", "header"],
], ids=["settings", "code", "version", "not-a-journal"])
def test_a_journal_of_other_settings_or_code_is_refused(folder: Path, tmp_path: Path, change) -> None:
    path = tmp_path / "run.jsonl"
    run_bench([folder], _settings(), progress=False, journal=path)
    lines = path.read_text().splitlines()
    path.write_text("\n".join([json.dumps(change(json.loads(lines[0])))] + lines[1:]) + "\n")
    with pytest.raises(InvalidInputError, match="delete this one"):
        run_bench([folder], _settings(), progress=False, journal=path, loader=_never)


def test_a_damaged_record_is_refused_not_skipped(folder: Path, tmp_path: Path) -> None:
    path = tmp_path / "run.jsonl"
    run_bench([folder], _settings(), progress=False, journal=path)
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:2] + ["{garbage"] + lines[3:]) + "\n")
    with pytest.raises(InvalidInputError, match="damaged at line 3"):
        run_bench([folder], _settings(), progress=False, journal=path)


def test_the_code_id_follows_the_sources(monkeypatch, tmp_path: Path) -> None:
    before = journal.code_id()
    assert before == journal.code_id() and len(before) == 16
    monkeypatch.setattr(journal.models, "manifest", lambda: {"models": {"lch-v2": {"sha256": "other"}}})
    assert journal.code_id() != before  # other weights: other code


def test_the_command_line_resumes_and_says_so(folder: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    args = [str(folder), "--mode", "none", "--codecs", "jxl9,png", "--journal", str(tmp_path / "j.jsonl")]
    first = runner.invoke(bench_command, args)
    assert first.exit_code == 0, first.output
    second = runner.invoke(bench_command, args)
    assert second.exit_code == 0 and "3 of 3 image(s) taken from the journal" in second.output
    refused = runner.invoke(bench_command, args[:-3] + ["jxl9", "--journal", str(tmp_path / "j.jsonl")])
    assert refused.exit_code != 0 and "other settings" in refused.output
