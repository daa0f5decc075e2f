"""What the raster correction network's size buys: bytes and decoding time of the same planes coded with
each shipped correction (the default raster-nn-large-v1 against the small raster-nn-v1), one thread.

    python benchmarks/correction_size.py [--out benchmarks/results/correction_size.json] [FILE ...]
        # default: seven train files (two chest radiographs, head and lung CT, two 16-bit CTs, an MR)

Why: the two integer MLPs are about half of the raster decoder's time, so a smaller correction looked
like the way to JPEG-XL's decoding speed. Each plane is coded by the raster method alone (both learned
scales offered, as the fast mode does), decoded and checked; the time is the decoding's, after one
untimed decode (numba's and the weights' first-call costs).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from medcodec.codec import RASTER_SCALES  # noqa: E402
from medcodec.io import source as io_source  # noqa: E402
from medcodec.parallel import single_threaded_blas  # noqa: E402
from medcodec.pipelines.raster.method import RasterMethod  # noqa: E402

TRAIN = ROOT.parent / "shared" / "corpus" / "train"
DEFAULT_FILES = ("png8/chest_xray/073a8f93.png", "png8/chest_xray/0a7faa2a.png", "png8/head_ct/005.png",
                 "png8/lung_ct/sarscov2ct_covid_0061.png", "dicom16/nema_CT2_UNC.dcm", "dicom16/nema_MR3_UNC.dcm",
                 "dicom16/barre_CT-MONO2-16-brain.dcm")
NETWORKS = ("raster-nn-large-v1", "raster-nn-v1")


@single_threaded_blas
def measure(path: Path) -> dict:
    src = io_source.load(path)
    plane, bits = src.planes[0], src.bits
    record = {"file": path.name, "pixels": int(plane.size), "bits": bits}
    for name in NETWORKS:
        method = RasterMethod(correction_model=name, scale_models=RASTER_SCALES["fast"])
        streams = method.encode(plane, bits)
        method.decode(streams, plane.shape, bits)  # first calls, untimed
        start = time.perf_counter()
        back = method.decode(streams, plane.shape, bits)
        seconds = time.perf_counter() - start
        if not np.array_equal(back, plane):
            raise SystemExit(f"{path}: {name} did not decode to the plane")
        record[name] = {"bytes": sum(len(s.payload) for s in streams), "decode_s": round(seconds, 3)}
    large, small = (record[n] for n in NETWORKS)
    record["bytes_change"] = round(small["bytes"] / large["bytes"] - 1, 5)
    record["decode_speedup"] = round(large["decode_s"] / small["decode_s"], 3)
    return record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("files", nargs="*", type=Path, default=[TRAIN / f for f in DEFAULT_FILES])
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "correction_size.json")
    args = parser.parse_args()
    records = []
    for path in args.files:
        records.append(measure(path))
        print(json.dumps(records[-1]), flush=True)
    total = {n: {k: sum(r[n][k] for r in records) for k in ("bytes", "decode_s")} for n in NETWORKS}
    large, small = (total[n] for n in NETWORKS)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                            text=True).stdout.strip()
    result = {"command": "python benchmarks/correction_size.py " + " ".join(sys.argv[1:]), "code_commit": commit,
              "records": records, "total": total,
              "bytes_change": round(small["bytes"] / large["bytes"] - 1, 5),
              "decode_speedup": round(large["decode_s"] / small["decode_s"], 3)}
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"all: bytes {100 * result['bytes_change']:+.2f} %, decoding {result['decode_speedup']:.2f}x; "
          f"wrote {args.out}")


if __name__ == "__main__":
    main()
