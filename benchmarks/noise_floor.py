"""How much of a plane's JPEG-XL size is its noise? An estimate of what no predictor can take away.

If a plane is a smooth signal plus white Gaussian noise of standard deviation sigma, no lossless coder
codes it in fewer bits a pixel than the noise's entropy, that of a Gaussian of sigma discretised to
integers (the signal can at best be predicted exactly). Two estimates of sigma, both classical:

* corner: the plane's periodogram averaged where both spatial frequencies exceed 3/8 of a cycle a pixel,
  the corner of the spectrum natural and medical signals leave to the noise (white noise has the same
  power sigma^2 at every frequency);
* blocks: Immerkaer's fast noise estimate (1996: the mean absolute response to a 3x3 kernel that cancels
  planes and ramps, times sqrt(pi/2) / 6) on 16x16 blocks, so that noise whose level follows the signal
  (an X-ray's quantum noise) is entropy-coded at the level of its own block.

Neither is a bound: the corner also holds edges and fine texture (sigma too large), noise that the
imaging chain low-passed or spread over a value lattice (contrast-stretched radiographs) is not white,
and quantisation-limited planes (sigma near 1) are not Gaussian. A plane whose estimate exceeds JPEG-XL's
own size says so; on the others the estimate says how much room is left below JPEG-XL at all.

    python benchmarks/noise_floor.py [--corpus ../shared/corpus/train] [--per-group 70]
        [--out benchmarks/results/noise_floor.json]
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path

import imagecodecs
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import method_runs  # noqa: E402
import result_files  # noqa: E402

CORNER = 0.375  # cycles a pixel; Nyquist is 0.5
BLOCK = 16
# Immerkaer's kernel: the difference of two Laplacians, zero on constant, linear and bilinear patches
KERNEL = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], dtype=np.float64)


def gaussian_entropy(sigma: float) -> float:
    """Bits of a Gaussian of this standard deviation rounded to integers (sigma floored at 0.05)."""
    sigma = max(sigma, 0.05)
    k = np.arange(-math.ceil(10 * sigma) - 1, math.ceil(10 * sigma) + 2, dtype=np.float64)
    edges = np.append(k - 0.5, k[-1] + 0.5) / (sigma * math.sqrt(2))
    cdf = 0.5 * (1 + np.array([math.erf(x) for x in edges]))
    p = np.diff(cdf)
    p = p[p > 0]
    return float(-(p * np.log2(p)).sum())


def corner_sigma(plane: np.ndarray) -> float:
    """sigma from the periodogram's high-frequency corner."""
    x = plane.astype(np.float64)
    power = np.abs(np.fft.fft2(x - x.mean())) ** 2 / x.size
    fy = np.abs(np.fft.fftfreq(x.shape[0]))[:, None]
    fx = np.abs(np.fft.fftfreq(x.shape[1]))[None, :]
    return float(math.sqrt(power[(fy > CORNER) & (fx > CORNER)].mean()))


def block_sigmas(plane: np.ndarray) -> np.ndarray:
    """Immerkaer's sigma of every whole BLOCK x BLOCK block of the kernel's response."""
    x = plane.astype(np.float64)
    response = np.zeros((x.shape[0] - 2, x.shape[1] - 2))
    for dy in range(3):
        for dx in range(3):
            response += KERNEL[dy, dx] * x[dy:dy + response.shape[0], dx:dx + response.shape[1]]
    rows, cols = response.shape[0] // BLOCK, response.shape[1] // BLOCK
    blocks = np.abs(response[:rows * BLOCK, :cols * BLOCK]).reshape(rows, BLOCK, cols, BLOCK).mean(axis=(1, 3))
    return math.sqrt(math.pi / 2) * blocks.ravel() / 6


def measure(plane: np.ndarray, bits: int) -> dict:
    """bpp of JPEG-XL e9 and of both noise estimates for one plane."""
    jxl = len(imagecodecs.jpegxl_encode(plane if bits > 8 else plane.astype(np.uint8), lossless=True, effort=9))
    sigma = corner_sigma(plane)
    per_block = block_sigmas(plane)
    return {"jxl9 bpp": round(8 * jxl / plane.size, 4), "corner sigma": round(sigma, 3),
            "corner bpp": round(gaussian_entropy(sigma), 4),
            "median block sigma": round(float(np.median(per_block)), 3),
            "blocks bpp": round(float(np.mean([gaussian_entropy(s) for s in per_block])), 4)}


def main() -> None:
    args = method_runs.plane_ablation_arguments(__doc__, ROOT / "benchmarks/results/noise_floor.json", per_group=70,
                                                corpus=Path("../shared/corpus/train"))
    records = []
    for path, plane, bits in method_runs.pick(args.corpus, args.per_group, args.max_pixels):
        if min(plane.shape) < 4 * BLOCK:
            continue
        start = time.perf_counter()
        row = {"file": str(path.relative_to(args.corpus)), "folder": str(path.parent.relative_to(args.corpus)),
               "pixels": int(plane.size), "bits": bits, **measure(plane, bits)}
        row["seconds"] = round(time.perf_counter() - start, 2)
        for key in ("jxl9", "corner", "blocks"):
            row[f"{key} bits"] = row[f"{key} bpp"] * plane.size
        row["above jxl9"] = int(row["blocks bpp"] > row["jxl9 bpp"])
        records.append(row)
        print(row["file"], {k: v for k, v in row.items() if k.endswith(("bpp", "sigma"))}, flush=True)
    fields = ("jxl9 bits", "corner bits", "blocks bits", "above jxl9")
    summary = result_files.totals(records, lambda r: r["folder"], fields)
    summary["all"] = result_files.totals(records, lambda r: "all", fields)["all"]
    result_files.ratios(summary, **{"corner / jxl9": ("corner bits", "jxl9 bits"),
                                    "blocks / jxl9": ("blocks bits", "jxl9 bits")})
    result_files.write(args.out, records, summary)


if __name__ == "__main__":
    main()
