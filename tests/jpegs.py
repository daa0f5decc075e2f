"""Lossy JPEG frames for the tests: pydicom's CT_small at 8 or 12 bits, by libjpeg-turbo (imagecodecs)."""

import imagecodecs
import numpy as np
import pydicom
from pydicom.data import get_testdata_file


def ct_small(bits: int = 12, shift: int = 0, shape: tuple[int, int] | None = None) -> np.ndarray:
    """CT_small's samples (128 x 128) in `bits` unsigned bits, rolled by shift columns, cut to shape."""
    words = pydicom.dcmread(get_testdata_file("CT_small.dcm")).pixel_array.astype(np.int64)
    samples = np.clip((words - words.min()) >> (12 - bits), 0, (1 << bits) - 1)
    samples = np.roll(samples, shift, axis=1)
    if shape is not None:
        samples = samples[:shape[0], :shape[1]]
    return samples.astype(np.uint16 if bits > 8 else np.uint8)


def lossy_jpeg(bits: int = 12, level: int = 90, shift: int = 0, shape: tuple[int, int] | None = None,
               **options) -> bytes:
    """CT_small as a one-component lossy JPEG (SOF1 at 12 bits, SOF0 at 8)."""
    samples = ct_small(bits, shift, shape)
    return bytes(imagecodecs.jpeg8_encode(samples, level=level, bitspersample=bits, **options))


def grey_coefficients(jpeg: bytes):
    """(scan, blocks [rows, cols, 64], quantisation table) of a one-component JPEG, by entropy.jpeg_dct."""
    from medcodec.entropy import jpeg_dct

    scan = jpeg_dct.parse(jpeg)
    [blocks] = jpeg_dct.coefficients(jpeg, scan)
    return scan, blocks, scan.components[0].quant
