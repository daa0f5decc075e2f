"""Fast vs slow path per subimage (LC-TMNet's Table 5 on our test split): bits per pixel of A, D, B, C.

For every modelled plane of the test split, the fast method (LC-H: one pass per subimage, A by JPEG-XL
e7) and the slow method (LC-H-Extend on even columns + LC-L on odd columns, A by JPEG-XL e9) are run
directly (pipelines.get_method, no classical fallback), each stream set is decoded and compared with
the plane before its size counts, and the stream bytes are attributed to the subimage they code:

* A: the JXL_SUBIMAGE stream; D, B, C: their residual stream pairs (fast: 2 per subimage, slow: 4,
  even and odd columns, or 2 where the slow encoder found coding the subimage whole, as fast does,
  cheaper); the small PLANE_META side information is reported on its own.
* slow_choice: how many of the slow path's subimages coded their odd columns with the LC-L pass, with
  the first pass again, or were coded whole (PLANE_META "left_pass" 1, 0, 2).

bpp of a subimage = its bits / its pixels (about a quarter of the plane's). Sizes are stream payloads
(no container or DICOM envelope, for both modes alike). Groups: each top-level folder, and by bit depth.

    python benchmarks/subimage_ablation.py [--corpus ../shared/corpus/test] [--limit-per-group N]
        [--out benchmarks/results/subimage_ablation.json]
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from medcodec.container.format import SectionKind
from medcodec.pipelines import get_method
from medcodec.pipelines import split as sp
from medcodec.pipelines.base import unpack_side_info
from medcodec.pipelines.subimage import WHOLE_SET
from method_runs import first_planes, round_trip

SUBIMAGES = ("A",) + tuple(sp.PREDICTED)  # A, then the predicted ones in coding order
LEFT_PASS = {"first_pass": 0, "lc_l": 1, "whole": WHOLE_SET}  # the slow path's per-subimage choice


def subimage_pixels(shape: tuple[int, int]) -> dict[str, int]:
    """Pixels of A, B, C, D for a plane of this shape (odd sizes: A gets the extra row and column)."""
    h, w = shape
    rows = {"even": (h + 1) // 2, "odd": h // 2}
    cols = {"even": (w + 1) // 2, "odd": w // 2}
    # A = (even row, even col), B = (even, odd), C = (odd, even), D = (odd, odd): split.py's layout
    return {"A": rows["even"] * cols["even"], "B": rows["even"] * cols["odd"],
            "C": rows["odd"] * cols["even"], "D": rows["odd"] * cols["odd"]}


def attribute(streams, mode: str) -> dict[str, int]:
    """Stream bytes per subimage (and 'side' for the per-plane metadata)."""
    per_set = 2 if mode == "fast" else 4  # residual stream pairs per predicted subimage
    out = {name: 0 for name in SUBIMAGES + ("side",)}
    for s in streams:
        if s.kind == SectionKind.JXL_SUBIMAGE:
            out["A"] += len(s.payload)
        elif s.kind == SectionKind.RESIDUAL:
            out[sp.PREDICTED[s.index // per_set]] += len(s.payload)
        else:
            out["side"] += len(s.payload)
    return out


def measure(method, plane: np.ndarray, bits: int) -> dict:
    streams, decoded, enc_s, dec_s = round_trip(method, plane, bits)
    if not np.array_equal(decoded, plane):
        raise AssertionError(f"{method.name} did not round-trip")
    meta = unpack_side_info(next(s.payload for s in streams if s.kind == SectionKind.PLANE_META))
    return {"bytes": attribute(streams, method.name), "enc_s": enc_s, "dec_s": dec_s,
            **({"left_pass": meta["left_pass"]} if "left_pass" in meta else {})}


def planes_of(corpus: Path, limit: int | None):
    """(group, relpath, plane, bits) for the first plane of every readable file, per top-level folder."""
    for group in sorted(p for p in corpus.iterdir() if p.is_dir()):
        usable = ((path, plane, bits) for path, plane, bits in first_planes(group) if min(plane.shape) >= 2)
        for path, plane, bits in itertools.islice(usable, limit):
            yield group.name, str(path.relative_to(corpus)), plane, bits


def summarise(records: list[dict]) -> list[dict]:
    groups: dict[str, list[dict]] = {}
    for r in records:
        folder = str(Path(r["file"]).parent)  # as medcodec bench's folder groups
        for key in (folder, "8-bit" if r["bits"] <= 8 else "9-16-bit", "all"):
            groups.setdefault(key, []).append(r)
    out = []
    for name, rs in groups.items():
        row = {"group": name, "images": len(rs), "megapixels": sum(r["pixels"] for r in rs) / 1e6}
        for mode in ("fast", "slow"):
            pix = {k: sum(r["subimage_pixels"][k] for r in rs) for k in SUBIMAGES}
            by = {k: sum(r[mode]["bytes"][k] for r in rs) for k in SUBIMAGES + ("side",)}
            row[mode] = {f"bpp_{k}": 8 * by[k] / pix[k] for k in SUBIMAGES if pix[k]}
            row[mode]["bpp_total"] = 8 * sum(by.values()) / sum(r["pixels"] for r in rs)
            row[mode]["enc_mps"] = row["megapixels"] / sum(r[mode]["enc_s"] for r in rs)
            row[mode]["dec_mps"] = row["megapixels"] / sum(r[mode]["dec_s"] for r in rs)
        choices = [u for r in rs for u in r["slow"].get("left_pass", [])]
        row["slow_choice"] = {name: choices.count(value) for name, value in LEFT_PASS.items()}
        row["slow_vs_fast"] = {k: row["slow"][k] / row["fast"][k] for k in row["fast"]
                               if k.startswith("bpp") and row["fast"][k]}
        out.append(row)
    return sorted(out, key=lambda row: (row["group"] in ("8-bit", "9-16-bit", "all"), row["group"] == "all", row["group"]))


def render(rows: list[dict]) -> str:
    head = f"{'group':<26}{'MP':>6}  " + "".join(f"{'fast ' + k:>11}{'slow ' + k:>11}{'ratio':>7}" for k in
                                                   SUBIMAGES + ("total",)) + "  slow LC-L/first/whole"
    lines = [head]
    for row in rows:
        cells = ""
        for k in SUBIMAGES + ("total",):
            key = f"bpp_{k}"
            cells += (f"{row['fast'].get(key, 0):11.3f}{row['slow'].get(key, 0):11.3f}"
                      f"{row['slow_vs_fast'].get(key, 0):7.3f}")
        choice = row.get("slow_choice", {})
        cells += "  " + "/".join(str(choice.get(k, 0)) for k in ("lc_l", "first_pass", "whole"))
        lines.append(f"{row['group']:<26}{row['megapixels']:6.1f}  " + cells)
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--corpus", type=Path, default=Path("../shared/corpus/test"))
    p.add_argument("--limit-per-group", type=int, default=None)
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/subimage_ablation.json"))
    p.add_argument("--summarise", type=Path, metavar="JSON",
                   help="only re-summarise the images of an earlier run's JSON (no coding), rewriting --out")
    args = p.parse_args()
    if args.summarise:
        earlier = json.loads(args.summarise.read_text())
        earlier["summary"] = summarise(earlier["images"])
        print(render(earlier["summary"]))
        args.out.write_text(json.dumps(earlier, indent=1) + "\n")
        return
    torch.set_num_threads(1)  # as medcodec bench: one thread, comparable speeds
    methods = {mode: get_method(mode, "cpu") for mode in ("fast", "slow")}
    records = []
    started = time.perf_counter()
    for group, rel, plane, bits in tqdm(list(planes_of(args.corpus, args.limit_per_group)), desc="ablation"):
        record = {"group": group, "file": rel, "bits": bits, "shape": list(plane.shape), "pixels": int(plane.size),
                  "subimage_pixels": subimage_pixels(plane.shape)}
        for mode, method in methods.items():
            record[mode] = measure(method, plane, bits)
        records.append(record)
    rows = summarise(records)
    print(render(rows))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"command": " ".join(["python"] + sys.argv),
                                    "seconds": round(time.perf_counter() - started, 1),
                                    "model": methods["fast"].model_id, "summary": rows, "images": records},
                                   indent=1) + "\n")


if __name__ == "__main__":
    main()
