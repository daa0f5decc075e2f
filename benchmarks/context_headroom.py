"""Three more places the raster coder might have left bits, each measured on the frames the fast encoder
codes (train split), each fitted or chosen on the frame itself and sent for free: more than a codec
could get. (Measured: no.)

Files are coded by ``codec.encode``; the largest raster frame each codes (``Analysis.streams``) is taken
as it stands: its final prediction mu, its scale buckets and their scale indices (plain tables).

* far taps: a third least-squares stage on the final prediction from farther causal neighbours than the
  template's 12 (their differences from W, one Huber reweighting; 12 or 24 more taps, with or without the
  12 again), fitted to the frame's own residuals and scored on them, used in each scale bucket only where
  it saves there (a least-squares fit does not minimise bits: on exactly predicted pixels it costs). Why
  asked: in a prototype outside the codec, one least-squares predictor per activity class on 24 taps
  instead of 12 made some 16-bit planes 5-10 % smaller (an MR, a CR, a CT), so a larger template might
  pay; what matters is what it adds to the whole predictor.
* intensity scale: a scale offset per bin of the prediction (4-32 quantile bins), or per (scale bucket,
  quartile), searched as the encoder's per-class offsets are (``search_class_adjustments``) on all of the
  frame's pixels. Why asked: an X-ray's quantum noise grows with the signal.
* value sets (planes without low bits): every pixel's probability row (tap-difference weights, boost and
  value range included) restricted to the values its block of B x B pixels holds (an oracle: the set
  itself is what the decoder would need), against a rough price of those sets (per block its range and
  log2 C(range - 2, count - 2) bits). Why asked: the contrast-stretched radiographs use a drifting
  lattice of grey levels, which the tap-difference and agreement weights model only from the neighbours.

    python benchmarks/context_headroom.py [--corpus ../shared/corpus/train]
        [--out benchmarks/results/context_headroom.json]

Run it on the train split: it decides a design.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from residual_model_headroom import coded_frames  # noqa: E402

from medcodec import codec  # noqa: E402
from medcodec.entropy import residual_model as rm  # noqa: E402
from medcodec.pipelines.raster import coding  # noqa: E402
from medcodec.pipelines.raster.layout import OFFSETS  # noqa: E402

FILES = ("dicom16/nema_CT2_UNC.dcm", "dicom16/barre_CT-MONO2-16-ankle.dcm", "dicom16/fodicom_GH1728_ct.dcm",
         "compressed_dicom/fodicom_ct_philips_jpegll.dcm", "compressed_dicom/ct_toshiba_j2k_pixrep1.dcm",
         "dicom16/nema_MR3_UNC.dcm", "dicom16/barre_MR-MONO2-16-head.dcm", "dicom16/barre_CR-MONO1-10-chest.dcm",
         "compressed_dicom/fodicom_CR_modality_lut_jpegll.dcm", "png8/chest_xray/006f3a8a.png",
         "png8/chest_xray/073a8f93.png", "png8/chest_xray/0a7faa2a.png")
# causal for the wavefront order (a neighbour dy rows up may lie up to 2 dy - 1 columns right), beyond OFFSETS
FAR = ((-1, -3), (-2, -3), (-2, 3), (0, -4), (-3, -2), (-3, -1), (-3, 0), (-3, 1), (-3, 2), (-1, -4), (-3, -3),
       (-3, 3), (-2, -4), (-3, -4), (-3, 4), (0, -5), (-1, -5), (-4, -2), (-4, -1), (-4, 0), (-4, 1), (-4, 2),
       (-3, 5), (-4, 3))
TAP_SETS = {"far 12": FAR[:12], "far 24": FAR, "12 + far 12": OFFSETS + FAR[:12], "12 + far 24": OFFSETS + FAR}
INTENSITY_BINS = (4, 8, 16, 32)
BLOCKS = (16, 32, 64)
REACH = 5  # rows and columns of padding the far taps need
FIT_PIXELS = 100_000


def frame_of(path: Path):
    """The largest raster frame the fast encoder codes for this file, or None."""
    frames: list = []
    with coded_frames(frames):
        codec.encode(str(path), mode="fast")
    return max(frames, key=lambda a: a.values.size) if frames else None


def scale_indices(a) -> np.ndarray:
    return a.model.ell[np.clip(a.buckets, 0, a.model.ell.size - 1)]


def far_taps(a) -> dict[str, float]:
    """Relative change of the frame's ideal bits with each tap set's third stage (negative: smaller)."""
    h, w = a.height, a.width
    padded = np.pad(a.values.reshape(h, w), REACH, mode="edge").astype(np.float64)
    ell = scale_indices(a)
    reference = rm.ideal_cost_bits(a.values, rm.pixel_params(a.mu, ell))
    left = padded[REACH:REACH + h, REACH - 1:REACH - 1 + w].ravel()
    residual = ((a.values << 4) + 8 - a.mu).astype(np.float64)
    inner = np.arange(h * w) // w >= 4  # rows whose far taps all lie in the plane
    sample = np.flatnonzero(inner)[::max(1, int(inner.sum()) // FIT_PIXELS)]
    out = {}
    for name, taps in TAP_SETS.items():
        design = np.stack([padded[REACH + dy:REACH + dy + h, REACH + dx:REACH + dx + w].ravel() - left
                           for dy, dx in taps] + [np.full(h * w, 1 / 16)], axis=1) * 16
        coef = np.linalg.lstsq(design[sample], residual[sample], rcond=None)[0]
        misfit = residual[sample] - design[sample] @ coef
        spread = 1.4826 * np.median(np.abs(misfit)) + 1e-9
        root = np.sqrt(np.minimum(1.0, 2 * spread / (np.abs(misfit) + 1e-9)))  # one Huber reweighting
        coef = np.linalg.lstsq(design[sample] * root[:, None], residual[sample] * root, rcond=None)[0]
        mu = np.where(inner, np.clip(a.mu + np.round(design @ coef).astype(np.int64), 0, a.top), a.mu)
        bits = 0.0
        for bucket in np.unique(a.buckets):
            members = a.buckets == bucket
            bits += min(rm.ideal_cost_bits(a.values[members], rm.pixel_params(m[members], ell[members]))
                        for m in (a.mu, mu))
        out[name] = bits / reference - 1
    return out


def intensity_scale(a) -> dict[str, float]:
    """Relative change of the frame's ideal bits with scale offsets per intensity bin, against one offset
    for the whole frame searched the same way (the frame's own calibration)."""
    values, mu, ell = a.values, a.mu, scale_indices(a)
    one = rm.search_class_adjustments(values, mu, ell, np.zeros(values.size, np.int64), 1)[0].bits
    out = {}
    for bins in INTENSITY_BINS:
        classes = np.searchsorted(np.quantile(mu, np.linspace(0, 1, bins + 1)[1:-1]), mu, side="right")
        found = rm.search_class_adjustments(values, mu, ell, classes.astype(np.int64), bins)
        out[f"{bins} bins"] = sum(x.bits for x in found) / one - 1
    buckets = np.clip(a.buckets, 0, a.model.ell.size - 1).astype(np.int64)
    quartile = np.searchsorted(np.quantile(mu, [0.25, 0.5, 0.75]), mu, side="right")
    found = rm.search_class_adjustments(values, mu, ell, buckets * 4 + quartile, a.model.ell.size * 4)
    out["bucket x quartile"] = sum(x.bits for x in found) / one - 1
    return out


def value_sets(a) -> dict[str, dict[str, float]] | None:
    """Per block size: the oracle's relative saving and the sets' rough price, as shares of the frame's
    coded main symbols; None where a tenth of the pixels have low bits (entries are then ranges)."""
    h, w = a.height, a.width
    pixels = np.arange(h * w)
    ell = scale_indices(a)
    params = rm.pixel_params(a.mu, ell)
    if (params.low_bits > 0).mean() > 0.1:
        return None
    symbols = coding.extra_widths(a.values, params)[0]
    rows, cols = np.divmod(pixels, w)
    coded = np.zeros(h * w)
    restricted = {block: np.zeros(h * w) for block in BLOCKS}
    keys = {}
    for block in BLOCKS:
        index = (rows // block) * ((w + block - 1) // block) + cols // block
        keys[block] = (index, np.unique(index * (1 << 20) + a.values))
    for start in range(0, pixels.size, 20_000):
        chunk = pixels[start:start + 20_000]
        p = rm.pixel_params(a.mu[chunk], ell[chunk])
        rows_p = coding.probabilities(a.model, p, a._neighbour_values(chunk))
        own = rows_p[np.arange(chunk.size), symbols[chunk]]
        coded[chunk] = own
        entry_values = np.arange(rows_p.shape[1])[None, :] - rm.SUPPORT + p.base[:, None]
        for block in BLOCKS:
            index, held = keys[block]
            allowed = np.isin(index[chunk, None] * (1 << 20) + entry_values, held)
            allowed[:, rm.ESCAPE:] = True
            allowed[p.low_bits > 0] = True
            restricted[block][chunk] = own / np.where(allowed, rows_p, 0.0).sum(axis=1)
    reference = -np.log2(coded).sum()
    out = {}
    for block in BLOCKS:
        held = keys[block][1]  # sorted (block, value) pairs: each block's values, lowest first
        _, first, counts = np.unique(held >> 20, return_index=True, return_counts=True)
        values = held & ((1 << 20) - 1)
        price = 0.0
        for low, high, count in zip(values[first].tolist(), values[first + counts - 1].tolist(), counts.tolist()):
            span = high - low + 1
            price += 16 + (math.lgamma(span - 1) - math.lgamma(count - 1) - math.lgamma(span - count + 1)) \
                / math.log(2) if count > 1 else 8
        out[f"{block}x{block}"] = {"oracle": -np.log2(restricted[block]).sum() / reference - 1,
                                   "price": price / reference}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=Path("../shared/corpus/train"))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/context_headroom.json"))
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    records = []
    for name in FILES:
        path = args.corpus / name
        if not path.exists():
            print(f"{name}: not in {args.corpus}, left out")
            continue
        started = time.perf_counter()
        a = frame_of(path)
        if a is None:
            print(f"{name}: no raster frame")
            continue
        record = {"file": name, "bits": a.bits, "pixels": int(a.values.size), "far taps": far_taps(a),
                  "intensity scale": intensity_scale(a), "value sets": value_sets(a)}
        record["seconds"] = round(time.perf_counter() - started, 1)
        records.append(record)
        print(f"{name}: far taps " + ", ".join(f"{k} {v:+.2%}" for k, v in record["far taps"].items())
              + "; intensity scale " + ", ".join(f"{k} {v:+.2%}" for k, v in record["intensity scale"].items())
              + ("" if record["value sets"] is None else "; value sets " + ", ".join(
                  f"{k} {v['oracle']:+.2%} (price {v['price']:.2%})" for k, v in record["value sets"].items())),
              flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"corpus": str(args.corpus), "command": " ".join(sys.argv), "files": records},
                                   indent=1) + "\n")


if __name__ == "__main__":
    main()
