"""The weight zoo: model id -> integer weights under models/, checked by sha256, loaded without pickle.

A model file is a safetensors file of *integer* layer parameters (the exact numbers coding uses) with
JSON metadata (architecture and per-network config). ``models/manifest.json`` records, per id, the
file, its sha256, how it was trained (command, commit, data manifest) and its measured bpp. A
container names the id and the sha256 of the weights that made it; decoding with other weights is
refused with ModelMismatchError rather than producing garbage.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .errors import ModelMismatchError

if TYPE_CHECKING:
    import torch

MODELS_ENV = "MEDCODEC_MODELS"


def models_dir() -> Path:
    """Where weights live: $MEDCODEC_MODELS, else the repository's models/ beside the package."""
    env = os.environ.get(MODELS_ENV)
    if env:
        return Path(env)
    return Path(__file__).resolve().parent.parent / "models"


def manifest() -> dict:
    path = models_dir() / "manifest.json"
    if not path.exists():
        return {"models": {}}
    return json.loads(path.read_text())


@dataclass(frozen=True)
class LoadedModel:
    model_id: str
    sha256: bytes
    metadata: dict
    # network -> layer -> tensor name -> array. numpy, so that a raster-only file decodes without
    # importing torch (~1.9 s of a 4.6 s command-line decode of a 0.34 MP radiograph)
    params: dict[str, dict[str, dict[str, np.ndarray]]]

    def torch_params(self) -> dict[str, dict[str, dict[str, "torch.Tensor"]]]:
        """``params`` as CPU torch tensors (copies: the loaded arrays stay read-only and cached)."""
        import torch

        return {net: {layer: {name: torch.from_numpy(np.array(a)) for name, a in tensors.items()}
                      for layer, tensors in layers.items()} for net, layers in self.params.items()}


def load_model(model_id: str) -> LoadedModel:
    """Load and verify the weights of ``model_id`` (sha256 against the manifest).

    Loaded models are cached per models folder, manifest entry and file state (size, mtime): another
    MEDCODEC_MODELS, a new manifest or a replaced file is loaded and verified again.
    """
    entry = manifest()["models"].get(model_id)
    if entry is None:
        raise ModelMismatchError(
            f"model {model_id!r} is not installed (looked in {models_dir()}/manifest.json); "
            "install the medcodec release that ships it or set MEDCODEC_MODELS")
    path = models_dir() / entry["file"]
    try:
        stat = path.stat()
    except OSError:
        raise ModelMismatchError(f"weights file {path} of model {model_id!r} is missing") from None
    return _load_verified(model_id, str(path.resolve()), entry["sha256"], stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=8)
def _load_verified(model_id: str, file: str, sha256_hex: str, size: int, mtime_ns: int) -> LoadedModel:
    from safetensors import safe_open

    path = Path(file)
    blob = path.read_bytes()
    digest = hashlib.sha256(blob).digest()
    if digest.hex() != sha256_hex:
        raise ModelMismatchError(
            f"weights file {path} does not match its manifest hash (tampered or corrupted); reinstall it")
    params: dict = {}
    with safe_open(str(path), framework="numpy") as f:
        metadata = json.loads(f.metadata()["medcodec"])
        for key in f.keys():
            net, layer, name = key.split(".")
            params.setdefault(net, {}).setdefault(layer, {})[name] = f.get_tensor(key)
    return LoadedModel(model_id, digest, metadata, params)


def save_model(path: Path, params: dict[str, dict[str, dict["torch.Tensor"]]], metadata: dict) -> str:
    """Write integer params + metadata as safetensors; returns the file's sha256 (hex)."""
    from safetensors.torch import save_file

    flat = {f"{net}.{layer}.{name}": t.contiguous()
            for net, layers in params.items() for layer, tensors in layers.items() for name, t in tensors.items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(flat, str(path), metadata={"medcodec": json.dumps(metadata, sort_keys=True)})
    return hashlib.sha256(path.read_bytes()).hexdigest()
