"""Where a mode's decoding time goes, stage by stage of the raster decoder (which decodes most pixels).

Files are coded by ``codec.encode`` (not timed) and decoded by ``codec.decode`` while the raster
decoder's stages are timed from outside: the functions and methods ``pipelines/raster/decoder.py``
calls once per wavefront are wrapped for the duration (the rANS coder through a proxy of constriction's
``AnsCoder``). Nothing in the codec changes: every decode is checked against its checksums as usual,
and the wrapped functions are restored afterwards.

    python benchmarks/decoder_steps.py [--corpus ../shared/corpus/train] [--mode fast] [--per-folder 3]
        [--folders ...] [--out benchmarks/results/decoder_steps_fast.json]

Files as ``raster_option_ablation.py`` picks them (every file under --folders, --per-folder of the
others), one thread as ``medcodec bench`` times them. It answers a design question (which stage a
faster decoder must change first), so run it on the train split.
"""

from __future__ import annotations

import collections
import contextlib
import sys
import time
from pathlib import Path

import constriction

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from encoder_steps import run_steps  # noqa: E402

from medcodec import codec  # noqa: E402
from medcodec.networks import raster_mlp  # noqa: E402
from medcodec.pipelines.raster import coding, decoder, local_ls, wavefront  # noqa: E402

RASTER = "raster frames in all (the stages above)"  # decoder.decode; its stages run inside it
WAVEFRONT = "neighbours, classes, two-stage predictions"  # once per wavefront
OWN = "raster decoder's own Python (per-wavefront indexing, pixel parameters, blend shifts)"
REST = "outside raster frames (other frames' decoders, container, checksums)"


class StageLog:
    """Seconds and calls per stage; the pixels of the raster frames decoded."""

    def __init__(self) -> None:
        self.seconds: collections.Counter = collections.Counter()
        self.calls: collections.Counter = collections.Counter()
        self.raster_pixels = 0
        self.in_raster_frame = False

    def timed(self, stage, function):
        """function, its time added to ``stage`` (a name, or a callable naming it from the call's first
        argument: a method's instance)."""
        def run(*args, **kwargs):
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                name = stage(args[0]) if callable(stage) else stage
                self.seconds[name] += time.perf_counter() - start
                self.calls[name] += 1
        return run


def network_stage(net: raster_mlp.RasterCorrection) -> str:
    """The correction network or the learned scale (told apart by their inputs)."""
    return "correction network" if net.inputs == raster_mlp.FEATURES else "learned scale network"


class _TimedCoder:
    """constriction's AnsCoder with its ``decode`` timed; everything else passed through."""

    def __init__(self, log: StageLog, coder):
        self._coder = coder
        self.decode = log.timed("rANS decoding", coder.decode)

    def __getattr__(self, name):
        return getattr(self._coder, name)


@contextlib.contextmanager
def instrumented(log: StageLog):
    """The raster decoder's per-wavefront stages timed into ``log`` while inside; restored after."""
    stages = [(decoder, "decode", RASTER),
              (wavefront, "context", WAVEFRONT),
              (wavefront, "store", "values and errors stored"),
              (raster_mlp, "features", "network features"),
              (raster_mlp, "scale_features", "network features"),
              (raster_mlp.ErrorWindows, "features", "network features"),
              (raster_mlp.ErrorWindows, "add", "network features"),
              (raster_mlp.RasterCorrection, "output", network_stage),
              (local_ls.RunningSums, "predict", "local least squares"),
              (local_ls.RunningSums, "add", "local least squares"),
              (coding, "probabilities", "probability rows"),
              (coding.BitReader, "values", "raw bits")]
    originals = [(owner, name, owner.__dict__[name]) for owner, name, _ in stages]
    stack = constriction.stream.stack
    original_coder = stack.AnsCoder
    for (owner, name, stage), (_, _, function) in zip(stages, originals):
        setattr(owner, name, log.timed(stage, function))
    timed_frame = decoder.decode

    def raster_frame(model, words, raw, shape, *args, **kwargs):
        log.raster_pixels += shape[0] * shape[1]
        log.in_raster_frame = True
        try:
            return timed_frame(model, words, raw, shape, *args, **kwargs)
        finally:
            log.in_raster_frame = False

    def coder(*args, **kwargs):  # only the raster frames' coder: other frames' rANS is outside them
        made = original_coder(*args, **kwargs)
        return _TimedCoder(log, made) if log.in_raster_frame else made

    decoder.decode = raster_frame
    stack.AnsCoder = coder
    try:
        yield log
    finally:
        stack.AnsCoder = original_coder
        for owner, name, function in originals:
            setattr(owner, name, function)


def measure(paths, mode: str) -> dict:
    """Per file and in total: bytes, decode seconds and each stage's seconds."""
    files, total = [], {"decode_s": 0.0, "bytes": 0, "raster_pixels": 0}
    stages: collections.Counter = collections.Counter()
    calls: collections.Counter = collections.Counter()
    for path in paths:
        blob = codec.encode(path, mode=mode)
        log = StageLog()
        with instrumented(log):
            start = time.perf_counter()
            codec.decode(blob)
            seconds = time.perf_counter() - start
        files.append({"file": str(path), "bytes": len(blob), "decode_s": round(seconds, 3),
                      "raster_pixels": log.raster_pixels,
                      "stages_s": {k: round(v, 3) for k, v in log.seconds.most_common()}})
        total["decode_s"] += seconds
        total["bytes"] += len(blob)
        total["raster_pixels"] += log.raster_pixels
        stages.update(log.seconds)
        calls.update(log.calls)
        print(f"{Path(path).name}: {len(blob)} bytes, decoded in {seconds:.2f} s", flush=True)
    share = (lambda s: round(s / total["decode_s"], 4)) if total["decode_s"] else (lambda s: 0.0)
    raster_s = stages.pop(RASTER, 0.0)
    frames = calls.pop(RASTER, 0)
    summary = {stage: {"seconds": round(s, 2), "time_share": share(s), "calls": calls[stage]}
               for stage, s in stages.most_common()}
    summary[OWN] = {"seconds": round(raster_s - sum(stages.values()), 2),
                    "time_share": share(raster_s - sum(stages.values()))}
    summary[REST] = {"seconds": round(total["decode_s"] - raster_s, 2),
                     "time_share": share(total["decode_s"] - raster_s)}
    summary[RASTER] = {"seconds": round(raster_s, 2), "time_share": share(raster_s), "calls": frames,
                       "mp_per_s": round(total["raster_pixels"] / raster_s / 1e6, 3) if raster_s else 0.0,
                       "us_per_wavefront": round(raster_s / calls[WAVEFRONT] * 1e6) if calls[WAVEFRONT] else 0}
    return {"files": files, "total": {"decode_s": round(total["decode_s"], 2), "bytes": total["bytes"],
                                      "raster_pixels": total["raster_pixels"]},
            "stages": summary}


def main() -> None:
    result = run_steps("decoder", __doc__, measure)
    for stage, row in result["stages"].items():
        print(f"{stage:84s} {row['time_share']:6.1%} of the time")


if __name__ == "__main__":
    main()
