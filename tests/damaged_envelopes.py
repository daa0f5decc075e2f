"""Streams whose envelope is damaged behind valid CRCs, for the recompressed-DICOM layouts' fuzz tests."""

import dataclasses

from hypothesis import strategies as st

from medcodec import codec
from medcodec.container import envelope as envelope_coding
from medcodec.container import format as container
from medcodec.container.format import SectionKind
from medcodec.errors import MedcodecError


def decoded_or_refused(stream: bytes, data: st.DataObject, changes: int = 1) -> bytes | None:
    """Change `changes` bytes of the stream's io envelope (spots and values drawn from data), compress
    and pack it again (so every CRC is valid) and decode: the file's bytes, or None where decoding
    refused with a medcodec error (whose message must say something)."""
    header, sections = container.unpack(stream)
    at = next(i for i, s in enumerate(sections) if s.kind == SectionKind.ENVELOPE)
    raw = bytearray(envelope_coding.unpack(sections[at].index, sections[at].payload, None))
    for _ in range(changes):
        raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
    index, payload = envelope_coding.pack(bytes(raw))
    sections[at] = dataclasses.replace(sections[at], index=index, payload=payload)
    try:
        return codec.decode(container.pack(header, sections)).data
    except MedcodecError as exc:
        assert str(exc)
        return None
