"""Already-compressed files recompressed: each file's own size beside what medcodec and the classical
codecs make of it, from a `medcodec bench --json` run (markdown).

    python benchmarks/recompression_table.py benchmarks/results/test_jpeg_lossless.json \
        ../shared/corpus/test/compressed_dicom    # where the benched files are (by their relpath)

Why a table of its own: for a JPEG-lossless DICOM the question is how much smaller the archive gets
than the file it was given (medcodec's sizes are whole files that decode to it byte for byte), while
the classical codecs' sizes are their pixels only, as in every bench table.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from medcodec.bench.report import codec_label


def table(bench: dict, root: Path | None = None) -> str:
    """The markdown table; root: the folder the run benched (its files by relpath), else each path."""
    images = [r for r in bench["images"] if r["status"] == "ok"]
    codecs = [c for c in images[0]["results"]] if images else []
    lines = ["| file | MP | file bytes | " + " | ".join(codec_label(c) for c in codecs) + " |",
             "|---|---:|---:|" + "---:|" * len(codecs)]
    totals = {c: 0 for c in codecs}
    original_total = 0
    for r in images:
        original = (root / r["relpath"] if root is not None else Path(r["path"])).stat().st_size
        original_total += original
        cells = []
        for c in codecs:
            result = r["results"][c]
            if result.get("status") != "ok":
                cells.append("-")
                continue
            totals[c] += result["bytes"]
            cells.append(f"{result['bytes']:,} ({result['bytes'] / original:.3f})")
        name = Path(r["relpath"]).name
        lines.append(f"| {name} | {r['pixels'] / 1e6:.2f} | {original:,} | " + " | ".join(cells) + " |")
    coded = {c: all(r["results"][c].get("status") == "ok" for r in images) for c in codecs}
    lines.append(f"| **all** | {sum(r['pixels'] for r in images) / 1e6:.2f} | {original_total:,} | "
                 + " | ".join(f"{totals[c]:,} ({totals[c] / original_total:.3f})" if coded[c] else "-"
                              for c in codecs) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(table(json.load(open(sys.argv[1])), Path(sys.argv[2]) if len(sys.argv) > 2 else None))
