"""The library API: encode(source) -> .mlc bytes, decode(bytes) -> the original file, info, verify.

Each plane (frame) is coded on its own by the chosen method. The classical method is the size bound:
a frame whose learned streams come out larger than its classical streams is stored classically, so a
.mlc file is never larger than the classical coding of the same input. Decoding checks every CRC,
the pixels' sha256 and the restored file's sha256, and raises instead of returning anything wrong.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

import numpy as np

import medcodec
from medcodec import bands
from medcodec.container import envelope as envelope_coding
from medcodec.container import format as container
from medcodec.container.format import Header, Section, SectionKind
from medcodec.errors import (CorruptStreamError, InvalidInputError, MedcodecError, ModelMismatchError,
                             ResourceLimitError, UnsupportedVersionError)
from medcodec.io import source as io_source
from medcodec.parallel import beside, map_in_processes, map_in_threads, single_threaded_blas, within_memory
from medcodec.pipelines import METHOD_NAMES, MODEL_FREE, get_method
from medcodec.pipelines.base import Method, Stream, unpack_side_info
from medcodec.pipelines.classical import coding_name as classical_coding_name
from medcodec.pipelines.classical import jpegxl_encode_plane

_log = logging.getLogger("medcodec")
SLOW_EFFORT = (7, 9)  # slow mode tries both and keeps the smaller (7 wins on some images)
# A frame of the fast or latent mode that falls back to JPEG-XL is coded at this effort too, the smaller
# kept (unless the caller chose an effort): such frames (contrast-equalised radiographs) are where
# JPEG-XL's own context model wins, and effort 9 is ~1 % smaller there; only those frames pay its time.
# So is a frame whose chosen coding is less than FALLBACK_REACH smaller than effort 7's: effort 9 can
# still beat it (train radiographs on a drifting lattice: raster 0.1-0.4 % below effort 7, above 9).
FALLBACK_EFFORT = 9
FALLBACK_REACH = 0.03
EXTENSIONS = {"dicom": ".dcm", "png": ".png", "tiff": ".tif", "npy": ".npy"}
# Kinds whose restore() rebuilds the same bytes; the others come back pixel-identical.
BYTE_EXACT_KINDS = ("dicom", "npy")
# Most pixels (all frames) a file may hold unless the caller raises the limit: 2**30 16-bit samples are
# 2 GiB per copy of the planes. Checked before anything of that size is allocated.
DEFAULT_MAX_PIXELS = io_source.DEFAULT_MAX_PIXELS
# DICOM files up to this size are also weighed against themselves kept whole (``_no_larger_than_whole``)
WHOLE_FILE_BOUND = 16 << 20
# One encoding job's working memory per pixel (a frame's coding, or one of a plane's codings), for how
# many run at once (parallel.map_in_threads). benchmarks/results/memory_large.json, a 2048^2 16-bit
# plane: encoding peaks ~300 bytes a pixel over the process' baseline (the slow mode's raster analyses),
# up to twice that on planes of up to 2^21 pixels (two analyses alive, raster.analysis.BLOCK_KEEP_BOTH).
ENCODE_BYTES_PER_PIXEL = 640
# Decoding a multi-frame file's frames in worker processes (``decode(processes=...)``, the CLI): a
# decoder's working memory per pixel (memory_large.json, 2048^2: raster ~30, the subimage networks ~85
# bytes a pixel over the baseline), a worker's own baseline (Python, numpy, torch, medcodec), and the
# fewest pixels worth starting workers for (each takes ~2-3 s to import medcodec and load its
# weights; the raster decoder codes ~0.3 MP/s a core).
DECODE_BYTES_PER_PIXEL = 100
WORKER_BASELINE_BYTES = 400 << 20
PROCESS_MIN_PIXELS = 1 << 20


@dataclass
class DecodedFile:
    """A decoded stream: the restored file's bytes and kind, the planes, and the stream header."""

    kind: str
    data: bytes
    planes: list[np.ndarray]
    header: Header
    fidelity: str  # 'bytes' (sha256 of the original file matched) or 'pixels' (PNG/TIFF re-encoded)


def suggested_extension(kind: str) -> str:
    """File extension for a restored file of this kind ('.dcm', '.png', '.tif', '.npy')."""
    return EXTENSIONS.get(kind, ".bin")


# ------------------------------------------------------------------------------- envelope section


def _envelope_limit(max_pixels: int | None) -> int | None:
    """Most envelope bytes a file may hold: as many as max_pixels 16-bit samples (None: no limit).

    An envelope carries what is not modelled, up to a whole encapsulated DICOM, so it gets the byte
    budget of the pixel limit; without one, a few KB of lzma or deflate could expand to gigabytes.
    """
    return None if max_pixels is None else 2 * max_pixels


# -------------------------------------------------------------------------------------- encode


# A recovered JPEG history smaller than this share of JPEG-XL effort 3's coding of the plane leaves the
# learned coding no chance (on the test split no frame's learned streams are below 0.89 x effort 7's,
# and effort 3 codes larger than 7), so it is not run: once-JPEG planes encode at about JPEG-XL's speed.
LEARNED_HOPELESS = 0.5


def _stream_cost(streams: list[Stream]) -> int:
    """Bytes these streams add to the file, section table entries included."""
    return sum(len(s.payload) for s in streams) + container.SECTION_OVERHEAD * len(streams)


# The raster method decodes at ~0.3 MP/s, many times slower than the subimage networks and JPEG-XL:
# the modes meant to be quick keep it only where it saves at least this share of the next best coding
# (on the test split, 15 of the 23 MP it won in fast mode saved under 1 %: 29 % of its saved bytes, for
# two thirds of its decoding time); the slow mode keeps every saving.
RASTER_MARGIN = {"fast": 0.01, "latent": 0.01}
# The raster codings each mode tries, the smallest kept: (learned correction, robust fits, thorough)
# triples, the correction a models/ id (None: the raster method's default, raster-nn-large-v1), robust
# which of the encoder's weight fits are robust (raster.analysis.Analysis.robust; None: by the plane's bit
# depth), thorough whether its fits and searches look at 4 times larger samples (raster.analysis.THOROUGH_SCALE;
# tried only on planes where that can differ). The slow mode adds a larger network, raster-nn-xl-v1 (four
# layers of 128; benchmarks/results/raster_ablation.json: what it saves and costs), the default network
# with robust fits both off and on, one of which is the fast mode's own coding, and the fast mode's
# coding made thorough: no raster frame of a slow file is larger than the fast file's, and where another
# choice wins (8-bit head CTs and ultrasound, some 10-16-bit planes; large planes) it is smaller.
RASTER_TRIES: dict[str, tuple[tuple[str | None, int | None, bool], ...]] = {
    "slow": (("raster-nn-xl-v1", None, False), (None, 0, False), (None, 2, False), (None, None, True)),
}


# The learned scales (models/ ids) each mode's raster coding offers, in turn, the smallest kept (a mode not
# named: the raster method's default, raster-scale-v1). Every learned mode adds raster-scale-v2, which
# also sees a wide window's errors: ~0.1-0.4 % smaller raster frames where it wins, for ~10 % more
# decoding time there (the window's integral images; 18 % before they were read with one gather a
# wavefront) and one more scale pass in the encoder. make bench at 44ab390: fast 0.898 x -> 0.897 x
# JPEG-XL e9 (16-bit 0.960 x -> 0.958 x, 10-bit 0.986 x -> 0.981 x).
_SCALES = ("raster-scale-v1", "raster-scale-v2")
RASTER_SCALES: dict[str, tuple[str, ...]] = {"fast": _SCALES, "slow": _SCALES, "latent": _SCALES}


# The share of a raster frame's estimated size the local least-squares blend (pipelines.raster.local_ls) must
# save to be sent (a mode not named: the raster analysis' LOCAL_MIN_SHARE, which weighs the ~2x decoding
# time of the frames that use it). The slow mode takes any saving.
RASTER_LOCAL_MIN_SHARE: dict[str, float] = {"slow": 0.0}
# The radii of the local least-squares windows the mode's raster coding may blend in besides the default
# one (format 2.5): each a full local fit more per plane in the encoder and in the decoder where sent.
RASTER_LOCAL_RADII: dict[str, tuple[int, ...]] = {"slow": (4, 14)}


# The pair of learned corrections each mode's raster codings may stack (raster.analysis.Analysis.with_second_correction,
# format 2.7): a try with one of them offers the other on top, with per-class weights fitted to the plane,
# where that codes smaller; the decoder then runs both networks (~1.3 x raster-nn-xl-v1's decoding time).
# Slow-mode train files (benchmarks/results/stack_ablation.json): 13 of 24 change, -0.14 % on those.
RASTER_STACK: dict[str, tuple[str, str]] = {"slow": ("raster-nn-xl-v1", "raster-nn-large-v1")}


def raster_second(mode: str, correction: str | None) -> str | None:
    """The correction the mode stacks on a raster try's own (None resolved to the default), or None."""
    from medcodec.pipelines.raster.method import CORRECTION_MODEL

    pair = RASTER_STACK.get(mode)
    own = correction or CORRECTION_MODEL
    return None if pair is None or own not in pair else pair[1 - pair.index(own)]


def raster_tries(mode: str) -> tuple[tuple[str | None, int | None, bool], ...]:
    """The (correction, robust fits, thorough) triples the mode's raster coding is tried with
    (RASTER_TRIES; a mode not named there: the raster method's defaults once)."""
    return RASTER_TRIES.get(mode, ((None, None, False),))


def raster_corrections(mode: str) -> tuple[str, ...]:
    """The models/ ids of the learned corrections the mode's raster coding is tried with (None resolved)."""
    from medcodec.pipelines.raster.method import CORRECTION_MODEL

    return tuple(dict.fromkeys(c or CORRECTION_MODEL for c, _, _ in raster_tries(mode)))


def _choose(base: list[Stream], alternatives: list[tuple[str, list[Stream]]] | None,
            raster_margin: float = 0.0) -> tuple[list[Stream], dict]:
    """A frame's smallest alternative (the learned method's streams, the recovered JPEG history of a
    once-JPEG plane, or the raster coding; each decodable by the method it names), or its classical
    streams when those are smaller (noted in the meta). A raster coding must be smaller than every other
    by raster_margin (a share) to be kept."""
    if not alternatives:
        return base, {"method": "classical"}
    name, learned = min(alternatives, key=lambda a: _stream_cost(a[1]))
    if name == "raster" and raster_margin:
        others = [a for a in alternatives if a[0] != "raster"]
        best_other = min([_stream_cost(base)] + [_stream_cost(a[1]) for a in others])
        if _stream_cost(learned) > (1 - raster_margin) * best_other:
            if not others:
                return base, {"method": "classical"}
            name, learned = min(others, key=lambda a: _stream_cost(a[1]))
    excess = _stream_cost(learned) - _stream_cost(base)
    if excess > 0:
        return base, {"method": "classical", "fallback": f"{name} was {excess} bytes larger"}
    return learned, {"method": name}


def _smaller(streams: list[Stream], other: list[Stream]) -> list[Stream]:
    return other if _stream_cost(other) < _stream_cost(streams) else streams


def _with_harder_fallback(plane: np.ndarray, bits: int, base: list[Stream], streams: list[Stream], meta: dict,
                          harder: Method) -> tuple[list[Stream], dict]:
    """A frame's chosen coding, or the harder classical one where the choice was classical or beat the
    classical base by less than FALLBACK_REACH and the harder coding is smaller still."""
    if meta["method"] != "classical" and _stream_cost(streams) < (1 - FALLBACK_REACH) * _stream_cost(base):
        return streams, meta
    other = harder.encode(plane, bits)
    if meta["method"] == "classical":
        return _smaller(streams, other), meta
    return (other, {"method": "classical"}) if _stream_cost(other) < _stream_cost(streams) else (streams, meta)


def _pack_file(src: io_source.ImageSource, envelope: tuple[int, bytes], method: Method,
               coded: list[tuple[list[Stream], dict]], units: list[np.ndarray] | None = None,
               counts: list[int] | None = None) -> bytes:
    """One .mlc file from per-frame (streams, meta); the model is named only if a frame needs it.
    units: the coded frames when some plane was cut into bands (``bands.split``), counts: how many each
    plane became; the header keeps the whole planes' shape and checksum."""
    shape = tuple(src.planes[0].shape) if src.planes else (0, 0)
    units = src.planes if units is None else units
    sections = [Section(SectionKind.ENVELOPE, 0, *envelope)]  # index: the envelope's coding
    frames = []
    for number, (plane, (streams, frame_meta)) in enumerate(zip(units, coded)):
        sections.extend(Section(SectionKind(s.kind), number, s.index, s.payload) for s in streams)
        if plane.shape != shape:  # rare (TIFF pages of different sizes); the header holds the first shape
            frame_meta = {**frame_meta, "shape": list(plane.shape)}
        frames.append(frame_meta)
    learned_used = any(f["method"] not in MODEL_FREE for f in frames)
    banded = counts is not None and any(c > 1 for c in counts)
    header = Header(
        source_kind=src.kind, height=shape[0], width=shape[1], frames=len(units),
        bits_stored=src.bits if src.planes else 0, signed=src.signed, photometric=src.photometric,
        method=method.name,  # as requested; the frames say what was actually used
        model_id=method.model_id if learned_used else "",
        model_sha256=method.model_sha256 if learned_used else b"",
        encoder_version=medcodec.__version__,
        pixel_sha256=io_source.pixel_sha256(src.planes),
        original_sha256=src.original_sha256 or b"",
        meta={"frames": frames, **({"bands": list(counts)} if banded else {}),
              **{k: v for k, v in (("modality", src.modality), ("description", src.description)) if v}},
    )
    return container.pack(header, sections)


def _limit_message(what: str, pixels: int, max_pixels: int) -> str:
    return (f"{what} {pixels:,} pixels, over the limit of {max_pixels:,}; "
            "raise the limit (--max-pixels N, or max_pixels=N in the library) if this file is trusted")


def _check_source_pixels(src: io_source.ImageSource, max_pixels: int | None) -> None:
    """Every kind under one limit, so a file medcodec writes decodes under the same default limit.

    The io layer refuses images by their declared size before decoding; DICOM planes cannot outgrow
    the file already read, but a stream holding them would then be refused by decode.
    """
    pixels = sum(int(p.size) for p in src.planes)
    if max_pixels is not None and pixels > max_pixels:
        raise ResourceLimitError(_limit_message("input holds", pixels, max_pixels))


@single_threaded_blas
def encode(source: str | os.PathLike | bytes | np.ndarray, *, mode: str = "fast", device: str = "auto",
           effort: int | None = None, max_pixels: int | None = DEFAULT_MAX_PIXELS, recompress: bool = True,
           in_bands: bool = False) -> bytes:
    """Compress a file (path or bytes; DICOM, PNG, TIFF, .npy) or an integer array to .mlc bytes.

    mode picks the method ('classical', 'fast', 'slow', 'latent'); effort is the JPEG-XL effort of
    the classical coding (default 7; slow mode tries 7 and 9 and keeps the smaller; fast and latent
    recode a frame that falls back to JPEG-XL at 9 as well, FALLBACK_EFFORT). The result is never
    larger than mode='classical' gives: frames whose learned
    streams are larger are stored classically (and noted), and when the model's header fields and notes
    still make the file larger, the plain classical file is returned. Raises InvalidInputError for
    unreadable input, ResourceLimitError for inputs of more than max_pixels pixels (None: no limit),
    ModelMismatchError when the mode's weights are not installed. recompress=False keeps already-compressed
    DICOM pixel data (lossless JPEG, JPEG-LS, RLE, JPEG 2000, lossy JPEG, deflated) as it is, which is much
    faster on such files and makes them larger. in_bands=True codes the learned modes' large planes as
    bands that decode side by side (``bands``; format 2.22).
    """
    try:
        src = io_source.load(source, max_pixels=max_pixels, decompress=recompress)
    except ResourceLimitError as exc:
        raise ResourceLimitError(f"{exc}; raise the limit (--max-pixels N, or max_pixels=N in the library) "
                                 "if this file is trusted") from None
    _check_source_pixels(src, max_pixels)
    if (limit := _envelope_limit(max_pixels)) is not None and len(src.envelope) > limit:
        raise ResourceLimitError(f"input keeps {len(src.envelope):,} bytes outside its planes, over the limit of "
                                 f"{limit:,} (2 per pixel of the limit); raise the limit (--max-pixels N, or "
                                 "max_pixels=N in the library) if this file is trusted")
    if effort is None and mode == "slow":
        effort = SLOW_EFFORT  # the slow mode spends more JPEG-XL effort on its fallback too
    classical = get_method("classical", effort=effort)
    method = classical if mode == "classical" else get_method(mode, device)
    envelope = envelope_coding.pack(src.envelope)

    def code_classically(planes: list[np.ndarray]) -> list[list[Stream]]:
        return [classical.encode(plane, src.bits) for plane in planes]

    if method is classical:
        coded = _pack_file(src, envelope, classical, [_choose(b, None) for b in code_classically(src.planes)])
        return _no_larger_than_kept(source, src, coded, max_pixels)
    # The classical coding (the size bound) runs beside the learned work when the thread budget
    # allows: JPEG-XL releases the GIL, and much of the learned encoder is single-threaded numpy.
    # A plane that was once a JPEG is also offered as the coefficients of that JPEG (jpeg_history):
    # on such planes far smaller than any predictor's coding of their pixels.
    history = get_method("jpeg", effort=effort)  # its correction plane at the classical coding's effort
    # Raster-order prediction: where the plane is mostly noise (12-16-bit CT and MR), it beats both the
    # subimage networks and JPEG-XL, which codes in raster order with a weaker context model.
    from medcodec.pipelines.raster.analysis import thorough_differs

    rasters = [(get_method("raster", correction=c, robust=robust, thorough=thorough, scales=RASTER_SCALES.get(mode),
                           local_min_share=RASTER_LOCAL_MIN_SHARE.get(mode), local_radii=RASTER_LOCAL_RADII.get(mode),
                           second=raster_second(mode, c)),
                thorough)
               for c, robust, thorough in raster_tries(mode)]

    def alternatives_of(plane: np.ndarray) -> list[tuple[str, list[Stream]]]:
        found = history.encode_alternatives(plane, src.bits)
        if found and _stream_cost(found[0][1]) < LEARNED_HOPELESS * len(jpegxl_encode_plane(plane, src.bits, 3)):
            return found  # the learned coding cannot come near: not run
        # The mode's own coding and its raster codings, in threads where the budget and the memory allow
        # (not inside a frame's thread: the frames already spend the budget). A raster coding skips its
        # rANS pass when the own coding is clearly smaller, so it waits for that once analysed; the own
        # coding is the first job, taken first by the first free thread, so it never waits on them.
        smallest: Future = Future()

        def own_coding() -> list[tuple[str, list[Stream]]]:
            try:
                own = method.encode_alternatives(plane, src.bits)
            except BaseException as exc:
                smallest.set_exception(exc)
                raise
            smallest.set_result(min((_stream_cost(streams) for _, streams in own), default=None))
            return own

        tried = [r for r, thorough in rasters if not thorough or thorough_differs(plane.size)]
        jobs = [own_coding] + [functools.partial(raster.encode_alternatives, plane, src.bits, beaten_by=smallest.result)
                               for raster in tried]
        codings = map_in_threads(lambda job: job(), jobs, ENCODE_BYTES_PER_PIXEL * plane.size)
        return [alternative for coding in codings for alternative in coding] + found

    # with in_bands, a large plane is coded as bands, each a frame of its own (``bands``): decoded side by side
    units, counts = bands.split(src.planes) if in_bands else (list(src.planes), [1] * len(src.planes))

    def code_alternatives() -> list[list[tuple[str, list[Stream]]]]:
        # the frames of a multi-frame file (and the bands) in threads where the budget and the memory allow
        largest = max((unit.size for unit in units), default=0)
        return map_in_threads(alternatives_of, units, ENCODE_BYTES_PER_PIXEL * largest)

    base, learned = beside(lambda: code_classically(units), code_alternatives)
    # the size bound is the classical file, whose planes are whole
    whole = code_classically(src.planes) if len(units) != len(src.planes) else base
    plain = _pack_file(src, envelope, classical, [_choose(b, None) for b in whole])
    margin = RASTER_MARGIN.get(mode, 0.0)
    chosen = [_choose(b, alternatives, margin) for b, alternatives in zip(base, learned)]
    if effort is None and FALLBACK_EFFORT not in classical.efforts:  # an effort the caller chose is kept
        harder = get_method("classical", effort=FALLBACK_EFFORT)
        chosen = [_with_harder_fallback(unit, src.bits, b, streams, meta, harder)
                  for unit, b, (streams, meta) in zip(units, base, chosen)]
    mixed = _pack_file(src, envelope, method, chosen, units, counts)
    if len(mixed) > len(plain):
        # No note in the file: any note would make it larger than classical. Say it to the logger.
        _log.info("%s stream %d bytes larger than classical (%d): wrote the classical file",
                  method.name, len(mixed) - len(plain), len(plain))
        mixed = plain
    return _no_larger_than_kept(source, src, mixed, max_pixels)


def _no_larger_than_kept(source: str | os.PathLike | bytes | np.ndarray, src: io_source.ImageSource, coded: bytes,
                         max_pixels: int | None) -> bytes:
    """coded, or, where it came out of taking compressed pixel data apart (``io.source.DECOMPRESSED_LAYOUTS``:
    lossless JPEG, JPEG-LS, RLE, JPEG 2000, lossy JPEG, deflate) and keeping that data as it is makes a smaller
    file, that file (no planes: the pixel data rides in the envelope); for other DICOM files of up to
    WHOLE_FILE_BOUND bytes, the file kept whole where that is smaller (``_no_larger_than_whole``)."""
    if not src.decompressed:
        return _no_larger_than_whole(source, src, coded)
    kept = io_source.load(source, max_pixels=max_pixels, decompress=False)
    return _smaller_of(coded, kept, "the compressed pixel data kept as it is")


def _no_larger_than_whole(source: str | os.PathLike | bytes | np.ndarray, src: io_source.ImageSource,
                          coded: bytes) -> bytes:
    """coded, or the DICOM file kept whole (LZMA- or dictionary-deflate-compressed in the envelope, no planes)
    where that is smaller: what medcodec wrote for DICOM it did not model, and what synthetic pictures (a
    secondary capture's colour bars, text) compress to better than any coding of their planes. Files over
    WHOLE_FILE_BOUND bytes are not tried (compressing them whole costs seconds; medical images never win)."""
    if src.kind != "dicom" or not src.planes or isinstance(source, np.ndarray):
        return coded
    size = len(source) if isinstance(source, (bytes, bytearray, memoryview)) else os.path.getsize(source)
    if size > WHOLE_FILE_BOUND:
        return coded
    return _smaller_of(coded, io_source.whole_file(source, src), "the file kept whole")


def _smaller_of(coded: bytes, kept: io_source.ImageSource, what: str) -> bytes:
    """coded, or the file of kept (no planes: everything in its envelope) where that is smaller."""
    verbatim = _pack_file(kept, envelope_coding.pack(kept.envelope), get_method("classical"), [])
    if len(verbatim) < len(coded):
        _log.info("%s is %d bytes smaller than its coding: wrote that", what, len(coded) - len(verbatim))
        return verbatim
    return coded


# -------------------------------------------------------------------------------------- decode


def _frames(header: Header, max_pixels: int | None = None) -> list[dict[str, Any]]:
    """Per-frame method, fallback note and shape, validated: the header meta is untrusted input."""
    frames = header.meta.get("frames")
    if not isinstance(frames, list) or len(frames) != header.frames:
        raise CorruptStreamError(f"corrupt medcodec file: frame list does not match the {header.frames} frames")
    out = []
    for number, frame in enumerate(frames):
        try:
            shape = frame.get("shape", [header.height, header.width])
            out.append({"method": str(frame["method"]), "shape": (int(shape[0]), int(shape[1])),
                        **({"fallback": str(frame["fallback"])} if "fallback" in frame else {})})
        except (AttributeError, KeyError, TypeError, ValueError, IndexError):
            raise CorruptStreamError(f"corrupt medcodec file: frame {number} metadata is malformed") from None
        if min(out[-1]["shape"]) < 1:
            raise CorruptStreamError(f"corrupt medcodec file: frame {number} has shape {out[-1]['shape']}")
    bands.check_shapes([f["shape"] for f in out], bands.counts_of(header.meta, header.frames))
    # Checked before any decoder allocates: a damaged or hostile header must not exhaust memory.
    pixels = sum(f["shape"][0] * f["shape"][1] for f in out)
    if max_pixels is not None and pixels > max_pixels:
        raise ResourceLimitError(_limit_message("medcodec file declares", pixels, max_pixels))
    return out


def _method_for(name: str, header: Header, device: str) -> Method:
    """The method a frame names, checked against the weights the stream was written with."""
    if name in MODEL_FREE:
        return get_method(name)
    if name not in METHOD_NAMES:
        raise UnsupportedVersionError(f"frame method {name!r} is unknown to this medcodec: the file was written "
                                      "by a newer medcodec — upgrade medcodec to decode it")
    method = get_method(name, device)
    if method.model_id != header.model_id or method.model_sha256 != header.model_sha256:
        raise ModelMismatchError(
            f"stream needs {name} model {header.model_id or '?'} (sha256 {header.model_sha256.hex()[:16]}), "
            f"installed is {method.model_id} (sha256 {method.model_sha256.hex()[:16]}); "
            "install the medcodec release that wrote it")
    return method


def _split(sections: list[Section], frames: int) -> tuple[Section, dict[int, list[Stream]]]:
    """The envelope section, and each frame's streams (sorted, so methods see a fixed order)."""
    envelope = [s for s in sections if s.kind == SectionKind.ENVELOPE]
    if len(envelope) != 1:
        raise CorruptStreamError(f"corrupt medcodec file: {len(envelope)} envelope sections, expected 1")
    per_frame: dict[int, list[Stream]] = {}
    for s in sections:
        if s.kind != SectionKind.ENVELOPE:
            if s.frame >= frames:
                raise CorruptStreamError(f"corrupt medcodec file: section for frame {s.frame} of {frames}")
            per_frame.setdefault(s.frame, []).append(Stream(s.kind, s.index, s.payload))
    for streams in per_frame.values():
        streams.sort(key=lambda st: (st.kind, st.index))
    return envelope[0], per_frame


def _check_restored(kind: str, data: bytes, header: Header) -> str:
    """'bytes' when the file equals the original; 'pixels' when a PNG/TIFF re-reads to the same pixels."""
    if header.original_sha256 and hashlib.sha256(data).digest() == header.original_sha256:
        return "bytes"
    if kind in BYTE_EXACT_KINDS and header.original_sha256:
        raise CorruptStreamError("restored file checksum mismatch: refusing to write a wrong file")
    try:
        reread = io_source.load(data)
    except MedcodecError as exc:  # the rebuilt file is not even readable: damage, not a bad input
        raise CorruptStreamError(f"restored file cannot be read back ({exc}): refusing to write a wrong file") from None
    if io_source.pixel_sha256(reread.planes) != header.pixel_sha256:
        raise CorruptStreamError("restored file pixel checksum mismatch: refusing to write a wrong file")
    return "pixels"


@single_threaded_blas
def _decode_frame(job: tuple[str, Header, str, list[Stream], tuple[int, int]]) -> np.ndarray:
    """One frame's plane from its streams: (method name, header, device, streams, shape)."""
    name, header, device, streams, shape = job
    return _method_for(name, header, device).decode(streams, shape, header.bits_stored)


def _frame_processes(processes: int, frames: list[dict[str, Any]], device: str) -> int:
    """How many processes decode the frames: at most ``processes``, one per frame, as many as half the
    available memory holds; one for files under PROCESS_MIN_PIXELS and where the networks run on a GPU."""
    pixels = [int(f["shape"][0]) * int(f["shape"][1]) for f in frames]
    if processes < 2 or len(frames) < 2 or sum(pixels) < PROCESS_MIN_PIXELS:
        return 1
    if device != "cpu" and any(f["method"] not in MODEL_FREE for f in frames):
        from medcodec.pipelines.subimage import resolve_device

        if resolve_device(device).type == "cuda":
            return 1
    return within_memory(processes, len(frames), WORKER_BASELINE_BYTES + DECODE_BYTES_PER_PIXEL * max(pixels))


@single_threaded_blas
def decode(data: bytes, *, device: str = "auto", max_pixels: int | None = io_source.DEFAULT_MAX_PIXELS,
           processes: int = 1) -> DecodedFile:
    """Decode .mlc bytes and rebuild the original file, checking every CRC and checksum.

    processes: decode a multi-frame file's frames in up to this many processes (this one and spawned
    workers; ``parallel.map_in_processes``), where the file is large enough to pay for starting them.
    The default, 1, starts none: spawning re-imports the caller's main module, which a script without
    an ``if __name__ == "__main__"`` guard would run again. The planes are the same with any count.

    Raises CorruptStreamError (damage, any checksum mismatch), UnsupportedVersionError (newer format)
    or ModelMismatchError (weights missing or different); never returns wrong data. Streams that
    declare more than max_pixels pixels are refused with ResourceLimitError before decoding (None: no
    limit): the header alone (CRC-checked) is read first, so nothing of the declared size is allocated.
    """
    data = bytes(data)
    # the frames and their declared pixels from the header alone, before any section is read; unpack checks
    # the same header bytes again, with the sections
    frames = _frames(container.read_header(data), max_pixels)
    header, sections = container.unpack(data)
    kind = header.source_kind
    if kind not in EXTENSIONS:
        raise CorruptStreamError(f"corrupt medcodec file: unknown source kind {kind!r}")
    envelope, per_frame = _split(sections, header.frames)
    # Not in threads: the decoders' wavefront loops hold the GIL between their compiled pieces, and frames
    # decoded in two threads took 0.91-1.08x the time of one (benchmarks/results/threads.json).
    jobs = [(f["method"], header, device, per_frame.get(n, []), tuple(f["shape"])) for n, f in enumerate(frames)]
    planes = bands.merge(map_in_processes(_decode_frame, jobs, _frame_processes(processes, frames, device)),
                         bands.counts_of(header.meta, header.frames))
    if io_source.pixel_sha256(planes) != header.pixel_sha256:
        raise CorruptStreamError("decoded pixels checksum mismatch: refusing to write a wrong file")
    io_envelope = envelope_coding.unpack(envelope.index, envelope.payload, _envelope_limit(max_pixels))
    restored = io_source.restore(kind, io_envelope, planes)
    fidelity = _check_restored(kind, restored, header)
    return DecodedFile(kind=kind, data=restored, planes=planes, header=header, fidelity=fidelity)


# ------------------------------------------------------------------------------- info and verify


def info(data: bytes) -> dict[str, Any]:
    """What a stream holds, without decoding pixels: header, bytes per section kind, frames, bits/pixel.

    Only the header must be intact; when the sections are damaged, 'integrity' says why and the
    section sizes are left out (so a damaged file can still be identified).
    """
    data = bytes(data)
    header = container.read_header(data)
    major, minor = container.read_version(data)
    frames = _frames(header)
    section_bytes: dict[str, int] = {}
    frame_bytes: list[int | None] = [None] * len(frames)
    frame_sections: list[dict[str, int]] = [{} for _ in frames]
    side_info: list[dict[str, Any] | None] = [None] * len(frames)
    classical_coding: list[str | None] = [None] * len(frames)  # a classical frame's JPEG-XL, JPEG 2000 or raw
    try:
        _, sections = container.unpack(data)
        integrity = "ok"
    except CorruptStreamError as exc:
        sections, integrity = [], f"damaged: {exc}"
    else:
        frame_bytes = [0] * len(frames)
    envelope_name = None
    for s in sections:
        name = SectionKind(s.kind).name.lower()
        section_bytes[name] = section_bytes.get(name, 0) + len(s.payload)
        if s.kind == SectionKind.ENVELOPE:
            envelope_name = envelope_coding.CODINGS.get(s.index, f"unknown ({s.index})")
        if s.kind != SectionKind.ENVELOPE and s.frame < len(frames):
            frame_bytes[s.frame] += len(s.payload)  # type: ignore[operator]
            frame_sections[s.frame][name] = frame_sections[s.frame].get(name, 0) + len(s.payload)
            if s.kind == SectionKind.PLANE_META and s.index == 0:
                side_info[s.frame] = _side_info(s.payload)
            if s.kind == SectionKind.PLANE_CLASSICAL and s.index == 0:
                classical_coding[s.frame] = classical_coding_name(s.payload)
    pixels = sum(f["shape"][0] * f["shape"][1] for f in frames)
    counts = bands.counts_of(header.meta, header.frames)
    banded = any(c > 1 for c in counts)
    places = bands.plane_of_frame(counts)
    return {
        "format_major": major,
        "format_minor": minor,
        "encoder_version": header.encoder_version,
        "integrity": integrity,
        "kind": header.source_kind,
        "description": header.meta.get("description", ""),
        "modality": header.meta.get("modality", ""),
        "photometric": header.photometric,
        "bits": header.bits_stored,
        "signed": header.signed,
        "method": header.method,
        "model_id": header.model_id,
        "model_sha256": header.model_sha256.hex(),
        "original_sha256": header.original_sha256.hex() or None,
        "pixel_sha256": header.pixel_sha256.hex(),
        "stream_size": len(data),
        "section_bytes": section_bytes,
        "envelope_coding": envelope_name,
        "planes": len(counts),
        "frames": [{"frame": n, **f, "shape": list(f["shape"]), "bits": header.bits_stored,
                    **({"plane": places[n][0], "band": places[n][1]} if banded else {}),
                    "bytes": frame_bytes[n], "section_bytes": frame_sections[n],
                    **({"classical_coding": classical_coding[n]} if classical_coding[n] is not None else {}),
                    **({"side_info": side_info[n]} if side_info[n] is not None else {})}
                   for n, f in enumerate(frames)],
        "pixels": pixels,
        "bpp": 8 * len(data) / pixels if pixels else None,
    }


def _side_info(payload: bytes) -> dict[str, Any] | None:
    """A method's per-plane side information (normalisation, calibration, latent z and residual bits),
    for reporting only; None when it cannot be read (info must not fail on it)."""
    try:
        return unpack_side_info(payload)
    except (ValueError, TypeError):  # UnicodeDecodeError is a ValueError
        return None


def verify(data: bytes, original: bytes | str | os.PathLike | None = None, *, device: str = "auto",
           max_pixels: int | None = DEFAULT_MAX_PIXELS, same_source: bool = False, processes: int = 1) -> dict:
    """Decode in memory and check everything; with original, also compare against it. Writes nothing.
    processes: as ``decode``'s.

    The comparison is byte for byte for DICOM and .npy, pixel for pixel for PNG/TIFF (whose files a
    re-encoder may lay out differently). With same_source, the stream must also record original's
    sha256, i.e. have been made from this very file (encode --verify and --resume ask for that).
    Returns a summary dict; raises CorruptStreamError on any mismatch.
    """
    decoded = decode(data, device=device, max_pixels=max_pixels, processes=processes)
    result: dict[str, Any] = {"kind": decoded.kind, "frames": len(decoded.planes),
                              "fidelity": decoded.fidelity, "size": len(decoded.data)}
    if original is None:
        return result
    if not isinstance(original, (bytes, bytearray, memoryview)):
        try:
            original = open(original, "rb").read()
        except OSError as exc:
            raise InvalidInputError(f"cannot read original {os.fspath(original)}: {exc.strerror or exc}") from exc
    original = bytes(original)
    recorded = decoded.header.original_sha256  # empty for streams made from arrays
    if same_source and hashlib.sha256(original).digest() != recorded:
        raise CorruptStreamError("stream was not made from this original (its recorded sha256 differs)")
    if original == decoded.data:
        result["matches_original"] = "bytes"
        return result
    if decoded.kind in BYTE_EXACT_KINDS:
        raise CorruptStreamError("decoded file differs from the original given (byte comparison)")
    other = io_source.load(original)
    if io_source.pixel_sha256(other.planes) != decoded.header.pixel_sha256:
        raise CorruptStreamError("decoded pixels differ from the original given")
    result["matches_original"] = "pixels"
    return result
