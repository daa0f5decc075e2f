"""Cross-device check: streams encoded on one device decode exactly on another, and encoders agree.

For every modelled plane of the test split (first plane of each file) and every learned mode, the
method itself (no classical fallback, so the learned path is what is checked) encodes on
--encode-device and the streams are decoded on --decode-device, in the same worker, and compared with
the plane. The sha256 of every plane's streams is recorded, so that a run on another machine (or on the
other device, --reencode) shows whether both encoders wrote the same bytes: the probability path is
integer-exact, so neither the device nor the machine may matter.

A GPU machine here is lent for minutes and has neither the corpus nor our codec libraries, so the
check runs in three steps:

    # here: the test split's planes, losslessly packed as JPEG-XL (19 MB instead of 37), with hashes
    python benchmarks/gpu_cpu_crosscheck.py pack ../shared/corpus/test .gpudata/test_planes
    # there: CUDA encode, CPU decode, in parallel worker processes, stopping new work at --deadline-s
    python benchmarks/gpu_cpu_crosscheck.py run --planes .gpudata/test_planes --encode-device cuda \\
        --decode-device cpu --modes fast,latent,slow --workers 15 --deadline-s 400 --out $OUT/gpu.json
    # here: the same planes encoded on this machine's CPU, and the two runs' stream hashes compared
    python benchmarks/gpu_cpu_crosscheck.py run --planes .gpudata/test_planes --encode-device cpu \\
        --decode-device cpu --only-in gpu.json --out cpu.json
    python benchmarks/gpu_cpu_crosscheck.py compare gpu.json cpu.json --out benchmarks/results/gpu_cpu_crosscheck.json

Exit status 1 when any plane fails to decode exactly (run) or any pair of hashes differs (compare).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

PLANES_INDEX = "planes.json"


def pack(corpus: Path, folder: Path) -> int:
    """Write the first plane of every modelled file under corpus to folder as lossless JPEG-XL (values
    shifted by the plane's minimum, which signed planes need), with an index of names, bits and hashes."""
    import imagecodecs
    from method_runs import first_planes

    folder.mkdir(parents=True, exist_ok=True)
    index = []
    for number, (path, plane, bits) in enumerate(first_planes(corpus)):
        offset = int(plane.min())
        shifted = plane.astype(np.int64) - offset
        data = imagecodecs.jpegxl_encode(shifted.astype(np.uint8 if shifted.max() < 256 else np.uint16),
                                         lossless=True, effort=3)
        name = f"plane{number:03d}.jxl"
        (folder / name).write_bytes(data)
        index.append({"name": name, "file": str(path.relative_to(corpus)), "bits": int(bits),
                      "dtype": str(plane.dtype), "offset": offset, "sha256": _plane_sha256(plane)})
    (folder / PLANES_INDEX).write_text(json.dumps(index, indent=1) + "\n")
    print(f"{len(index)} planes packed into {folder}")
    return 0


def packed_planes(folder: Path):
    """(file, plane, bits) of a packed folder, each checked against the hash taken when it was packed."""
    import imagecodecs

    for entry in json.loads((folder / PLANES_INDEX).read_text()):
        shifted = imagecodecs.jpegxl_decode((folder / entry["name"]).read_bytes())
        plane = (shifted.astype(np.int64) + entry["offset"]).astype(entry["dtype"])
        if _plane_sha256(plane) != entry["sha256"]:
            raise SystemExit(f"{folder / entry['name']} does not unpack to the plane packed from {entry['file']}")
        yield entry["file"], plane, entry["bits"]


def corpus_planes(corpus: Path):
    from method_runs import first_planes

    for path, plane, bits in first_planes(corpus):
        yield str(path.relative_to(corpus)), plane, bits


def _plane_sha256(plane: np.ndarray) -> str:
    return hashlib.sha256(f"{plane.dtype}{plane.shape}".encode() + np.ascontiguousarray(plane).tobytes()).hexdigest()


def streams_sha256(streams) -> str:
    digest = hashlib.sha256()
    for s in streams:
        digest.update(f"{s.kind}:{s.index}:{len(s.payload)}:".encode())
        digest.update(s.payload)
    return digest.hexdigest()


# one worker process's methods, made once by _start_worker
_WORKER: dict = {}


def _start_worker(modes: list[str], encode_device: str, decode_device: str, reencode: bool, deadline: float) -> None:
    import torch

    from medcodec.pipelines import get_method

    torch.set_num_threads(1)
    _WORKER.update(deadline=deadline, reencode=reencode,
                   methods={m: (get_method(m, encode_device), get_method(m, decode_device)) for m in modes})


def _check(task: tuple[str, str, np.ndarray, int]) -> dict:
    """One plane in one mode: encode, decode on the other device, compare (and re-encode there)."""
    mode, file, plane, bits = task
    record = {"mode": mode, "file": file, "shape": list(plane.shape), "bits": bits}
    if time.time() > _WORKER["deadline"]:
        return {**record, "status": "not run (deadline)"}
    encoder, decoder = _WORKER["methods"][mode]
    try:
        start = time.perf_counter()
        streams = encoder.encode(plane, bits)
        record.update(encode_s=round(time.perf_counter() - start, 3), bytes=sum(len(s.payload) for s in streams),
                      streams_sha256=streams_sha256(streams))
        start = time.perf_counter()
        decoded = decoder.decode(streams, plane.shape, bits)
        record.update(decode_s=round(time.perf_counter() - start, 3),
                      decoded_exactly=bool(np.array_equal(decoded, plane)))
        if _WORKER["reencode"]:
            start = time.perf_counter()
            again = decoder.encode(plane, bits)
            record.update(reencode_s=round(time.perf_counter() - start, 3),
                          encoders_agree=streams_sha256(again) == record["streams_sha256"])
    except Exception as exc:  # noqa: BLE001 - a failure is a result to record, not a reason to stop the others
        record.update(decoded_exactly=False, error=f"{type(exc).__name__}: {exc}")
    record["status"] = "ok" if record["decoded_exactly"] and record.get("encoders_agree", True) else "FAILED"
    return record


def _warm_up(modes: list[str]) -> None:
    """Compile (and cache) the raster loops once, before the workers start, so that they do not all
    compile them at once: the bench's warm-up plane reaches every loop."""
    from medcodec.bench.runner import warm_up_crop
    from medcodec.pipelines import get_method

    crop, bits = warm_up_crop()
    for mode in modes:
        method = get_method(mode, "cpu")
        method.decode(method.encode(crop, bits), crop.shape, bits)


def _device_name(device: str) -> str:
    import torch

    if device.startswith("cuda") and torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return platform.processor() or platform.machine() or "cpu"


def run(args: argparse.Namespace) -> int:
    import torch

    started = time.time()
    modes = args.modes.split(",")
    planes = list(packed_planes(args.planes) if args.planes else corpus_planes(args.corpus))
    if args.only_in:
        done = {(r["mode"], r["file"]) for r in json.loads(args.only_in.read_text())["images"] if "bytes" in r}
    # the learned modes in the order asked, the largest planes of each first (the workers finish together)
    tasks = [(m, file, plane, bits) for m in modes
             for file, plane, bits in sorted(planes[:args.limit], key=lambda p: -p[1].size)
             if not args.only_in or (m, file) in done]
    _warm_up(modes)
    workers = args.workers or max(1, (os.cpu_count() or 2) - 1)
    report = {"command": " ".join(["python"] + sys.argv), "encode_device": args.encode_device,
              "decode_device": args.decode_device, "encode_device_name": _device_name(args.encode_device),
              "machine": {"processor": platform.processor(), "cpus": os.cpu_count(),
                          "python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__},
              "workers": workers, "deadline_s": args.deadline_s}
    try:
        import numba

        report["machine"]["numba"] = numba.__version__
    except ImportError:
        pass
    records = []
    context = multiprocessing.get_context("spawn")  # CUDA cannot be used in a forked child
    initargs = (modes, args.encode_device, args.decode_device, args.reencode, started + args.deadline_s)
    with context.Pool(workers, initializer=_start_worker, initargs=initargs) as pool:
        for record in pool.imap_unordered(_check, tasks, chunksize=1):
            records.append(record)
            if record["status"] != "not run (deadline)":
                print(f"{len(records)}/{len(tasks)} {record['mode']} {record['file']}: {record['status']} "
                      f"{record.get('error', '')}", flush=True)
            _write(args.out, report, modes, records, started)
    summary = _write(args.out, report, modes, records, started)
    for mode, s in summary.items():
        print(f"{mode}: {s}")
    return 1 if any(r["status"] == "FAILED" for r in records) else 0


def _write(out: Path, report: dict, modes: list[str], records: list[dict], started: float) -> dict:
    """The report so far, written atomically after every plane (a run cut short keeps what it did)."""
    summary = {}
    for mode in modes:
        mine = [r for r in records if r["mode"] == mode]
        summary[mode] = {"planes_run": sum("bytes" in r for r in mine),
                         "decoded_exactly": sum(bool(r.get("decoded_exactly")) for r in mine),
                         "failed": sum(r["status"] == "FAILED" for r in mine),
                         "not_run": sum(r["status"].startswith("not run") for r in mine),
                         "megapixels_run": round(sum(r["shape"][0] * r["shape"][1]
                                                     for r in mine if "bytes" in r) / 1e6, 3)}
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    partial.write_text(json.dumps({**report, "wall_s": round(time.time() - started, 1), "summary": summary,
                                   "images": sorted(records, key=lambda r: (r["mode"], r["file"]))}, indent=1) + "\n")
    partial.replace(out)
    return summary


def compare(args: argparse.Namespace) -> int:
    """Pair the planes both runs coded, by mode and file: the stream hashes must be equal."""
    first, second = (json.loads(p.read_text()) for p in (args.first, args.second))
    theirs = {(r["mode"], r["file"]): r for r in second["images"] if "streams_sha256" in r}
    pairs, differ = [], 0
    for r in first["images"]:
        other = theirs.get((r["mode"], r["file"]))
        if "streams_sha256" not in r or other is None:
            continue
        same = r["streams_sha256"] == other["streams_sha256"]
        differ += not same
        pairs.append({"mode": r["mode"], "file": r["file"], "same_streams": same,
                      "decoded_exactly": [r["decoded_exactly"], other["decoded_exactly"]]})
    modes = sorted({p["mode"] for p in pairs})
    summary = {m: {"planes": sum(p["mode"] == m for p in pairs),
                   "same_streams": sum(p["mode"] == m and p["same_streams"] for p in pairs),
                   "decoded_exactly_both": sum(p["mode"] == m and all(p["decoded_exactly"]) for p in pairs)}
               for m in modes}
    result = {"command": " ".join(["python"] + sys.argv), "summary": summary,
              "runs": [{k: v for k, v in run.items() if k != "images"} for run in (first, second)], "pairs": pairs}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    for mode, s in summary.items():
        print(f"{mode}: {s['same_streams']}/{s['planes']} identical streams, "
              f"{s['decoded_exactly_both']}/{s['planes']} decoded exactly in both runs")
    return 1 if differ or any(s["decoded_exactly_both"] < s["planes"] for s in summary.values()) else 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    pk = sub.add_parser("pack", help="pack a corpus folder's planes to carry to another machine")
    pk.add_argument("corpus", type=Path)
    pk.add_argument("folder", type=Path)
    r = sub.add_parser("run", help="encode on one device, decode on another, record stream hashes")
    source = r.add_mutually_exclusive_group()
    source.add_argument("--corpus", type=Path, default=Path("../shared/corpus/test"))
    source.add_argument("--planes", type=Path, help="a folder written by pack (instead of --corpus)")
    r.add_argument("--encode-device", default="cuda")
    r.add_argument("--decode-device", default="cpu")
    r.add_argument("--modes", default="fast,latent,slow", help="learned modes, in the order to run them")
    r.add_argument("--limit", type=int, default=None, help="at most this many planes")
    r.add_argument("--only-in", type=Path, help="only the (mode, plane) pairs another run's report coded")
    r.add_argument("--reencode", action="store_true", help="also encode on the decode device and compare bytes")
    r.add_argument("--workers", type=int, default=None, help="worker processes (default: CPUs - 1)")
    r.add_argument("--deadline-s", type=float, default=float("inf"), help="start no plane after this many seconds")
    r.add_argument("--out", type=Path, default=Path("benchmarks/results/gpu_cpu_crosscheck_run.json"))
    c = sub.add_parser("compare", help="compare two runs' stream hashes plane by plane")
    c.add_argument("first", type=Path)
    c.add_argument("second", type=Path)
    c.add_argument("--out", type=Path, default=Path("benchmarks/results/gpu_cpu_crosscheck.json"))
    args = p.parse_args()
    if args.command == "pack":
        return pack(args.corpus, args.folder)
    return run(args) if args.command == "run" else compare(args)


if __name__ == "__main__":
    sys.exit(main())
