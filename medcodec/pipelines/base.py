"""The interface every coding method implements: one 2-D unsigned plane <-> a few named streams."""

from __future__ import annotations

import abc
from typing import NamedTuple, Sequence

import numpy as np

from medcodec.errors import CorruptStreamError, InvalidInputError


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
