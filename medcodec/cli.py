"""The medcodec command line: a thin click layer over medcodec.codec.

Each file is handled on its own: a failure prints one line naming the file and the cure, and the
remaining files are still processed. Outputs are written atomically and never over an existing file
without --force (and never over an input, even with --force).
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import fnmatch
import json
import logging
import os
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

import click

from medcodec import __version__
from medcodec.errors import CorruptStreamError, InvalidInputError, MedcodecError, ModelMismatchError, OutputExistsError
from medcodec.fileio import atomic_write, same_file

MLC_SUFFIX = ".mlc"
IMAGE_SUFFIXES = {".dcm", ".dicom", ".png", ".tif", ".tiff", ".npy"}
MODES = ("classical", "fast", "slow", "latent")
EXIT_CODES_HELP = """\b
Exit status:
  0  every file succeeded
  2  bad input or usage (unreadable or unsupported file, wrong option)
  3  corrupt stream (wrong magic, truncated, CRC or checksum mismatch, newer format)
  4  model mismatch (the weights a stream or --mode needs are not installed)
  5  refused to overwrite an existing file (use --force)
  1  internal error (please report it; --debug shows the traceback)
When several files fail for different reasons, the status is that of the first failing file
(in command-line order)."""


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


# ---------------------------------------------------------------------------------------- inputs


def _has_dicom_magic(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            head = fh.read(132)
    except OSError:
        return False
    return head[128:132] == b"DICM"


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
    return suffix in IMAGE_SUFFIXES or _has_dicom_magic(path)


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
        raise click.UsageError("use either -o/--output or --out-dir, not both")
    files = collect(inputs, pattern, decoding)
    if "-" in inputs and len(files) > 1:
        raise click.UsageError("'-' (standard input) must be the only input")
    if output is not None and len(files) != 1:
        raise click.UsageError(f"-o/--output names one file but there are {len(files)} inputs; use --out-dir DIR")
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


# ------------------------------------------------------------------------------------- plumbing


def _read_input(src: str) -> bytes:
    if src == "-":
        return sys.stdin.buffer.read()
    try:
        return Path(src).read_bytes()
    except FileNotFoundError:
        raise InvalidInputError(f"no such file; check the path") from None
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
    atomic_write(dest, data, force=force)


def _precheck_dest(dest: str | None, src: str, force: bool) -> None:
    """Fail before the (slow) coding when the answer is already known."""
    if dest in (None, "-"):
        return
    if src != "-" and same_file(dest, src):
        raise InvalidInputError(f"output {dest} is the input itself; choose another output name")
    if os.path.exists(dest) and not force:
        raise OutputExistsError(f"output {dest} exists; use --force to overwrite it")


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


def _encode_one(task: Task, mode: str, device: str, effort: int | None, force: bool, verify: bool) -> Outcome:
    from medcodec import codec

    def work() -> Outcome:
        _precheck_dest(task.dest, task.src, force)
        raw = _read_input(task.src)
        source: Any = raw if task.src == "-" else task.src
        try:
            data = codec.encode(source, mode=mode, device=device, effort=effort)
        except ModelMismatchError as exc:
            raise ModelMismatchError(f"{exc} (or encode with --mode classical)") from exc
        if verify:
            try:
                codec.verify(data, original=raw, device=device)
            except MedcodecError as exc:
                raise MedcodecError(f"verification of the new stream failed, nothing written: {exc} "
                                    "(please report)") from exc
        assert task.dest is not None
        _write_output(task.dest, data, task.src, force)
        summary = codec.info(data)
        methods = ",".join(sorted({f["method"] for f in summary.get("frames", [])})) or "envelope only"
        bpp = summary.get("bpp")
        msg = (f"{_label(task.src)} -> {_label(task.dest, 'stdout')}: {len(raw):,} -> {len(data):,} bytes "
               f"({len(raw) / max(len(data), 1):.2f}x" + (f", {bpp:.3f} bpp" if bpp else "") + f", {methods})")
        return Outcome(task.src, message=msg, bytes_in=len(raw), bytes_out=len(data))

    return _guard(task.src, work)


def _decode_one(task: Task, device: str, force: bool) -> Outcome:
    from medcodec import codec

    def work() -> Outcome:
        _precheck_dest(task.dest, task.src, force)
        data = _read_input(task.src)
        decoded = codec.decode(data, device=device)
        dest = task.dest or task.base + codec.suggested_extension(decoded.kind)
        _write_output(dest, decoded.data, task.src, force)
        msg = f"{_label(task.src)} -> {_label(dest, 'stdout')}: {len(decoded.data):,} bytes ({decoded.kind}, verified)"
        return Outcome(task.src, message=msg, bytes_in=len(data), bytes_out=len(decoded.data))

    return _guard(task.src, work)


def _label(path: str | None, stream: str = "stdin") -> str:
    return f"<{stream}>" if path == "-" else str(path)


def _run_all(tasks: list[Task], one: Callable[..., Outcome], args: tuple, jobs: int, quiet: bool,
             debug: bool, verb: str) -> None:
    """Run tasks (in parallel processes with jobs > 1), report, and exit with the first failure's code."""
    from tqdm import tqdm

    show_bar = len(tasks) > 1 and not quiet
    bar = tqdm(total=len(tasks), unit="file", file=sys.stderr, disable=None if show_bar else True,
               leave=False, desc=verb)

    def report(out: Outcome) -> None:
        bar.update(1)
        if out.code:
            where = "" if out.src == "-" else f"{out.src}: "
            bar.write(f"medcodec: error: {where}{out.message}", file=sys.stderr)
            if debug and out.detail:
                bar.write(out.detail.rstrip(), file=sys.stderr)
        elif not quiet:
            bar.write(out.message, file=sys.stderr)  # stderr: stdout may carry the data itself

    outcomes: list[Outcome] = []
    if jobs > 1 and len(tasks) > 1:
        # spawn, not fork: a parent that already ran torch (library use, tests) would deadlock forked
        # children in its OpenMP pool.
        spawn = multiprocessing.get_context("spawn")
        with concurrent.futures.ProcessPoolExecutor(max_workers=jobs, mp_context=spawn) as pool:
            futures = [pool.submit(one, t, *args) for t in tasks]
            for fut in concurrent.futures.as_completed(futures):
                report(fut.result())
            outcomes = [f.result() for f in futures]
    else:
        for t in tasks:
            outcomes.append(one(t, *args))
            report(outcomes[-1])
    bar.close()

    failed = [o for o in outcomes if o.code]
    if len(tasks) > 1 and not quiet:
        total_in = sum(o.bytes_in for o in outcomes)
        total_out = sum(o.bytes_out for o in outcomes)
        click.echo(f"{verb}: {len(tasks) - len(failed)} of {len(tasks)} files ok, "
                   f"{total_in:,} -> {total_out:,} bytes", err=True)
    if failed:
        sys.exit(failed[0].code)


def _guard_command(ctx: click.Context, work: Callable[[], None]) -> None:
    """Failures outside the per-file loop (usage, single-file commands) also get one line and a code."""
    debug = bool(ctx.find_root().params.get("debug"))
    try:
        work()
    except MedcodecError as exc:
        click.echo(f"medcodec: error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:  # outputs in progress were temporaries and are already removed
        click.echo("medcodec: interrupted; no partial output was left", err=True)
        sys.exit(130)
    except (click.ClickException, click.exceptions.Exit, SystemExit):
        raise
    except Exception as exc:
        click.echo(f"medcodec: internal error: {type(exc).__name__}: {exc} (please report)", err=True)
        if debug:
            traceback.print_exc()
        sys.exit(1)


# ------------------------------------------------------------------------------------- commands


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, "-V", "--version", prog_name="medcodec")
@click.option("--debug", is_flag=True, envvar="MEDCODEC_DEBUG",
              help="Show tracebacks of internal errors and the codec's decisions (e.g. classical fallbacks).")
def cli(debug: bool) -> None:
    """medcodec: lossless compression of medical images (DICOM, PNG, TIFF, .npy).

    DICOM files come back byte for byte; PNG, TIFF and .npy files come back pixel for pixel.
    Every decoded file is checked against checksums stored in the stream: medcodec refuses to
    write a file that differs from the original.

    \b
    Examples:
      medcodec encode scan.dcm                  # writes scan.dcm.mlc
      medcodec encode --out-dir /archive/mlc studies/   # a whole folder, tree mirrored
      medcodec decode scan.dcm.mlc              # writes scan.dcm (refuses to overwrite)
      medcodec info scan.dcm.mlc
      medcodec verify scan.dcm.mlc scan.dcm
      cat scan.dcm | medcodec encode - > scan.dcm.mlc
    """
    if debug:
        logging.basicConfig(level=logging.INFO, format="medcodec: %(message)s")


_common_out = [
    click.option("-o", "--output", metavar="OUT", help="Output file (one input only); '-' for standard output."),
    click.option("--out-dir", metavar="DIR", help="Write outputs under DIR, mirroring input folders."),
    click.option("-f", "--force", is_flag=True, help="Overwrite existing outputs (never the inputs)."),
    click.option("-q", "--quiet", is_flag=True, help="Print errors only; no progress bar or per-file lines."),
    click.option("-j", "--jobs", type=click.IntRange(1, 256), default=1, show_default=True,
                 help="Files coded in parallel (processes)."),
    click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True,
                 help="Where learned methods run; streams are identical on every device."),
]


def _with_common(fn: Callable) -> Callable:
    for opt in reversed(_common_out):
        fn = opt(fn)
    return fn


@cli.command(epilog=EXIT_CODES_HELP)
@click.argument("inputs", nargs=-1, required=True, metavar="IN...")
@_with_common
@click.option("-m", "--mode", type=click.Choice(MODES), default="fast", show_default=True,
              help="Coding method; files are never larger than with 'classical'.")
@click.option("--effort", type=click.IntRange(1, 10), default=None,
              help="JPEG-XL effort for classical parts (default 7; 9 is ~3% smaller, ~3x slower).")
@click.option("--verify", is_flag=True, help="Decode each new stream in memory and compare before writing.")
@click.option("--glob", "pattern", metavar="PATTERN",
              help="In folders, encode only files whose name or relative path matches, e.g. '*.IMA'.")
@click.pass_context
def encode(ctx: click.Context, inputs: tuple[str, ...], output: str | None, out_dir: str | None, force: bool,
           quiet: bool, jobs: int, device: str, mode: str, effort: int | None, verify: bool,
           pattern: str | None) -> None:
    """Compress files to .mlc streams.

    IN may be files, folders (searched recursively for .dcm/.png/.tif/.tiff/.npy files and files with
    the DICOM 'DICM' marker) or '-' for standard input (written to standard output unless -o is given).
    By default each output is IN.mlc next to its input.

    \b
    Examples:
      medcodec encode scan.dcm                      # -> scan.dcm.mlc
      medcodec encode -o small.mlc xray.png
      medcodec encode --mode classical --verify ct/  # every image under ct/
      medcodec encode --out-dir out/ --glob '*.IMA' -j 4 archive/
      medcodec encode - < scan.dcm > scan.dcm.mlc
    """
    def work() -> None:
        tasks = plan(inputs, output, out_dir, pattern, decoding=False)
        _check_stdout(tasks, force)
        _run_all(tasks, _encode_one, (mode, device, effort, force, verify), jobs, quiet,
                 bool(ctx.find_root().params.get("debug")), "encode")

    _guard_command(ctx, work)


@cli.command(epilog=EXIT_CODES_HELP)
@click.argument("inputs", nargs=-1, required=True, metavar="IN.mlc...")
@_with_common
@click.option("--glob", "pattern", metavar="PATTERN", help="In folders, decode files matching PATTERN (default '*.mlc').")
@click.pass_context
def decode(ctx: click.Context, inputs: tuple[str, ...], output: str | None, out_dir: str | None, force: bool,
           quiet: bool, jobs: int, device: str, pattern: str | None) -> None:
    """Restore original files from .mlc streams, checking every checksum.

    The default output drops '.mlc' (scan.dcm.mlc -> scan.dcm); names without '.mlc' get the
    original's extension. An existing output is never replaced without --force, and nothing is
    written when any check fails.

    \b
    Examples:
      medcodec decode scan.dcm.mlc                  # -> scan.dcm
      medcodec decode -o restored.dcm scan.dcm.mlc
      medcodec decode --out-dir restored/ archive/  # every .mlc under archive/
      medcodec decode - < scan.dcm.mlc > scan.dcm
    """
    def work() -> None:
        tasks = plan(inputs, output, out_dir, pattern, decoding=True)
        _check_stdout(tasks, force)
        _run_all(tasks, _decode_one, (device, force), jobs, quiet,
                 bool(ctx.find_root().params.get("debug")), "decode")

    _guard_command(ctx, work)


def _check_stdout(tasks: list[Task], force: bool) -> None:
    if any(t.dest == "-" for t in tasks) and sys.stdout.isatty() and not force:
        raise click.UsageError("refusing to write binary data to a terminal; redirect it or use -o FILE")


@cli.command(epilog=EXIT_CODES_HELP)
@click.argument("stream", metavar="IN.mlc")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
@click.pass_context
def info(ctx: click.Context, stream: str, as_json: bool) -> None:
    """Describe a .mlc stream without decoding it: origin, methods per frame, sizes.

    \b
    Examples:
      medcodec info scan.dcm.mlc
      medcodec info --json scan.dcm.mlc | jq .frames
    """
    def work() -> None:
        from medcodec import codec

        try:
            summary = codec.info(_read_input(stream))
        except MedcodecError as exc:
            raise type(exc)(f"{stream}: {exc}") from exc
        if as_json:
            click.echo(json.dumps(summary, indent=2, sort_keys=True, default=str))
        else:
            click.echo(format_info(stream, summary))
        if summary["integrity"] != "ok":
            raise CorruptStreamError(f"{stream}: {summary['integrity']}")

    _guard_command(ctx, work)


@cli.command(epilog=EXIT_CODES_HELP)
@click.argument("stream", metavar="IN.mlc")
@click.argument("original", required=False, metavar="[ORIGINAL]")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.pass_context
def verify(ctx: click.Context, stream: str, original: str | None, device: str) -> None:
    """Decode in memory and check every CRC and checksum; writes nothing.

    With ORIGINAL, also check that the decoded file equals it (byte for byte, or pixel for pixel for
    PNG/TIFF/.npy).

    \b
    Examples:
      medcodec verify scan.dcm.mlc
      medcodec verify scan.dcm.mlc scan.dcm && rm scan.dcm
    """
    def work() -> None:
        from medcodec import codec

        data = _read_input(stream)
        orig = _read_input(original) if original else None
        try:
            result = codec.verify(data, original=orig, device=device)
        except MedcodecError as exc:
            raise type(exc)(f"{stream}: {exc}") from exc
        against = f", identical to {original}" if original else ""
        click.echo(f"{stream}: OK ({result.get('kind')}, {result.get('frames', 0)} frame(s){against})")

    _guard_command(ctx, work)


def format_info(name: str, s: dict[str, Any]) -> str:
    """Human-readable form of codec.info's dict."""
    lines = [f"{name}: medcodec stream, format {s.get('format_major')}.x, "
             f"written by medcodec {s.get('encoder_version')}"]
    lines.append(f"  original : {s.get('kind')}" + (f", {s['description']}" if s.get("description") else ""))
    if s.get("original_sha256"):
        lines.append(f"  sha256   : {s['original_sha256']}")
    lines.append(f"  integrity: {s.get('integrity')}")
    lines.append(f"  stream   : {s.get('stream_size', 0):,} bytes"
                 + (f", {s['bpp']:.3f} bits/pixel" if s.get("bpp") else "")
                 + (f", ratio {s['ratio']:.2f}" if s.get("ratio") else ""))
    lines.append(f"  method   : {s.get('method')}" + (f", model {s['model_id']} (sha256 {s['model_sha256'][:16]}...)"
                                                       if s.get("model_id") else ""))
    lines.append("  sections :")
    for kind, size in sorted(s.get("section_bytes", {}).items()):
        lines.append(f"    {kind:<20} {size:>12,} bytes")
    frames = s.get("frames", [])
    lines.append(f"  frames   : {len(frames)}")
    for f in frames[:32]:
        note = f" ({f['fallback']})" if f.get("fallback") else ""
        shape = "x".join(str(d) for d in f.get("shape", ()))
        size = f"{f['bytes']:,} bytes" if f.get("bytes") is not None else "size unknown"
        lines.append(f"    #{f.get('frame')}: {shape} {f.get('bits')}-bit, {f.get('method')}, {size}{note}")
    if len(frames) > 32:
        lines.append(f"    ... {len(frames) - 32} more (use --json)")
    return "\n".join(lines)


def _register_bench() -> None:
    """The bench lives in its own package; register it when that package is installed and importable."""
    try:
        from medcodec.bench.cli import bench_command
    except ImportError:
        return
    cli.add_command(bench_command, name="bench")


_register_bench()


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="medcodec")
