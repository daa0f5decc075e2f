"""Build the preset dictionary of the DEFLATE_DICOM_V1 envelope coding (``container.envelope``).

    python -m medcodec.train.envelope_dictionary ../shared/corpus/train

Candidates are the first CANDIDATE_BYTES of every distinct DICOM envelope of the train split (the
file meta group and the leading data elements: what headers share). Greedy: each step appends the
candidate that most shrinks the deflate-coded envelopes of the *other sources* (a source is a folder
of one series, or a file name's prefix such as ``nema_``), so a candidate earns its place by what it
does for headers from elsewhere, not by matching its own series; it stops at 32 KiB or when no
candidate saves more than MIN_GAIN bytes. Later bytes are nearer to the coded data, and deflate codes
near matches cheaper, so the most useful candidate ends up last. Prints the sha256 to pin in
``container/envelope.py``; the file is never overwritten silently (--force).
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from collections import Counter
from pathlib import Path

from medcodec.container import envelope
from medcodec.io.source import is_candidate_file, load

CANDIDATE_BYTES = 2048
MIN_GAIN = 16  # bytes over the whole objective
OBJECTIVE_LIMIT = 1 << 16  # envelopes longer than this hold pixel data (encapsulated): not header-like


def source_key(path: Path, root: Path) -> str:
    """Which acquisition a file comes from: its folder below the split's modality folder, or the
    prefix of its name up to the first '_' (files from one archive share it)."""
    parts = path.relative_to(root).parts
    if len(parts) > 2:
        return "/".join(parts[:-1])
    return "/".join(parts[:-1] + (parts[-1].split("_")[0],))


def dicom_envelopes(root: Path) -> list[tuple[str, bytes]]:
    """(source, io envelope) of every DICOM file below root whose planes medcodec models."""
    if "test" in root.resolve().parts:
        raise SystemExit(f"{root} looks like a test split; build the dictionary from the train split only")
    out = []
    for path in sorted(root.rglob("*")):
        if not (path.is_file() and is_candidate_file(path)):
            continue
        try:
            src = load(path)
        except Exception as exc:  # a file medcodec cannot read contributes nothing
            print(f"skipped {path}: {exc}", file=sys.stderr)
            continue
        if src.kind == "dicom":
            out.append((source_key(path, root), src.envelope))
    return out


def build(envelopes: list[tuple[str, bytes]], limit: int = envelope.DICTIONARY_LIMIT) -> bytes:
    """The greedy dictionary (see the module docstring)."""
    weighted = Counter((s, e) for s, e in envelopes if len(e) <= OBJECTIVE_LIMIT)
    candidates = {e[:CANDIDATE_BYTES]: s for s, e in weighted}

    def cost(dictionary: bytes, exclude: str | None) -> int:
        return sum(n * len(envelope.deflate_pack(e, dictionary)) for (s, e), n in weighted.items() if s != exclude)

    dictionary = b""
    while candidates:
        best, best_gain = None, MIN_GAIN
        for candidate, source in candidates.items():
            trial = (dictionary + candidate)[-limit:]
            gain = cost(dictionary[-limit:], source) - cost(trial, source)
            if gain > best_gain:
                best, best_gain = candidate, gain
        if best is None:
            break
        dictionary = (dictionary + best)[-limit:]
        print(f"  + {len(best):5d} bytes from {candidates.pop(best)}: saves {best_gain} bytes; "
              f"dictionary {len(dictionary)} bytes", file=sys.stderr)
        if len(dictionary) >= limit:
            break
    return dictionary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("train", type=Path, help="the train split (../shared/corpus/train)")
    parser.add_argument("-o", "--output", type=Path, default=envelope.DICTIONARY_FILE)
    parser.add_argument("--force", action="store_true", help="replace an existing output file")
    args = parser.parse_args(argv)
    if args.output.exists() and not args.force:
        raise SystemExit(f"{args.output} exists; --force to replace it (files coded with it need it unchanged)")
    envelopes = dicom_envelopes(args.train)
    print(f"{len(envelopes)} DICOM envelopes", file=sys.stderr)
    dictionary = build(envelopes)
    args.output.write_bytes(dictionary)
    lzma_total = sum(len(envelope.lzma_pack(e)) for _, e in envelopes)
    deflate_total = sum(min(len(envelope.lzma_pack(e)), len(envelope.deflate_pack(e, dictionary))) for _, e in envelopes)
    print(f"wrote {args.output} ({len(dictionary)} bytes), sha256 {hashlib.sha256(dictionary).hexdigest()}")
    print(f"train envelopes: lzma {lzma_total} bytes, smaller of lzma and dictionary deflate {deflate_total} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
