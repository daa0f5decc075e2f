"""Reading inputs into planes and restoring the originals (DICOM byte-for-byte, images pixel-for-pixel)."""

from medcodec.io.source import ImageSource, load, pixel_sha256, restore

__all__ = ["ImageSource", "load", "pixel_sha256", "restore"]
