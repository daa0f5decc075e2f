"""Is there headroom in the raster coder's probability model? Two classical additions measured on the
prediction and tables the encoder settled on: CALIC-style bias cancellation, and tables that adapt to
the frame as it is decoded. (Measured on the train split: no, both cost bits.)

Files are coded by ``codec.encode``; every raster frame it codes (``Analysis.streams``) is taken as
it stands (final prediction mu, scale buckets, plain tables: no boost, no value range) and its ideal
code length of the main symbols is computed three ways, all causal in the decoder's order (wavefront
by wavefront: what a pixel's wavefront decodes is seen only by later wavefronts, as a decoder would):

* shipped: the frame's own tables, what the codec codes (the reference);
* bias cancellation: mu moved by the running mean error of the pixel's context before the tables are
  taken (contexts: sign pattern of the W, N, NW, NE neighbours against mu x scale-bucket group x class,
  or scale-bucket group x class alone; counts halved at 256, a context used from 4 errors);
* adaptive tables: per table row, symbol counts of the frame's pixels coded so far mixed with the shipped
  table as a prior of strength k pixels (p = (count + k t) / (n + k)); k = 16 ... 4096. The raw low
  bits are the same in every case and left out.

    python benchmarks/residual_model_headroom.py [--corpus ../shared/corpus/train] [--per-folder 3]
        [--folders dicom16] [--out benchmarks/results/residual_model_headroom.json]

Run it on the train split: it decides a design.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from raster_option_ablation import pick  # noqa: E402

from medcodec import codec  # noqa: E402
from medcodec.compiled import kernel  # noqa: E402
from medcodec.entropy import residual_model as rm  # noqa: E402
from medcodec.pipelines import raster  # noqa: E402

PRIOR_STRENGTHS = (16, 64, 256, 1024, 4096)
BIAS_CONTEXTS = ("pattern x scale x class", "scale x class")
HALVE_AT, MIN_COUNT = 256, 4


@contextlib.contextmanager
def coded_frames(into: list):
    """Every raster analysis whose streams are coded while inside, appended to ``into``."""
    analysis = raster.analysis.Analysis
    streams = analysis.streams

    def capture(self):
        into.append(self)
        return streams(self)

    analysis.streams = capture
    try:
        yield into
    finally:
        analysis.streams = streams


@kernel
def _bias_cancelled(values, mu, cls, buckets, order, width, top, with_pattern, out):
    """out: mu moved by its context's running mean error (1/16 sample), updated a wavefront late."""
    count = values.size
    sums = np.zeros(128 * 16 * 32, np.int64)
    counts = np.zeros(128 * 16 * 32, np.int64)
    pending_context = np.empty(count, np.int64)
    pending_error = np.empty(count, np.int64)
    pending, wave = 0, -1
    for q in range(count):
        p = order[q]
        r = p // width
        c = p - r * width
        if 2 * r + c != wave:  # a new wavefront: the last one's errors become known
            for k in range(pending):
                at = pending_context[k]
                sums[at] += pending_error[k]
                counts[at] += 1
                if counts[at] >= HALVE_AT:
                    sums[at] //= 2
                    counts[at] //= 2
            pending, wave = 0, 2 * r + c
        m = mu[p]
        pattern = 0
        if with_pattern:
            if c > 0 and 16 * values[p - 1] + 8 > m:
                pattern |= 1
            if r > 0 and 16 * values[p - width] + 8 > m:
                pattern |= 2
            if r > 0 and c > 0 and 16 * values[p - width - 1] + 8 > m:
                pattern |= 4
            if r > 0 and c + 1 < width and 16 * values[p - width + 1] + 8 > m:
                pattern |= 8
        context = ((min(cls[p], 127) * 16 + pattern) * 32) + min(buckets[p] >> 2, 31)
        moved = m
        if counts[context] >= MIN_COUNT:
            s, n = sums[context], counts[context]
            bias = (2 * s + n) // (2 * n) if s >= 0 else -((-2 * s + n) // (2 * n))
            moved = min(max(m + bias, 0), top)
        out[p] = moved
        pending_context[pending] = context
        pending_error[pending] = 16 * values[p] + 8 - m
        pending += 1


@kernel
def _adaptive_bits(table, symbols, order, width, frequencies, total, strength, alphabet):
    """Ideal bits of the symbols under each table row's counts so far mixed with the row (prior strength
    pixels), counts updated a wavefront late."""
    count = symbols.size
    counts = np.zeros((frequencies.shape[0], alphabet), np.int64)
    seen = np.zeros(frequencies.shape[0], np.int64)
    pending_row = np.empty(count, np.int64)
    pending_symbol = np.empty(count, np.int64)
    pending, wave = 0, -1
    bits = 0.0
    for q in range(count):
        p = order[q]
        r = p // width
        c = p - r * width
        if 2 * r + c != wave:
            for k in range(pending):
                counts[pending_row[k], pending_symbol[k]] += 1
                seen[pending_row[k]] += 1
            pending, wave = 0, 2 * r + c
        row, s = table[p], symbols[p]
        prior = frequencies[row, s] / total
        bits -= np.log2((counts[row, s] + strength * prior) / (seen[row] + strength))
        pending_row[pending] = row
        pending_symbol[pending] = s
        pending += 1
    return bits


def frame_costs(frame) -> dict:
    """A coded raster frame's main-symbol bits: shipped, with bias cancellation, with adaptive tables."""
    mu = frame.mu.astype(np.int64)
    ell = frame.plain_ell[frame.buckets]
    order = frame.order.astype(np.int64)
    frequencies = rm.tables()

    def main_bits(prediction):
        params = rm.pixel_params(prediction, ell)
        symbols, _ = rm.coded_symbols(frame.values, params)
        return float(-np.log2(frequencies[params.table, symbols] / rm.TOTAL).sum()), params, symbols

    shipped, params, symbols = main_bits(mu)
    costs = {"shipped": shipped}
    for name in BIAS_CONTEXTS:
        moved = np.empty_like(mu)
        _bias_cancelled(frame.values, mu, frame.cls.astype(np.int64), frame.buckets.astype(np.int64), order,
                        frame.width, frame.top, name.startswith("pattern"), moved)
        costs[f"bias cancellation ({name})"] = main_bits(moved)[0]
    for strength in PRIOR_STRENGTHS:
        costs[f"adaptive tables (k = {strength})"] = float(_adaptive_bits(
            params.table, symbols, order, frame.width, frequencies, float(rm.TOTAL), float(strength), rm.ALPHABET))
    return costs


def group_of(path: Path, corpus: Path) -> str:
    parts = path.relative_to(corpus).parts
    return "/".join(parts[:2]) if parts[0] == "png8" else parts[0]


def measure(paths, corpus: Path | None = None, mode: str = "fast") -> dict:
    """Per raster frame and per group: each way's main-symbol bits, and its ratio to the shipped tables'."""
    frames, groups = [], collections.defaultdict(collections.Counter)
    for path in paths:
        coded: list = []
        with coded_frames(coded):
            codec.encode(path, mode=mode)
        group = group_of(Path(path), corpus) if corpus is not None else "all"
        for frame in coded:
            costs = frame_costs(frame)
            groups[group].update(costs)
            if group != "all":
                groups["all"].update(costs)
            frames.append({"file": str(path), "pixels": int(frame.values.size), "bits": frame.bits,
                           "shipped_bytes": round(costs["shipped"] / 8),
                           "ratio": {k: round(v / costs["shipped"], 4) for k, v in costs.items() if k != "shipped"}})
        print(f"{Path(path).name}: {len(coded)} raster frame(s)", flush=True)
    summary = {group: {"shipped_bytes": round(c["shipped"] / 8),
                       "ratio": {k: round(v / c["shipped"], 4) for k, v in c.items() if k != "shipped"}}
               for group, c in sorted(groups.items()) if c["shipped"]}
    return {"frames": frames, "groups": summary}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=Path("../shared/corpus/train"))
    parser.add_argument("--per-folder", type=int, default=3)
    parser.add_argument("--folders", nargs="*", default=["dicom16"], help="folders whose every file is coded")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/residual_model_headroom.json"))
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    paths = [p for p in pick(args.corpus, tuple(args.folders), args.per_folder) if "natural" not in p.parts]
    result = measure(paths, args.corpus)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"corpus": str(args.corpus), "command": " ".join(sys.argv), **result},
                                   indent=1) + "\n")
    for group, row in result["groups"].items():
        print(f"{group:28s} {row['shipped_bytes']:>10,} B  " + "  ".join(f"{v:.4f}" for v in row["ratio"].values()))


if __name__ == "__main__":
    main()
