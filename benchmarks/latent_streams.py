"""LVPNet's own streams on every plane of a split: z and residual bits, speed, ratio to JPEG-XL e9, per group.

The latent mode's files keep, frame by frame, the smallest of LVPNet's coding and the raster coding every
learned mode offers, so `medcodec bench --mode latent` reports what the mode's files are: on the test
split, raster frames throughout (LVPNet never wins). This reports the method itself, as issue 5 asks:
every plane of every file the codec reads (all frames, as the bench counts them) coded by the shipped
latent model alone (``LatentMethod``: z Huffman-coded, residuals rANS-coded; round trip checked), its z
and residual bits from the frame's side information, its encode and decode seconds, and JPEG-XL e9 on the
same plane in the same run (the bench's own adapter: lossless, one thread, ``bitspersample``), both on one
thread.

    python benchmarks/latent_streams.py [--corpus ../shared/corpus/test]
        [--out benchmarks/results/latent_streams.json]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from medcodec.bench.codecs import CODECS, REFERENCE  # noqa: E402
from medcodec.bench.runner import run_classical  # noqa: E402
from medcodec.io.source import is_candidate_file, load  # noqa: E402
from medcodec.pipelines.base import unpack_side_info  # noqa: E402
from medcodec.pipelines.latent import LatentMethod  # noqa: E402
from method_runs import groupings, verified_round_trip  # noqa: E402

FIELDS = ("pixels", "z_bits", "residual_bits", "side_bits", "jxl9_bits", "encode_s", "decode_s", "jxl9_encode_s",
          "jxl9_decode_s")


def code_file(method: LatentMethod, path: Path, corpus: Path) -> dict | None:
    """One file's totals over its planes (None: not read, or no modelled plane)."""
    try:
        source = load(path)
    except Exception:  # noqa: BLE001 - unreadable files are listed by medcodec bench, not here
        return None
    planes, bits = [np.asarray(p) for p in source.planes], int(source.bits)
    if not planes:
        return None
    row = {"file": str(path.relative_to(corpus)), "folder": str(path.parent.relative_to(corpus)),
           "group": f"{bits}-bit", "planes": len(planes), **{name: 0 for name in FIELDS}}
    for plane in planes:
        streams, encode_s, decode_s = verified_round_trip(method, plane, bits, "latent", path)
        meta = unpack_side_info(streams[0].payload)
        total = 8 * sum(len(s.payload) for s in streams)
        row["pixels"] += int(plane.size)
        row["z_bits"] += int(meta["z_bits"])
        row["residual_bits"] += int(meta["residual_bits"])
        row["side_bits"] += total - int(meta["z_bits"]) - int(meta["residual_bits"])
        row["encode_s"] += encode_s
        row["decode_s"] += decode_s
    reference = run_classical(CODECS[REFERENCE], planes, bits)
    if reference["status"] != "ok":
        raise SystemExit(f"{path}: JPEG-XL e9 {reference['status']}: {reference.get('reason')}")
    row["jxl9_bits"], row["jxl9_encode_s"], row["jxl9_decode_s"] = (8 * reference["bytes"], reference["enc_s"],
                                                                     reference["dec_s"])
    return row


def summarise(rows: list[dict]) -> list[dict]:
    out = []
    for by, name, members in groupings(rows):
        t = {field: sum(r[field] for r in members) for field in FIELDS}
        total = t["z_bits"] + t["residual_bits"] + t["side_bits"]
        out.append({"by": by, "name": name, "files": len(members), "megapixels": round(t["pixels"] / 1e6, 3),
                    "bpp": total / t["pixels"], "z_bpp": t["z_bits"] / t["pixels"],
                    "residual_bpp": t["residual_bits"] / t["pixels"], "side_bpp": t["side_bits"] / t["pixels"],
                    "jxl9_bpp": t["jxl9_bits"] / t["pixels"], "ratio_to_jxl9": total / t["jxl9_bits"],
                    "encode_mps": t["pixels"] / 1e6 / t["encode_s"], "decode_mps": t["pixels"] / 1e6 / t["decode_s"],
                    "jxl9_encode_mps": t["pixels"] / 1e6 / t["jxl9_encode_s"],
                    "jxl9_decode_mps": t["pixels"] / 1e6 / t["jxl9_decode_s"]})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=ROOT.parent / "shared" / "corpus" / "test")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "latent_streams.json")
    args = parser.parse_args()
    if not args.corpus.is_dir():
        raise SystemExit(f"{args.corpus}: not a folder (the corpus lives in ../shared/corpus)")
    torch.set_num_threads(1)  # as medcodec bench times it, beside JPEG-XL's one thread
    method = LatentMethod(device="cpu")
    started = time.time()
    rows = []
    for path in sorted(p for p in args.corpus.rglob("*") if p.is_file() and is_candidate_file(p)):
        row = code_file(method, path, args.corpus)
        if row is None:
            continue
        rows.append(row)
        bits = row["z_bits"] + row["residual_bits"] + row["side_bits"]
        print(f"{row['file'][:56]:56s} {row['group']:>6s}  LVPNet {bits / row['pixels']:6.3f} bpp "
              f"(z {row['z_bits'] / row['pixels']:.3f})  JPEG-XL e9 {row['jxl9_bits'] / row['pixels']:6.3f}",
              flush=True)
    summary = summarise(rows)
    for s in summary:
        print(f"{s['by']:8s} {s['name']:28s} {s['files']:3d} files {s['megapixels']:7.2f} MP  {s['bpp']:6.3f} bpp "
              f"(z {s['z_bpp']:.3f}, residual {s['residual_bpp']:.3f})  JPEG-XL e9 {s['jxl9_bpp']:6.3f}  "
              f"{s['ratio_to_jxl9']:.3f} x  enc {s['encode_mps']:.2f} / dec {s['decode_mps']:.2f} MP/s "
              f"(JPEG-XL e9 {s['jxl9_encode_mps']:.2f} / {s['jxl9_decode_mps']:.2f})")
    commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=ROOT).stdout.strip()
    args.out.write_text(json.dumps({
        "command": "python benchmarks/latent_streams.py " + " ".join(sys.argv[1:]), "code_commit": commit,
        "model": {"id": method.model_id, "sha256": method.model_sha256.hex()},
        "seconds": round(time.time() - started, 1), "threads": 1,
        "summary": summary, "files": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
