"""Record a benchmark run's test-split numbers in models/manifest.json, next to the weights they measure.

    python benchmarks/record_test_bpp.py benchmarks/results/test_all.json

For each medcodec mode in the run, the entry of the model that mode uses gains (replacing an older one)
``test_split[mode]``: overall bpp, ratio to JPEG-XL e9, the share of pixels the learned streams were
kept on, the ratio per bit-depth group, and which results file, command and date they come from. Only
the manifest's JSON changes; the weights and their hashes do not.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from medcodec.codec import RASTER_SCALES, raster_corrections  # noqa: E402
from medcodec.models import models_dir  # noqa: E402
from medcodec.pipelines import latent, raster, subimage  # noqa: E402

MODEL_OF_MODE = {"fast": subimage.DEFAULT_MODEL, "slow": subimage.DEFAULT_MODEL, "latent": latent.DEFAULT_MODEL}


def summaries(results: dict, results_name: str) -> dict[str, dict]:
    overall = next(g for g in results["groups"] if g["by"] == "overall")
    by_bits = [g for g in results["groups"] if g["by"] == "bits"]
    out = {}
    for mode in results["settings"]["modes"]:
        row = overall["codecs"][f"medcodec-{mode}"]
        out[mode] = {
            "bpp": round(row["bpp"], 4),
            "ratio_to_jxl9": round(row["ratio_to_jxl9"], 4),
            "learned_share": round(row["learned_share"], 4),
            "jpeg_history_share": round(row.get("jpeg_share") or 0.0, 4),
            "raster_share": round(row.get("raster_share") or 0.0, 4),
            "ratio_to_jxl9_by_bits": {g["name"]: round(g["codecs"][f"medcodec-{mode}"]["ratio_to_jxl9"], 4)
                                      for g in by_bits},
            "megapixels": round(overall["megapixels"], 2),
            "results": results_name,
            "command": " ".join(Path(results["machine"]["command"][0]).name.split() + results["machine"]["command"][1:]),
            "date": results["machine"]["date"],
        }
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("results", type=Path, help="JSON written by medcodec bench --json")
    args = p.parse_args()
    results = json.loads(args.results.read_text())
    manifest_path = models_dir() / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    for mode, summary in summaries(results, args.results.as_posix()).items():
        # every mode's raster frames may use its raster corrections and learned scales: those entries
        # hold the mode's numbers too
        for model_id in (MODEL_OF_MODE[mode], *raster_corrections(mode), *RASTER_SCALES.get(mode, (raster.method.SCALE_MODEL,))):
            if model_id in manifest["models"]:
                manifest["models"][model_id].setdefault("test_split", {})[mode] = summary
                print(f"{model_id} {mode}: {summary['bpp']} bpp, {summary['ratio_to_jxl9']} x JPEG-XL e9")
    manifest_path.write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
