"""Decoding speed of two medcodec checkouts on the same streams, measured back to back on one machine.

    python benchmarks/decode_back_to_back.py OLD_TREE NEW_TREE FILE.mlc ... [--rounds 2]
        [--out benchmarks/results/decode_back_to_back.json]

Why: the committed bench's speeds move with the machine and with whatever shares it (the same JPEG-XL
run 11-28 % slower from one run to the next), so a decoder change is judged by decoding the same
streams with both checkouts alternately, in separate processes, on one thread: per round and tree, each
file's best of two decodes after a warm-up decode (imports, compiled loops). The streams must decode
with both trees (same format version and weights).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

# runs inside each tree's process: best of two decodes per file, after one warm-up decode
TIMER = """
import json, sys, time
import torch
torch.set_num_threads(1)
from medcodec import codec
blobs = {path: open(path, "rb").read() for path in sys.argv[1:]}
codec.decode(blobs[sys.argv[-1]])
best = {}
for path, blob in blobs.items():
    times = []
    for _ in range(2):
        start = time.perf_counter()
        codec.decode(blob)
        times.append(time.perf_counter() - start)
    best[path] = min(times)
print(json.dumps(best))
"""


def decode_times(tree: Path, files: list[str]) -> dict[str, float]:
    env = dict(os.environ, PYTHONPATH=str(tree), OMP_NUM_THREADS="1")
    # run from / : `python -c` puts the working folder before PYTHONPATH, and a checkout there would win
    done = subprocess.run([sys.executable, "-c", TIMER, *files], env=env, capture_output=True, text=True,
                          check=True, cwd="/")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("old", type=Path)
    parser.add_argument("new", type=Path)
    parser.add_argument("files", nargs="+")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    files = [str(Path(f).resolve()) for f in args.files]
    rounds = []
    for _ in range(args.rounds):
        rounds.append({name: decode_times(tree, files) for name, tree in (("old", args.old), ("new", args.new))})
    totals = {name: min(sum(r[name].values()) for r in rounds) for name in ("old", "new")}
    result = {"command": sys.argv, "machine": platform.platform(), "cpu_count": os.cpu_count(),
              "trees": {"old": str(args.old), "new": str(args.new)}, "files": [Path(f).name for f in files],
              "rounds": [{name: {Path(f).name: round(t, 3) for f, t in r[name].items()} for name in r} for r in rounds],
              "total_s": {name: round(t, 3) for name, t in totals.items()},
              "speedup": round(totals["old"] / totals["new"], 3)}
    print(json.dumps(result, indent=1))
    if args.out:
        args.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
