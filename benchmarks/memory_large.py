"""Peak memory of encode and decode on large 16-bit planes (2048² and 4096²), per mode.

Each measurement runs in a fresh subprocess so one mode's allocations do not hide another's; the peak
is the child's ru_maxrss (resident set, includes torch and its arenas). The plane is a synthetic
radiograph-like image (smooth anatomy + detector noise), 12 bits used of 16.

    python benchmarks/memory_large.py [--sizes 2048,4096] [--modes fast,slow] [--out benchmarks/results/memory_large.json]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

CHILD = r"""
import resource, sys, time, numpy as np
import medcodec
size, mode, step = int(sys.argv[1]), sys.argv[2], sys.argv[3]
rng = np.random.default_rng(0)
y, x = np.mgrid[0:size, 0:size] / size
plane = (1500 + 900 * np.sin(6 * x) * np.cos(4 * y) + rng.normal(0, 12, (size, size))).clip(0, 4095).astype(np.uint16)
blob = medcodec.encode(plane, mode=mode, device="cpu") if step == "encode" else None
if step == "decode":
    blob = open(sys.argv[4], "rb").read()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t = time.perf_counter(); out = medcodec.decode(blob, device="cpu"); seconds = time.perf_counter() - t
    assert np.array_equal(out.planes[0], plane)
else:
    open(sys.argv[4], "wb").write(blob); seconds = 0.0
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, len(blob), seconds)
"""


def measure(size: int, mode: str, scratch: Path) -> dict:
    blob_path = scratch / f"m_{size}_{mode}.mlc"
    record = {"size": size, "mode": mode}
    for step in ("encode", "decode"):
        t = time.perf_counter()
        out = subprocess.run([sys.executable, "-c", CHILD, str(size), mode, step, str(blob_path)],
                             capture_output=True, text=True, check=True).stdout.split()
        record[f"{step}_peak_mb"] = round(int(out[0]) / 1024, 1)
        record[f"{step}_wall_s"] = round(time.perf_counter() - t, 2)
        record["bytes"] = int(out[1])
    blob_path.unlink()
    return record


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="2048,4096")
    p.add_argument("--modes", default="fast,slow")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/memory_large.json"))
    args = p.parse_args()
    scratch = Path("/tmp")
    records = []
    for size in map(int, args.sizes.split(",")):
        for mode in args.modes.split(","):
            records.append(measure(size, mode, scratch))
            print(records[-1], flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"command": " ".join(sys.argv), "records": records}, indent=1) + "\n")


if __name__ == "__main__":
    main()
