"""io.dicom_jpeg2000: lossless JPEG 2000 DICOM frames as planes, the codestream given back byte for byte."""

import os
import struct
from pathlib import Path

import imagecodecs
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydicom.uid import JPEG2000, JPEG2000Lossless

from damaged_envelopes import decoded_or_refused
from encapsulated import encapsulated_dicom
from test_entropy_jpeg2000_tier1 import textured

from medcodec import codec
from medcodec.errors import CorruptStreamError
from medcodec.io import dicom, dicom_jpeg2000

CORPUS_TRAIN = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "train" / "compressed_dicom"


def codestream(samples: np.ndarray, bits: int, resolutions: int = 4, reversible: bool = True) -> bytes:
    dtype = np.int16 if samples.min() < 0 else np.uint16
    return imagecodecs.jpeg2k_encode(samples.astype(dtype), level=0, codecformat="J2K", reversible=reversible,
                                     bitspersample=bits, resolutions=resolutions)


def signed_frames(count: int) -> list[np.ndarray]:
    """128 x 128 signed 16-bit frames, as CT_small (the template) declares."""
    return [textured((128, 128), 12, seed=k) - 2048 for k in range(count)]


@pytest.mark.parametrize("count,fragments_per_frame,has_bot", [(1, 1, True), (1, 3, True), (3, 1, True),
                                                                (3, 2, True), (3, 2, False)])
def test_frames_come_back_byte_for_byte(count, fragments_per_frame, has_bot):
    frames = signed_frames(count)
    data = encapsulated_dicom([codestream(f, 16) for f in frames], JPEG2000Lossless, count, fragments_per_frame,
                              has_bot=has_bot)
    read = dicom.read_dicom(data)
    assert read.meta["layout"] == "jpeg2000" and read.meta["signed"] and read.bits == 16
    assert "code-blocks re-encoded exactly" in read.description
    assert all(np.array_equal(p.astype(np.int64) - 32768, f) for p, f in zip(read.planes, frames, strict=True))
    assert len(read.blobs[1]) < 0.05 * len(data)  # what is kept: markers, packet headers, terminations
    assert dicom.write_dicom(read.meta, read.blobs, read.planes) == data
    stream = codec.encode(data, mode="fast")
    assert len(stream) < len(data) and codec.decode(stream).data == data


def test_unsigned_12_bit_under_the_general_syntax():
    samples = textured((128, 128), 12)
    data = encapsulated_dicom([codestream(samples, 12)], JPEG2000, bits_stored=12, unsigned=True)
    read = dicom.read_dicom(data)
    assert read.meta["layout"] == "jpeg2000" and not read.meta["signed"] and read.bits == 12
    assert np.array_equal(read.planes[0], samples)
    assert dicom.write_dicom(read.meta, read.blobs, read.planes) == data


@pytest.mark.parametrize("signed", [False, True])
def test_planes_take_bits_stored_where_the_samples_fit_it(signed):
    """A 12-bit image in a 16-bit codestream: 12-bit planes; a sample beyond 12 bits: 16-bit planes."""
    samples = textured((128, 128), 12) - (2048 if signed else 0)
    for extreme, bits in [(None, 12), (-5000 if signed else 5000, 16)]:
        if extreme is not None:
            samples[3, 4] = extreme
        data = encapsulated_dicom([codestream(samples, 16)], JPEG2000Lossless, bits_stored=12, unsigned=not signed)
        read = dicom.read_dicom(data)
        assert read.meta["layout"] == "jpeg2000" and read.bits == bits and read.meta["precision"] == 16
        assert np.array_equal(read.planes[0].astype(np.int64) - ((1 << (bits - 1)) if signed else 0), samples)
        assert dicom.write_dicom(read.meta, read.blobs, read.planes) == data


@pytest.mark.parametrize("bits_stored,bits", [(16, 16), (12, 12)])
def test_a_signed_file_whose_codestream_says_unsigned(bits_stored, bits):
    """Some encoders (JasPer through older dcmtk) wrote signed CT as unsigned codestreams of two's
    complement patterns: planes of the signed values, so -1 and 0 are neighbours, not 65535 apart."""
    values = textured((128, 128), 12) - 2048
    patterns = (values & 0xFFFF).astype(np.uint16)
    data = encapsulated_dicom([codestream(patterns, 16)], JPEG2000Lossless, bits_stored=bits_stored)
    read = dicom.read_dicom(data)
    assert read.meta["signed"] and not read.meta["coded_signed"] and read.bits == bits
    assert np.array_equal(read.planes[0].astype(np.int64) - (1 << (bits - 1)), values)
    assert dicom.write_dicom(read.meta, read.blobs, read.planes) == data


@pytest.mark.parametrize("mct,photometric", [(True, "YBR_RCT"), (False, "RGB")])
def test_colour_frames(mct, photometric):
    """8-bit colour, with or without the reversible colour transform: three subtract-green planes a frame."""
    grey = [textured((128, 128), 8, seed=k) for k in range(2)]
    images = [np.stack([g, g, np.clip(g + 40, 0, 255)], axis=-1).astype(np.uint8) for g in grey]
    frames = [imagecodecs.jpeg2k_encode(image, level=0, codecformat="J2K", reversible=True, mct=mct, resolutions=4)
              for image in images]
    assert dicom_jpeg2000.parse(frames[0]).mct == mct
    data = encapsulated_dicom(frames, JPEG2000Lossless, count=2, colour=photometric)
    read = dicom.read_dicom(data)
    assert read.meta["layout"] == "jpeg2000" and read.meta["components"] == 3 and len(read.planes) == 6
    assert np.array_equal(read.planes[3], grey[1]) and (read.planes[4] == 128).all()  # G, then R - G + 128
    assert len(read.blobs[1]) < 0.05 * len(data)  # every component's code-blocks found
    assert dicom.write_dicom(read.meta, read.blobs, read.planes) == data
    stream = codec.encode(data, mode="fast")
    assert len(stream) < len(data) and codec.decode(stream).data == data


def test_a_codestream_wrapped_in_a_jp2_file():
    """Not what DICOM asks for, but written: the JP2 boxes are kept with the rest."""
    samples = signed_frames(1)[0]
    jp2 = imagecodecs.jpeg2k_encode(samples.astype(np.int16), level=0, codecformat="JP2", reversible=True,
                                    bitspersample=16, resolutions=4)
    assert dicom_jpeg2000.codestream_start(jp2) > 0
    data = encapsulated_dicom([jp2], JPEG2000Lossless)
    read = dicom.read_dicom(data)
    assert read.meta["layout"] == "jpeg2000" and len(read.blobs[1]) < 0.05 * len(data)
    assert dicom.write_dicom(read.meta, read.blobs, read.planes) == data
    assert dicom_jpeg2000.codestream_start(b"\x00\x00\x00\x0cjP  \r\n\x87\n" + b"\x00" * 8) is None


def test_the_irreversible_transform_and_unmodelled_codestreams_stay_verbatim():
    samples = textured((128, 128), 12)
    lossy = encapsulated_dicom([codestream(samples, 12, reversible=False)], JPEG2000, bits_stored=12, unsigned=True)
    assert dicom.read_dicom(lossy).meta["layout"] == "split"
    good = codestream(samples, 12)
    cod = good.index(b"\xff\x52") + 4
    for at, value in [(8, 1), (9, 0)]:  # a code-block style (bypass), the 9/7 transform
        changed = bytearray(good)
        changed[cod + at] = value
        assert dicom_jpeg2000.parse(bytes(changed)) is None
    assert dicom_jpeg2000.parse(good[2:]) is None
    assert dicom_jpeg2000.parse(good) is not None


def test_a_coding_change_in_a_tile_part_header_is_not_modelled():
    good = codestream(textured((64, 64), 8), 8, resolutions=3)
    cod_start = good.index(b"\xff\x52")
    (cod_length,) = struct.unpack_from(">H", good, cod_start + 2)
    cod = good[cod_start:cod_start + 2 + cod_length]
    sot = good.index(b"\xff\x90")
    _, _, tile, length, part, parts = struct.unpack_from(">HHHIBB", good, sot)
    sod = good.index(b"\xff\x93", sot)
    header = struct.pack(">HHHIBB", 0xFF90, 10, tile, length + len(cod) if length else 0, part, parts)
    changed = good[:sot] + header + good[sot + 12:sod] + cod + good[sod:]
    assert dicom_jpeg2000.parse(changed) is None


def test_the_pixel_limit_and_decompress_false_keep_it_verbatim():
    data = encapsulated_dicom([codestream(signed_frames(1)[0], 16)], JPEG2000Lossless)
    assert dicom.read_dicom(data, max_pixels=128 * 128).meta["layout"] == "jpeg2000"
    assert dicom.read_dicom(data, max_pixels=128 * 128 - 1).meta["layout"] == "split"
    assert dicom.read_dicom(data, decompress=False).meta["layout"] == "split"


def test_join_refuses_what_split_did_not_write():
    data = encapsulated_dicom([codestream(signed_frames(1)[0], 16)], JPEG2000Lossless)
    read = dicom.read_dicom(data)
    kept = read.blobs[1]
    for change in [{"runs": [[0, 5000, 0, 10]]}, {"runs": [[-1, 0, 0, 10]]}, {"levels": 40}, {"bits": 0},
                   {"blocks": [[6, 6]]}, {"blocks": [[7, 7]] * (read.meta["levels"] + 1)},
                   {"runs": [[0, 0, 0, 10 ** 6]]}]:
        with pytest.raises(CorruptStreamError):
            dicom_jpeg2000.join({**read.meta, **change}, read.planes, kept)
    with pytest.raises(CorruptStreamError):
        dicom_jpeg2000.join(read.meta, [read.planes[0][:64]], kept)


def test_runs_are_found_across_layers_in_order():
    """Code-blocks cut into pieces and interleaved with other bytes, as quality layers and packet headers
    do: each piece found where it lies, in its block's order, none twice; short pieces left alone."""
    rng = np.random.default_rng(3)
    blocks = [rng.integers(0, 256, n, dtype=np.uint8).tobytes() for n in (300, 120, 45, 5)]
    cuts = {0: [0, 100, 180, 300], 1: [0, 60, 120], 2: [0, 3, 45], 3: [0, 5]}
    value, expected = bytearray(rng.integers(0, 256, 7, dtype=np.uint8).tobytes()), []
    for layer in range(3):
        for index, block in enumerate(blocks):
            bounds = cuts[index]
            if layer + 1 < len(bounds):
                piece = block[bounds[layer]:bounds[layer + 1]]
                if len(piece) >= dicom_jpeg2000.RUN:
                    expected.append((len(value), index, bounds[layer], len(piece)))
                value += piece
            value += b"\xc0\x12"  # a packet header's worth of other bytes
    assert dicom_jpeg2000.find_runs(bytes(value), blocks) == expected


@pytest.mark.skipif(not CORPUS_TRAIN.is_dir(), reason="needs ../shared/corpus (train split)")
@pytest.mark.parametrize("name", ["nema_CT2_J2KR.dcm", "ct_toshiba_j2k_pixrep1.dcm"])
def test_corpus_files_from_other_encoders(name):
    """A JasPer- and a Kakadu-style codestream (their terminations differ from ours: kept)."""
    data = (CORPUS_TRAIN / name).read_bytes()
    read = dicom.read_dicom(data)
    assert read.meta["layout"] == "jpeg2000" and len(read.blobs[1]) < 1000
    assert dicom.write_dicom(read.meta, read.blobs, read.planes) == data


_FUZZ: list[tuple[bytes, bytes]] = []


@settings(max_examples=int(os.environ.get("MEDCODEC_FUZZ_EXAMPLES", "60")), deadline=None, derandomize=True)
@given(data=st.data())
def test_damaged_envelopes_end_in_a_clear_error_or_the_original(data):
    """The kept bytes and the run table damaged behind valid CRCs."""
    if not _FUZZ:
        original = encapsulated_dicom([codestream(f, 16) for f in signed_frames(2)], JPEG2000Lossless, 2)
        _FUZZ.append((original, codec.encode(original, mode="fast")))
    original, stream = _FUZZ[0]
    assert decoded_or_refused(stream, data) in (None, original)
