"""Where a mode's encoding time goes, step by step, and what each step of the raster analysis saves.

Whole files are coded by ``codec.encode`` while the raster analysis' steps (``raster.analysis.analyse``) and the
subimage path are timed from outside: each step's seconds, how often the candidate it built was kept
(it is kept when a later step starts from it or it is the analysis coded), and the estimated bytes it
saved where kept. Nothing in the codec changes: the files' bytes are the ones ``medcodec encode`` writes.

    python benchmarks/encoder_steps.py [--corpus ../shared/corpus/train] [--mode fast] [--per-folder 3]
        [--folders ...] [--out benchmarks/results/encoder_steps_fast.json]

Files as ``raster_option_ablation.py`` picks them (every file under --folders, --per-folder of the
others). Run it on the train split to decide; its numbers are estimates (ideal code lengths plus side
information), not coded sizes.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import os
import sys
import time
import weakref
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from raster_option_ablation import pick  # noqa: E402

from medcodec import codec, parallel  # noqa: E402
from medcodec.pipelines import raster, subimage  # noqa: E402

# (step, Analysis method): the raster analysis' steps that build a candidate analysis from another, in
# the order analysis.analyse takes them ("first analysis" and "block classes" are module functions)
CANDIDATE_STEPS = (("refit checks", "without_output_fit"), ("refit checks", "without_correction"),
                   ("stacked corrections", "with_second_correction"), ("local least squares", "with_local_ls"))
# (step, Analysis method): offers that change the analysis in place where they pay, in analyse's order
OFFERS_IN_PLACE = (("learned scales", "offer_learned_scales"), ("per-class scale offsets", "offer_key_offsets"),
                   ("tap-difference weights", "offer_difference_weights"))


class StepLog:
    """Seconds per step; per candidate analysis its step, a weak reference (a large plane's analyses are
    ~1 GB: the codec drops them as it goes, and so must this), the estimate it started from, its own, and
    whether it was kept; estimated bytes saved in place (the learned scales)."""

    def __init__(self) -> None:
        self.seconds: collections.Counter = collections.Counter()
        self.candidates: list[list] = []  # [step, weakref, estimate before, own estimate, kept]
        self.offers: collections.Counter = collections.Counter()
        self.gains: collections.Counter = collections.Counter()

    def timed(self, step: str, function):
        def run(*args, **kwargs):
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.seconds[step] += time.perf_counter() - start
        return run

    def offer(self, step: str, before: float, candidate) -> None:
        self.offers[step] += 1
        if candidate is not None:
            self.candidates.append([step, weakref.ref(candidate), before, candidate.estimated_bytes(), False])

    def used(self, analysis) -> None:
        """A step started from ``analysis``, or it was coded: the candidate it is was kept."""
        for candidate in self.candidates:
            if candidate[1]() is analysis:
                candidate[4] = True

    def kept(self) -> tuple[collections.Counter, collections.Counter, collections.Counter]:
        """(offers, kept, estimated bytes saved) per step."""
        kept, saved = collections.Counter(), collections.Counter(self.gains)
        for step, _, before, after, used in self.candidates:
            if used:
                kept[step] += 1
                saved[step] += before - after
        return collections.Counter(self.offers), kept, saved


@contextlib.contextmanager
def instrumented(log: StepLog):
    """The raster analysis and the subimage path timed into ``log`` while inside; restored after."""
    module, Analysis = raster.analysis, raster.analysis.Analysis
    originals = [(module, "first_analysis", module.first_analysis),
                 (module, "with_block_classes", module.with_block_classes),
                 (module, "analyse", module.analyse),
                 (Analysis, "streams", Analysis.streams)]
    originals += [(Analysis, name, getattr(Analysis, name)) for _, name in OFFERS_IN_PLACE]
    originals += [(Analysis, name, getattr(Analysis, name)) for _, name in CANDIDATE_STEPS]
    subimage_paths = [(cls, "encode_alternatives", cls.__dict__["encode_alternatives"])
                      for cls in vars(subimage).values()
                      if isinstance(cls, type) and "encode_alternatives" in cls.__dict__]

    def candidate_step(step, function):
        def run(analysis, *args, **kwargs):
            log.used(analysis)
            before = analysis.estimated_bytes()
            out = log.timed(step, function)(analysis, *args, **kwargs)
            log.offer(step, before, out)
            return out
        return run

    def block_classes(analysis, *args, **kwargs):
        before = analysis.estimated_bytes()
        out = log.timed("block classes", originals[1][2])(analysis, *args, **kwargs)
        # the block-class analysis when it won; else the same plane's (rebuilt on a large plane)
        log.offer("block classes", before, out if out.model.block_size else None)
        return out

    def analyse(*args, **kwargs):
        out = originals[2][2](*args, **kwargs)
        log.used(out)
        return out

    def offered_in_place(step, function):  # an offer that changes the analysis itself where it pays
        def run(analysis, *args, **kwargs):
            log.used(analysis)
            before = analysis.estimated_bytes()
            log.timed(step, function)(analysis, *args, **kwargs)
            log.gains[step] += before - analysis.estimated_bytes()
        return run

    module.first_analysis = log.timed("first analysis", originals[0][2])
    module.with_block_classes = block_classes
    module.analyse = analyse
    for step, name in OFFERS_IN_PLACE:
        setattr(Analysis, name, offered_in_place(step, getattr(Analysis, name)))
    Analysis.streams = log.timed("rANS coding", originals[3][2])
    for step, name in CANDIDATE_STEPS:
        setattr(Analysis, name, candidate_step(step, getattr(Analysis, name)))
    for owner, name, function in subimage_paths:
        setattr(owner, name, log.timed("subimage path (LC-H)", function))
    try:
        yield log
    finally:
        for owner, name, function in originals + subimage_paths:
            setattr(owner, name, function)


@contextlib.contextmanager
def one_thread():
    """The codec on one thread while inside, as ``medcodec bench`` times it: a plane's codings run in
    sequence, so the steps' seconds add up to no more than the whole (with two threads, two codings' steps
    run at once and their seconds overlap). torch's threads and OMP_NUM_THREADS are restored after."""
    import torch

    threads, variable = torch.get_num_threads(), os.environ.get("OMP_NUM_THREADS")
    parallel.set_budget(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        if variable is None:
            os.environ.pop("OMP_NUM_THREADS", None)
        else:
            os.environ["OMP_NUM_THREADS"] = variable


def measure(paths, mode: str) -> dict:
    """Per file and in total: encode seconds, bytes, and each step's seconds, offers, keeps and saving."""
    files, total = [], {"encode_s": 0.0, "bytes": 0}
    steps: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for path in paths:
        log = StepLog()
        with one_thread(), instrumented(log):
            start = time.perf_counter()
            blob = codec.encode(path, mode=mode)
            seconds = time.perf_counter() - start
            offered, kept, saved = log.kept()
        files.append({"file": str(path), "bytes": len(blob), "encode_s": round(seconds, 3),
                      "steps_s": {k: round(v, 3) for k, v in log.seconds.items()}})
        total["encode_s"] += seconds
        total["bytes"] += len(blob)
        for step in set(log.seconds) | set(offered) | set(saved):
            steps[step].update({"seconds": log.seconds[step], "offered": offered[step], "kept": kept[step],
                                "saved_bytes": saved[step]})
        print(f"{Path(path).name}: {len(blob)} bytes, {seconds:.2f} s", flush=True)
    summary = {step: {"seconds": round(c["seconds"], 2),
                      "time_share": round(c["seconds"] / total["encode_s"], 4) if total["encode_s"] else 0.0,
                      "offered": c["offered"], "kept": c["kept"], "saved_bytes": round(c["saved_bytes"]),
                      "saved_share": round(c["saved_bytes"] / total["bytes"], 5) if total["bytes"] else 0.0}
               for step, c in sorted(steps.items(), key=lambda item: -item[1]["seconds"])}
    rest = total["encode_s"] - sum(c["seconds"] for c in steps.values())
    summary["rest (JPEG-XL, JPEG history, container)"] = {
        "seconds": round(rest, 2), "time_share": round(rest / total["encode_s"], 4) if total["encode_s"] else 0.0}
    return {"files": files, "total": {"encode_s": round(total["encode_s"], 2), "bytes": total["bytes"]},
            "steps": summary}


def run_steps(coder: str, description: str, measure) -> dict:
    """The command line this script and ``decoder_steps.py`` share (coder: "encoder" or "decoder"): the
    files picked, ``measure(paths, mode)`` on one thread, its result written as JSON and returned."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=Path("../shared/corpus/train"))
    parser.add_argument("--mode", default="fast", choices=("fast", "slow", "latent"))
    parser.add_argument("--per-folder", type=int, default=3)
    parser.add_argument("--folders", nargs="*", default=[], help="folders whose every file is coded")
    parser.add_argument("--out", type=Path, help=f"default: benchmarks/results/{coder}_steps_<mode>.json")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)  # as medcodec bench times it
    result = measure(pick(args.corpus, tuple(args.folders), args.per_folder), args.mode)
    out = args.out or Path(f"benchmarks/results/{coder}_steps_{args.mode}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"corpus": str(args.corpus), "mode": args.mode, "command": " ".join(sys.argv),
                               **result}, indent=1) + "\n")
    return result


def main() -> None:
    result = run_steps("encoder", __doc__, measure)
    for step, row in result["steps"].items():
        kept = f"  kept {row['kept']} of {row['offered']}" if row.get("offered") else ""
        saved = f", saved {row['saved_share']:.3%} of the bytes" if row.get("saved_bytes") else ""
        print(f"{step:42s} {row['time_share']:6.1%} of the time{kept}{saved}")


if __name__ == "__main__":
    main()
