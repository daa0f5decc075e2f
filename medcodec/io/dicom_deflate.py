"""Deflated Explicit VR Little Endian (1.2.840.10008.1.2.1.99): the data set inflated, and deflated again
to the same bytes.

Why: such a file deflates everything after its file meta information, pixels included, so nothing in it
could be modelled and it was kept verbatim (deflate takes a CT slice's 16-bit words to about half, a
learned or JPEG-XL coding to a quarter). A deflate stream is not a function of what it inflates to: the
encoder chose a level, a memory level and a strategy. zlib, with which DICOM toolkits write it (dcmtk,
pydicom, GDCM), is deterministic for a given choice, so the encoder looks for the choice that gives the
file's stream back byte for byte; the data set it inflates to is then read as any explicit little-endian
data set (its pixels as planes), and the reader deflates the rebuilt data set with that choice. A stream
no choice reproduces (another deflate implementation) leaves the file verbatim, as before.
"""

from __future__ import annotations

import struct
import zlib
from typing import Any

from medcodec.errors import CorruptStreamError, ModelMismatchError

SYNTAX = "1.2.840.10008.1.2.1.99"
LAYOUT = "deflated"
# zlib's choices, the commonest first: level 6 and memory level 8 are zlib's defaults (dcmtk's and
# pydicom's too); window 2^15, as PS3.5 A.5 asks, and the raw stream (no zlib header) it prescribes.
LEVELS = (6, 9, 1, 2, 3, 4, 5, 7, 8, 0)
MEMORY_LEVELS = (8, 9)
STRATEGIES = (zlib.Z_DEFAULT_STRATEGY, zlib.Z_FILTERED)
# bytes fed to a trial deflate before its output is compared: a wrong choice usually differs in the first
# few hundred bytes, so a large file costs about one deflate, not twenty
_TRIAL_CHUNK = 1 << 16
# value representations whose explicit-VR header has a 4-byte length (PS3.5 7.1.2)
LONG_HEADER_VRS = frozenset({b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT",
                             b"UV"})


def meta_group(data: bytes) -> tuple[int, str] | None:
    """(where the data set starts, the transfer syntax UID) of a Part-10 file: after the 128-byte preamble,
    'DICM' and the file meta group (0002,xxxx), which is always explicit VR little endian (PS3.10 7.1) and
    read here without pydicom, which inflates a deflated data set whole before anything can bound it; None
    where those elements do not parse."""
    if len(data) < 132 or data[128:132] != b"DICM":
        return None
    pos, syntax = 132, ""
    while pos + 8 <= len(data):
        group, element = struct.unpack_from("<HH", data, pos)
        if group != 0x0002:
            return pos, syntax
        if data[pos + 4:pos + 6] in LONG_HEADER_VRS:
            if pos + 12 > len(data):
                return None
            (length,) = struct.unpack_from("<I", data, pos + 8)
            pos += 12
        else:
            (length,) = struct.unpack_from("<H", data, pos + 6)
            pos += 8
        if length == 0xFFFFFFFF or pos + length > len(data):
            return None
        if element == 0x0010:
            syntax = data[pos:pos + length].decode("ascii", "replace").strip("\x00 ")
        pos += length
    return None


def inflate(data: bytes, start: int, limit: int | None) -> tuple[bytes, bytes] | None:
    """(the data set, the bytes after the deflate stream) of the raw deflate stream at start, or None where
    it is damaged, does not end, or inflates to more than limit bytes (None: no limit)."""
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    try:
        body = inflater.decompress(data[start:], 0 if limit is None else limit + 1)
    except zlib.error:
        return None
    if not inflater.eof or (limit is not None and len(body) > limit):
        return None
    return body, inflater.unused_data


def find_parameters(body: bytes, stream: bytes) -> dict[str, Any] | None:
    """The zlib level, memory level and strategy whose raw deflate of body is stream exactly, or None; with
    the stream's length and CRC-32 and the zlib that made it, which ``deflate`` checks its output against."""
    for level in LEVELS:
        for memory in MEMORY_LEVELS:
            for strategy in STRATEGIES:
                parameters = {"level": level, "memory": memory, "strategy": strategy}
                if _reproduces(body, stream, parameters):
                    return {**parameters, "length": len(stream), "crc32": zlib.crc32(stream),
                            "zlib": zlib.ZLIB_RUNTIME_VERSION}
    return None


def _reproduces(body: bytes, stream: bytes, parameters: dict[str, int]) -> bool:
    deflater = _deflater(parameters)
    made = 0
    for pos in range(0, len(body), _TRIAL_CHUNK):
        out = deflater.compress(body[pos:pos + _TRIAL_CHUNK])
        if stream[made:made + len(out)] != out:
            return False
        made += len(out)
    out = deflater.flush()
    return made + len(out) == len(stream) and stream[made:] == out


def _deflater(parameters: dict[str, Any]) -> Any:
    try:
        level, memory, strategy = (int(parameters[k]) for k in ("level", "memory", "strategy"))
    except (KeyError, TypeError, ValueError):
        raise CorruptStreamError(f"deflate parameters {parameters!r} are damaged") from None
    if level not in LEVELS or memory not in MEMORY_LEVELS or strategy not in STRATEGIES:
        raise CorruptStreamError(f"deflate parameters {parameters!r} are not ones medcodec writes")
    return zlib.compressobj(level, zlib.DEFLATED, -zlib.MAX_WBITS, memory, strategy)


def deflate(body: bytes, parameters: dict[str, Any]) -> bytes:
    """The raw deflate stream of body under parameters (as ``find_parameters`` gives them). Raises
    ModelMismatchError where this machine's zlib makes other bytes than the encoder's did: madler's zlib
    has deflated alike for decades, but a replacement that reads the same streams (zlib-ng, which some
    distributions install as zlib) writes others, and only the file checksum would say so, unexplained."""
    deflater = _deflater(parameters)
    stream = deflater.compress(body) + deflater.flush()
    if len(stream) != parameters.get("length") or zlib.crc32(stream) != parameters.get("crc32"):
        raise ModelMismatchError(
            f"this machine's zlib ({zlib.ZLIB_RUNTIME_VERSION}) deflates the DICOM data set to other bytes than "
            f"the zlib that encoded the file ({parameters.get('zlib', '?')}); decode it where Python uses "
            "madler's zlib (python.org, pyenv and most Linux builds), not a zlib-compatible replacement such as "
            "zlib-ng")
    return stream
