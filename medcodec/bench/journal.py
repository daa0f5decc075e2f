"""A bench's journal: each image's record appended as one JSON line as soon as it is measured, so that a
long run cut short (a session's end, a reboot, Ctrl-C) resumes where it stopped instead of from the start.

Why: the committed table is one run of all modes and codecs over the test split, two hours on a 2-core
machine; a run that is cut off wrote nothing, and the next one began again.

The first line says what the records are comparable under: the run's settings (modes, codecs, device,
threads) and the code that measured them (a hash of medcodec's sources and of the sha256 of every weight
file its manifest names). A journal written under other settings or by other code is refused, never
mixed in. A last line cut short by the interruption is dropped, and that image measured again.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, NoReturn

import medcodec
from medcodec import models
from medcodec.errors import InvalidInputError

JOURNAL_VERSION = 1


def code_id() -> str:
    """A short hash of what measures a record: medcodec's Python sources and its weights' sha256."""
    root = Path(medcodec.__file__).resolve().parent
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    try:
        entries = models.manifest().get("models", {})
    except (OSError, ValueError):  # an unreadable manifest: the learned modes fail anyway
        entries = {}
    weights = sorted((name, str(entry.get("sha256"))) for name, entry in entries.items())
    digest.update(json.dumps(weights).encode())
    return digest.hexdigest()[:16]


class Journal:
    """The records of a journal file (``records``: by image path) and ``append`` for new ones."""

    def __init__(self, path: str | os.PathLike, settings: dict[str, Any]):
        self.path = Path(path)
        self.header = {"journal": JOURNAL_VERSION, "settings": settings, "code": code_id()}
        self.records: dict[str, dict[str, Any]] = {}
        if self.path.exists() and self.path.stat().st_size > 0:
            self._load()
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "w") as out:
                self._write(out, self.header)

    def _refuse(self, why: str) -> NoReturn:
        raise InvalidInputError(f"bench journal {self.path} {why}: pass another --journal file, or delete this "
                                f"one to measure every image again")

    def _load(self) -> None:
        data = self.path.read_bytes()
        complete = data[:data.rfind(b"\n") + 1]  # a line without its newline was cut short: dropped
        lines = complete.split(b"\n")[:-1]
        try:
            header = json.loads(lines[0]) if lines else None
        except ValueError:
            header = None
        if not isinstance(header, dict) or header.get("journal") != JOURNAL_VERSION:
            self._refuse("is not a medcodec bench journal (or one of another version)")
        if header.get("settings") != self.header["settings"]:
            self._refuse(f"was written with other settings ({header.get('settings')}; this run: "
                         f"{self.header['settings']})")
        if header.get("code") != self.header["code"]:
            self._refuse(f"was written by other medcodec code or weights ({header.get('code')}; this one: "
                         f"{self.header['code']})")
        for number, line in enumerate(lines[1:], start=2):
            try:
                record = json.loads(line)
                self.records[record["path"]] = record
            except (ValueError, KeyError, TypeError):
                self._refuse(f"is damaged at line {number}")
        if len(complete) < len(data):
            with open(self.path, "r+b") as out:  # appends start after the last whole line
                out.truncate(len(complete))

    @staticmethod
    def _write(out, value: dict[str, Any]) -> None:
        out.write(json.dumps(value, separators=(",", ":")) + "\n")
        out.flush()
        os.fsync(out.fileno())

    def append(self, record: dict[str, Any]) -> None:
        """The image's record, on disk before the next image starts."""
        with open(self.path, "a") as out:
            self._write(out, record)
        self.records[record["path"]] = record
