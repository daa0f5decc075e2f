"""medcodec: lossless compression of medical images with small, integer-exact neural predictors.

Library use::

    import medcodec
    data = medcodec.encode("scan.dcm", mode="fast")     # path, bytes or numpy array -> .mlc bytes
    restored = medcodec.decode(data).data                # the original file's bytes, checked
    medcodec.info(data)                                  # header, methods per frame, sizes
"""

from typing import Any

__version__ = "0.4.0"
__all__ = ["__version__", "encode", "decode", "info", "verify"]


def __getattr__(name: str) -> Any:
    # Lazy: `import medcodec` (the CLI's --version, __version__) should not load the codecs.
    if name in ("encode", "decode", "info", "verify"):
        from medcodec import codec

        return getattr(codec, name)
    raise AttributeError(f"module 'medcodec' has no attribute {name!r}")
