"""What medcodec makes of lossy-JPEG DICOM files: train images written as 8-bit JPEG DICOMs (grey and
colour, three qualities), each file's .mlc beside the file (and the frame's JPEG XL beside its JPEG),
every one decoded and checked.

    python benchmarks/jpeg_transcoding.py [--out benchmarks/results/jpeg_transcoding.json] [--per-folder N]

Why: the corpus holds no 8-bit lossy-JPEG DICOM (its two lossy JPEGs are 12-bit, which JPEG XL does not
transcode), yet they are the commonest compressed DICOMs in archives. ``io/dicom_jpeg_jxl.py`` transcodes
their frames to JPEG XL (libjxl, through imagecodecs), which gives the JPEG back byte for byte. The
JPEGs here are libjpeg-turbo's (imagecodecs.jpeg8_encode: 4:2:0 chroma for colour), in a DICOM header
taken from pydicom's CT_small; the grey image is copied to three channels for the colour files.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from medcodec import codec  # noqa: E402
from medcodec.io import dicom  # noqa: E402

import result_files  # noqa: E402

TRAIN = ROOT.parent / "shared" / "corpus" / "train" / "png8"
QUALITIES = (75, 90, 95)


def jpeg_dicom(image: np.ndarray, quality: int) -> bytes:
    """An 8-bit JPEG Baseline DICOM of the image (2-D grey or 3-D colour)."""
    import imagecodecs
    import pydicom
    from pydicom.data import get_testdata_file
    from pydicom.encaps import encapsulate
    from pydicom.uid import JPEGBaseline8Bit

    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    ds.Rows, ds.Columns = image.shape[:2]
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    if image.ndim == 3:
        ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, "YBR_FULL_422", 0
    ds.PixelData = encapsulate([imagecodecs.jpeg8_encode(image, level=quality)])
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def measure(path: Path) -> list[dict]:
    from PIL import Image

    grey = np.asarray(Image.open(path).convert("L"))
    records = []
    for colour in (False, True):
        image = np.repeat(grey[:, :, None], 3, axis=2) if colour else grey
        for quality in QUALITIES:
            data = jpeg_dicom(image, quality)
            read = dicom.read_dicom(data)
            if read.meta["layout"] != "jpeg-jxl":
                raise SystemExit(f"{path.name} (q{quality}): not transcoded")
            start = time.perf_counter()
            coded = codec.encode(data, mode="fast")
            encode_s = time.perf_counter() - start
            start = time.perf_counter()
            if codec.decode(coded).data != data:
                raise SystemExit(f"{path.name} (q{quality}): did not decode byte for byte")
            records.append({"file": f"{path.parent.name}/{path.name}", "colour": colour, "quality": quality,
                            "dicom_bytes": len(data), "mlc_bytes": len(coded),
                            "jpeg_bytes": sum(length for _, length in read.meta["frames"][0]["pieces"]),
                            "jpeg_xl_bytes": len(read.blobs[3]),
                            "ratio": round(len(coded) / len(data), 4), "encode_s": round(encode_s, 3),
                            "decode_s": round(time.perf_counter() - start, 3)})
    return records


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "jpeg_transcoding.json")
    parser.add_argument("--per-folder", type=int, default=3, help="images from each train png8 folder")
    parser.add_argument("--root", type=Path, default=TRAIN, help="folder of image folders")
    args = parser.parse_args(argv)
    records = []
    for folder in sorted(p for p in args.root.iterdir() if p.is_dir()):
        for path in sorted(folder.glob("*.png"))[:args.per_folder]:
            records.extend(measure(path))
            print(json.dumps(records[-1]), flush=True)
    summary = result_files.totals(records, lambda r: f"{'colour' if r['colour'] else 'grey'} q{r['quality']}",
                                  ("dicom_bytes", "mlc_bytes", "jpeg_bytes", "jpeg_xl_bytes"))
    for t in summary.values():
        t["ratio"] = round(t["mlc_bytes"] / t["dicom_bytes"], 4)
        t["jpeg_xl_over_jpeg"] = round(t["jpeg_xl_bytes"] / t["jpeg_bytes"], 4)
    result_files.write(args.out, records, summary)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
