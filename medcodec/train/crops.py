"""Training data: random crops of the planes medcodec codes, with each plane's normalisation.

Crops keep the *whole plane's* (lo, G) normalisation, since that is what the codec computes at coding
time. A crops file (.npz) is small enough to travel to a GPU machine; the training loop also reads
folders directly. Only ever point this at training data.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
from pathlib import Path

import numpy as np

from ..pipelines.split import Normalisation

IMAGE_SUFFIXES = {".png", ".tif", ".tiff", ".npy", ".dcm", ""}


def planes_of(path: Path) -> list[np.ndarray]:
    """The unsigned planes of one training file, as the codec sees them (empty if none)."""
    from ..io.source import load  # the codec's own reader, so training sees what coding sees

    try:
        source = load(path)
    except Exception:  # noqa: BLE001 - a file we cannot read is simply not training data
        return []
    planes = source.planes or _decoded_dicom_planes(path)
    return [p for p in planes if p.ndim == 2 and min(p.shape) >= 16]


def _decoded_dicom_planes(path: Path) -> list[np.ndarray]:
    """Compressed DICOM is kept verbatim by the codec, but its pixels are still good training data."""
    import pydicom

    try:
        ds = pydicom.dcmread(path)
        if ds.get("SamplesPerPixel", 1) != 1:
            return []
        arr = ds.pixel_array
        bits = int(ds.BitsStored)
    except Exception:  # noqa: BLE001
        return []
    arr = arr.reshape((-1,) + arr.shape[-2:]).astype(np.int64)
    if int(ds.get("PixelRepresentation", 0)) == 1:
        arr = arr + (1 << (bits - 1))  # offset binary, as the codec sees signed planes
    return [a.astype(np.uint16) for a in arr]


def list_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def sample_crops(
    folder: Path, size: int, per_megapixel: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[dict]]:
    """Crops [N, size, size] uint16, lo [N], shift [N], and a data manifest (file, sha256, crops)."""
    crops, los, shifts, manifest = [], [], [], []
    for path in list_files(folder):
        planes = planes_of(path)
        if not planes:
            continue
        taken = 0
        for plane in planes:
            norm = Normalisation.of(int(plane.min()), int(plane.max()))
            h, w = plane.shape
            if h < size or w < size:
                continue
            count = max(1, int(round(h * w / 1e6 * per_megapixel)))
            for _ in range(count):
                r = int(rng.integers(0, (h - size) // 2 + 1)) * 2  # keep the 2x2 phase of the plane
                c = int(rng.integers(0, (w - size) // 2 + 1)) * 2
                crops.append(plane[r : r + size, c : c + size].astype(np.uint16))
                los.append(norm.lo)
                shifts.append(norm.shift)
                taken += 1
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        manifest.append({"file": str(path.relative_to(folder)), "sha256": digest, "crops": taken})
    return np.stack(crops), np.array(los, np.int64), np.array(shifts, np.int64), manifest


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Sample training crops from a folder of TRAINING images.")
    parser.add_argument("folder", type=Path)
    parser.add_argument("-o", "--out", type=Path, required=True)
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--per-megapixel", type=float, default=40.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if "test" in {part.lower() for part in args.folder.resolve().parts}:
        parser.error("refusing to sample training crops from a test split")
    rng = np.random.default_rng(args.seed)
    crops, los, shifts, manifest = sample_crops(args.folder, args.size, args.per_megapixel, rng)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, crops=crops, lo=los, shift=shifts)
    manifest_path = args.out.with_suffix(".manifest.json")
    manifest_path.write_text(json.dumps({"folder": os.fspath(args.folder), "files": manifest}, indent=1))
    print(f"{len(crops)} crops of {args.size}x{args.size} from {len(manifest)} files -> {args.out}")


if __name__ == "__main__":
    main()
