"""Data files that are part of the format (a preset dictionary, priors), read only if they are the ones
the format names.

Why: a stream coded with one version of such a file decodes to garbage with another, and a damaged or
replaced installation must not pass for a damaged stream; so each file's sha256 is pinned in the module
that uses it, and a file that is missing or differs is a clear error that says to reinstall.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from medcodec.errors import UnsupportedVersionError


def read_pinned(path: Path, sha256: str, what: str) -> bytes:
    """The file's bytes, if their sha256 is the pinned one; UnsupportedVersionError otherwise."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UnsupportedVersionError(f"{what} {path.name} is missing ({exc}); reinstall medcodec") from exc
    if hashlib.sha256(data).hexdigest() != sha256:
        raise UnsupportedVersionError(f"{what} {path.name} is not the one this medcodec was built with; "
                                      "reinstall medcodec")
    return data
