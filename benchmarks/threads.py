"""Encoding and decoding one file on 1 and on N threads: what this machine gains from a multi-frame file's
frames encoded side by side and a plane's own and raster codings side by side (parallel.map_in_threads),
and from a large multi-frame file's frames decoded in as many processes as the budget
(parallel.map_in_processes, as ``medcodec decode`` does; threads made decoding slower: benchmarks/README.md).

Each case (a file and a mode) runs in a fresh subprocess per thread count, whose budget is set before
torch loads (OMP_NUM_THREADS, as ``medcodec encode -j`` does for its workers); a small crop of the file's
first frame is coded first, untimed, so numba's and torch's first-call costs are not on the clock. The
files written, and the files decoded, with every thread count must be identical (the codec's promise); the
script fails if not.

    python benchmarks/threads.py [--threads 1,2] [--out benchmarks/results/threads.json]
        [CASE ...]   # CASE = path:mode; default: a 19-frame MR and a CT plane, fast and slow,
                     # from ../shared/corpus/train
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TRAIN = ROOT.parent / "shared" / "corpus" / "train" / "dicom16"
DEFAULT_CASES = (f"{TRAIN / 'fodicom_MOVEKNEE_mr_19frames.dcm'}:fast",
                 f"{TRAIN / 'fodicom_MOVEKNEE_mr_19frames.dcm'}:slow",
                 f"{TRAIN / 'barre_CT-MONO2-16-brain.dcm'}:fast",
                 f"{TRAIN / 'barre_CT-MONO2-16-brain.dcm'}:slow")

CHILD = r"""
import hashlib, json, sys, time
import numpy as np
from medcodec import codec, parallel
from medcodec.io import source
path, mode = sys.argv[1], sys.argv[2]
first = source.load(path).planes[0]
codec.encode(np.ascontiguousarray(first[:64, :64]), mode=mode)  # first calls (numba, torch, weights): untimed
t = time.perf_counter()
data = codec.encode(path, mode=mode)
encode_s = time.perf_counter() - t
t = time.perf_counter()
decoded = codec.decode(data, processes=parallel.thread_budget())
decode_s = time.perf_counter() - t
print(json.dumps({"budget": parallel.thread_budget(), "encode_s": encode_s, "decode_s": decode_s,
                  "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest(),
                  "decoded_sha256": hashlib.sha256(decoded.data).hexdigest(),
                  "pixels": int(sum(p.size for p in decoded.planes)), "frames": len(decoded.planes),
                  "methods": [f["method"] for f in codec.info(data)["frames"]]}))
"""


def run_case(path: str, mode: str, threads: int) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-c", CHILD, path, mode], env=env, capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(f"{path} ({mode}, {threads} threads) failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure(cases: list[str], thread_counts: list[int]) -> list[dict]:
    records = []
    for case in cases:
        path, _, mode = case.rpartition(":")
        runs = {n: run_case(path, mode, n) for n in thread_counts}
        one = runs[thread_counts[0]]
        if len({r["sha256"] for r in runs.values()}) != 1 or len({r["decoded_sha256"] for r in runs.values()}) != 1:
            raise SystemExit(f"{path} ({mode}): the files differ between thread counts - a determinism bug")
        record = {"file": Path(path).name, "mode": mode, "frames": one["frames"], "pixels": one["pixels"],
                  "bytes": one["bytes"], "methods": sorted(set(one["methods"])), "runs": {}}
        for n, r in runs.items():
            record["runs"][str(n)] = {
                "budget": r["budget"], "encode_s": round(r["encode_s"], 2), "decode_s": round(r["decode_s"], 2),
                "encode_speedup": round(one["encode_s"] / r["encode_s"], 2),
                "decode_speedup": round(one["decode_s"] / r["decode_s"], 2)}
        records.append(record)
        print(json.dumps(record), flush=True)
    return records


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("cases", nargs="*", default=list(DEFAULT_CASES), help="path:mode (default: train files)")
    parser.add_argument("--threads", default="1,2", help="thread counts, the first the reference (default 1,2)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "threads.json")
    args = parser.parse_args()
    thread_counts = [int(n) for n in args.threads.split(",")]
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                            text=True).stdout.strip()
    result = {"command": "python benchmarks/threads.py " + " ".join(sys.argv[1:]), "code_commit": commit,
              "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "system": platform.platform()},
              "records": measure(args.cases, thread_counts)}
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
