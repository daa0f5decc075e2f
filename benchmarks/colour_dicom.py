"""What colour DICOM costs: train images as 8-bit RGB DICOMs (the grey image in three channels and a
coloured region on it, as an ultrasound with a colour overlay), coded in fast mode beside the same image
as a MONOCHROME2 file and beside the file LZMA-compressed (what keeping it verbatim gave before); and the
same RGB image as a lossless-JPEG DICOM (libjpeg-turbo, predictor 1: .4.70, the commonest lossless
syntax) and as a JPEG-LS one (CharLS, sample-interleaved: .4.80), whose colour scans medcodec writes
again (format 2.15; before: kept verbatim).

    python benchmarks/colour_dicom.py [--out benchmarks/results/colour_dicom.json] [--per-folder N]

Why: the corpus holds no colour image, yet ultrasound and secondary captures often are colour. RGB goes
through the subtract-green transform (``io/colour.py``): grey pixels give constant difference planes and
the grey picture as the G plane, so a mostly grey colour file should cost little more than its grey
version.
"""

from __future__ import annotations

import argparse
import io
import lzma
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from medcodec import codec  # noqa: E402
from medcodec.io import dicom  # noqa: E402

import result_files  # noqa: E402

TRAIN = ROOT.parent / "shared" / "corpus" / "train" / "png8"
FOLDERS = ("breast_us", "chest_xray", "head_ct")


def image_dicom(image: np.ndarray, lossless: str | None = None) -> bytes:
    """An uncompressed 8-bit DICOM of the image (2-D: MONOCHROME2; 3-D: RGB, planar configuration 0), or a
    JPEG Lossless SV1 (lossless "jpeg") or JPEG-LS ("jpeg-ls") one."""
    import imagecodecs
    import pydicom
    from pydicom.data import get_testdata_file
    from pydicom.encaps import encapsulate
    from pydicom.uid import ExplicitVRLittleEndian, JPEGLosslessSV1, JPEGLSLossless

    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ds.file_meta.TransferSyntaxUID = {None: ExplicitVRLittleEndian, "jpeg": JPEGLosslessSV1,
                                      "jpeg-ls": JPEGLSLossless}[lossless]
    ds.Rows, ds.Columns = image.shape[:2]
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    if image.ndim == 3:
        ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, "RGB", 0
    if lossless:
        frame = (imagecodecs.jpeg8_encode(image, lossless=True, predictor=1) if lossless == "jpeg"
                 else imagecodecs.jpegls_encode(image))
        ds.PixelData = encapsulate([bytes(frame)])
        ds["PixelData"].is_undefined_length = True
    else:
        ds.PixelData = np.ascontiguousarray(image).tobytes()
    ds["PixelData"].VR = "OB"
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def with_overlay(grey: np.ndarray) -> np.ndarray:
    """The grey image in three channels, a sixth of it (a centred box) tinted red-yellow by its value."""
    rgb = np.repeat(grey[:, :, None], 3, axis=2)
    h, w = grey.shape
    box = (slice(h // 3, h // 3 + h // 4), slice(w // 3, w // 3 + 2 * w // 3 // 2))
    value = grey[box].astype(np.int32)
    rgb[box] = np.stack([np.full_like(value, 255), value, value // 4], axis=-1).astype(np.uint8)
    return rgb


def measure(path: Path) -> dict:
    from PIL import Image

    grey = np.asarray(Image.open(path).convert("L"))
    grey_file, colour_file = image_dicom(grey), image_dicom(with_overlay(grey))
    ljpeg_file = image_dicom(with_overlay(grey), lossless="jpeg")
    jls_file = image_dicom(with_overlay(grey), lossless="jpeg-ls")
    for data, layout in ((colour_file, "colour"), (ljpeg_file, "jpeg-lossless"), (jls_file, "jpeg-ls")):
        if dicom.read_dicom(data).meta["layout"] != layout:
            raise SystemExit(f"{path.name}: the {layout} file not modelled")
    coded, _, _ = result_files.round_trip(colour_file, path.name)
    coded_ljpeg, _, _ = result_files.round_trip(ljpeg_file, path.name)
    coded_jls, _, _ = result_files.round_trip(jls_file, path.name)
    return {"file": f"{path.parent.name}/{path.name}", "pixels": int(grey.size), "colour_file": len(colour_file),
            "mlc_colour": len(coded), "mlc_grey": len(codec.encode(grey_file, mode="fast")),
            "lzma_colour": len(lzma.compress(colour_file, preset=9 | lzma.PRESET_EXTREME)),
            "ljpeg_file": len(ljpeg_file), "mlc_ljpeg": len(coded_ljpeg),
            "lzma_ljpeg": len(lzma.compress(ljpeg_file, preset=9 | lzma.PRESET_EXTREME)),
            "jls_file": len(jls_file), "mlc_jls": len(coded_jls),
            "lzma_jls": len(lzma.compress(jls_file, preset=9 | lzma.PRESET_EXTREME))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "colour_dicom.json")
    parser.add_argument("--per-folder", type=int, default=2, help="images from each folder")
    parser.add_argument("--root", type=Path, default=TRAIN, help="folder of image folders")
    parser.add_argument("--folders", nargs="*", default=FOLDERS)
    args = parser.parse_args(argv)
    records = []
    for folder in args.folders:
        for path in sorted((args.root / folder).glob("*.png"))[:args.per_folder]:
            records.append(measure(path))
            print(records[-1], flush=True)
    summary = result_files.totals(records, lambda r: "all", ("colour_file", "mlc_colour", "mlc_grey", "lzma_colour",
                                                               "ljpeg_file", "mlc_ljpeg", "lzma_ljpeg", "jls_file",
                                                               "mlc_jls", "lzma_jls"))
    result_files.ratios(summary, mlc_colour_over_mlc_grey=("mlc_colour", "mlc_grey"),
                        mlc_colour_over_lzma=("mlc_colour", "lzma_colour"),
                        mlc_ljpeg_over_ljpeg=("mlc_ljpeg", "ljpeg_file"),
                        mlc_ljpeg_over_lzma=("mlc_ljpeg", "lzma_ljpeg"),
                        mlc_jls_over_jls=("mlc_jls", "jls_file"), mlc_jls_over_lzma=("mlc_jls", "lzma_jls"))
    result_files.write(args.out, records, summary)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
