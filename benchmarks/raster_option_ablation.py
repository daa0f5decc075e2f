"""One option of the raster frames, offered and not: whole files coded by ``codec.encode`` both ways, what
it changes per file and in total; every file that changes is decoded and verified. Options:

- ``output-fit``: the per-plane fit of the correction network's output layer (format 2.6,
  ``raster.analysis.Analysis._output_delta``; off: ``raster.analysis.ADAPT_OUTPUT``);
- ``stack``: a second correction network stacked on the first (format 2.7,
  ``raster.analysis.Analysis.with_second_correction``; off: no ``codec.RASTER_STACK``), the slow mode's;
- ``lattice``: the neighbour-value boost's lattice (format 2.8, ``raster.analysis.Analysis._fit_boost``; off: no
  ``raster.analysis.LATTICES``);
- ``phase``: resampling-phase classes (format 2.16, ``raster.phase``; off: ``raster.phase.MIN_STRENGTH``
  infinite, so no plane shows a resampling period);
- ``key-offsets``: per-class scale-key offsets (format 2.17, ``raster.analysis.Analysis.offer_key_offsets``; off:
  ``raster.analysis.KEY_OFFSET_MIN_SAVING`` infinite);
- ``differences``: tap-difference weights instead of the boost (format 2.20,
  ``raster.analysis.Analysis.offer_difference_weights``; off: ``raster.analysis.OFFER_DIFFERENCES``);
- ``agreement``: agreement weights fitted and offered with the tap-difference weights (format 2.21,
  ``raster.differences``; off: ``raster.analysis.OFFER_AGREEMENT``, the 2.20 weights alone).

    python benchmarks/raster_option_ablation.py \
        --option output-fit|stack|lattice|phase|key-offsets|differences|agreement \
        [--corpus ../shared/corpus/train]
        [--mode fast] [--per-folder 3] [--folders dicom16 ...] [--out benchmarks/results/<option>_ablation.json]

Files: every file under the --folders (default dicom16, whose subfolders are several series) and
--per-folder evenly spaced files of every other folder. Run it on the train split to design (the
default), on the test split to report.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from medcodec import codec  # noqa: E402
from medcodec.io.source import is_candidate_file  # noqa: E402
from medcodec.pipelines import raster  # noqa: E402


def offer_output_fit(offered: bool) -> None:
    raster.analysis.ADAPT_OUTPUT = offered


SHIPPED_STACK = dict(codec.RASTER_STACK)  # the modes' pairs, restored when the option is offered


def offer_stack(offered: bool) -> None:
    codec.RASTER_STACK = dict(SHIPPED_STACK) if offered else {}


SHIPPED_LATTICES = raster.analysis.LATTICES


def offer_lattice(offered: bool) -> None:
    raster.analysis.LATTICES = SHIPPED_LATTICES if offered else ()


SHIPPED_MIN_STRENGTH = raster.phase.MIN_STRENGTH


def offer_phase(offered: bool) -> None:
    raster.phase.MIN_STRENGTH = SHIPPED_MIN_STRENGTH if offered else float("inf")


SHIPPED_KEY_OFFSET_MIN_SAVING = raster.analysis.KEY_OFFSET_MIN_SAVING


def offer_key_offsets(offered: bool) -> None:
    raster.analysis.KEY_OFFSET_MIN_SAVING = SHIPPED_KEY_OFFSET_MIN_SAVING if offered else float("inf")


def offer_differences(offered: bool) -> None:
    raster.analysis.OFFER_DIFFERENCES = offered


def offer_agreement(offered: bool) -> None:
    raster.analysis.OFFER_AGREEMENT = offered


OPTIONS = {"output-fit": offer_output_fit, "stack": offer_stack, "lattice": offer_lattice, "phase": offer_phase,
           "key-offsets": offer_key_offsets, "differences": offer_differences, "agreement": offer_agreement}


def pick(corpus: Path, every: tuple[str, ...], per_folder: int) -> list[Path]:
    """All files under the folders named in ``every``, and per_folder evenly spaced files of each other
    folder that holds files."""
    chosen = []
    folders = sorted({p.parent for p in corpus.rglob("*") if p.is_file() and is_candidate_file(p)})
    for folder in folders:
        files = sorted(p for p in folder.iterdir() if p.is_file() and is_candidate_file(p))
        if any(part in every for part in folder.relative_to(corpus).parts):
            chosen += files
        elif files:
            step = max(1, len(files) // per_folder)
            chosen += files[::step][:per_folder]
    return chosen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--option", required=True, choices=sorted(OPTIONS))
    parser.add_argument("--corpus", type=Path, default=Path("../shared/corpus/train"))
    parser.add_argument("--mode", default="fast", choices=("fast", "slow"))
    parser.add_argument("--per-folder", type=int, default=3)
    parser.add_argument("--folders", nargs="*", default=["dicom16"], help="folders whose every file is coded")
    parser.add_argument("--out", type=Path, help="default: benchmarks/results/<option>_ablation.json")
    args = parser.parse_args()
    out = args.out or Path(f"benchmarks/results/{args.option.replace('-', '_')}_ablation.json")
    offer = OPTIONS[args.option]
    import torch

    torch.set_num_threads(1)
    rows = []
    for path in pick(args.corpus, tuple(args.folders), args.per_folder):
        sizes, seconds = {}, {}
        for name, offered in (("without", False), ("with", True)):
            offer(offered)
            start = time.perf_counter()
            blob = codec.encode(path, mode=args.mode)
            seconds[name], sizes[name] = round(time.perf_counter() - start, 2), len(blob)
            if offered and sizes["with"] != sizes["without"]:
                codec.decode(blob)  # verifies the pixels and the whole file, or raises
        rows.append({"file": str(path.relative_to(args.corpus)), "bytes": sizes, "encode_s": seconds})
        print(rows[-1]["file"], sizes["without"], sizes["with"],
              f"{100 * (sizes['with'] / sizes['without'] - 1):+.2f} %", flush=True)
    total = {k: sum(r["bytes"][k] for r in rows) for k in ("without", "with")}
    changed = [r for r in rows if r["bytes"]["with"] != r["bytes"]["without"]]
    changed_total = {k: sum(r["bytes"][k] for r in changed) for k in ("without", "with")}
    summary = {"files": len(rows), "changed": len(changed), "bytes": total, "changed_bytes": changed_total,
               "change": round(total["with"] / total["without"] - 1, 5) if total["without"] else 0.0,
               "change_where_changed": round(changed_total["with"] / changed_total["without"] - 1, 5)
               if changed else 0.0,
               "larger": sum(r["bytes"]["with"] > r["bytes"]["without"] for r in rows)}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"corpus": str(args.corpus), "option": args.option, "mode": args.mode,
                               "command": " ".join(sys.argv), "summary": summary, "files": rows}, indent=1) + "\n")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
