"""What an RLE Lossless DICOM costs medcodec over the same file uncompressed: train files made RLE by
pydicom's encoder and by other encoders' choices, each coded in fast mode beside its native original.

    python benchmarks/rle_overhead.py [--out benchmarks/results/rle_overhead.json] [FILE ...]
        # default: five train DICOMs (CTs, a radiograph, an MR, a 4-frame MR)

Why: the train split holds no RLE file, so the RLE layout (``io/dicom_rle.py``: the samples coded as
planes, the segments' control bytes kept as residuals from a typical encoder's) is measured on RLE
files made here. An encoder that does what the prediction expects costs nothing but its headers;
one that does not (``--styles``) costs its control bytes. Every file is decoded and checked.
"""

from __future__ import annotations

import argparse
import io
import json
import struct
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from medcodec import codec  # noqa: E402
from medcodec.io import dicom, dicom_rle  # noqa: E402

import result_files  # noqa: E402

TRAIN = ROOT.parent / "shared" / "corpus" / "train"
DEFAULT_FILES = ("dicom16/nema_CT2_UNC.dcm", "dicom16/fodicom_GH342_ct_philips.dcm",
                 "dicom16/barre_CR-MONO1-10-chest.dcm", "dicom16/nema_MR3_UNC.dcm",
                 "dicom16/fodicom_mr_bruker_4frames.dcm")


def with_noops(runs: bytes, every: int) -> bytes:
    """The runs with a no-op byte (0x80) before every every-th one."""
    out, at, count = bytearray(), 0, 0
    while at < len(runs):
        control = runs[at]
        size = 1 + (control + 1 if control < 128 else 1)
        count += 1
        if count % every == 0:
            out.append(0x80)
        out += runs[at:at + size]
        at += size
    return bytes(out)


def segment(data: bytes, min_run: int, noop_every: int) -> bytes:
    """A segment as an encoder unlike pydicom's writes it: rows not coded apart, runs of min_run or
    more equal bytes replicated, a no-op byte before every noop_every-th run; padded to even length."""
    runs = with_noops(dicom_rle.typical_segment(data, 0, min_run), noop_every)
    return runs + b"\x00" * (len(runs) % 2)


def other_encoder(ds, min_run: int, noop_every: int) -> bytes:
    """The dataset's PixelData (native little-endian, 16-bit) written as RLE by segment()."""
    from pydicom.encaps import encapsulate
    from pydicom.uid import RLELossless

    frames = int(getattr(ds, "NumberOfFrames", 1) or 1)
    words = np.frombuffer(ds.PixelData, "<u2")[:frames * ds.Rows * ds.Columns].reshape(frames, -1)
    fragments = []
    for frame in words:
        segments = [segment((frame >> 8).astype(np.uint8).tobytes(), min_run, noop_every),
                    segment((frame & 0xFF).astype(np.uint8).tobytes(), min_run, noop_every)]
        header = struct.pack("<16I", 2, 64, 64 + len(segments[0]), *([0] * 13))
        fragments.append(header + b"".join(segments))
    ds.file_meta.TransferSyntaxUID = RLELossless
    ds.PixelData = encapsulate(fragments)
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    return _saved(ds)


def _saved(ds) -> bytes:
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def rle_versions(native: bytes) -> dict[str, bytes]:
    import pydicom
    from pydicom.uid import RLELossless

    versions = {}
    ds = pydicom.dcmread(io.BytesIO(native))
    ds.compress(RLELossless, encoding_plugin="pydicom")
    versions["pydicom"] = _saved(ds)
    if int(pydicom.dcmread(io.BytesIO(native)).BitsAllocated) == 16:
        versions["runs of 3, whole segment, no-op bytes"] = other_encoder(pydicom.dcmread(io.BytesIO(native)), 3, 9)
    return versions


def measure(path: Path) -> dict:
    native = path.read_bytes()
    coded_native = codec.encode(native, mode="fast")
    record = {"file": path.name, "native_file": len(native), "mlc_of_native": len(coded_native), "rle": []}
    for style, data in rle_versions(native).items():
        read = dicom.read_dicom(data)
        if read.meta["layout"] != "rle":
            raise SystemExit(f"{path.name} ({style}): not recompressed: {read.description}")
        coded, encode_s, _ = result_files.round_trip(data, f"{path.name} ({style})")
        record["rle"].append({"encoder": style, "rle_file": len(data), "mlc": len(coded),
                              "mlc_over_rle_file": round(len(coded) / len(data), 4),
                              "mlc_over_mlc_of_native": round(len(coded) / len(coded_native), 4),
                              "nonzero_kept_bytes": int(np.count_nonzero(np.frombuffer(read.blobs[1], np.uint8))),
                              "kept_bytes": len(read.blobs[1]), "encode_s": round(encode_s, 2)})
    return record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="*", type=Path)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "rle_overhead.json")
    args = parser.parse_args(argv)
    files = args.files or [TRAIN / f for f in DEFAULT_FILES]
    records = []
    for path in files:
        records.append(measure(path))
        print(json.dumps(records[-1]), flush=True)
    rows = [{**r, "mlc_of_native": record["mlc_of_native"]} for record in records for r in record["rle"]]
    summary = result_files.totals(rows, lambda r: r["encoder"], ("rle_file", "mlc", "mlc_of_native"))
    result_files.ratios(summary, mlc_over_rle_files=("mlc", "rle_file"),
                        mlc_over_mlc_of_native=("mlc", "mlc_of_native"))
    result_files.write(args.out, records, summary)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
