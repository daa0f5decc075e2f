"""The .mlc container (byte layout in docs/FORMAT.md)."""

from medcodec.container.format import (
    FORMAT_MAJOR,
    FORMAT_MINOR,
    MAGIC,
    SECTION_OVERHEAD,
    Header,
    Section,
    SectionKind,
    pack,
    read_header,
    read_version,
    unpack,
)

__all__ = ["FORMAT_MAJOR", "FORMAT_MINOR", "MAGIC", "SECTION_OVERHEAD", "Header", "Section", "SectionKind", "pack",
           "read_header", "read_version", "unpack"]
