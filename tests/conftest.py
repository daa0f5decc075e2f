"""Fixtures shared by several test modules."""

import os
import shutil

import pytest

import medcodec.models


@pytest.fixture
def scratch_models(tmp_path, monkeypatch):
    """A models/ folder of its own (a copy of the manifest, no weights) that exports write to and the
    loader reads from, so a test's training run never touches the shipped models."""
    models = tmp_path / "models"
    models.mkdir()
    shutil.copy(medcodec.models.models_dir() / "manifest.json", models / "manifest.json")
    monkeypatch.setenv(medcodec.models.MODELS_ENV, str(models))
    return models


@pytest.fixture
def torch_threads(monkeypatch):
    """torch.set_num_threads, for tests of the thread budget (parallel.thread_budget): torch's thread count
    and OMP_NUM_THREADS (which parallel.set_budget writes) are put back afterwards."""
    import torch

    before = torch.get_num_threads()
    monkeypatch.setenv("OMP_NUM_THREADS", os.environ.get("OMP_NUM_THREADS", ""))  # restored at teardown
    if not os.environ["OMP_NUM_THREADS"]:
        monkeypatch.delenv("OMP_NUM_THREADS")
    yield torch.set_num_threads
    torch.set_num_threads(before)
