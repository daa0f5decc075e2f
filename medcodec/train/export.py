"""Turn a training checkpoint into committed integer weights plus their manifest entry.

    python -m medcodec.train.export runs/gpu1/checkpoint.pt --id lch-v2 --crops-manifest ... --command "..."
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from ..entropy.residual_model import tables_sha256
from ..pipelines import split as sp
from .publish import git_commit, publish_model
from .trainer import DEFAULT_WIDTHS, build_networks

ARCHITECTURE = "lch-se-unet-int8/v1"


def export(checkpoint: Path, model_id: str, extra: dict) -> dict:
    ckpt = torch.load(checkpoint, map_location="cpu", weights_only=True)
    first = ckpt["nets"][sp.PREDICTED[0]]
    widths = tuple(int(first[f"layers.enc{i}a.conv.weight"].shape[0]) for i in range(len(DEFAULT_WIDTHS))
                   if f"layers.enc{i}a.conv.weight" in first)
    nets = build_networks(widths)
    params = {}
    for target, net in nets.items():
        net.load_state_dict(ckpt["nets"][target])
        if not bool((net.layers["enc0a"].act_range > 0).item()):
            raise SystemExit("checkpoint has no calibrated activation ranges: train into the QAT phase first")
        params[target] = net.export_integer()
    metadata = {
        "architecture": ARCHITECTURE,
        "networks": {t: n.config() for t, n in nets.items()},
        "residual_tables_sha256": tables_sha256(),
        "checkpoint_step": int(ckpt["step"]),
    }
    return publish_model(model_id, params, metadata, extra)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", type=Path)
    p.add_argument("--id", required=True)
    p.add_argument("--crops-manifest", type=Path, help="data manifest written by medcodec.train.crops")
    p.add_argument("--command", default="", help="the training command, recorded in the manifest")
    args = p.parse_args(argv)
    extra = {"training_command": args.command, "code_commit": git_commit()}
    if args.crops_manifest:
        data = json.loads(args.crops_manifest.read_text())
        extra["data_manifest"] = data
    entry = export(args.checkpoint, args.id, extra)
    print(f"{args.id}: {entry['file']} sha256 {entry['sha256']}")


if __name__ == "__main__":
    main()
