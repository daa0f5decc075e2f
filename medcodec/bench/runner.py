"""Runs the bench: finds images, codes every plane with each codec, keeps only verified exact sizes.

A record per image holds, per codec, the coded size and timings, or why it did not count
("failed": the codec raised or did not give the plane back exactly; "n/a": the codec cannot code
this bit depth; "unavailable": a learned medcodec mode whose weights are not installed).
Summaries per group are computed in `medcodec.bench.report`.
"""

from __future__ import annotations

import hashlib
import inspect
import os
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from medcodec.bench.codecs import CODECS, REFERENCE, ClassicalCodec
from medcodec.bench.journal import Journal
from medcodec.errors import ModelMismatchError
from medcodec.io.source import is_candidate_file
from medcodec.pipelines import JPEG_HISTORY_METHODS, MODEL_FREE

LEARNED_MODES = ("fast", "slow", "latent")
MODE_CHOICES = ("fast", "slow", "latent", "classical", "all", "none")


def modes_for(choice: str) -> list[str]:
    """The medcodec modes a --mode choice stands for ('all' = the learned ones)."""
    if choice == "all":
        return list(LEARNED_MODES)
    if choice == "none":
        return []
    return [choice]


def discover(paths: Iterable[str | os.PathLike]) -> list[tuple[Path, Path]]:
    """(root, file) for every candidate image under the given folders (or files), sorted.

    Files count by suffix (DICOM, PNG, TIFF, .npy) or, whatever their name, by the DICM magic;
    hidden files and folders are ignored.
    """
    found: list[tuple[Path, Path]] = []
    for raw in paths:
        root = Path(raw)
        if root.is_file():
            found.append((root.parent, root))
            continue
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for name in filenames:
                path = Path(dirpath) / name
                if name.startswith("."):
                    continue
                if is_candidate_file(path):
                    found.append((root, path))
    return sorted(found, key=lambda rp: (str(rp[0]), str(rp[1].relative_to(rp[0]))))


def folder_group(root: Path, path: Path, several_roots: bool) -> str:
    """The subfolder an image is grouped under: its parent relative to the folder given."""
    rel = path.parent.relative_to(root).as_posix()
    if several_roots:
        rel = root.name if rel == "." else f"{root.name}/{rel}"
    return rel


@dataclass
class BenchSettings:
    """What a run measures: medcodec modes, classical codecs, how many images, where to run."""

    modes: list[str]
    codecs: list[str]
    limit: int | None = None
    device: str = "auto"
    threads: int = 1
    notes: list[str] = field(default_factory=list)


_STATM = Path("/proc/self/statm")
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def memory_method() -> str:
    """How PeakRSS measures, for the run's machine record."""
    if _STATM.exists():
        return "peak RSS above the start, sampled from /proc/self/statm every 2 ms"
    return "growth of getrusage(RUSAGE_SELF).ru_maxrss (0 once an earlier image set a higher peak)"


class PeakRSS:
    """Peak resident memory growth of this process while the block runs.

    tracemalloc does not see torch's allocations, so we watch the process RSS: on Linux a thread
    samples /proc/self/statm (catches per-image peaks); elsewhere ru_maxrss growth is all we have.
    """

    def __init__(self, interval_s: float = 0.002) -> None:
        self.interval_s = interval_s
        self.peak_bytes = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @staticmethod
    def _rss() -> int:
        return int(_STATM.read_text().split()[1]) * _PAGE

    @staticmethod
    def _maxrss() -> int:
        import resource  # POSIX only; reached only where /proc is missing

        # Linux reports kilobytes, macOS bytes.
        scale = 1 if sys.platform == "darwin" else 1024
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale

    def _sample(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._high = max(self._high, self._rss())

    def __enter__(self) -> "PeakRSS":
        if _STATM.exists():
            self._start = self._high = self._rss()
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        else:
            self._start = self._maxrss()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._high = max(self._high, self._rss())
        else:
            self._high = self._maxrss()
        self.peak_bytes = max(0, self._high - self._start)


def _timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def _short_error(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}"[:200]


def run_classical(codec: ClassicalCodec, planes: list[np.ndarray], bits: int) -> dict[str, Any]:
    """Code every plane with one classical codec; the size counts only if all come back exact."""
    if not codec.applies_to(bits):
        return {"status": "n/a", "reason": f"{codec.label} codes at most {codec.max_bits} bits"}
    total, enc_s, dec_s = 0, 0.0, 0.0
    for index, plane in enumerate(planes):
        try:
            data, t_enc = _timed(lambda: codec.encode(plane, bits))
            back, t_dec = _timed(lambda: codec.decode(data))
        except Exception as exc:  # any codec error is that codec's failure on this image only
            return {"status": "failed", "reason": f"plane {index}: {_short_error(exc)}"}
        if back.shape != plane.shape or not np.array_equal(back, plane):
            return {"status": "failed", "reason": f"plane {index}: round trip not exact"}
        total, enc_s, dec_s = total + len(data), enc_s + t_enc, dec_s + t_dec
    return {"status": "ok", "bytes": total, "enc_s": enc_s, "dec_s": dec_s}


def _decode_call(codec_module: Any, device: str) -> Callable[[bytes], Any]:
    """codec.decode, given the device when its signature accepts one."""
    try:
        takes_device = "device" in inspect.signature(codec_module.decode).parameters
    except (TypeError, ValueError):
        takes_device = False
    if takes_device:
        return lambda data: codec_module.decode(data, device=device)
    return codec_module.decode


def _kept_compressed(source: Any, decoded: Any) -> bool:
    """Whether the codec kept a DICOM's pixel data as it was (where that was smaller than its own coding of
    the planes: a compressed file's pixel data, or a small file kept whole): no planes come back, the
    file's bytes do."""
    return (not list(decoded.planes) and bool(source.planes) and source.kind == "dicom"
            and bool(source.original_sha256))


def _check_decoded(source: Any, decoded: Any) -> str | None:
    """Why a medcodec round trip is not exact, or None when it is (a file whose compressed pixel data was
    kept: when the file comes back byte for byte)."""
    planes = list(decoded.planes)
    if _kept_compressed(source, decoded):
        planes = list(source.planes)  # they are in the kept pixel data: the file's sha256 below is the check
    if len(planes) != len(source.planes):
        return f"decoded {len(planes)} planes, expected {len(source.planes)}"
    for index, (got, want) in enumerate(zip(planes, source.planes)):
        if got.shape != want.shape or not np.array_equal(got, want):
            return f"plane {index} differs after decoding"
    if source.kind == "dicom" and source.original_sha256:
        data = getattr(decoded, "data", None)
        want = source.original_sha256
        digest = hashlib.sha256(data).digest() if data is not None else None
        if digest is None and _kept_compressed(source, decoded):
            return "pixel data kept compressed, but the decoder gave no file to check"
        if digest is not None and digest != (bytes.fromhex(want) if isinstance(want, str) else want):
            return "planes exact but the rebuilt DICOM file differs from the original bytes"
    return None


def run_medcodec(
    codec_module: Any, source: Any, raw: bytes, mode: str, device: str
) -> dict[str, Any]:
    """Encode the whole file in one mode, decode it, and count the .mlc size only if exact.

    medcodec is given the file's bytes (as a user would), so its encode time includes parsing the
    file and its decode time rebuilding it; disk reads are not timed for any codec.
    """
    decode = _decode_call(codec_module, device)
    try:
        with PeakRSS() as mem:
            blob, t_enc = _timed(lambda: codec_module.encode(raw, mode=mode, device=device))
            decoded, t_dec = _timed(lambda: decode(blob))
    except ModelMismatchError as exc:
        return {"status": "unavailable", "reason": _short_error(exc)}
    except Exception as exc:  # a medcodec bug on one image is reported, not fatal to the bench
        return {"status": "failed", "reason": _short_error(exc)}
    problem = _check_decoded(source, decoded)
    if problem is not None:
        return {"status": "failed", "reason": problem}
    kept = sum(int(p.size) for p in source.planes) if _kept_compressed(source, decoded) else 0
    return {
        "status": "ok",
        "bytes": len(blob),
        "enc_s": t_enc,
        "dec_s": t_dec,
        "peak_rss_bytes": mem.peak_bytes,
        **_stream_breakdown(codec_module, blob, mode),
        **({"kept_compressed_pixels": kept} if kept else {}),
    }


def recompressed(codec_module: Any, source: Any, raw: bytes, device: str) -> dict[str, Any]:
    """A file with no planes whose compressed pixel data medcodec recompresses all the same (a lossy JPEG's
    coefficients): its .mlc against the file, counted only where the file comes back byte for byte. Every
    mode codes it alike (no plane goes to a method; the header names the mode, a few bytes), so the
    classical one, which needs no weights, stands for them."""
    result = run_medcodec(codec_module, source, raw, "classical", device)
    return {**result, "file_bytes": len(raw)} if result["status"] == "ok" else result


def _stream_breakdown(codec_module: Any, blob: bytes, mode: str) -> dict[str, Any]:
    """Where the .mlc's bytes went, from codec.info: overhead_bytes (envelope and container, which
    classical codecs do not pay), section_bytes per kind (latent z vs residuals, JPEG-XL subimage...)
    learned_pixels, the pixels of frames the mode coded itself rather than storing them classically (a
    slow file may keep a frame in the fast layout of its own coding: learned too; the classical mode's
    frames are all its own), jpeg_pixels, those of frames coded as their recovered JPEG history
    (``pipelines.jpeg_history``), and raster_pixels, those coded in raster order (``pipelines.raster``).

    Empty when the codec cannot say (info is a convenience here: a verified result stands without it).
    """
    try:
        summary = codec_module.info(blob)
        sections = {str(k): int(v) for k, v in summary["section_bytes"].items()}
        pixels = {}
        for f in summary["frames"]:
            method = f.get("method")
            kind = "learned" if method == mode or method not in MODEL_FREE else method
            kind = "jpeg" if kind in JPEG_HISTORY_METHODS else kind  # JPEG history whichever way
            pixels[kind] = pixels.get(kind, 0) + int(f["shape"][0]) * int(f["shape"][1])
    except Exception:
        return {}
    pixel_bytes = sum(v for k, v in sections.items() if k != "envelope")
    return {"overhead_bytes": len(blob) - pixel_bytes, "section_bytes": sections,
            "learned_pixels": pixels.get("learned", 0), "jpeg_pixels": pixels.get("jpeg", 0),
            "raster_pixels": pixels.get("raster", 0)}


# a train-split CT phantom bundled with the package (medcodec/data/examples/SOURCES.md)
WARM_UP_IMAGE = Path(__file__).resolve().parent.parent / "data" / "examples" / "dicom16" / \
    "ct_philips_phantom_12bit.dcm"


def warm_up_crop() -> tuple[np.ndarray, int]:
    """(the middle 192x192 of WARM_UP_IMAGE, its bits): a plane the learned modes code in raster order
    with most of its options, so one round trip compiles every raster loop."""
    from medcodec.io.source import load

    phantom = load(WARM_UP_IMAGE)
    plane = phantom.planes[0]
    top, left = (plane.shape[0] - 192) // 2, (plane.shape[1] - 192) // 2
    return np.ascontiguousarray(plane[top:top + 192, left:left + 192]), phantom.bits


def _warm_up(codec_module: Any, mode: str, device: str) -> None:
    """Untimed round trips per mode, so imports, weight loading and compiling are not charged to the first
    images: a smooth ramp, and the middle of the bundled 12-bit CT phantom, which the learned modes code
    in raster order with most of its options (on a fresh installation the raster loops are compiled on
    first use: the first DICOM files of one run decoded in 1.3 s and 4.4 s instead of 0.04 s and 1.1 s)."""
    ramp = (np.add.outer(np.arange(32), np.arange(32)) * 16).astype(np.uint16)
    planes = [ramp]
    try:
        planes.append(warm_up_crop()[0])
    except Exception:  # a missing example only costs the first images their compile time
        pass
    for plane in planes:
        try:
            codec_module.decode(codec_module.encode(plane, mode=mode, device=device))
        except Exception:  # the real images will report whatever goes wrong here
            pass


def _default_loader() -> Callable[[Any], Any]:
    from medcodec.io.source import load

    return load


def _default_codec() -> Any:
    from medcodec import codec

    return codec


def _image_header(root: Path, path: Path, several_roots: bool) -> dict[str, Any]:
    return {
        "path": str(path),
        "relpath": path.relative_to(root).as_posix(),
        "folder": folder_group(root, path, several_roots),
    }


def bench_image(
    source: Any, raw: bytes, settings: BenchSettings, codec_module: Any | None
) -> dict[str, dict[str, Any]]:
    """All results for one loaded image: medcodec modes first, then the classical codecs."""
    results: dict[str, dict[str, Any]] = {}
    for mode in settings.modes:
        results[f"medcodec-{mode}"] = run_medcodec(codec_module, source, raw, mode, settings.device)
    planes = [np.asarray(p) for p in source.planes]
    for name in settings.codecs:
        results[name] = run_classical(CODECS[name], planes, int(source.bits))
    return results


def run_bench(
    folders: Iterable[str | os.PathLike],
    settings: BenchSettings,
    *,
    loader: Callable[[Any], Any] | None = None,
    codec_module: Any | None = None,
    progress: bool = True,
    echo: Callable[[str], None] | None = None,
    journal: str | os.PathLike | None = None,
) -> list[dict[str, Any]]:
    """Bench every image found under `folders`; returns one record per image (see module doc).

    `loader` turns a file's bytes into an ImageSource (default medcodec.io.source.load);
    `codec_module` provides encode/decode (default medcodec.codec); `journal`: a file each image's record
    is appended to as it is measured, and whose records are taken instead of measuring again
    (``medcodec.bench.journal``: same settings and code only).
    """
    from tqdm import tqdm

    folders = list(folders)
    load = loader or _default_loader()
    if settings.modes and codec_module is None:
        codec_module = _default_codec()
    if REFERENCE not in settings.codecs:
        settings.codecs.insert(0, REFERENCE)
        settings.notes.append(f"{REFERENCE} added: it is the reference of the ratio column")
    log = None if journal is None else Journal(journal, {"modes": settings.modes, "codecs": settings.codecs,
                                                         "device": settings.device, "threads": settings.threads})
    for mode in settings.modes:
        _warm_up(codec_module, mode, settings.device)
    files = discover(folders)
    if settings.limit is not None:
        files = files[: settings.limit]
    several_roots = len({root for root, _ in files}) > 1
    records: list[dict[str, Any]] = []
    resumed = 0
    bar = tqdm(files, desc="bench", unit="img", disable=not progress, dynamic_ncols=True)
    for root, path in bar:
        bar.set_postfix_str(path.name[-30:], refresh=False)
        if log is not None and str(path) in log.records:
            records.append(log.records[str(path)])
            resumed += 1
            continue
        record = _measured(root, path, several_roots, load, settings, codec_module)
        if log is not None:
            log.append(record)
        records.append(record)
    if resumed:
        note = (f"{resumed} of {len(records)} image(s) taken from the journal {journal}, measured by the same "
                f"code and settings in an earlier run (their speeds are that run's)")
        settings.notes.append(note)
        if echo is not None:
            echo(f"note: {note}")
    _note_unavailable_modes(records, settings, echo)
    return records


def _measured(root: Path, path: Path, several_roots: bool, load: Callable[[Any], Any], settings: BenchSettings,
              codec_module: Any | None) -> dict[str, Any]:
    """One image's record: its header, then its results, or why it has none (unreadable, nothing modelled)."""
    record = _image_header(root, path, several_roots)
    try:
        raw = path.read_bytes()
        source = load(raw)
    except Exception as exc:  # unreadable/corrupt input: list it and go on
        record.update(status="error", reason=_short_error(exc))
        return record
    planes = list(source.planes)
    record.update(
        kind=source.kind,
        modality=(getattr(source, "modality", None) or None),
        bits=int(source.bits),
        planes=len(planes),
        shape=list(planes[0].shape) if planes else None,
        pixels=int(sum(int(np.asarray(p).size) for p in planes)),
    )
    if not planes:
        why = getattr(source, "description", None) or "nothing in the file can be modelled"
        record.update(status="skipped", reason=f"no modelled planes: {why}")
        if codec_module is not None and getattr(source, "decompressed", False):
            record["recompressed"] = recompressed(codec_module, source, raw, settings.device)
        return record
    record.update(status="ok", results=bench_image(source, raw, settings, codec_module))
    return record


def _note_unavailable_modes(
    records: list[dict[str, Any]], settings: BenchSettings, echo: Callable[[str], None] | None
) -> None:
    """A learned mode whose weights are missing gets a note; with no exact result its row goes."""
    for mode in settings.modes:
        key = f"medcodec-{mode}"
        outcomes = [r["results"][key] for r in records if r.get("status") == "ok"]
        missing = [o for o in outcomes if o["status"] == "unavailable"]
        if not missing:
            continue
        if all(o["status"] == "unavailable" for o in outcomes):
            note = f"medcodec mode '{mode}' unavailable ({missing[0]['reason']}); row omitted"
            for r in records:
                if r.get("status") == "ok":
                    del r["results"][key]
        else:
            note = f"medcodec mode '{mode}' unavailable for {len(missing)} image(s); not counted"
        settings.notes.append(note)
        if echo is not None:
            echo(f"note: {note}")


def is_medcodec(name: str) -> bool:
    return name.startswith("medcodec-")
