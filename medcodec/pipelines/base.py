"""The interface every coding method implements: one 2-D unsigned plane <-> a few named streams."""

from __future__ import annotations

import abc
import json
import zlib
from typing import Any, NamedTuple, Sequence

import numpy as np

from medcodec.entropy import compact_json
from medcodec.errors import CorruptStreamError, InvalidInputError, UnsupportedVersionError


class Stream(NamedTuple):
    """One stream of one frame: the codec turns it into a container section by adding the frame number.

    kind is a container SectionKind (an int enum), index orders streams of the same kind in a frame.
    """

    kind: int
    index: int
    payload: bytes


class Method(abc.ABC):
    """A way of coding one plane. Stateless apart from loaded weights, so one instance serves all frames."""

    name: str = ""
    model_id: str = ""  # learned methods: the id of the weights their streams depend on
    model_sha256: bytes = b""

    @abc.abstractmethod
    def encode(self, plane: np.ndarray, bits: int) -> list[Stream]:
        """Code a 2-D uint16 plane whose values are < 2**bits; return the frame's streams."""

    @abc.abstractmethod
    def decode(self, streams: Sequence[Stream], shape: tuple[int, int], bits: int) -> np.ndarray:
        """Rebuild the plane (uint16, given shape) from the streams encode returned."""

    def encode_alternatives(self, plane: np.ndarray, bits: int) -> list[tuple[str, list[Stream]]]:
        """[(method name, streams)]: ways of coding the plane that this method's work yields, for the
        caller to keep the smallest; each decodes with the named method (same weights as this one).
        By default only this method's own streams."""
        return [(self.name, self.encode(plane, bits))]


def check_plane(plane: np.ndarray, bits: int) -> np.ndarray:
    """Validate the plane contract (2-D, unsigned, values < 2**bits) and return it as uint16."""
    if not 1 <= bits <= 16:
        raise InvalidInputError(f"bits per sample must be 1..16, got {bits}")
    if plane.ndim != 2 or plane.shape[0] == 0 or plane.shape[1] == 0:
        raise InvalidInputError(f"a plane must be a non-empty 2-D array, got shape {plane.shape}")
    if plane.dtype.kind not in "ub" or plane.dtype.itemsize > 2:
        raise InvalidInputError(f"a plane must hold unsigned integers of at most 16 bits, got {plane.dtype}")
    if plane.size and int(plane.max()) >= (1 << bits):
        raise InvalidInputError(f"plane value {int(plane.max())} does not fit in {bits} bits")
    return plane.astype(np.uint16, copy=False)


def check_decoded(plane: np.ndarray, shape: tuple[int, int], bits: int, what: str) -> np.ndarray:
    """A decoder's result must match what the stream promised; anything else means a damaged stream."""
    if plane.shape != tuple(shape):
        raise CorruptStreamError(f"{what}: decoded shape {plane.shape} differs from the recorded {tuple(shape)}")
    if plane.size and int(plane.max()) >= (1 << bits):
        raise CorruptStreamError(f"{what}: decoded value exceeds {bits} bits")
    return plane.astype(np.uint16, copy=False)


def required_features(meta: dict[str, Any], known: set[str], what: str) -> set[str]:
    """The decoding features a frame's PLANE_META "requires" (format 1.1): UnsupportedVersionError naming
    any this reader does not implement (written by a newer medcodec), rather than decode the frame wrongly."""
    required = set(meta.get("requires", []))
    unknown = required - known
    if unknown:
        raise UnsupportedVersionError(
            f"{what} frame needs {', '.join(sorted(unknown))}, which this medcodec does not know: "
            "it was written by a newer medcodec — upgrade medcodec to decode it")
    return required


MAX_SIDE_INFO = 1 << 20  # bytes a PLANE_META may inflate to: far above any real one, a bound for damaged ones


def pack_side_info(meta: dict[str, Any]) -> bytes:
    """A method's per-plane side information as a PLANE_META payload, the shortest of: JSON text, its
    zlib stream (format 1.2: the refinement's weights and bin offsets are repetitive text) and the
    compact binary coding (``entropy.compact_json``, later in 1.3: Exp-Golomb integers, about half the
    zlib stream's size; on a small plane the side information is a visible share of the file)."""
    text = json.dumps(meta, separators=(",", ":"), sort_keys=True).encode()
    candidates = [text, zlib.compress(text, 9)]
    compact = compact_json.encode(meta)
    if compact is not None:
        candidates.append(compact)
    return min(candidates, key=len)  # the first of equal lengths: text, then zlib


def unpack_side_info(payload: bytes) -> dict[str, Any]:
    """The JSON object of a PLANE_META payload: plain (starts with "{"), compact binary (starts with
    ``compact_json.MARKER``) or zlib-packed. Raises ValueError (or TypeError) when it is none of them, or
    not a JSON object."""
    if payload[:1] == bytes([compact_json.MARKER]):
        if len(payload) > MAX_SIDE_INFO:
            raise ValueError("compact side information is over the size limit")
        meta = compact_json.decode(payload)
    else:
        if payload[:1] != b"{":
            inflater = zlib.decompressobj()
            try:
                payload = inflater.decompress(payload, MAX_SIDE_INFO)
            except zlib.error as exc:
                raise ValueError(f"side information is neither JSON nor zlib: {exc}") from exc
            if inflater.unconsumed_tail or not inflater.eof or inflater.unused_data:
                raise ValueError("side information: damaged or oversized zlib stream")
        meta = json.loads(payload)
    if not isinstance(meta, dict):
        raise TypeError("plane side information is not a JSON object")
    return meta
