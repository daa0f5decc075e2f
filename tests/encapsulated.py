"""DICOM files with encapsulated (compressed) PixelData for the io tests: pydicom's CT_small as a template."""

import io

import pydicom
from pydicom.data import get_testdata_file
from pydicom.encaps import encapsulate

CT_SMALL = get_testdata_file("CT_small.dcm")  # 128 x 128, 16-bit signed


def saved(ds: pydicom.Dataset) -> bytes:
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def encapsulated_dicom(frames: list[bytes], syntax: str, count: int = 1, fragments_per_frame: int = 1,
                       eight_bit: bool = False, has_bot: bool = True, bits_stored: int | None = None,
                       unsigned: bool = False, colour: str | None = None) -> bytes:
    """CT_small with its PixelData replaced by these frames, encapsulated, under this transfer syntax
    (eight_bit: as an unsigned 8-bit image; bits_stored: that many bits of 16 stored; unsigned: samples
    unsigned; colour: as 8-bit colour of this photometric interpretation; has_bot: with a basic offset
    table)."""
    ds = pydicom.dcmread(CT_SMALL)
    ds.file_meta.TransferSyntaxUID = syntax
    if colour:
        ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, colour, 0
    if eight_bit or colour:
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    if bits_stored:
        ds.BitsStored, ds.HighBit = bits_stored, bits_stored - 1
    if unsigned:
        ds.PixelRepresentation = 0
    if count > 1:
        ds.NumberOfFrames = count
    ds.PixelData = encapsulate(frames, fragments_per_frame=fragments_per_frame, has_bot=has_bot)
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    return saved(ds)
