"""`medcodec bench`: medcodec against the classical lossless codecs on the user's own folders.

`bench_command` is registered by `medcodec.cli`; it also runs on its own (tests use click's runner).
"""

from __future__ import annotations

import sys
import time
from importlib import resources
from pathlib import Path

import click

from medcodec import parallel
from medcodec.bench.codecs import CODECS
from medcodec.bench.report import machine_info, render_report, summarise, write_csv, write_json, write_plot
from medcodec.bench.runner import MODE_CHOICES, BenchSettings, modes_for, run_bench
from medcodec.errors import InvalidInputError, MedcodecError

DEFAULT_CODECS = ",".join(CODECS)


def examples_folder() -> Path:
    """The small example set shipped inside the package (used when no folder is given)."""
    return Path(str(resources.files("medcodec") / "data" / "examples"))


def _parse_codecs(text: str) -> list[str]:
    names = [n.strip().lower() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in CODECS]
    if unknown:
        raise click.BadParameter(f"unknown codec(s) {', '.join(unknown)}; choose from {DEFAULT_CODECS}")
    missing = [n for n in names if not CODECS[n].available]
    if missing:
        raise click.BadParameter(f"not available in this imagecodecs build: {', '.join(missing)}")
    return list(dict.fromkeys(names))


def _set_threads(threads: int) -> None:
    """medcodec's thread budget (torch's intra-op threads, a multi-frame file's frames, the slow mode's
    raster codings): one by default, so that its speed is comparable with the 1-thread codecs'."""
    parallel.set_budget(threads)


@click.command("bench", context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.argument("folders", nargs=-1, type=click.Path(exists=True, file_okay=True, dir_okay=True))
@click.option("-m", "--mode", type=click.Choice(MODE_CHOICES), default="fast", show_default=True,
              help="medcodec mode(s) to measure; 'all' = fast, slow, latent; 'none' = classical codecs only.")
@click.option("--codecs", "codec_list", default=DEFAULT_CODECS, show_default=True, metavar="LIST",
              help="Comma-separated classical codecs (jxl9 always runs: it is the ratio's reference).")
@click.option("--limit", type=click.IntRange(1), default=None, help="Only the first N images (sorted paths).")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Write records + summaries as JSON.")
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False), help="Write one row per image and codec.")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False), help="Write bpp vs encode speed (PNG).")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True,
              help="Where medcodec's networks run.")
@click.option("--threads", type=click.IntRange(1), default=1, show_default=True,
              help="medcodec's threads while benching: torch's, and a multi-frame file's frames side by "
                   "side (classical codecs always use one).")
@click.option("--journal", "journal_path", type=click.Path(dir_okay=False), metavar="FILE",
              help="Append each image's results to FILE as soon as they are measured; when FILE exists, take "
                   "the images it holds from it instead of measuring them again: a long run cut short resumes "
                   "where it stopped. Refused if FILE was written with other settings or other medcodec code.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar or notes; tables only.")
def bench_command(folders: tuple[str, ...], mode: str, codec_list: str, limit: int | None,
                  json_path: str | None, csv_path: str | None, plot_path: str | None, device: str,
                  threads: int, journal_path: str | None, quiet: bool) -> None:
    """Compare medcodec with JPEG-XL, JPEG-LS, JPEG 2000, HTJ2K, PNG and WebP on your images.

    FOLDERS are searched recursively for DICOM (also extension-less files with the DICM marker),
    PNG, TIFF and .npy files; without FOLDERS the small example set bundled with medcodec is used.
    Every size counts only after its decode was checked to give the exact planes back. Results
    are grouped by subfolder, bit depth and DICOM modality, plus an overall group.

    \b
    Examples:
      medcodec bench                                    # bundled examples
      medcodec bench /data/ct --mode all --json ct.json
      medcodec bench scans/ --mode none --codecs jxl7,jxl9,jpegls --limit 50
      medcodec bench /data/ct --mode all --journal ct.jsonl --json ct.json   # rerun to resume
    """
    try:
        codecs = _parse_codecs(codec_list)
        paths = list(folders) or [str(examples_folder())]
        settings = BenchSettings(modes=modes_for(mode), codecs=codecs, limit=limit, device=device,
                                 threads=threads)
        _set_threads(threads)
        echo = (lambda msg: None) if quiet else (lambda msg: click.echo(msg, err=True))
        if not folders:
            echo(f"no folder given: benching the bundled examples in {paths[0]}")
        start = time.perf_counter()
        records = run_bench(paths, settings, progress=not quiet, echo=echo, journal=journal_path)
        elapsed = time.perf_counter() - start
        if not records:
            raise InvalidInputError("no DICOM, PNG, TIFF or .npy files found in " + ", ".join(paths))
        groups = summarise(records)
        click.echo(render_report(records, groups, settings.notes))
        echo(f"\n{len(records)} file(s) in {elapsed:.1f} s")
        if json_path:
            write_json(json_path, records, groups, machine_info(settings, elapsed), settings)
            echo(f"wrote {json_path}")
        if csv_path:
            write_csv(csv_path, records)
            echo(f"wrote {csv_path}")
        if plot_path and write_plot(plot_path, groups, lambda msg: click.echo(msg, err=True)):
            echo(f"wrote {plot_path}")
    except MedcodecError as exc:
        click.echo(f"medcodec bench: error: {exc}", err=True)
        sys.exit(exc.exit_code)
