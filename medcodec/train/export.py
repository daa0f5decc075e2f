"""Turn a training checkpoint (any method) into committed integer weights plus their manifest entry.

    python -m medcodec.train.export runs/gpu1/checkpoint.pt --id lch-v2 --crops-manifest ... --command "..."

(``python -m medcodec.train ... --export ID`` does the same at the end of a run.)
"""

from __future__ import annotations

import argparse
from pathlib import Path

from .publish import provenance
from .trainer import export


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", type=Path)
    p.add_argument("--id", required=True)
    p.add_argument("--crops-manifest", type=Path, help="data manifest written by medcodec.train.crops")
    p.add_argument("--command", default="", help="the training command, recorded in the manifest")
    args = p.parse_args(argv)
    entry = export(args.checkpoint, args.id, provenance(args.command, args.crops_manifest))
    print(f"{args.id}: {entry['file']} sha256 {entry['sha256']}")


if __name__ == "__main__":
    main()
