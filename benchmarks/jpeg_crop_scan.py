"""Which planes were cut out of a decoded JPEG off its 8x8 grid, and what recovering that JPEG saves.

For every 8-bit plane: the top and left padding that puts its block edges on a JPEG grid
(``jpeg_history.grid_padding``: where neighbouring rows' and columns' differences jump at one phase of
8), and the JPEG history the method offers, aligned (`jpeg`) and, where the padding is not (0, 0), as
the bottom-right part of a larger JPEG (`jpeg-crop`), each with its JPEG transcoded by JPEG-XL and with
its coefficients coded by medcodec (`jpeg-dct`, the smaller cut's); each offered coding decoded and
checked, its bytes against JPEG-XL e7's lossless coding of the same plane ("transcoded": the smaller
of `jpeg` and `jpeg-crop`; "kept": the smallest of all, what the codec keeps). No learned coding runs:
this finds the planes and sizes the streams; the codec's own files come from `make bench`.

    python benchmarks/jpeg_crop_scan.py [--corpus ../shared/corpus/train] [--per-group 1000]
        [--out benchmarks/results/jpeg_crop_scan.json]
"""

from __future__ import annotations

import sys
from pathlib import Path

import imagecodecs
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import method_runs  # noqa: E402
import result_files  # noqa: E402


def main() -> None:
    from medcodec.pipelines import JPEG_HISTORY_METHODS, get_method
    from medcodec.pipelines.jpeg_history import JpegHistoryMethod, grid_padding

    args = method_runs.plane_ablation_arguments(__doc__, ROOT / "benchmarks/results/jpeg_crop_scan.json",
                                                per_group=1000, corpus=Path("../shared/corpus/train"))
    history = JpegHistoryMethod()
    records = []
    for path, plane, bits in method_runs.pick(args.corpus, args.per_group, args.max_pixels):
        if bits != 8:
            continue
        row = {"file": str(path.relative_to(args.corpus)), "folder": str(path.parent.relative_to(args.corpus)),
               "pixels": int(plane.size), "padding": list(grid_padding(plane)),
               "jxl7 bytes": len(imagecodecs.jpegxl_encode(plane.astype(np.uint8), lossless=True, effort=7))}
        for name, streams in history.encode_alternatives(plane, bits):
            if not np.array_equal(get_method(name).decode(streams, plane.shape, bits), plane):
                raise SystemExit(f"{row['file']}: {name} did not decode exactly")
            size = sum(len(s.payload) for s in streams)  # jpeg-dct twice where both cuts recover: the smaller
            row[f"{name} bytes"] = min(size, row.get(f"{name} bytes", size))
        transcoded = [row[f"{name} bytes"] for name in ("jpeg", "jpeg-crop") if f"{name} bytes" in row]
        row["transcoded bytes"] = min(transcoded, default=0)  # the JPEG by JPEG-XL, the way it recovers best
        row["kept bytes"] = min(transcoded + [row.get("jpeg-dct bytes", 0)]) if transcoded else 0
        for name in JPEG_HISTORY_METHODS:
            row[f"with {name}"] = int(f"{name} bytes" in row)
            row[f"{name} jxl7 bytes"] = row["jxl7 bytes"] if f"{name} bytes" in row else 0
            row.setdefault(f"{name} bytes", 0)
        records.append(row)
        if row["with jpeg-crop"]:
            print(row["file"], row["padding"], row["jpeg-crop bytes"], row["jxl7 bytes"], flush=True)
    fields = ("pixels", "with jpeg", "with jpeg-crop", "with jpeg-dct", "jpeg bytes", "jpeg jxl7 bytes",
              "jpeg-crop bytes", "jpeg-crop jxl7 bytes", "jpeg-dct bytes", "jpeg-dct jxl7 bytes", "transcoded bytes",
              "kept bytes")
    summary = result_files.totals(records, lambda r: r["folder"], fields)
    for t in summary.values():  # over the planes that recover each way
        t["kept / transcoded"] = round(t["kept bytes"] / t["transcoded bytes"], 4) if t["transcoded bytes"] else None
        for name in JPEG_HISTORY_METHODS:
            t[f"{name} / jxl7"] = round(t[f"{name} bytes"] / t[f"{name} jxl7 bytes"], 4) if t[f"{name} jxl7 bytes"] \
                else None
    result_files.write(args.out, records, summary)


if __name__ == "__main__":
    main()
