"""io.dicom_rle: RLE Lossless DICOM files coded as planes and given back byte for byte, whatever encoder."""

import io
import os
import struct

import numpy as np
import pydicom
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydicom.uid import ExplicitVRLittleEndian, RLELossless

from damaged_envelopes import decoded_or_refused
from encapsulated import CT_SMALL, encapsulated_dicom, saved

from medcodec import codec
from medcodec.container import envelope as envelope_coding
from medcodec.errors import CorruptStreamError
from medcodec.io import dicom, dicom_rle

def rle_frame(words: np.ndarray, alloc: int, gap: bytes = b"", noops: int = 0, row: int = 0, min_run: int = 2,
              pad: bytes = b"\x00") -> bytes:
    """One RLE fragment: the 64-byte header (gap bytes after it), a segment per byte of the words as a
    typical encoder writes it (odd ones padded with pad), after noops no-op bytes (0x80)."""
    flat = words.ravel()
    planes = [flat.astype(np.uint8).tobytes()] if alloc == 8 else [
        (flat >> 8).astype(np.uint8).tobytes(), (flat & 0xFF).astype(np.uint8).tobytes()]
    segments = []
    for plane in planes:
        segment = b"\x80" * noops + dicom_rle.typical_segment(plane, row, min_run)
        segments.append(segment + (pad if len(segment) % 2 else b""))
    offsets, at = [], 64 + len(gap)
    for segment in segments:
        offsets.append(at)
        at += len(segment)
    header = struct.pack("<16I", len(segments), *offsets, *([0] * (15 - len(offsets))))
    return header + gap + b"".join(segments)


def rle_dicom(frames: list[bytes], alloc: int = 16, count: int = 1) -> bytes:
    """CT_small with its PixelData replaced by these RLE frames (8-bit: unsigned, BitsStored 8)."""
    return encapsulated_dicom(frames, RLELossless, count, eight_bit=alloc == 8)


def _words() -> np.ndarray:
    ds = pydicom.dcmread(CT_SMALL)
    return np.frombuffer(ds.PixelData, "<u2").reshape(ds.Rows, ds.Columns).copy()


def test_pydicoms_rle_file_gives_the_planes_of_the_native_file_and_comes_back_byte_for_byte():
    ds = pydicom.dcmread(CT_SMALL)
    native_planes = dicom.read_dicom(saved(ds)).planes
    ds.compress(RLELossless, encoding_plugin="pydicom")
    data = saved(ds)
    read = dicom.read_dicom(data)
    assert read.meta["layout"] == "rle" and read.bits == 16 and read.signed
    assert "replayed exactly" in read.description
    np.testing.assert_array_equal(read.planes[0], native_planes[0])
    assert dicom.write_dicom(read.meta, read.blobs, read.planes) == data
    # pydicom's encoder does what is typical: every control byte is predicted, only the headers remain
    kept = read.blobs[1]
    assert np.count_nonzero(np.frombuffer(kept, np.uint8)) < 20 and len(envelope_coding.lzma_pack(kept)) < 80
    stream = codec.encode(data, mode="classical")
    assert len(stream) < len(data) * 0.8 and codec.decode(stream).data == data


@pytest.mark.parametrize("options", [
    {"row": 128, "min_run": 2},
    {"row": 0, "min_run": 3},
    {"row": 0, "min_run": 2, "noops": 3},  # no-op bytes
    {"row": 128, "min_run": 3, "pad": b"\xaa", "gap": b"\x00" * 6},  # a gap after the header, odd padding
])
def test_any_encoders_choices_come_back_byte_for_byte(options):
    words = _words()
    data = rle_dicom([rle_frame(words, 16, **options)])
    read = dicom.read_dicom(data)
    assert read.meta["layout"] == "rle"
    np.testing.assert_array_equal(read.planes[0], words ^ np.uint16(0x8000))  # two's complement -> offset binary
    assert dicom.write_dicom(read.meta, read.blobs, read.planes) == data
    assert codec.decode(codec.encode(data, mode="classical")).data == data


def test_a_typical_segment_is_what_pydicoms_encoder_writes_and_decodes_with_pydicom():
    from pydicom.pixels.decoders.rle import _rle_decode_segment
    from pydicom.pixels.encoders.native import _encode_segment

    plane = (_words() & 0xFF).astype(np.uint8).tobytes()
    segment = dicom_rle.typical_segment(plane, 128, 2)
    assert segment + b"\x00" * (len(segment) % 2) == bytes(_encode_segment(plane, 128))  # rows apart, pairs replicated
    for row, min_run in dicom_rle.PREDICTORS:
        assert bytes(_rle_decode_segment(dicom_rle.typical_segment(plane, 128 * row, min_run))) == plane


def test_the_predictor_that_fits_the_encoder_is_chosen():
    words = _words()
    for row, min_run in dicom_rle.PREDICTORS:
        read = dicom.read_dicom(rle_dicom([rle_frame(words, 16, row=128 * row, min_run=min_run)]))
        assert read.meta["predictor"] == [row, min_run]
        assert np.count_nonzero(np.frombuffer(read.blobs[1], np.uint8)) < 20


def test_an_8_bit_multi_frame_file():
    frames = [(np.roll(_words(), 3 * k, axis=0) >> 4).astype(np.uint8) for k in range(3)]
    data = rle_dicom([rle_frame(f, 8, row=128) for f in frames], alloc=8, count=3)
    read = dicom.read_dicom(data)
    assert read.meta["layout"] == "rle" and read.bits == 8 and len(read.planes) == 3
    for plane, frame in zip(read.planes, frames):
        np.testing.assert_array_equal(plane, frame)
    assert codec.decode(codec.encode(data, mode="classical")).data == data


def test_an_rgb_file_gives_three_planes_a_frame():
    """RLE's colour segments are a frame's R, G and B planes; io.dicom_colour makes them G and differences."""
    rng = np.random.default_rng(2)
    grey = (_words() >> 4).astype(np.uint8)
    rgb = np.repeat(grey[:, :, None], 3, axis=2)
    rgb[30:60, 20:50] = rng.integers(0, 256, (30, 30, 3), dtype=np.uint8)
    segments = [dicom_rle.typical_segment(rgb[:, :, k].tobytes(), 128, 2) for k in range(3)]
    segments = [segment + b"\x00" * (len(segment) % 2) for segment in segments]
    offsets = np.cumsum([64] + [len(segment) for segment in segments[:-1]]).tolist()
    frame = struct.pack("<16I", 3, *offsets, *([0] * 12)) + b"".join(segments)
    ds = pydicom.dcmread(io.BytesIO(encapsulated_dicom([frame], RLELossless, eight_bit=True)))
    ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, "RGB", 1
    data = saved(ds)
    read = dicom.read_dicom(data)
    assert read.meta["layout"] == "rle" and read.bits == 8 and len(read.planes) == 3
    np.testing.assert_array_equal(read.planes[0], rgb[:, :, 1])  # G
    assert dicom.write_dicom(read.meta, read.blobs, read.planes) == data
    assert codec.decode(codec.encode(data, mode="classical")).data == data


def _with_last_run_too_long() -> bytes:
    """A flat frame whose segments' last replicate run holds one sample more than the frame has."""
    segment = bytes([129, 1]) * 127 + bytes([257 - 127, 1]) + bytes([257 - 2, 1])
    return struct.pack("<16I", 2, 64, 64 + len(segment), *([0] * 13)) + segment * 2


@pytest.mark.parametrize("damage", ["run past the samples", "segment count", "frames and fragments",
                                    "short segment"])
def test_what_does_not_replay_exactly_stays_verbatim(damage):
    words = _words()
    frame = rle_frame(words, 16, row=128, pad=b"")
    count = 1
    if damage == "run past the samples":
        frame = _with_last_run_too_long()
    elif damage == "segment count":
        frame = struct.pack("<I", 3) + frame[4:]
    elif damage == "frames and fragments":
        count = 2
    elif damage == "short segment":
        frame = frame[:-40]
    data = rle_dicom([frame], count=count)
    read = dicom.read_dicom(data)
    assert read.meta["layout"] == "split" and read.planes == []
    assert codec.decode(codec.encode(data, mode="classical")).data == data


def test_the_pixel_limit_and_decompress_false_keep_it_verbatim():
    data = rle_dicom([rle_frame(_words(), 16)])
    assert dicom.read_dicom(data, max_pixels=128 * 128).meta["layout"] == "rle"
    assert dicom.read_dicom(data, max_pixels=128 * 128 - 1).meta["layout"] == "split"
    assert dicom.read_dicom(data, decompress=False).meta["layout"] == "split"


def test_join_refuses_a_damaged_description():
    data = rle_dicom([rle_frame(_words(), 16)])
    read = dicom.read_dicom(data)
    native = read.planes[0].astype("<u2").tobytes()
    for change in ({"segments": [5.0, 9]}, {"predictor": [2, 2]}, {"alloc": 32}, {"frames": 2},
                   {"segments": [10, 5]}, {"rows": True}):
        with pytest.raises(CorruptStreamError):
            dicom_rle.join({**read.meta, **change}, native, read.blobs[1])
    with pytest.raises(CorruptStreamError):  # control bytes that ask for more samples than there are
        dicom_rle.join(read.meta, native, read.blobs[1][:read.meta["segments"][1] + 3])


_FUZZ: list[tuple[bytes, bytes]] = []


def _fuzz_file() -> tuple[bytes, bytes]:
    if not _FUZZ:
        words = _words()
        data = rle_dicom([rle_frame(words, 16, row=128), rle_frame(np.roll(words, 5, axis=1), 16, noops=5)],
                         count=2)
        assert dicom.read_dicom(data).meta["layout"] == "rle"
        _FUZZ.append((data, codec.encode(data, mode="classical")))
    return _FUZZ[0]


@settings(max_examples=int(os.environ.get("MEDCODEC_FUZZ_EXAMPLES", "60")), deadline=None, derandomize=True)
@given(data=st.data())
def test_damaged_envelopes_end_in_a_clear_error_or_the_original(data):
    """The kept bytes and the frames' description damaged behind valid CRCs (the envelope re-compressed
    and re-packed): decoding gives the original file or refuses with a medcodec error, never a crash."""
    original, stream = _fuzz_file()
    assert decoded_or_refused(stream, data, changes=data.draw(st.integers(1, 3))) in (None, original)


def test_a_native_file_is_not_taken_for_rle():
    ds = pydicom.dcmread(CT_SMALL)
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    assert dicom.read_dicom(saved(ds)).meta["layout"] == "modelled"
