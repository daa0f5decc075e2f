"""The ENVELOPE section's payload: the io layer's envelope (everything of the input besides its planes:
the DICOM header, PNG chunks, ...), compressed. The section's index names the coding.

* ``LZMA`` (index 0): a raw LZMA2 stream (no .xz wrapper: it would add ~60 bytes a file and a check the
  section CRC already gives). Best for large envelopes (an encapsulated DICOM's pixel data).
* ``DEFLATE_DICOM_V1`` (index 1, format 1.4): a raw deflate stream (RFC 1951) with a 32 KiB preset
  dictionary of DICOM header bytes, ``medcodec/data/envelope_dictionary_v1.bin`` (built from the train
  split's headers by ``python -m medcodec.train.envelope_dictionary``; its sha256 is pinned here, so a
  changed file is refused rather than silently decoding envelopes wrong). A 1-2 KB DICOM header shares
  most of its bytes with any other (the file meta group, tags, VRs, UID roots) but cannot match itself:
  LZMA gets it to about half, deflate with the dictionary to about a third.

The writer codes both and keeps the smaller; the reader bounds what it inflates (a few KB of either
could expand to gigabytes).
"""

from __future__ import annotations

import functools
import lzma
import zlib
from pathlib import Path

from medcodec.errors import CorruptStreamError, ResourceLimitError, UnsupportedVersionError
from medcodec.pinned_data import read_pinned

LZMA = 0
DEFLATE_DICOM_V1 = 1
CODINGS = {LZMA: "lzma", DEFLATE_DICOM_V1: "deflate+dicom-v1"}

DICTIONARY_FILE = Path(__file__).resolve().parent.parent / "data" / "envelope_dictionary_v1.bin"
DICTIONARY_SHA256 = "55c2dd50bfae51068f7e6ddbbed4e3c14e14e5ce94a50af9dc444a6c0ddbb2a1"
DICTIONARY_LIMIT = 1 << 15  # deflate's window: bytes further back cannot be matched

# The reader's LZMA dictionary is the largest any writer used (64 MiB, preset 9); it is allocated lazily,
# so a small envelope touches only as much of it as it fills.
_LZMA_READ_FILTERS = [{"id": lzma.FILTER_LZMA2, "preset": 9 | lzma.PRESET_EXTREME}]
_LZMA_MAX_DICT = 1 << 26
_EXTREME_UP_TO = 1 << 20  # bytes: beyond this, PRESET_EXTREME's slower search is not worth it


@functools.lru_cache(maxsize=1)
def dicom_dictionary() -> bytes:
    """The preset dictionary of DEFLATE_DICOM_V1, checked against its pinned sha256."""
    return read_pinned(DICTIONARY_FILE, DICTIONARY_SHA256, "envelope dictionary")


def dict_size_for(size: int) -> int:
    """The smallest power-of-two LZMA dictionary (4 KiB to 64 MiB) that spans size bytes."""
    return min(_LZMA_MAX_DICT, max(1 << 12, 1 << max(size - 1, 1).bit_length()))


def lzma_filters(size: int) -> list[dict]:
    """LZMA2 settings for an envelope of size bytes.

    The dictionary is sized to the data (a power of two, 4 KiB to 64 MiB): matches cannot reach further
    back than the data is long, so the output is the same as with the full 64 MiB of preset 9, while
    the encoder's match-finder tables, which grow with the dictionary, shrink from ~64 MB to a few KB
    (a 7 KB DICOM header: ~65 ms -> ~1 ms). Readers of any version decode it with _LZMA_READ_FILTERS.
    """
    preset = 9 | lzma.PRESET_EXTREME if size <= _EXTREME_UP_TO else 6
    return [{"id": lzma.FILTER_LZMA2, "preset": preset, "dict_size": dict_size_for(size)}]


def lzma_pack(data: bytes) -> bytes:
    return lzma.compress(data, format=lzma.FORMAT_RAW, filters=lzma_filters(len(data)))


def deflate_pack(data: bytes, dictionary: bytes) -> bytes:
    """Raw deflate, level 9, with a preset dictionary (its last 32 KiB count)."""
    packer = zlib.compressobj(9, zlib.DEFLATED, -15, 9, zlib.Z_DEFAULT_STRATEGY, zdict=dictionary)
    return packer.compress(data) + packer.flush()


def pack(io_envelope: bytes) -> tuple[int, bytes]:
    """(coding, payload): the smaller of the codings (LZMA on a tie: every reader knows it)."""
    candidates = [(LZMA, lzma_pack(io_envelope))]
    if len(io_envelope) <= _EXTREME_UP_TO:  # beyond, what is there is pixel data: the dictionary cannot help
        candidates.append((DEFLATE_DICOM_V1, deflate_pack(io_envelope, dicom_dictionary())))
    return min(candidates, key=lambda c: (len(c[1]), c[0]))


def unpack(coding: int, payload: bytes, max_bytes: int | None = None) -> bytes:
    """The io envelope of a payload; CorruptStreamError on damage, ResourceLimitError past max_bytes,
    UnsupportedVersionError for a coding this reader does not know."""
    if coding == LZMA:
        out, complete = _lzma_unpack(payload, max_bytes)
    elif coding == DEFLATE_DICOM_V1:
        out, complete = _deflate_unpack(payload, max_bytes, dicom_dictionary())
    else:
        raise UnsupportedVersionError(f"envelope coding {coding} is unknown: written by a newer medcodec — "
                                      "upgrade medcodec")
    if max_bytes is not None and len(out) > max_bytes:
        raise ResourceLimitError(f"medcodec file's envelope expands past the limit of {max_bytes:,} bytes "
                                 f"(2 per pixel of the limit); raise the limit (--max-pixels N, or "
                                 "max_pixels=N in the library) if this file is trusted")
    if not complete:
        raise CorruptStreamError("envelope section is truncated or has bytes after its end")
    return out


def _lzma_unpack(payload: bytes, max_bytes: int | None) -> tuple[bytes, bool]:
    # Matches never reach back past the start of the output, so a dictionary spanning the limit reads
    # every file, whatever dictionary wrote it.
    filters = _LZMA_READ_FILTERS if max_bytes is None else [{**_LZMA_READ_FILTERS[0],
                                                              "dict_size": dict_size_for(max_bytes + 1)}]
    decompressor = lzma.LZMADecompressor(format=lzma.FORMAT_RAW, filters=filters)
    try:
        # Stop one byte past the limit: enough to know it is exceeded, without inflating the rest.
        out = decompressor.decompress(payload, max_length=-1 if max_bytes is None else max_bytes + 1)
    except lzma.LZMAError as exc:
        raise CorruptStreamError(f"envelope section cannot be decompressed ({exc})") from exc
    return out, decompressor.eof and not decompressor.unused_data


def _deflate_unpack(payload: bytes, max_bytes: int | None, dictionary: bytes) -> tuple[bytes, bool]:
    decompressor = zlib.decompressobj(-15, zdict=dictionary)
    try:
        out = decompressor.decompress(payload, 0 if max_bytes is None else max_bytes + 1)
    except zlib.error as exc:
        raise CorruptStreamError(f"envelope section cannot be decompressed ({exc})") from exc
    # unconsumed_tail: input left because max_length stopped it (only past the limit, refused above)
    return out, decompressor.eof and not decompressor.unused_data and not decompressor.unconsumed_tail
