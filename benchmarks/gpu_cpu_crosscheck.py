"""Cross-device check: streams encoded on one device decode exactly on another, and both encoders agree.

For every modelled plane of the corpus folder (first plane of each file) and every learned mode, the
method itself (no classical fallback, so the learned path is what is checked) encodes on
--encode-device, the streams are decoded on --decode-device and compared with the plane, and the
same plane is encoded on --decode-device too: the two encoders' streams must be byte-identical (the
probability path is integer-exact, so the device must not matter).

    python benchmarks/gpu_cpu_crosscheck.py --encode-device cuda --decode-device cpu \\
        [--corpus ../shared/corpus/test] [--modes fast,slow,latent] [--limit N] \\
        [--out benchmarks/results/gpu_cpu_crosscheck.json]

Exit status 1 when any plane fails either check. Runs with --encode-device cpu as well (a dry run of
the script on a machine without a GPU: then it only re-checks CPU determinism).
"""

from __future__ import annotations

import argparse
import itertools
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from medcodec.pipelines import get_method
from method_runs import first_planes


def planes(corpus: Path, limit: int | None):
    """(relative path, first plane, bits) of at most limit files with a modelled plane."""
    for path, plane, bits in itertools.islice(first_planes(corpus), limit):
        yield str(path.relative_to(corpus)), plane, bits


def check(encoder, decoder, plane: np.ndarray, bits: int) -> dict:
    t = time.perf_counter()
    streams = encoder.encode(plane, bits)
    enc_s = time.perf_counter() - t
    t = time.perf_counter()
    try:
        exact = bool(np.array_equal(decoder.decode(streams, plane.shape, bits), plane))
        error = None
    except Exception as exc:  # noqa: BLE001 - a failed decode is a result to record, not a crash
        exact, error = False, f"{type(exc).__name__}: {exc}"
    dec_s = time.perf_counter() - t
    same = [(s.kind, s.index, s.payload) for s in streams] == \
           [(s.kind, s.index, s.payload) for s in decoder.encode(plane, bits)]
    record = {"decoded_exactly": exact, "encoders_agree": same, "bytes": sum(len(s.payload) for s in streams),
              "encode_s": round(enc_s, 3), "decode_s": round(dec_s, 3)}
    if error:
        record["error"] = error
    return record


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--corpus", type=Path, default=Path("../shared/corpus/test"))
    p.add_argument("--encode-device", default="cuda")
    p.add_argument("--decode-device", default="cpu")
    p.add_argument("--modes", default="fast,slow,latent")
    p.add_argument("--limit", type=int, default=None, help="at most this many files")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/gpu_cpu_crosscheck.json"))
    args = p.parse_args()
    modes = args.modes.split(",")
    pairs = {m: (get_method(m, args.encode_device), get_method(m, args.decode_device)) for m in modes}
    records, failures = [], 0
    for rel, plane, bits in tqdm(list(planes(args.corpus, args.limit)), desc="crosscheck"):
        record = {"file": rel, "shape": list(plane.shape), "bits": bits}
        for mode, (encoder, decoder) in pairs.items():
            record[mode] = check(encoder, decoder, plane, bits)
            failures += not (record[mode]["decoded_exactly"] and record[mode]["encoders_agree"])
        records.append(record)
    summary = {m: {"planes": len(records),
                   "decoded_exactly": sum(r[m]["decoded_exactly"] for r in records),
                   "encoders_agree": sum(r[m]["encoders_agree"] for r in records)} for m in modes}
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else platform.processor() or "cpu"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"command": " ".join(["python"] + sys.argv), "encode_device": args.encode_device,
                                    "decode_device": args.decode_device, "device_name": device,
                                    "torch": torch.__version__, "summary": summary, "images": records},
                                   indent=1) + "\n")
    for mode, s in summary.items():
        print(f"{mode}: {s['decoded_exactly']}/{s['planes']} decoded exactly on {args.decode_device}, "
              f"{s['encoders_agree']}/{s['planes']} identical streams from both encoders")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
