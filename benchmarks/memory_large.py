"""Peak memory of encode and decode on large 16-bit planes (2048² and 4096²), per mode.

Each measurement runs in a fresh subprocess so one mode's allocations do not hide another's; the peak
is the child's ru_maxrss (resident set, includes torch and its arenas), next to the baseline before the
work starts (interpreter, torch, weights, the test plane). The method is driven directly
(pipelines.get_method), so the learned decoder is what is measured even where codec.encode would store
this plane classically. The plane is a synthetic radiograph-like image (smooth anatomy + detector
noise), 12 bits used of 16, or (--plane stripes) stripes whose direction turns across it.

    python benchmarks/memory_large.py [--sizes 2048,4096] [--modes fast,slow,slow-ensemble,raster,raster-slow]
        [--plane radiograph|stripes]
        [--out benchmarks/results/memory_large.json]

Mode slow-ensemble is the slow path with its test-time ensemble (pipelines/ensemble.py) kept for every
subimage, whatever it saves, and surprise offsets (pipelines/surprise.py) on every set, for which its
decoder also keeps each subimage's first single pass: the slow decoder's worst case for memory and time.
Mode raster is the raster-order method (pipelines/raster/) every learned mode offers beside its own;
raster-slow is the same with the slow mode's options (the local least-squares blend wherever it saves,
windows of three radii: the decoder keeps running sums for each; raster-nn-xl-v1 stacked on the default
correction where that codes smaller, format 2.7).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

CHILD = r"""
import resource, struct, sys, time, numpy as np
import medcodec
from medcodec.pipelines import Stream, get_method
size, mode, step, path, kind = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
rng = np.random.default_rng(0)
plane = np.empty((size, size), np.uint16)
x = np.arange(size) / size
for top in range(0, size, 128):  # in bands, so making the test image does not raise the baseline
    y = (np.arange(top, min(top + 128, size)) / size)[:, None]
    if kind == "stripes":  # stripes turning across the plane: the raster coder's local blend pays
        phase = size * (np.cos(np.pi * x) * x + np.sin(np.pi * x) * y) / 2.5
        band = 2000 + 600 * np.sin(phase) + rng.normal(0, 4, (y.shape[0], size))
    else:
        band = 1500 + 900 * np.sin(6 * x) * np.cos(4 * y) + rng.normal(0, 12, (y.shape[0], size))
    plane[top:top + y.shape[0]] = band.clip(0, 4095)
method = get_method(mode.split("-")[0], "cpu")  # the weights are loaded before the clock and the baseline
if mode == "raster-slow":  # the slow mode's raster options: the local blend wherever it saves, 3 radii
    from medcodec import codec
    method = get_method("raster", "cpu", local_min_share=codec.RASTER_LOCAL_MIN_SHARE["slow"],
                        local_radii=codec.RASTER_LOCAL_RADII["slow"], second=codec.raster_second("slow", None))
if mode == "slow-ensemble":  # the slow path with its ensemble and surprise offsets on every subimage: its
    method.ensemble_choice = method.surprise_choice = "always"  # worst case (the first pass kept beside)
baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t = time.perf_counter()
if step == "encode":
    streams = method.encode(plane, 16)
    seconds = time.perf_counter() - t
    with open(path, "wb") as f:
        for s in streams:
            f.write(struct.pack("<IIQ", int(s.kind), s.index, len(s.payload)) + s.payload)
    size_bytes = sum(len(s.payload) for s in streams)
else:
    blob, streams, at = open(path, "rb").read(), [], 0
    while at < len(blob):
        kind, index, n = struct.unpack_from("<IIQ", blob, at); at += 16
        streams.append(Stream(kind, index, blob[at:at + n])); at += n
    t = time.perf_counter()
    out = method.decode(streams, plane.shape, 16)
    seconds = time.perf_counter() - t
    assert np.array_equal(out, plane), "decode differs"
    size_bytes = len(blob)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, baseline, size_bytes, seconds)
"""


def measure(size: int, mode: str, scratch: Path, plane: str = "radiograph") -> dict:
    blob_path = scratch / f"m_{size}_{mode}.streams"
    record = {"size": size, "mode": mode, **({"plane": plane} if plane != "radiograph" else {})}
    for step in ("encode", "decode"):
        out = subprocess.run([sys.executable, "-c", CHILD, str(size), mode, step, str(blob_path), plane],
                             capture_output=True, text=True, check=True).stdout.split()
        record[f"{step}_peak_mb"] = round(int(out[0]) / 1024, 1)
        record[f"{step}_baseline_mb"] = round(int(out[1]) / 1024, 1)  # interpreter + torch + weights
        record[f"{step}_seconds"] = round(float(out[3]), 2)
        record["bytes"] = int(out[2])
    record["bpp"] = round(8 * record["bytes"] / size**2, 3)
    blob_path.unlink()
    return record


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="2048,4096")
    p.add_argument("--modes", default="fast,slow,slow-ensemble,raster")
    p.add_argument("--plane", choices=("radiograph", "stripes"), default="radiograph",
                   help="radiograph: smooth anatomy + detector noise; stripes: stripes turning across the "
                        "plane, where the raster coder's local least-squares blend is sent")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/memory_large.json"))
    args = p.parse_args()
    scratch = Path("/tmp")
    records = []
    for size in map(int, args.sizes.split(",")):
        for mode in args.modes.split(","):
            records.append(measure(size, mode, scratch, args.plane))
            print(records[-1], flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fast = {r["size"]: r["decode_peak_mb"] for r in records if r["mode"] == "fast"}
    for r in records:
        if r["mode"] != "fast" and r["size"] in fast:
            r["decode_peak_vs_fast"] = round(r["decode_peak_mb"] / fast[r["size"]], 3)
    args.out.write_text(json.dumps({"command": " ".join(["python"] + sys.argv), "records": records},
                                   indent=1) + "\n")


if __name__ == "__main__":
    main()
