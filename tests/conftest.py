"""Fixtures shared by several test modules."""

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
