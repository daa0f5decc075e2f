"""The README's results tables (markdown) from a `medcodec bench --json` file.

    python benchmarks/readme_table.py benchmarks/results/test_all.json

Table 1: bpp and ratio to JPEG-XL e9 per top-level folder and overall, every codec. Table 2: speed
(megapixels per second, one thread) and, for medcodec's modes, the share of pixels the learned method
kept (the rest was stored by JPEG-XL because it was smaller) and the latent z / residual split.
"""

from __future__ import annotations

import json
import sys

from medcodec.bench.report import codec_label


def _cell(summary: dict | None) -> str:
    if not summary or not summary.get("bpp"):
        return "–"
    ratio = summary.get("ratio_to_jxl9")
    return f"{summary['bpp']:.3f} ({ratio:.3f})" if ratio else f"{summary['bpp']:.3f}"


def tables(bench: dict) -> str:
    groups = [g for g in bench["groups"] if g["by"] in ("folder", "bits", "overall")]
    codecs = list(groups[-1]["codecs"])
    lines = ["| group | MP | " + " | ".join(codec_label(c) for c in codecs) + " |",
             "|---|---:|" + "---:|" * len(codecs)]
    for g in groups:
        name = f"**{g['name']}**" if g["by"] != "folder" else g["name"]
        lines.append(f"| {name} | {g['megapixels']:.1f} | " + " | ".join(_cell(g["codecs"].get(c)) for c in codecs)
                     + " |")
    overall = groups[-1]["codecs"]
    lines += ["", "| codec | enc MP/s | dec MP/s | learned share | JPEG history | raster | notes |",
              "|---|---:|---:|---:|---:|---:|---|"]
    for c in codecs:
        s = overall[c]
        if not s.get("enc_mps"):
            continue
        share = f"{100 * s['learned_share']:.0f}%" if s.get("learned_share") is not None else ""
        jpeg = f"{100 * s['jpeg_share']:.0f}%" if s.get("jpeg_share") is not None else ""
        raster = f"{100 * s['raster_share']:.0f}%" if s.get("raster_share") is not None else ""
        sections = s.get("section_bpp") or {}
        note = (f"z {sections['latent_z']:.3f} + residuals {sections.get('residual', 0):.3f} bpp on its frames"
                if sections.get("latent_z") else "")
        lines.append(f"| {codec_label(c)} | {s['enc_mps']:.2f} | {s['dec_mps']:.2f} | {share} | {jpeg} | {raster} | {note} |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(tables(json.load(open(sys.argv[1]))))
