"""Batches of files for the CLI: which files, which output names, and running them one failure at a time.

Each file is handled on its own: a failure becomes an Outcome with one line naming the file and the
cure, and the remaining files still run. Outputs are written atomically (medcodec.fileio), never over
an existing file without force and never over an input. With resume, an existing output is kept when
it decodes exactly to its input and re-made when it does not (e.g. a stale file of an older run).
"""

from __future__ import annotations

import concurrent.futures
import fnmatch
import multiprocessing
import os
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

from medcodec import parallel
from medcodec.errors import InvalidInputError, MedcodecError, ModelMismatchError, OutputExistsError
from medcodec.fileio import atomic_write, remove_stale_temporaries, same_file

MLC_SUFFIX = ".mlc"


class UsageProblem(ValueError):
    """A command line that cannot work as given (the CLI turns it into a usage error, exit 2)."""


@dataclass
class Task:
    """One unit of work: src is a path or '-' (stdin); dest a path, '-' (stdout) or None: derived from
    base once the decoded kind is known (a name without '.mlc' gets the kind's extension)."""

    src: str
    dest: str | None
    base: str = ""


@dataclass
class Outcome:
    src: str
    code: int = 0
    message: str = ""
    detail: str = ""  # traceback of an internal error, shown with --debug
    bytes_in: int = 0
    bytes_out: int = 0
    skipped: bool = False  # resume found a verified output


@dataclass(frozen=True)
class EncodeOptions:
    mode: str = "fast"
    device: str = "auto"
    effort: int | None = None
    force: bool = False
    verify: bool = False
    resume: bool = False
    max_pixels: int | None = None
    recompress: bool = True
    bands: bool = False  # large planes in bands that decode side by side (codec.encode's in_bands)


@dataclass(frozen=True)
class DecodeOptions:
    device: str = "auto"
    force: bool = False
    max_pixels: int | None = None
    # a multi-frame file's frames in as many processes as this process' thread budget (the CLI; a
    # worker of --jobs has its share of it, so one file at a time takes the cores, many files share them)
    frame_processes: bool = False


# ---------------------------------------------------------------------------------------- inputs


def _wanted(path: Path, root: Path, pattern: str | None, decoding: bool) -> bool:
    """Whether a file found by recursing into a folder is one we should process."""
    if any(part.startswith(".") for part in path.relative_to(root).parts):
        return False  # hidden files and folders (including our own temporaries)
    if pattern is not None:
        rel = path.relative_to(root).as_posix()
        return fnmatch.fnmatch(path.name, pattern) or fnmatch.fnmatch(rel, pattern)
    suffix = path.suffix.lower()
    if decoding:
        return suffix == MLC_SUFFIX
    if suffix == MLC_SUFFIX:
        return False
    from medcodec.io.source import is_candidate_file  # lazily: pydicom is slow to import

    return is_candidate_file(path)


def collect(inputs: Iterable[str], pattern: str | None, decoding: bool) -> list[tuple[str, Path | None]]:
    """Expand folders (recursively, sorted) into files; each file comes with the folder it was found in."""
    found: list[tuple[str, Path | None]] = []
    for item in inputs:
        if item == "-":
            found.append(("-", None))
            continue
        path = Path(item)
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file() and _wanted(p, path, pattern, decoding))
            if not files:
                raise InvalidInputError(f"{item}: folder holds no files to {'decode' if decoding else 'encode'}"
                                        + ("" if pattern else "; use --glob PATTERN to choose files"))
            found.extend((str(p), path) for p in files)
        else:
            found.append((item, None))  # a missing file is reported by its own task, not here
    return found


def plan(inputs: tuple[str, ...], output: str | None, out_dir: str | None, pattern: str | None,
         decoding: bool) -> list[Task]:
    """Decide each input's output path (None: derived later, for decode it depends on the file kind)."""
    if output is not None and out_dir is not None:
        raise UsageProblem("use either -o/--output or --out-dir, not both")
    files = collect(inputs, pattern, decoding)
    if "-" in inputs and len(files) > 1:
        raise UsageProblem("'-' (standard input) must be the only input")
    if output is not None and len(files) != 1:
        raise UsageProblem(f"-o/--output names one file but there are {len(files)} inputs; use --out-dir DIR")
    if output is not None:
        return [Task(files[0][0], output)]
    tasks = []
    for src, root in files:
        if src == "-":
            tasks.append(Task("-", "-"))
            continue
        base = src
        if out_dir is not None:
            rel = Path(src).relative_to(root) if root is not None else Path(Path(src).name)
            base = str(Path(out_dir) / rel)
        if not decoding:
            tasks.append(Task(src, base + MLC_SUFFIX))
        elif _strips(base):
            tasks.append(Task(src, base[: -len(MLC_SUFFIX)]))
        else:
            tasks.append(Task(src, None, base))
    return tasks


def _strips(name: str) -> bool:
    """Whether a decoded name is the stream's name minus '.mlc' (scan.dcm.mlc -> scan.dcm)."""
    stem = os.path.basename(name)
    return stem.lower().endswith(MLC_SUFFIX) and len(stem) > len(MLC_SUFFIX)


def clean_output_folders(tasks: list[Task]) -> int:
    """Remove temporaries that killed medcodec processes left in the output folders; returns how many."""
    folders = {os.path.dirname(t.dest) or "." for t in tasks if t.dest not in (None, "-")}
    return sum(len(remove_stale_temporaries(folder)) for folder in sorted(folders))


# ------------------------------------------------------------------------------------- one file


def read_input(src: str) -> bytes:
    """The bytes of a file or of standard input ('-'); InvalidInputError with the cause otherwise."""
    if src == "-":
        return sys.stdin.buffer.read()
    try:
        return Path(src).read_bytes()
    except FileNotFoundError:
        raise InvalidInputError("no such file; check the path") from None
    except IsADirectoryError:
        raise InvalidInputError("is a folder") from None
    except OSError as exc:
        raise InvalidInputError(f"cannot read ({exc.strerror or exc})") from None


def _write_output(dest: str, data: bytes, src: str, force: bool) -> None:
    if dest == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return
    if src != "-" and same_file(dest, src):
        raise InvalidInputError(f"output {dest} is the input itself; choose another output name")
    atomic_write(dest, data, force=force, protect=() if src == "-" else (src,))


def _precheck_dest(dest: str | None, src: str, force: bool) -> None:
    """Fail before the (slow) coding when the answer is already known."""
    if dest in (None, "-"):
        return
    if src != "-" and same_file(dest, src):
        raise InvalidInputError(f"output {dest} is the input itself; choose another output name")
    if os.path.exists(dest) and not force:
        raise OutputExistsError(f"output {dest} exists; use --force to overwrite it (or --resume to keep "
                                "outputs that verify)")


def _guard(src: str, work: Callable[[], Outcome]) -> Outcome:
    """Run one file's work; turn every failure into an Outcome so the other files still run."""
    try:
        return work()
    except MedcodecError as exc:
        return Outcome(src, code=exc.exit_code, message=str(exc))
    except KeyboardInterrupt:
        raise
    except MemoryError:
        return Outcome(src, code=2, message="not enough memory for this file")
    except Exception as exc:  # anything else is our bug: say so, show details only on request
        return Outcome(src, code=1, message=f"internal error: {type(exc).__name__}: {exc} (please report)",
                       detail=traceback.format_exc())


def _check_new_stream(data: bytes, raw: bytes, opts: EncodeOptions) -> None:
    """encode --verify: the new stream must decode to the input and record its sha256, else nothing is written."""
    from medcodec import codec

    try:
        codec.verify(data, original=raw, device=opts.device, max_pixels=None, same_source=True,
                     processes=parallel.thread_budget())
    except MedcodecError as exc:
        # The encoder produced something its own decoder rejects: a medcodec bug, never the user's.
        raise MedcodecError(f"internal error: the new stream does not decode to the input ({exc}); "
                            "nothing was written (please report)") from exc


def _existing_output_verifies(dest: str, raw: bytes, opts: EncodeOptions) -> str:
    """'' when the existing output at dest decodes exactly to raw; else why not (resume re-encodes it)."""
    from medcodec import codec

    try:
        codec.verify(read_input(dest), original=raw, device=opts.device, max_pixels=opts.max_pixels,
                     same_source=True, processes=parallel.thread_budget())
    except MedcodecError as exc:
        return str(exc)
    return ""


def encode_one(task: Task, opts: EncodeOptions) -> Outcome:
    """Encode one file to task.dest (skipped when resuming and the existing output verifies)."""
    from medcodec import codec

    def work() -> Outcome:
        assert task.dest is not None
        resuming = opts.resume and task.dest != "-" and os.path.lexists(task.dest)
        if resuming and same_file(task.dest, task.src):
            raise InvalidInputError(f"output {task.dest} is the input itself; choose another output name")
        if not resuming:
            _precheck_dest(task.dest, task.src, opts.force)
        raw = read_input(task.src)
        replaced = ""
        if resuming:
            why = _existing_output_verifies(task.dest, raw, opts)
            if not why:
                return Outcome(task.src, skipped=True, bytes_in=len(raw), bytes_out=os.path.getsize(task.dest),
                               message=f"{_label(task.src)} -> {task.dest}: exists and verifies, skipped")
            replaced = f"; replaced an output that did not verify ({why})"
        source = raw if task.src == "-" else task.src
        try:
            data = codec.encode(source, mode=opts.mode, device=opts.device, effort=opts.effort,
                                max_pixels=opts.max_pixels, recompress=opts.recompress, in_bands=opts.bands)
        except ModelMismatchError as exc:
            raise ModelMismatchError(f"{exc} (or encode with --mode classical)") from exc
        if opts.verify:
            _check_new_stream(data, raw, opts)
        _write_output(task.dest, data, task.src, opts.force or resuming)
        summary = codec.info(data)
        used = {f["method"] for f in summary.get("frames", [])}
        methods = ",".join(sorted(used)) or "envelope only"
        if opts.mode != "classical" and used == {"classical"}:
            methods += f": {opts.mode} was not smaller"  # the never-larger rule chose JPEG-XL
        bpp = summary.get("bpp")
        msg = (f"{_label(task.src)} -> {_label(task.dest, 'stdout')}: {len(raw):,} -> {len(data):,} bytes "
               f"({len(raw) / max(len(data), 1):.2f}x" + (f", {bpp:.3f} bpp" if bpp else "")
               + f", {methods}{', verified' if opts.verify else ''}){replaced}")
        return Outcome(task.src, message=msg, bytes_in=len(raw), bytes_out=len(data))

    return _guard(task.src, work)


def decode_one(task: Task, opts: DecodeOptions) -> Outcome:
    """Decode one stream to task.dest (or base + the kind's extension), after every check passed."""
    from medcodec import codec

    def work() -> Outcome:
        _precheck_dest(task.dest, task.src, opts.force)
        data = read_input(task.src)
        processes = parallel.thread_budget() if opts.frame_processes else 1
        decoded = codec.decode(data, device=opts.device, max_pixels=opts.max_pixels, processes=processes)
        dest = task.dest or task.base + codec.suggested_extension(decoded.kind)
        _write_output(dest, decoded.data, task.src, opts.force)
        msg = f"{_label(task.src)} -> {_label(dest, 'stdout')}: {len(decoded.data):,} bytes ({decoded.kind}, verified)"
        return Outcome(task.src, message=msg, bytes_in=len(data), bytes_out=len(decoded.data))

    return _guard(task.src, work)


def _label(path: str | None, stream: str = "stdin") -> str:
    return f"<{stream}>" if path == "-" else str(path)


# ------------------------------------------------------------------------------------- the batch


def run_all(tasks: list[Task], one: Callable[[Task, object], Outcome], opts: object, jobs: int,
            report: Callable[[Outcome], None], threads: int | None = None) -> list[Outcome]:
    """Run tasks in order (or in parallel processes with jobs > 1), calling report as each finishes.

    threads: the thread budget in all (None: the machine's cores), shared out between the processes.
    Returns the outcomes in task order. A failing file never stops the others.
    """
    if threads is not None and (jobs == 1 or len(tasks) == 1):
        parallel.set_budget(threads)
    if jobs > 1 and len(tasks) > 1:
        # spawn, not fork: a parent that already ran torch (library use, tests) would deadlock forked
        # children in its OpenMP pool.
        spawn = multiprocessing.get_context("spawn")
        with concurrent.futures.ProcessPoolExecutor(max_workers=jobs, mp_context=spawn,
                                                    initializer=parallel.share_cores, initargs=(jobs, threads)) as pool:
            futures = [pool.submit(one, t, opts) for t in tasks]
            for fut in concurrent.futures.as_completed(futures):
                report(fut.result())
            return [f.result() for f in futures]
    outcomes = []
    for t in tasks:
        outcomes.append(one(t, opts))
        report(outcomes[-1])
    return outcomes


def summary_line(verb: str, outcomes: list[Outcome]) -> str:
    """'encode: 27 ok, 2 failed, 1 skipped (30 files); 1,234 -> 567 bytes'."""
    failed = sum(1 for o in outcomes if o.code)
    skipped = sum(1 for o in outcomes if o.skipped and not o.code)
    ok = len(outcomes) - failed - skipped
    total_in = sum(o.bytes_in for o in outcomes)
    total_out = sum(o.bytes_out for o in outcomes)
    return (f"{verb}: {ok} ok, {failed} failed, {skipped} skipped ({len(outcomes)} files); "
            f"{total_in:,} -> {total_out:,} bytes")


def exit_code(outcomes: list[Outcome]) -> int:
    """0 when every file succeeded (or was skipped), else the first failing file's code (task order)."""
    return next((o.code for o in outcomes if o.code), 0)
