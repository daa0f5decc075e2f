"""Build the starting probabilities of medcodec's JPEG coefficient coder (``entropy.jpeg_coefficients``).

    python -m medcodec.train.jpeg_priors ../shared/corpus/train

Every context of the coder starts from a probability instead of one half, so a small image (a 512 x 512
CT slice has 4,096 blocks, and the coder has about 20,000 contexts) does not pay to learn what every JPEG
shares. They are learnt from the train split only: each image's first plane (at most MAX_SIDE square)
as one-component lossy JPEGs by libjpeg-turbo (imagecodecs) at QUALITIES, 8-bit images at 8 bits and
deeper ones at 12 (their top 12 bits), with default and optimised Huffman tables alike (the coefficients
are the same); per context the 0s and 1s every image's coding makes are counted, and the probability
of a 0 is (zeros + 1) / (decisions + 2) in 1/65536, within the coder's range. Written as little-endian
uint16; prints the sha256 to pin in ``entropy/jpeg_coefficients.py``. The file is never overwritten
silently (--force).
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

import numpy as np

from medcodec.entropy import jpeg_coefficients, jpeg_dct

QUALITIES = (60, 80, 90, 95)
MAX_SIDE = 1024


def jpegs_of(plane: np.ndarray, bits: int) -> list[bytes]:
    """The plane (cut to MAX_SIDE) as a one-component lossy JPEG at each of QUALITIES: 8 bits for 8-bit
    planes, else 12 (its top 12 bits)."""
    import imagecodecs

    plane = np.asarray(plane)[:MAX_SIDE, :MAX_SIDE].astype(np.int64)
    if bits <= 8:
        samples, depth = plane.astype(np.uint8), 8
    else:
        samples, depth = (plane >> max(bits - 12, 0)).astype(np.uint16), 12
    return [bytes(imagecodecs.jpeg8_encode(samples, level=q, bitspersample=depth)) for q in QUALITIES]


def counts_of(paths: list[Path]) -> np.ndarray:
    """int64 [contexts, 2]: the 0s and 1s coding these files' JPEGs puts in each context."""
    from medcodec.io.source import load

    total = np.zeros((jpeg_coefficients.CONTEXTS, 2), np.int64)
    for path in paths:
        try:
            src = load(path)
        except Exception as exc:  # a file medcodec cannot read contributes nothing
            print(f"skipped {path}: {exc}", file=sys.stderr)
            continue
        if not src.planes or min(src.planes[0].shape) < 8:
            continue
        for jpeg in jpegs_of(src.planes[0], src.bits):
            scan = jpeg_dct.parse(jpeg)
            [blocks] = jpeg_dct.coefficients(jpeg, scan)
            total += jpeg_coefficients.statistics(blocks, scan.components[0].quant)
    return total


def priors_from(counts: np.ndarray) -> np.ndarray:
    """uint16 [contexts]: each context's probability of a 0 from its counts (see the module docstring)."""
    zeros, ones = counts[:, 0].astype(np.int64), counts[:, 1].astype(np.int64)
    p = ((zeros + 1) << 16) // (zeros + ones + 2)
    return np.clip(p, jpeg_coefficients.PROB_MIN, jpeg_coefficients.PROB_MAX).astype("<u2")


def train_files(root: Path) -> list[Path]:
    """Every file below root that medcodec reads; refuses a test split."""
    from medcodec.io.source import is_candidate_file

    if "test" in root.resolve().parts:
        raise SystemExit(f"{root} looks like a test split; learn the priors from the train split only")
    return [p for p in sorted(root.rglob("*")) if p.is_file() and is_candidate_file(p)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("root", type=Path, help="the train split (../shared/corpus/train)")
    parser.add_argument("--output", type=Path, default=jpeg_coefficients.PRIORS_FILE)
    parser.add_argument("--force", action="store_true", help="replace an existing output file")
    args = parser.parse_args(argv)
    if args.output.exists() and not args.force:
        raise SystemExit(f"{args.output} exists; --force to replace it (files coded with it need it unchanged)")
    raw = priors_from(counts_of(train_files(args.root))).tobytes()
    args.output.write_bytes(raw)
    print(f"wrote {args.output} ({len(raw)} bytes), sha256 {hashlib.sha256(raw).hexdigest()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
