"""What medcodec makes of the lossy-JPEG DICOM files in a folder: each file's .mlc against the file and
against the file LZMA-compressed (what keeping it verbatim gives), which coder took each frame, encode
and decode seconds; every .mlc decoded and checked byte for byte.

    python benchmarks/lossy_jpeg_files.py ../shared/corpus/test/compressed_dicom \\
        [--out benchmarks/results/test_lossy_jpeg.json]
    python benchmarks/lossy_jpeg_files.py --pydicom-samples --out benchmarks/results/pydicom_lossy_jpeg.json

Why: a lossy-JPEG file has no planes to code (its content is the JPEG's coefficients, not the pixels a
decoder makes of them), so ``medcodec bench`` lists it as skipped; this reports those files apart.
``--pydicom-samples`` takes pydicom's own lossy-JPEG test files instead of a folder: colour secondary
captures and a 30-frame ultrasound loop, which the corpus does not have.
"""

from __future__ import annotations

import argparse
import json
import lzma
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from medcodec.io import dicom, dicom_jpeg_lossy  # noqa: E402

import result_files  # noqa: E402


def lossy_jpeg_syntax(data: bytes) -> str | None:
    """The file's transfer syntax where it is a lossy-JPEG one, else None."""
    import io

    import pydicom

    try:
        ts = str(pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True, force=True).file_meta.TransferSyntaxUID)
    except Exception:  # not DICOM: not this report's
        return None
    return ts if ts in dicom_jpeg_lossy.SYNTAXES else None


def pydicom_samples() -> list[Path]:
    """pydicom's test files that end in .dcm, by name (``measure`` keeps the lossy-JPEG ones)."""
    from pydicom.data import get_testdata_files

    return sorted({Path(p) for p in get_testdata_files("*.dcm")}, key=lambda p: p.name)


def measure(path: Path) -> dict | None:
    data = path.read_bytes()
    syntax = lossy_jpeg_syntax(data)
    if syntax is None:
        return None
    read = dicom.read_dicom(data)
    frames = read.meta.get("frames", []) if read.meta.get("layout") == dicom_jpeg_lossy.LAYOUT else []
    coded, encode_s, decode_s = result_files.round_trip(data, str(path))
    xz = len(lzma.compress(data, preset=9 | lzma.PRESET_EXTREME))
    return {"file": path.name, "syntax": syntax, "bits": read.bits, "frames": len(frames) or None,
            "coders": sorted({"medcodec" if "dct" in f else "jpeg-xl" for f in frames}) or ["verbatim"],
            "dicom_bytes": len(data), "xz_bytes": xz, "mlc_bytes": len(coded),
            "ratio": round(len(coded) / len(data), 4), "ratio_to_xz": round(len(coded) / xz, 4),
            "encode_s": round(encode_s, 3), "decode_s": round(decode_s, 3)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, nargs="?")
    parser.add_argument("--pydicom-samples", action="store_true", help="pydicom's test files instead of a folder")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "test_lossy_jpeg.json")
    args = parser.parse_args(argv)
    if (args.folder is None) == (not args.pydicom_samples):
        parser.error("give a folder or --pydicom-samples")
    records = []
    for path in pydicom_samples() if args.pydicom_samples else sorted(p for p in args.folder.rglob("*") if p.is_file()):
        record = measure(path)
        if record is not None:
            records.append(record)
            print(json.dumps(record), flush=True)
    summary = result_files.totals(records, lambda r: "all", ("dicom_bytes", "xz_bytes", "mlc_bytes"))
    result_files.ratios(summary, ratio=("mlc_bytes", "dicom_bytes"), ratio_to_xz=("mlc_bytes", "xz_bytes"))
    result_files.write(args.out, records, summary)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
