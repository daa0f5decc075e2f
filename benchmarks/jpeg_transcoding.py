"""What medcodec makes of lossy-JPEG DICOM files: train images written as JPEG DICOMs (8-bit grey and
colour, 12-bit grey; three qualities), each file's .mlc beside the file (and the frame's coding beside its
JPEG), every one decoded and checked.

    python benchmarks/jpeg_transcoding.py [--out benchmarks/results/jpeg_transcoding.json] [--per-folder N]

Why: the corpus holds no 8-bit lossy-JPEG DICOM and only two 12-bit ones (in the test split), yet they
are the commonest compressed DICOMs in archives. ``io/dicom_jpeg_lossy.py`` recompresses each frame's
coefficients, by JPEG XL's transcoding (libjxl, through imagecodecs; 8-bit only) or by medcodec's own
coefficient coder (``entropy/jpeg_coefficients.py``; grey or colour, 8 or 12 bits), whichever is smaller,
and gives the JPEG back byte for byte. The JPEGs here are libjpeg-turbo's (imagecodecs.jpeg8_encode:
4:2:0 chroma for colour), in a DICOM header taken from pydicom's CT_small; the grey image is copied to
three channels for the colour files; the 12-bit images are the train split's DICOM planes of more than
8 bits (their top 12 bits). The coefficient coder's priors were learnt from JPEGs of the same train
images (``train/jpeg_priors.py``): these rows are in-sample for them.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from medcodec.io import dicom  # noqa: E402

import result_files  # noqa: E402

TRAIN = ROOT.parent / "shared" / "corpus" / "train" / "png8"
DEEP = ROOT.parent / "shared" / "corpus" / "train" / "dicom16"
QUALITIES = (75, 90, 95)


def jpeg_dicom(image: np.ndarray, quality: int, bits: int = 8) -> bytes:
    """A JPEG Baseline DICOM of the 8-bit image (2-D grey or 3-D colour), or a JPEG Extended one of the
    12-bit grey image (bits 12)."""
    import imagecodecs
    import pydicom
    from pydicom.data import get_testdata_file
    from pydicom.encaps import encapsulate
    from pydicom.uid import JPEGBaseline8Bit, JPEGExtended12Bit

    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit if bits == 8 else JPEGExtended12Bit
    ds.Rows, ds.Columns = image.shape[:2]
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = (8, 8, 7, 0) if bits == 8 else (16, 12, 11, 0)
    if image.ndim == 3:
        ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, "YBR_FULL_422", 0
    ds.PixelData = encapsulate([imagecodecs.jpeg8_encode(image, level=quality, bitspersample=bits)])
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def _images(path: Path) -> list[tuple[str, np.ndarray, int]]:
    """(kind, image, bits) to write as JPEG DICOMs: an 8-bit PNG grey and as colour, or a deeper
    DICOM's first plane at 12 bits."""
    if path.suffix == ".png":
        from PIL import Image

        grey = np.asarray(Image.open(path).convert("L"))
        return [("grey", grey, 8), ("colour", np.repeat(grey[:, :, None], 3, axis=2), 8)]
    from medcodec.io.source import load

    src = load(path)
    if src.bits <= 8 or not src.planes or min(src.planes[0].shape) < 8:
        return []
    plane = src.planes[0].astype(np.int64) >> max(src.bits - 12, 0)
    return [("grey 12-bit", plane.astype(np.uint16), 12)]


def measure(path: Path) -> list[dict]:
    records = []
    for kind, image, bits in _images(path):
        for quality in QUALITIES:
            data = jpeg_dicom(image, quality, bits)
            read = dicom.read_dicom(data)
            if read.meta["layout"] != "jpeg-jxl":
                raise SystemExit(f"{path.name} (q{quality}): not recompressed")
            coded, encode_s, decode_s = result_files.round_trip(data, f"{path.name} (q{quality})")
            frame = read.meta["frames"][0]
            ours = "dct" in frame
            records.append({"file": f"{path.parent.name}/{path.name}", "kind": kind, "quality": quality,
                            "dicom_bytes": len(data), "mlc_bytes": len(coded),
                            "jpeg_bytes": len(read_frame(data)),
                            "coder": "medcodec" if ours else "jpeg-xl",
                            "coded_bytes": len(read.blobs[3]),
                            "coded_jpeg_bytes": sum(length for _, length in frame["pieces"]),
                            "ratio": round(len(coded) / len(data), 4), "encode_s": round(encode_s, 3),
                            "decode_s": round(decode_s, 3)})
    return records


def read_frame(data: bytes) -> bytes:
    """The DICOM file's one JPEG frame (as encapsulated: padded to an even length)."""
    import pydicom
    from pydicom.encaps import generate_frames

    ds = pydicom.dcmread(io.BytesIO(data))
    return next(generate_frames(ds.PixelData, number_of_frames=1))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "jpeg_transcoding.json")
    parser.add_argument("--per-folder", type=int, default=3, help="images from each train png8 folder")
    parser.add_argument("--root", type=Path, default=TRAIN, help="folder of 8-bit image folders")
    parser.add_argument("--deep", type=Path, default=DEEP, help="folder of deeper DICOMs (12-bit rows)")
    parser.add_argument("--deep-files", type=int, default=12, help="how many of them")
    args = parser.parse_args(argv)
    paths = [path for folder in sorted(p for p in args.root.iterdir() if p.is_dir())
             for path in sorted(folder.glob("*.png"))[:args.per_folder]]
    if args.deep.is_dir():
        paths += sorted(args.deep.glob("*.dcm"))[:args.deep_files]
    records = []
    for path in paths:
        records.extend(measure(path))
        if records:
            print(json.dumps(records[-1]), flush=True)
    summary = result_files.totals(records, lambda r: f"{r['kind']} q{r['quality']}",
                                  ("dicom_bytes", "mlc_bytes", "jpeg_bytes", "coded_bytes", "coded_jpeg_bytes"))
    result_files.ratios(summary, ratio=("mlc_bytes", "dicom_bytes"),
                        coded_over_jpeg=("coded_bytes", "coded_jpeg_bytes"))
    for key, t in summary.items():
        rows = [r for r in records if f"{r['kind']} q{r['quality']}" == key]
        t["frames_by_medcodec"] = sum(r["coder"] == "medcodec" for r in rows)
    result_files.write(args.out, records, summary)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
