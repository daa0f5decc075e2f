"""Writing outputs safely: all or nothing, never over an existing file unless asked to.

Temporary files are named ``.<final name>.medcodec-<pid>-<random>.tmp`` beside the output: hidden (so
folder scans skip them), recognisable, and tied to the writing process, so that one left behind by a
killed process can be told apart from one a live process is still writing (remove_stale_temporaries).
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from pathlib import Path

from medcodec.errors import InvalidInputError, OutputExistsError

TEMP_MARK = ".medcodec-"
TEMP_SUFFIX = ".tmp"
_TEMP_NAME = re.compile(r"^\..+" + re.escape(TEMP_MARK) + r"(\d+)-[^/]*" + re.escape(TEMP_SUFFIX) + "$")


def _current_umask() -> int:
    # os.umask can only be read by setting it; restore at once (single-threaded CLI use).
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _fsync_dir(directory: Path) -> None:
    """Persist the rename itself; some platforms cannot open a directory, which is harmless."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """True when both paths name one existing file (through links, case-folding, ...)."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def atomic_write(path: str | os.PathLike, data: bytes, *, force: bool = False,
                 protect: tuple[str | os.PathLike, ...] = ()) -> Path:
    """Write data to path so that readers see either the old state or the complete new file.

    The bytes go to a temporary file in the same directory (same file system, so the final rename is
    atomic), are fsynced, then moved into place. Without force an existing path is never replaced;
    paths in protect (the inputs) are never replaced even with force. On any failure the temporary
    file is removed, so no partial output is ever left behind.
    """
    dest = Path(path)
    for p in protect:
        if same_file(dest, p):
            raise InvalidInputError(f"output {dest} is an input; choose another output name")
    if dest.is_dir():
        raise InvalidInputError(f"{dest}: output path is a directory")
    if dest.exists() and not force:
        raise OutputExistsError(f"output {dest} exists; use --force to overwrite it")
    directory = dest.parent if str(dest.parent) else Path(".")
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=directory, prefix=f".{dest.name}{TEMP_MARK}{os.getpid()}-",
                                        suffix=TEMP_SUFFIX)
    except OSError as exc:
        raise InvalidInputError(f"{dest}: cannot write here ({exc.strerror or exc})") from exc
    tmp = Path(tmp_name)
    try:
        _write_fully(fd, data)
        # mkstemp creates 0600; give the output the permissions an ordinary new file would get.
        os.chmod(tmp, 0o666 & ~_current_umask())
        if force:
            os.replace(tmp, dest)
        else:
            _link_without_clobber(tmp, dest)
        _fsync_dir(directory)
    except OSError as exc:
        # Disk full, quota, I/O error: the file's problem, not a bug; the caller reports it and goes on.
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise InvalidInputError(f"{dest}: cannot write ({exc.strerror or exc}); nothing was written") from exc
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    return dest


def _write_fully(fd: int, data: bytes) -> None:
    """Write all bytes and fsync them; closes fd. A separate function so tests can simulate ENOSPC."""
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def is_temporary(name: str) -> bool:
    """Whether a file name is one of atomic_write's temporaries."""
    return _TEMP_NAME.match(name) is not None


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: alive, owned by someone else
        return True
    return True


def remove_stale_temporaries(directory: str | os.PathLike) -> list[Path]:
    """Delete temporaries in directory (not below it) whose writing process no longer runs.

    A process killed between creating its temporary and renaming it (SIGKILL, power loss) leaves one
    behind; it is never under the final name, so it is harmless, but it wastes space. Temporaries of
    live processes are kept: they may still become outputs. Returns the paths removed.
    """
    removed = []
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return removed
    for entry in entries:
        match = _TEMP_NAME.match(entry.name)
        if match and entry.is_file(follow_symlinks=False) and not _process_alive(int(match.group(1))):
            with contextlib.suppress(OSError):
                os.unlink(entry.path)
                removed.append(Path(entry.path))
    return removed


def _link_without_clobber(tmp: Path, dest: Path) -> None:
    """Move tmp to dest, failing if dest appeared meanwhile (another process racing us)."""
    try:
        os.link(tmp, dest)  # atomic and refuses an existing name, unlike os.replace
    except FileExistsError as exc:
        raise OutputExistsError(f"output {dest} exists; use --force to overwrite it") from exc
    except OSError:
        # File systems without hard links: check-then-rename leaves a small race, acceptable there.
        if dest.exists():
            raise OutputExistsError(f"output {dest} exists; use --force to overwrite it") from None
        os.replace(tmp, dest)
        return
    tmp.unlink()
