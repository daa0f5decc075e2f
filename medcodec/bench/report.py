"""Summaries and outputs of a bench run: terminal table, JSON, CSV and a bpp/speed plot.

Rates are totals, not means of per-image figures: bpp = total bits / total pixels over the images a
codec coded exactly; the ratio to JPEG-XL e9 is taken over the images both coded exactly, so both
sides always cover the same pixels; MP/s = total pixels / total seconds.
"""

from __future__ import annotations

import csv
import datetime as _dt
import json
import os
import platform
import sys
from pathlib import Path
from typing import Any, Callable

from medcodec.bench.codecs import CODECS, REFERENCE, codec_versions
from medcodec.bench.runner import is_medcodec, memory_method

GROUP_KINDS = ("folder", "bits", "modality", "overall")


def codec_label(name: str) -> str:
    if is_medcodec(name):
        return "medcodec " + name.split("-", 1)[1]
    return CODECS[name].label if name in CODECS else name


def codec_order(records: list[dict[str, Any]]) -> list[str]:
    """Codec names in the order the runner produced them (medcodec modes first)."""
    order: list[str] = []
    for r in records:
        for name in r.get("results", {}):
            if name not in order:
                order.append(name)
    return order


def _group_keys(record: dict[str, Any]) -> list[tuple[str, str]]:
    keys = [("folder", record["folder"])]
    if record.get("bits") is not None:
        keys.append(("bits", f"{record['bits']}-bit"))
    if record.get("modality"):
        keys.append(("modality", str(record["modality"])))
    keys.append(("overall", "all images"))
    return keys


def _rate(numerator: float, denominator: float) -> float | None:
    return numerator / denominator if denominator > 0 else None


def _overhead(result: dict[str, Any]) -> int | None:
    """A medcodec result's bytes besides its pixel coding (envelope and container); none for a file whose
    compressed pixel data was kept, as its envelope is that pixel data."""
    return 0 if result.get("kept_compressed_pixels") else result.get("overhead_bytes")


def summarise_codec(records: list[dict[str, Any]], name: str) -> dict[str, Any]:
    """One codec's totals over the benched images of one group."""
    ok = [r for r in records if r["results"].get(name, {}).get("status") == "ok"]
    statuses = [r["results"].get(name, {}).get("status") for r in records]
    bits = sum(8 * r["results"][name]["bytes"] for r in ok)
    pixels = sum(r["pixels"] for r in ok)
    both = [r for r in ok if r["results"].get(REFERENCE, {}).get("status") == "ok"]
    ref_bits = sum(8 * r["results"][REFERENCE]["bytes"] for r in both)
    own_bits = sum(8 * r["results"][name]["bytes"] for r in both)
    summary = {
        "images": len(ok),
        "failed": statuses.count("failed"),
        "not_applicable": statuses.count("n/a"),
        "unavailable": statuses.count("unavailable"),
        "pixels": pixels,
        "bytes": bits // 8,
        "bpp": _rate(bits, pixels),
        "ratio_to_jxl9": _rate(own_bits, ref_bits),
        "ratio_images": len(both),
        "enc_mps": _rate(pixels / 1e6, sum(r["results"][name]["enc_s"] for r in ok)),
        "dec_mps": _rate(pixels / 1e6, sum(r["results"][name]["dec_s"] for r in ok)),
    }
    if is_medcodec(name):
        peaks = [r["results"][name].get("peak_rss_bytes", 0) for r in ok]
        summary["peak_rss_mb"] = max(peaks) / 2**20 if peaks else None
        overheads = [_overhead(r["results"][name]) for r in ok]
        known = None not in overheads and bits > 0
        summary["overhead_share"] = 8 * sum(overheads) / bits if known else None
        # The same ratio without the envelope and container: what medcodec's pixel streams cost against
        # JPEG-XL's, which stores the pixels only (a DICOM file's header is part of every .mlc). Shown
        # beside the whole-file ratio, never instead of it.
        both_overheads = [_overhead(r["results"][name]) for r in both]
        pixel_bits = own_bits - 8 * sum(both_overheads) if None not in both_overheads else None
        summary["pixel_ratio_to_jxl9"] = _rate(pixel_bits, ref_bits) if pixel_bits is not None else None
        # pixels of compressed DICOMs whose pixel data the codec kept as it was (smaller than its coding)
        summary["kept_compressed_share"] = _rate(
            sum(r["results"][name].get("kept_compressed_pixels", 0) for r in ok), pixels)
        if all("learned_pixels" in r["results"][name] for r in ok):
            # How much of the group the mode itself coded (the rest fell back to JPEG-XL), and its
            # bits per section kind over all the group's pixels (z and residual bits of latent mode).
            summary["learned_share"] = _rate(sum(r["results"][name]["learned_pixels"] for r in ok), pixels)
            summary["jpeg_share"] = _rate(sum(r["results"][name].get("jpeg_pixels", 0) for r in ok), pixels)
            summary["raster_share"] = _rate(sum(r["results"][name].get("raster_pixels", 0) for r in ok), pixels)
            kinds: dict[str, int] = {}
            for r in ok:
                for kind, size in r["results"][name]["section_bytes"].items():
                    kinds[kind] = kinds.get(kind, 0) + size
            summary["section_bpp"] = {k: 8 * v / pixels for k, v in sorted(kinds.items())} if pixels else {}
    return summary


def summarise(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per-group summaries: every folder, bit depth and modality, then the overall group."""
    order = codec_order(records)
    members: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in records:
        for key in _group_keys(r):
            members.setdefault(key, []).append(r)
    keys = sorted(members, key=lambda k: (GROUP_KINDS.index(k[0]), _natural(k[1])))
    groups = []
    for kind, name in keys:
        rs = members[(kind, name)]
        benched = [r for r in rs if r["status"] == "ok"]
        again = [r["recompressed"] for r in rs if r.get("recompressed", {}).get("status") == "ok"]
        groups.append(
            {
                "by": kind,
                "name": name,
                "images": len(benched),
                "skipped": sum(r["status"] == "skipped" for r in rs),
                "unreadable": sum(r["status"] == "error" for r in rs),
                "megapixels": sum(r["pixels"] for r in benched) / 1e6,
                "codecs": {c: summarise_codec(benched, c) for c in order},
                # skipped files (no planes) whose compressed pixel data medcodec recompressed, verified
                "recompressed": {"files": len(again), "file_bytes": sum(a["file_bytes"] for a in again),
                                 "mlc_bytes": sum(a["bytes"] for a in again)},
            }
        )
    return groups


def _natural(text: str) -> tuple[Any, ...]:
    """Sort '8-bit' before '12-bit'."""
    head = text.split("-", 1)[0]
    return (0, int(head), text) if head.isdigit() else (1, 0, text)


def _fmt(value: float | None, spec: str, width: int) -> str:
    return f"{'-':>{width}}" if value is None else f"{value:{width}{spec}}"


def render_group(group: dict[str, Any]) -> str:
    """A fixed-width table for one group: one row per codec."""
    name = "(top level)" if group["by"] == "folder" and group["name"] == "." else group["name"]
    mp = group["megapixels"]
    title = f"== {group['by']} {name}: {group['images']} images, {mp:.{2 if mp >= 0.1 or mp == 0 else 4}f} MP"
    extra = []
    if group["skipped"]:
        extra.append(f"{group['skipped']} skipped")
    again = group.get("recompressed") or {}
    if again.get("files"):
        extra.append(f"{again['files']} of them recompressed without planes: {again['file_bytes']:,} -> "
                     f"{again['mlc_bytes']:,} bytes, {again['mlc_bytes'] / again['file_bytes']:.3f} x")
    if group["unreadable"]:
        extra.append(f"{group['unreadable']} unreadable")
    title += (f" ({', '.join(extra)})" if extra else "") + " =="
    if not group["images"]:
        return title + "\n  (no image in this group could be benched; see 'Not benched' below)"
    header = f"{'codec':<18}{'images':>7}{'bpp':>9}{'×JXL-e9':>9}{'enc MP/s':>10}{'dec MP/s':>10}{'peak MB':>9}  notes"
    lines = [title, header]
    for name, s in group["codecs"].items():
        notes = []
        if s["failed"]:
            notes.append(f"{s['failed']} failed")
        if s["not_applicable"]:
            notes.append(f"{s['not_applicable']} n/a")
        if s["unavailable"]:
            notes.append(f"{s['unavailable']} unavailable")
        if s.get("overhead_share") is not None:
            notes.append(f"incl. {100 * s['overhead_share']:.0f}% envelope+container")
        if s.get("pixel_ratio_to_jxl9") is not None:
            notes.append(f"pixel streams {s['pixel_ratio_to_jxl9']:.3f}×JXL-e9")
        if s.get("learned_share") is not None:
            notes.append(f"learned on {100 * s['learned_share']:.0f}% of pixels")
        if s.get("jpeg_share"):
            notes.append(f"JPEG history on {100 * s['jpeg_share']:.0f}%")
        if s.get("raster_share"):
            notes.append(f"raster on {100 * s['raster_share']:.0f}%")
        if s.get("kept_compressed_share"):
            notes.append(f"compressed pixel data kept on {100 * s['kept_compressed_share']:.0f}%")
        section_bpp = s.get("section_bpp") or {}
        if section_bpp.get("latent_z"):
            notes.append(f"z {section_bpp['latent_z']:.3f} + residuals {section_bpp.get('residual', 0):.3f} bpp")
        if s["images"] and s["ratio_images"] != s["images"]:
            notes.append(f"ratio over {s['ratio_images']}")
        lines.append(
            f"{codec_label(name):<18}{s['images']:>7}"
            + _fmt(s["bpp"], ".3f", 9)
            + _fmt(s["ratio_to_jxl9"], ".3f", 9)
            + _fmt(s["enc_mps"], ".2f", 10)
            + _fmt(s["dec_mps"], ".2f", 10)
            + _fmt(s.get("peak_rss_mb"), ".0f", 9)
            + ("  " + ", ".join(notes) if notes else "")
        )
    return "\n".join(lines)


def render_report(records: list[dict[str, Any]], groups: list[dict[str, Any]], notes: list[str]) -> str:
    """All group tables, then the images that were not benched and every failed round trip."""
    parts = [render_group(g) for g in groups]
    left_out = [r for r in records if r["status"] != "ok"]
    if left_out:
        lines = ["Not benched:"]
        for r in left_out:
            label = "unreadable" if r["status"] == "error" else "skipped"
            again = r.get("recompressed") or {}
            done = (f"; recompressed {again['file_bytes']:,} -> {again['bytes']:,} bytes, verified"
                    if again.get("status") == "ok" else "")
            lines.append(f"  {r['relpath']}: {label}: {r['reason']}{done}")
        parts.append("\n".join(lines))
    failures = [
        f"  {r['relpath']}: {codec_label(name)}: {res['reason']}"
        for r in records
        if r["status"] == "ok"
        for name, res in r["results"].items()
        if res["status"] == "failed"
    ]
    if failures:
        parts.append("Failed round trips (not counted):\n" + "\n".join(failures))
    if notes:
        parts.append("Notes:\n" + "\n".join(f"  {n}" for n in notes))
    return "\n\n".join(parts)


def machine_info(settings: Any, elapsed_s: float) -> dict[str, Any]:
    """Where and how the run was made, so numbers can be compared across machines."""
    info: dict[str, Any] = {
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "command": sys.argv,
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "processor": platform.processor() or platform.machine(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "versions": codec_versions(),
        "device": settings.device,
        "threads": settings.threads,
        "memory": memory_method(),
        "timing": (
            "time.perf_counter around each encode and decode call, one run each; classical codecs"
            " single-threaded (numthreads=1 for JPEG-XL, JPEG 2000, WebP; CharLS, OpenJPH and libpng"
            " are single-threaded); torch limited to --threads intra-op threads"
        ),
        "elapsed_s": round(elapsed_s, 2),
    }
    import numpy

    info["versions"]["numpy"] = numpy.__version__
    try:
        import torch

        info["versions"]["torch"] = torch.__version__
    except ImportError:
        info["versions"]["torch"] = None
    return info


def write_json(
    path: str | os.PathLike,
    records: list[dict[str, Any]],
    groups: list[dict[str, Any]],
    machine: dict[str, Any],
    settings: Any,
) -> None:
    payload = {
        "machine": machine,
        "settings": {
            "modes": settings.modes,
            "codecs": settings.codecs,
            "limit": settings.limit,
            "reference": REFERENCE,
        },
        "notes": settings.notes,
        "groups": groups,
        "images": records,
    }
    Path(path).write_text(json.dumps(payload, indent=1) + "\n")


CSV_FIELDS = (
    "path", "folder", "kind", "modality", "bits", "planes", "pixels", "image_status", "codec",
    "status", "bytes", "bpp", "enc_s", "dec_s", "peak_rss_mb", "reason",
)


def write_csv(path: str | os.PathLike, records: list[dict[str, Any]]) -> None:
    """One row per image and codec (one row for an image that was not benched)."""
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=CSV_FIELDS)
        writer.writeheader()
        for r in records:
            base = {k: r.get(k) for k in ("path", "folder", "kind", "modality", "bits", "planes", "pixels")}
            base["image_status"] = r["status"]
            if r["status"] != "ok":
                writer.writerow({**base, "reason": r["reason"]})
                continue
            for name, res in r["results"].items():
                row = {**base, "codec": name, "status": res["status"], "reason": res.get("reason")}
                if res["status"] == "ok":
                    row.update(
                        bytes=res["bytes"],
                        bpp=f"{8 * res['bytes'] / r['pixels']:.4f}",
                        enc_s=f"{res['enc_s']:.6f}",
                        dec_s=f"{res['dec_s']:.6f}",
                    )
                    if "peak_rss_bytes" in res:
                        row["peak_rss_mb"] = f"{res['peak_rss_bytes'] / 2**20:.1f}"
                writer.writerow(row)


def write_plot(path: str | os.PathLike, groups: list[dict[str, Any]], echo: Callable[[str], None]) -> bool:
    """bpp against encode speed per codec (overall group, log x). False when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        echo("--plot needs matplotlib, which is not installed: pip install 'medcodec[plot]'")
        return False
    overall = next(g for g in groups if g["by"] == "overall")
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, s in overall["codecs"].items():
        if s["bpp"] is None or not s["enc_mps"]:
            continue
        marker = "*" if is_medcodec(name) else "o"
        ax.scatter(s["enc_mps"], s["bpp"], marker=marker, s=120 if marker == "*" else 50)
        label = codec_label(name)
        if s["images"] != overall["images"]:  # bpp over fewer images is not comparable: say so
            label += f" ({s['images']}/{overall['images']} images)"
        ax.annotate(label, (s["enc_mps"], s["bpp"]), textcoords="offset points", xytext=(5, 4))
    ax.set_xscale("log")
    ax.set_xlabel("encode speed, megapixels/s (log)")
    ax.set_ylabel("bits per pixel (lower is better)")
    ax.set_title(f"medcodec bench: {overall['images']} images, {overall['megapixels']:.1f} MP")
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True
