"""Publishing trained weights into models/: the safetensors file and its manifest entry, for every
architecture (subimage and latent exports both end here, so the manifest has one writer)."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import torch

from ..models import models_dir, save_model


def publish_model(model_id: str, params: dict, metadata: dict, extra: dict) -> dict:
    """Write models/<id>.safetensors and set only this id's entry in models/manifest.json."""
    path = models_dir() / f"{model_id}.safetensors"
    digest = save_model(path, params, metadata)
    entry = {"file": path.name, "sha256": digest, **metadata, **extra}
    manifest_path = models_dir() / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {"models": {}}
    manifest["models"][model_id] = entry
    manifest_path.write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return entry


def provenance(command: str, crops_manifest: Path | None) -> dict:
    """The manifest fields saying how weights were made: training command, code commit, data manifest."""
    extra = {"training_command": command, "code_commit": git_commit()}
    if crops_manifest:
        extra["data_manifest"] = json.loads(Path(crops_manifest).read_text())
    return extra


def git_commit() -> str:
    """The commit the weights were trained and exported from, for the manifest."""
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def publish_warm_start(model_id: str, checkpoint: dict, method: str) -> dict:
    """models/<id>.warm-start.pt: the run's float training state (networks, config, step; no optimiser),
    so training can continue on a fresh machine with ``python -m medcodec.train --init <file>``.
    Replaced, never accumulated: one per published model. Loads with weights_only=True."""
    path = models_dir() / f"{model_id}.warm-start.pt"
    state = {"method": method, "config": checkpoint.get("config", {}), "step": int(checkpoint["step"]),
             "nets": checkpoint["nets"] if "nets" in checkpoint else {"latent": checkpoint["state"]}}
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    tmp.replace(path)
    return {"file": path.name, "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}
