"""What the recompression benchmarks share: totals of their records by group, and the results file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Iterable


def totals(rows: Iterable[dict], group: Callable[[dict], str], fields: tuple[str, ...]) -> dict[str, dict]:
    """Per group: "files" (how many rows) and the sum of each field over its rows."""
    out: dict[str, dict] = {}
    for row in rows:
        t = out.setdefault(group(row), {"files": 0, **{name: 0 for name in fields}})
        t["files"] += 1
        for name in fields:
            t[name] += row[name]
    return out


def write(out: Path, records: list[dict], summary: dict) -> None:
    """{"files": records, "totals": summary} to out (folders made), and the summary to stdout."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"files": records, "totals": summary}, indent=1) + "\n")
    print(json.dumps(summary, indent=1))
