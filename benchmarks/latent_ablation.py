"""Latent mode (LVPNet) on a subset of the test corpus: bits of z vs residuals, against JPEG-XL e9 and the
fast path, plus the paper's Table 4 ablation (GMSM vs plain strided CNN sampling, with/without QCM).

    python benchmarks/latent_ablation.py --variant latent-v1=runs/latent1/checkpoint.pt \
        --variant gmsm+qcm=runs/latent_ablation/gmsm_qcm/checkpoint.pt ... --out benchmarks/results/latent_ablation.json

Every latent coding is checked by decoding it (exact round trip) before its size is counted. Sizes are
stream payload bytes of the plane (no container overhead, for every method alike).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from medcodec.io.source import load  # noqa: E402
from medcodec.pipelines.classical import ClassicalMethod  # noqa: E402
from medcodec.pipelines.latent import LatentMethod, LatentPredictor  # noqa: E402
from medcodec.pipelines.base import unpack_side_info  # noqa: E402
from medcodec.train.latent import load_checkpoint  # noqa: E402
from method_runs import round_trip  # noqa: E402

CORPUS = ROOT.parent / "shared" / "corpus" / "test"  # default: ../shared beside the checkout


def pick_images(per_group: int, max_pixels: int, corpus: Path = CORPUS) -> list[tuple[str, Path]]:
    """Evenly spaced files of each top-level group that the codec reads into planes (first plane only)."""
    chosen = []
    for group in sorted(p for p in corpus.iterdir() if p.is_dir()):
        files = sorted(f for f in group.rglob("*") if f.is_file())
        usable = []
        for f in files:
            try:
                src = load(f)
            except Exception:  # noqa: BLE001 - unreadable files are simply not benchmarked
                continue
            if src.planes and src.planes[0].size <= max_pixels and min(src.planes[0].shape) >= 8:
                usable.append(f)
        if usable:
            idx = np.linspace(0, len(usable) - 1, min(per_group, len(usable))).round().astype(int)
            chosen += [(group.name, usable[i]) for i in sorted(set(idx))]
    return chosen


def latent_method(checkpoint: Path) -> tuple[LatentMethod, dict]:
    net, ckpt = load_checkpoint(checkpoint)
    info = {"checkpoint": str(checkpoint), "config": net.config(), "steps": int(ckpt["step"]),
            "train_seconds": round(float(ckpt.get("elapsed", ckpt.get("seconds", 0.0))), 1)}
    return LatentMethod(predictor=LatentPredictor(net, net.export_integer(), "cpu")), info


def code_latent(method: LatentMethod, plane: np.ndarray, bits: int) -> dict:
    streams, decoded, encode_s, decode_s = round_trip(method, plane, bits)
    if not np.array_equal(decoded, plane):
        raise SystemExit("latent round trip failed")
    meta = unpack_side_info(streams[0].payload)
    n = plane.size
    total = 8 * sum(len(s.payload) for s in streams)
    return {"z_bpp": meta["z_bits"] / n, "residual_bpp": meta["residual_bits"] / n, "total_bpp": total / n,
            "encode_s": round(encode_s, 2), "decode_s": round(decode_s, 2)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--variant", action="append", required=True, metavar="NAME=CHECKPOINT")
    p.add_argument("--per-group", type=int, default=3)
    p.add_argument("--max-pixels", type=int, default=1 << 20)
    p.add_argument("--fast", action="store_true", help="also code with the shipped fast-path model")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--corpus", type=Path, default=CORPUS)
    args = p.parse_args()
    if not args.corpus.exists():
        raise SystemExit(f"{args.corpus} not found")
    variants = {}
    for spec in args.variant:
        name, path = spec.split("=", 1)
        variants[name] = latent_method(Path(path))
    jxl = ClassicalMethod(effort=9)
    fast = None
    if args.fast:
        from medcodec.pipelines.subimage import FastMethod

        fast = FastMethod(device="cpu")
    rows = []
    for group, path in pick_images(args.per_group, args.max_pixels, args.corpus):
        src = load(path)
        plane, bits = src.planes[0], src.bits
        row = {"group": group, "file": str(path.relative_to(args.corpus)), "shape": list(plane.shape), "bits": bits,
               "jpegxl_e9_bpp": 8 * sum(len(s.payload) for s in jxl.encode(plane, bits)) / plane.size}
        if fast is not None:
            row["fast_bpp"] = 8 * sum(len(s.payload) for s in fast.encode(plane, bits)) / plane.size
        row["latent"] = {name: code_latent(m, plane, bits) for name, (m, _) in variants.items()}
        print(json.dumps(row), flush=True)
        rows.append(row)
    summary = {}
    for group in sorted({r["group"] for r in rows}) + ["all"]:
        sel = [r for r in rows if group in ("all", r["group"])]
        entry = {"images": len(sel), "jpegxl_e9_bpp": float(np.mean([r["jpegxl_e9_bpp"] for r in sel]))}
        if fast is not None:
            entry["fast_bpp"] = float(np.mean([r["fast_bpp"] for r in sel]))
        for name in variants:
            for key in ("z_bpp", "residual_bpp", "total_bpp"):
                entry[f"{name}:{key}"] = float(np.mean([r["latent"][name][key] for r in sel]))
        summary[group] = entry
    commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=ROOT).stdout.strip()
    result = {"command": " ".join(sys.argv), "code_commit": commit,
              "variants": {name: info for name, (_, info) in variants.items()},
              "note": "bpp = stream payload bits / pixels, first plane of each file; means over images",
              "summary": summary, "images": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
