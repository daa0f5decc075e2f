"""What the benchmark scripts that drive methods directly share: the first plane of every input
under a folder, and a timed encode + decode of one plane."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from medcodec.io.source import is_candidate_file, load


def first_planes(folder: Path):
    """(path, first plane, bits) of every readable input under folder, in sorted order; files that do
    not load or hold no modelled plane are passed over (medcodec bench lists them)."""
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and is_candidate_file(p)):
        try:
            src = load(path)
        except Exception:  # noqa: BLE001 - an unreadable file is not a benchmark result
            continue
        if src.planes:
            yield path, src.planes[0], src.bits


def round_trip(encoder, plane: np.ndarray, bits: int, decoder=None):
    """(streams, decoded plane, encode seconds, decode seconds) of a method (decoder: another instance,
    e.g. on another device; default the encoder). The caller compares; decode errors propagate."""
    start = time.perf_counter()
    streams = encoder.encode(plane, bits)
    encode_s = time.perf_counter() - start
    start = time.perf_counter()
    decoded = (decoder or encoder).decode(streams, plane.shape, bits)
    return streams, decoded, encode_s, time.perf_counter() - start
