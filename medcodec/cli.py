"""The medcodec command line: a thin click layer over medcodec.codec and medcodec.batch.

Each file is handled on its own (medcodec.batch): a failure prints one line naming the file and the
cure, the remaining files are still processed, and a summary line counts ok, failed and skipped files.
Outputs are written atomically and never over an existing file without --force (and never over an
input, even with --force).
"""

from __future__ import annotations

import json
import logging
import signal
import sys
import traceback
from typing import Any, Callable

import click

from medcodec import __version__, batch
from medcodec.errors import CorruptStreamError, MedcodecError

MODES = ("classical", "fast", "slow", "latent")
_EXIT_CODES_TEMPLATE = """\b
Exit status:
  0  every file succeeded{resumed}
  2  bad input, output or usage (unreadable or unsupported file, over --max-pixels, cannot write
     the output e.g. disk full, wrong option)
  3  corrupt stream (wrong magic, truncated, CRC or checksum mismatch, newer format)
  4  model mismatch (the weights a stream or --mode needs are not installed)
  5  refused to overwrite an existing file (use --force)
  1  internal error (please report it; --debug shows the traceback)
When several files fail for different reasons, the status is that of the first failing file
(in command-line order)."""
EXIT_CODES_HELP = _EXIT_CODES_TEMPLATE.format(resumed="")
ENCODE_EXIT_CODES_HELP = _EXIT_CODES_TEMPLATE.format(resumed=" (or was skipped by --resume)")


def _max_pixels(value: int | None) -> int | None:
    """--max-pixels: None (not given) is the library's default, 0 is no limit."""
    from medcodec import codec

    if value is None:
        return codec.DEFAULT_MAX_PIXELS
    return value or None


def _run_batch(ctx: click.Context, tasks: list[batch.Task], one: Callable, opts: object, jobs: int,
               threads: int | None, quiet: bool, verb: str) -> None:
    """Run the files with a progress bar, one line each, a summary, and the first failure's exit code."""
    from tqdm import tqdm

    debug = bool(ctx.find_root().params.get("debug"))
    show_bar = len(tasks) > 1 and not quiet
    bar = tqdm(total=len(tasks), unit="file", file=sys.stderr, disable=None if show_bar else True,
               leave=False, desc=verb)

    def report(out: batch.Outcome) -> None:
        bar.update(1)
        if out.code:
            where = "" if out.src == "-" else f"{out.src}: "
            bar.write(f"medcodec: error: {where}{out.message}", file=sys.stderr)
            if debug and out.detail:
                bar.write(out.detail.rstrip(), file=sys.stderr)
        elif not quiet:
            bar.write(out.message, file=sys.stderr)  # stderr: stdout may carry the data itself

    outcomes = batch.run_all(tasks, one, opts, jobs, report, threads)
    bar.close()
    if len(tasks) > 1 and not quiet:
        click.echo(batch.summary_line(verb, outcomes), err=True)
    code = batch.exit_code(outcomes)
    if code:
        sys.exit(code)


def _plan(inputs: tuple[str, ...], output: str | None, out_dir: str | None, pattern: str | None,
          decoding: bool, force: bool) -> list[batch.Task]:
    try:
        tasks = batch.plan(inputs, output, out_dir, pattern, decoding)
    except batch.UsageProblem as exc:
        raise click.UsageError(str(exc)) from None
    if any(t.dest == "-" for t in tasks) and sys.stdout.isatty() and not force:
        raise click.UsageError("refusing to write binary data to a terminal; redirect it or use -o FILE")
    return tasks


def _on_sigterm(signum: int, frame: Any) -> None:
    # Unwind like Ctrl-C, so the temporary file being written is removed (a SIGKILL leaves it behind;
    # encode --resume removes such leftovers).
    raise KeyboardInterrupt


def _guard_command(ctx: click.Context, work: Callable[[], None]) -> None:
    """Failures outside the per-file loop (usage, single-file commands) also get one line and a code."""
    debug = bool(ctx.find_root().params.get("debug"))
    try:
        work()
    except MedcodecError as exc:
        click.echo(f"medcodec: error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:  # outputs in progress were temporaries and are already removed
        click.echo("medcodec: interrupted; no partial output was left (encode: rerun with --resume to go on)", err=True)
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
    click.option("--max-pixels", type=click.IntRange(0), default=None, metavar="N",
                 help="Refuse files of more than N pixels (all frames) before allocating memory for them; "
                      "0: no limit. Default: the library's limit, 2**30."),
]


# -t differs by command: the encoder codes frames and alternatives side by side in threads, the decoder
# a large file's frames in processes (threads were slower there: benchmarks/results/threads.json)
_THREADS_HELP = {
    "encode": "Threads in all (default: the machine's cores, or OMP_NUM_THREADS per process): a multi-frame "
              "file's frames, a plane's bands (--bands) and a plane's codings are encoded side by side; -j "
              "workers share them. Streams are identical with any count.",
    "decode": "Processes and threads in all (default: the machine's cores, or OMP_NUM_THREADS per process): "
              "the frames of a large multi-frame file, and the bands of a plane encoded with --bands, decode "
              "in that many processes, and the learned networks use the threads; -j workers share them. The "
              "output is identical with any count.",
}


def _with_common(command: str) -> Callable[[Callable], Callable]:
    """The options encode and decode share, with -t's help for this command."""
    threads = click.option("-t", "--threads", type=click.IntRange(1, 1024), default=None, metavar="N",
                           help=_THREADS_HELP[command])

    def add(fn: Callable) -> Callable:
        for opt in reversed([*_common_out[:5], threads, *_common_out[5:]]):
            fn = opt(fn)
        return fn

    return add


@cli.command(epilog=ENCODE_EXIT_CODES_HELP)
@click.argument("inputs", nargs=-1, required=True, metavar="IN...")
@_with_common("encode")
@click.option("-m", "--mode", type=click.Choice(MODES), default="fast", show_default=True,
              help="Coding method; files are never larger than with 'classical' (JPEG-XL; lossless JPEG 2000 for "
                   "a plane decoded from lossy JPEG 2000, where smaller). 'fast': one "
                   "network pass per subimage; 'slow': never larger than 'fast', about 5x slower to encode "
                   "and up to 2x slower to decode (column passes, test-time ensembles); 'latent': LVPNet. The "
                   "learned modes also recover 8-bit images that were JPEGs once as that JPEG, and code noisy "
                   "planes (CT, MR, radiographs) in raster order with per-image weights, where smaller ('fast' "
                   "and 'latent' only where that saves 1 %: it decodes at ~0.3 MP/s).")
@click.option("--effort", type=click.IntRange(1, 10), default=None,
              help="JPEG-XL effort for classical parts (default 7; slow mode tries 7 and 9 and keeps the smaller; "
                   "fast and latent recode a frame that falls back to JPEG-XL at 9 too; 9 is ~1% smaller, "
                   "~3x slower). Given, it is used as it is.")
@click.option("--verify", is_flag=True,
              help="Decode each new stream in memory and compare it with the input (pixels and sha256) "
                   "before writing it; a mismatch writes nothing and exits 1.")
@click.option("--resume", is_flag=True,
              help="Keep existing outputs that decode exactly to their input; re-encode the others "
                   "(e.g. after an interrupted run). Also removes temporaries of killed runs.")
@click.option("--glob", "pattern", metavar="PATTERN",
              help="In folders, encode only files whose name or relative path matches, e.g. '*.IMA'.")
@click.option("--keep-compressed", is_flag=True,
              help="Keep already-compressed DICOM pixel data (lossless JPEG, JPEG-LS, RLE, JPEG 2000, lossy JPEG, "
                   "deflated data sets) as it is instead of recoding it: much faster on such files, and larger "
                   "(about 1.0x their size).")
@click.option("--bands", "in_bands", is_flag=True,
              help="Code planes of 3 megapixels or more as independent horizontal bands (learned modes; format "
                   "2.22), which decode side by side on as many cores (-t) as there are bands: on 2 cores four "
                   "3.8-8 MP train radiographs decoded 1.26x faster, their bytes 1.0002x; encoding on one core "
                   "1.27x slower (benchmarks/results/bands.json).")
@click.pass_context
def encode(ctx: click.Context, inputs: tuple[str, ...], output: str | None, out_dir: str | None, force: bool,
           quiet: bool, jobs: int, threads: int | None, device: str, max_pixels: int | None, mode: str,
           effort: int | None, verify: bool, resume: bool, pattern: str | None, keep_compressed: bool,
           in_bands: bool) -> None:
    """Compress files to .mlc streams.

    IN may be files, folders (searched recursively for .dcm/.png/.tif/.tiff/.npy files and files with
    the DICOM 'DICM' marker) or '-' for standard input (written to standard output unless -o is given).
    By default each output is IN.mlc next to its input.

    DICOM comes back byte for byte, already-compressed files too: lossless-JPEG, JPEG-LS, RLE and
    lossless JPEG 2000 pixel data is coded anew (its scans, segments or code-blocks are written again
    when decoding), lossy JPEG frames (8 or 12 bits, grey or colour) have their coefficients recompressed, by
    JPEG XL's transcoding or medcodec's own coder, and are written again exactly; a deflated data set is
    inflated, its pixels coded, and deflated again to the same bytes where zlib made it; other compressed
    data (lossy JPEG 2000, progressive JPEG) is kept as it is. Uncompressed
    8-bit RGB, YBR_FULL and YBR_FULL_422 are coded as three planes a frame, PALETTE COLOR as its indices;
    other colour is kept as it is.

    \b
    Examples:
      medcodec encode scan.dcm                      # -> scan.dcm.mlc
      medcodec encode -o small.mlc xray.png
      medcodec encode --mode classical --verify ct/  # every image under ct/
      medcodec encode --out-dir out/ --glob '*.IMA' -j 4 archive/
      medcodec encode --resume --out-dir out/ archive/   # go on after an interruption
      medcodec encode --bands mammo.dcm             # a large plane that decodes on several cores
      medcodec encode - < scan.dcm > scan.dcm.mlc
    """
    def work() -> None:
        tasks = _plan(inputs, output, out_dir, pattern, False, force)
        if resume:
            batch.clean_output_folders(tasks)
        opts = batch.EncodeOptions(mode=mode, device=device, effort=effort, force=force, verify=verify,
                                   resume=resume, max_pixels=_max_pixels(max_pixels), recompress=not keep_compressed,
                                   bands=in_bands)
        _run_batch(ctx, tasks, batch.encode_one, opts, jobs, threads, quiet, "encode")

    _guard_command(ctx, work)


@cli.command(epilog=EXIT_CODES_HELP)
@click.argument("inputs", nargs=-1, required=True, metavar="IN.mlc...")
@_with_common("decode")
@click.option("--glob", "pattern", metavar="PATTERN", help="In folders, decode files matching PATTERN (default '*.mlc').")
@click.pass_context
def decode(ctx: click.Context, inputs: tuple[str, ...], output: str | None, out_dir: str | None, force: bool,
           quiet: bool, jobs: int, threads: int | None, device: str, max_pixels: int | None,
           pattern: str | None) -> None:
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
        tasks = _plan(inputs, output, out_dir, pattern, True, force)
        opts = batch.DecodeOptions(device=device, force=force, max_pixels=_max_pixels(max_pixels),
                                   frame_processes=True)
        _run_batch(ctx, tasks, batch.decode_one, opts, jobs, threads, quiet, "decode")

    _guard_command(ctx, work)


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
            summary = codec.info(batch.read_input(stream))
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
@click.option("--max-pixels", type=click.IntRange(0), default=None, metavar="N",
              help="Refuse streams of more than N pixels before decoding; 0: no limit. Default: 2**30.")
@click.pass_context
def verify(ctx: click.Context, stream: str, original: str | None, device: str, max_pixels: int | None) -> None:
    """Decode in memory and check every CRC and checksum; writes nothing.

    With ORIGINAL, also check that the decoded file equals it: byte for byte for DICOM and .npy,
    pixel for pixel for PNG/TIFF (their files may be laid out differently). Exit status 0 when
    everything matches, 3 when anything differs or is damaged.

    \b
    Examples:
      medcodec verify scan.dcm.mlc
      medcodec verify scan.dcm.mlc scan.dcm && rm scan.dcm
    """
    def work() -> None:
        from medcodec import codec, parallel

        try:
            data = batch.read_input(stream)
        except MedcodecError as exc:
            raise type(exc)(f"{stream}: {exc}") from exc
        try:
            orig = batch.read_input(original) if original else None
        except MedcodecError as exc:
            raise type(exc)(f"{original}: {exc}") from exc
        try:
            result = codec.verify(data, original=orig, device=device, max_pixels=_max_pixels(max_pixels),
                                  processes=parallel.thread_budget())
        except MedcodecError as exc:
            raise type(exc)(f"{stream}: {exc}") from exc
        against = f", identical to {original}" if original else ""
        click.echo(f"{stream}: OK ({result.get('kind')}, {result.get('frames', 0)} frame(s){against})")

    _guard_command(ctx, work)


_JPEG_HISTORY_NOTES = {  # what `info` says of a JPEG history frame, by method
    "jpeg": " (the JPEG it was decoded from, recovered)",
    "jpeg-crop": " (cut from a decoded JPEG off its block grid; that JPEG recovered)",
    "jpeg-dct": " (the JPEG it was decoded from, recovered; its coefficients coded by medcodec)",
}


def format_info(name: str, s: dict[str, Any]) -> str:
    """Human-readable form of codec.info's dict."""
    version = f"{s.get('format_major')}.{s['format_minor']}" if "format_minor" in s else f"{s.get('format_major')}.x"
    lines = [f"{name}: medcodec stream, format {version}, "
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
        coding = f" ({s['envelope_coding']})" if kind == "envelope" and s.get("envelope_coding") else ""
        lines.append(f"    {kind:<20} {size:>12,} bytes{coding}")
    frames = s.get("frames", [])
    banded = len(frames) != s.get("planes", len(frames))
    lines.append(f"  frames   : {len(frames)}" + (f" (bands of {s['planes']} plane(s), decoded side by side)"
                                                   if banded else ""))
    for f in frames[:32]:
        note = f" ({f['fallback']})" if f.get("fallback") else ""
        shape = "x".join(str(d) for d in f.get("shape", ()))
        if "band" in f:
            shape += f" (plane {f.get('plane')}, band {f['band']})"
        size = f"{f['bytes']:,} bytes" if f.get("bytes") is not None else "size unknown"
        split = f.get("section_bytes", {})
        if split.get("latent_z"):  # what the latent costs against what it saves (issue: latent mode)
            note += f" [z {8 * split['latent_z']:,} bits, residuals {8 * split.get('residual', 0):,} bits]"
        note += _JPEG_HISTORY_NOTES.get(f.get("method"), "")
        if f.get("classical_coding"):  # which classical coder holds the plane (JPEG 2000: a lossy JPEG 2000 once)
            note += f" ({f['classical_coding']})"
        side = f.get("side_info") if isinstance(f.get("side_info"), dict) else {}
        if f.get("method") == "raster":
            options = side.get("raster") if isinstance(side.get("raster"), dict) else {}
            extras = [text for key, text in (("nb", "neighbour-value boost"), ("pal", "palette"),
                                             ("step", "value grid"), ("bc", "block classes"),
                                             ("ph", "resampling-phase classes"),
                                             ("ko", "per-class scale offsets"), ("dw", "tap-difference weights"),
                                             ("da", "agreement weights"),
                                             ("vr", "value range"))
                      if options.get(key)]
            lattice = options.get("lt")
            if isinstance(lattice, list) and lattice:
                extras.append(f"value lattice of step {lattice[0]}")
            if options.get("lw"):  # the local least-squares blend: what roughly doubles a frame's decoding
                from medcodec.pipelines.raster.local_ls import RADIUS

                radii = [RADIUS] + [entry[0] for entry in options.get("lx") or () if isinstance(entry, list) and entry]
                extras.append(f"local least squares (radius {', '.join(str(r) for r in radii)})")
            for key, text in (("nn", "learned correction"), ("sn", "learned scale")):
                if isinstance(options.get(key), str):
                    extras.append(f"{text} {options[key]}"
                                  + (" (output layer fitted to the plane)" if key == "nn" and options.get("od") else "")
                                  + (f" stacked with {options['n2']}" if key == "nn" and isinstance(options.get("n2"), str)
                                     else ""))
            note += " (raster-order prediction, per-plane weights" + "".join(f", {e}" for e in extras) + ")"
        if f.get("method") == "latent" and isinstance(side.get("class_offsets"), list):
            note += " (per-class offsets)"  # format 2.24: a deep plane's background and saturation made cheap
        ensembles = side.get("ensemble") or []
        averaged = [name for name, sizes in zip("DBC", ensembles) if max(sizes) > 1]
        if averaged:  # the slow mode's test-time ensembles: more network passes in the decoder
            note += f" (ensembles on {', '.join(averaged)})"
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
    signal.signal(signal.SIGTERM, _on_sigterm)
    cli(prog_name="medcodec")
