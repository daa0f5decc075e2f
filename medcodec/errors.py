"""The errors medcodec raises on purpose; each carries the CLI exit code that names its cause."""


class MedcodecError(Exception):
    """Base class: a failure we detected and can explain in one line."""

    exit_code = 1


class InvalidInputError(MedcodecError):
    """The input cannot be read or is not something medcodec can encode (user-side problem)."""

    exit_code = 2


class CorruptStreamError(MedcodecError):
    """A .mlc stream is damaged: wrong magic, truncated, CRC or checksum mismatch."""

    exit_code = 3


class UnsupportedVersionError(CorruptStreamError):
    """A .mlc stream was written by a newer, incompatible format version."""

    exit_code = 3


class ModelMismatchError(MedcodecError):
    """The weights a stream needs are missing or differ from the ones installed."""

    exit_code = 4


class OutputExistsError(MedcodecError):
    """Refusing to overwrite an existing file without --force."""

    exit_code = 5


class ResourceLimitError(InvalidInputError):
    """The input declares more pixels than the configured limit allows."""

    exit_code = 2
