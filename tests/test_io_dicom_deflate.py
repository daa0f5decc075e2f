"""io.dicom_deflate and read_dicom's deflated files: the data set inflated, its pixels coded, and the file's
deflate stream written again byte for byte; anything zlib does not reproduce kept verbatim."""

import io
import os
import zlib
from pathlib import Path

import pydicom
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydicom.data import get_testdata_file
from pydicom.uid import DeflatedExplicitVRLittleEndian

from damaged_envelopes import decoded_or_refused

from medcodec import codec
from medcodec.errors import CorruptStreamError, ModelMismatchError
from medcodec.io import dicom, dicom_deflate


def _pydicom_deflated(name: str = "CT_small.dcm") -> bytes:
    """A pydicom test file saved with the deflated transfer syntax (pydicom deflates with zlib's defaults)."""
    ds = pydicom.dcmread(get_testdata_file(name))
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def _redeflated(data: bytes, level: int = 6, memory: int = 8, window: int = 15, trailing: bytes = b"") -> bytes:
    """The same file with its data set deflated under other zlib choices, and bytes after the stream."""
    start, _ = dicom_deflate.meta_group(data)
    body = zlib.decompress(data[start:], -15)
    deflater = zlib.compressobj(level, zlib.DEFLATED, -window, memory)
    return data[:start] + deflater.compress(body) + deflater.flush() + trailing


def test_meta_group_gives_where_the_data_set_starts_and_the_syntax():
    data = _pydicom_deflated()
    start, syntax = dicom_deflate.meta_group(data)
    assert syntax == DeflatedExplicitVRLittleEndian
    assert zlib.decompressobj(-15).decompress(data[start:])[:4] == b"\x08\x00\x05\x00"  # (0008,0005) first
    assert dicom_deflate.meta_group(data[128:]) is None  # no preamble
    assert dicom_deflate.meta_group(data[:140]) is None  # meta group cut short


@pytest.mark.parametrize("name", ["CT_small.dcm", "MR_small.dcm"])
def test_pydicom_deflated_files_are_planes_and_come_back_byte_for_byte(name):
    data = _pydicom_deflated(name)
    read = dicom.read_dicom(data)
    assert read.meta["layout"] == "deflated" and read.meta["inner"]["layout"] == "modelled"
    start, _ = dicom_deflate.meta_group(data)
    stream = data[start:len(data) - len(dicom_deflate.inflate(data, start, None)[1])]  # less a pad byte
    assert read.meta["deflate"] == {"level": 6, "memory": 8, "strategy": zlib.Z_DEFAULT_STRATEGY, "length": len(stream),
                                    "crc32": zlib.crc32(stream), "zlib": zlib.ZLIB_RUNTIME_VERSION}
    assert len(read.planes) == 1 and read.signed == (pydicom.dcmread(get_testdata_file(name)).PixelRepresentation == 1)
    assert read.description.startswith("DICOM ") and "Deflated Explicit VR Little Endian" in read.description
    assert dicom.write_dicom(read.meta, read.blobs, read.planes) == data
    stream = codec.encode(data, mode="classical")
    assert len(stream) < len(data) and codec.decode(stream).data == data


def test_the_test_file_of_pydicom_made_by_another_writer():
    data = Path(get_testdata_file("image_dfl.dcm")).read_bytes()
    read = dicom.read_dicom(data)
    assert read.meta["layout"] == "deflated" and read.planes[0].shape == (512, 512)
    stream = codec.encode(data, mode="fast")
    assert len(stream) < 0.8 * len(data) and codec.decode(stream).data == data


@pytest.mark.parametrize("level,memory", [(9, 8), (1, 9), (0, 8), (4, 9)])
def test_other_zlib_choices_are_found(level, memory):
    data = _redeflated(_pydicom_deflated(), level, memory, trailing=b"\x00")
    read = dicom.read_dicom(data)
    assert read.meta["deflate"]["level"] == level and read.meta["deflate"]["memory"] == memory
    assert read.blobs[1] == b"\x00"  # the byte after the stream
    assert dicom.write_dicom(read.meta, read.blobs, read.planes) == data


def _kept_whole(data: bytes, **read_args) -> str:
    read = dicom.read_dicom(data, **read_args)
    assert read.meta == {"layout": "whole"} and read.blobs == [data] and not read.planes
    assert codec.decode(codec.encode(data, mode="classical")).data == data
    return read.description


def test_a_stream_zlib_does_not_reproduce_is_kept_verbatim():
    data = _redeflated(_pydicom_deflated(), window=10)  # a smaller window: the same data set, other bytes
    assert dicom.read_dicom(data.replace(b"1.2.840.10008.1.2.1.99", b"1.2.840.10008.1.2.1.98")).planes == []
    assert "zlib does not reproduce" in _kept_whole(data)


def test_damaged_unended_and_oversized_streams_are_kept_verbatim():
    data = _pydicom_deflated()
    start, _ = dicom_deflate.meta_group(data)
    assert "deflated transfer syntax" in _kept_whole(data[:start] + b"\xff" * 64)  # not a deflate stream
    _kept_whole(data[:-100])  # the stream never ends
    _kept_whole(data, decompress=False)
    body = zlib.decompress(data[start:], -15)
    assert dicom_deflate.inflate(data, start, len(body)) == (body, b"\x00")  # pydicom pads to an even length
    assert dicom_deflate.inflate(data, start, len(body) - 1) is None  # what a deflate bomb meets


def test_damaged_envelopes_are_refused():
    read = dicom.read_dicom(_pydicom_deflated())
    for parameters in ({"level": 11, "memory": 8, "strategy": 0}, {"level": 6}, {"level": "x", "memory": 8}):
        with pytest.raises(CorruptStreamError, match="deflate parameters"):
            dicom.write_dicom({**read.meta, "deflate": parameters}, read.blobs, read.planes)
    other_zlib = {**read.meta, "deflate": {**read.meta["deflate"], "crc32": 1, "zlib": "1.3.0.zlib-ng"}}
    with pytest.raises(ModelMismatchError, match=r"this machine's zlib \(.*\) deflates .* \(1.3.0.zlib-ng\)"):
        dicom.write_dicom(other_zlib, read.blobs, read.planes)
    nested = {**read.meta, "inner": dict(read.meta)}
    with pytest.raises(CorruptStreamError, match="nests"):
        dicom.write_dicom(nested, [b"", b"", *read.blobs], read.planes)


_FUZZ: list[tuple[bytes, bytes]] = []


@settings(max_examples=int(os.environ.get("MEDCODEC_FUZZ_EXAMPLES", "60")) // 2, deadline=None, derandomize=True)
@given(data=st.data())
def test_damaged_envelopes_end_in_a_clear_error_or_the_original(data):
    """A changed byte behind valid CRCs (the deflate parameters, the inner layout, the meta group's bytes,
    the data set's header) is refused with a medcodec error, or changes nothing; the file checksum stops
    the rest."""
    if not _FUZZ:
        original = _pydicom_deflated()
        _FUZZ.append((original, codec.encode(original, mode="classical")))
    original, stream = _FUZZ[0]
    assert decoded_or_refused(stream, data) in (None, original)
