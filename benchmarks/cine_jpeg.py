"""Multi-frame lossy JPEG: the train split's multi-frame DICOMs written as 12-bit JPEG Extended files (one
JPEG a frame, two qualities), their frames' coefficients coded each alone and against the frame before
(what ``io/dicom_jpeg_lossy.py`` chooses between), and each file's .mlc, decoded and checked.

    python benchmarks/cine_jpeg.py [--out benchmarks/results/cine_jpeg.json]

Why: a frame of a cine loop or a multi-frame MR is much like the one before it; the coefficient coder can
take the frame before's co-located blocks into its contexts (format 2.15). pydicom's ultrasound loop shows
what that does where regions stand still (``lossy_jpeg_files.py --pydicom-samples``); this shows it on
real multi-frame MR, where everything moves a little.
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from medcodec.io import dicom, dicom_jpeg_lossy  # noqa: E402

import result_files  # noqa: E402

DEEP = ROOT.parent / "shared" / "corpus" / "train" / "dicom16"
QUALITIES = (75, 90)


def cine_dicom(path: Path, quality: int) -> bytes | None:
    """The multi-frame DICOM at path as a 12-bit JPEG Extended file (its samples' top 12 bits), or None
    where it has one frame."""
    import imagecodecs
    import pydicom
    from pydicom.encaps import encapsulate
    from pydicom.uid import JPEGExtended12Bit

    ds = pydicom.dcmread(path)
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    if frames < 2:
        return None
    pixels = ds.pixel_array.astype(np.int64)
    pixels -= pixels.min()
    top = max(int(pixels.max()).bit_length() - 12, 0)
    samples = (pixels >> top).astype(np.uint16)
    ds.file_meta.TransferSyntaxUID = JPEGExtended12Bit
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.PixelData = encapsulate([bytes(imagecodecs.jpeg8_encode(f, level=quality, bitspersample=12))
                                for f in samples])
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def coded_bytes(data: bytes, against_the_frame_before: bool = True) -> tuple[int, int]:
    """(the frames' coded bytes, how many frames were coded against the frame before)."""
    if against_the_frame_before:
        read = dicom.read_dicom(data)
    else:
        choose = dicom_jpeg_lossy._reference
        dicom_jpeg_lossy._reference = lambda scan, previous: None
        try:
            read = dicom.read_dicom(data)
        finally:
            dicom_jpeg_lossy._reference = choose
    frames = read.meta.get("frames", [])
    return sum(map(len, read.blobs[3:])), sum(bool(f.get("dct", {}).get("reference")) for f in frames)


def measure(path: Path, quality: int) -> dict | None:
    data = cine_dicom(path, quality)
    if data is None:
        return None
    alone, _ = coded_bytes(data, against_the_frame_before=False)
    chosen, referenced = coded_bytes(data)
    coded, encode_s, decode_s = result_files.round_trip(data, path.name)
    return {"file": path.name, "quality": quality, "dicom_bytes": len(data), "coded_alone": alone,
            "coded_chosen": chosen, "frames_against_the_frame_before": referenced, "mlc_bytes": len(coded),
            "chosen_over_alone": round(chosen / alone, 4), "encode_s": round(encode_s, 3),
            "decode_s": round(decode_s, 3)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "cine_jpeg.json")
    parser.add_argument("--root", type=Path, default=DEEP, help="folder of DICOM files (multi-frame ones used)")
    args = parser.parse_args(argv)
    records = []
    for path in sorted(p for p in args.root.rglob("*") if p.is_file()):
        for quality in QUALITIES:
            try:
                record = measure(path, quality)
            except Exception as exc:  # a file pydicom cannot decode or that is not DICOM: not this report's
                print(f"skipped {path.name}: {type(exc).__name__}: {exc}", file=sys.stderr)
                break
            if record is None:
                break
            records.append(record)
            print(record, flush=True)
    summary = result_files.totals(records, lambda r: f"q{r['quality']}",
                                  ("dicom_bytes", "coded_alone", "coded_chosen", "mlc_bytes"))
    result_files.ratios(summary, chosen_over_alone=("coded_chosen", "coded_alone"))
    result_files.write(args.out, records, summary)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
