"""What the recompression benchmarks share: a checked round trip, totals of their records by group, and
the results file."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Callable, Iterable


def round_trip(data: bytes, what: str, mode: str = "fast") -> tuple[bytes, float, float]:
    """(the .mlc, encode seconds, decode seconds) of a file, its decoding checked byte for byte
    (SystemExit naming what otherwise)."""
    from medcodec import codec

    start = time.perf_counter()
    coded = codec.encode(data, mode=mode)
    encode_s = time.perf_counter() - start
    start = time.perf_counter()
    if codec.decode(coded).data != data:
        raise SystemExit(f"{what}: did not decode byte for byte")
    return coded, encode_s, time.perf_counter() - start


def totals(rows: Iterable[dict], group: Callable[[dict], str], fields: tuple[str, ...]) -> dict[str, dict]:
    """Per group: "files" (how many rows) and the sum of each field over its rows."""
    out: dict[str, dict] = {}
    for row in rows:
        t = out.setdefault(group(row), {"files": 0, **{name: 0 for name in fields}})
        t["files"] += 1
        for name in fields:
            t[name] += row[name]
    return out


def ratios(summary: dict[str, dict], **named: tuple[str, str]) -> None:
    """Add to each group's totals, under each name, its numerator field over its denominator field (4 places)."""
    for t in summary.values():
        for name, (numerator, denominator) in named.items():
            t[name] = round(t[numerator] / t[denominator], 4)


def write(out: Path, records: list[dict], summary: dict) -> None:
    """{"files": records, "totals": summary} to out (folders made), and the summary to stdout."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"files": records, "totals": summary}, indent=1) + "\n")
    print(json.dumps(summary, indent=1))
