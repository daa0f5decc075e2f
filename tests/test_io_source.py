"""load/restore dispatch: sniffing by content, the envelope format, checksums, corpus samples."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import imagecodecs
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from medcodec.errors import CorruptStreamError, InvalidInputError, ResourceLimitError, UnsupportedVersionError
from medcodec.io import load, pixel_sha256, restore
from medcodec.io.source import ENVELOPE_VERSION, pack_envelope, unpack_envelope

CORPUS = Path("/work/shared/corpus")


def test_format_is_sniffed_from_content_not_name(tmp_path: Path) -> None:
    image = np.arange(6, dtype=np.uint8).reshape(2, 3)
    path = tmp_path / "misnamed.dcm"
    path.write_bytes(imagecodecs.png_encode(image))
    source = load(path, name="misnamed.dcm")
    assert source.kind == "png"
    assert source.original_sha256 == hashlib.sha256(path.read_bytes()).digest()
    assert load(str(path)).kind == "png"


@pytest.mark.parametrize("data", [b"", b"hello world, not an image", b"\xff\xd8\xff\xe0JFIF" + bytes(200),
                                  bytes(range(256)) * 4, bytes(1000), b"\x08\x00\x00\x00" + bytes(100)],
                         ids=["empty", "text", "jpeg", "ramp", "zeros", "group8-zeros"])
def test_unknown_formats_are_refused_with_the_accepted_list(data: bytes) -> None:
    with pytest.raises(InvalidInputError) as info:
        load(data)
    for word in ("DICOM", "PNG", "TIFF", "npy"):
        assert word in str(info.value)


def test_missing_file_is_invalid_input(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError):
        load(tmp_path / "nope.png")


def test_envelope_roundtrip_and_damage() -> None:
    envelope = pack_envelope("png", {"a": 1, "shapes": [[2, 3]]}, [b"", b"xyz", bytes(300)])
    meta, blobs = unpack_envelope(envelope)
    assert meta == {"kind": "png", "a": 1, "shapes": [[2, 3]]} and blobs == [b"", b"xyz", bytes(300)]
    for damaged in (envelope[:-1], envelope + b"\x00", b"XXXX" + envelope[4:], envelope[:6]):
        with pytest.raises(CorruptStreamError):
            unpack_envelope(damaged)
    newer = envelope[:4] + bytes([ENVELOPE_VERSION + 1]) + envelope[5:]
    with pytest.raises(UnsupportedVersionError):
        unpack_envelope(newer)


def test_restore_refuses_a_kind_that_does_not_match_the_envelope() -> None:
    source = load(np.zeros((2, 2), np.uint8))
    with pytest.raises(CorruptStreamError):
        restore("png", source.envelope, source.planes)
    with pytest.raises(CorruptStreamError):
        restore("gif", source.envelope, source.planes)


@pytest.mark.parametrize("change", [lambda m: m.pop("dtype"), lambda m: m.pop("shapes"),
                                    lambda m: m.update(dtype="Lu2"), lambda m: m.update(shape=[3, 3]),
                                    lambda m: m.update(shapes=None)])
def test_restore_refuses_an_envelope_whose_description_is_damaged(change) -> None:
    # Damage behind valid CRCs can inflate to a well-formed envelope that no writer made (found by the
    # fuzz campaign once envelopes could be deflate-coded): a CorruptStreamError, never a KeyError.
    source = load(np.arange(16, dtype=np.uint16).reshape(4, 4))
    meta, blobs = unpack_envelope(source.envelope)
    change(meta)
    kind = meta.pop("kind")
    with pytest.raises(CorruptStreamError, match="envelope is damaged"):
        restore(kind, pack_envelope(kind, meta, blobs), source.planes)


def test_pixel_sha256_covers_shape_values_and_count() -> None:
    a = np.arange(4, dtype=np.uint16).reshape(2, 2)
    digest = pixel_sha256([a])
    assert len(digest) == 32 and digest == pixel_sha256([a.copy()])
    assert digest != pixel_sha256([a.reshape(1, 4)])
    assert digest != pixel_sha256([a + 1])
    assert digest != pixel_sha256([a, a])
    assert pixel_sha256([np.asfortranarray(a)]) == digest  # memory layout does not matter
    with pytest.raises(ValueError):
        pixel_sha256([a.astype(np.int32)])


def test_declared_pixel_limit_is_checked_before_decoding() -> None:
    png = imagecodecs.png_encode(np.zeros((10, 20), np.uint8))
    assert len(load(png, max_pixels=200).planes) == 1
    assert len(load(png, max_pixels=None).planes) == 1
    # A PNG whose IHDR claims 100000 x 100000: refused from the header, nothing is allocated.
    bomb = bytearray(png)
    bomb[16:24] = (100_000).to_bytes(4, "big") * 2
    with pytest.raises(ResourceLimitError):
        load(bytes(bomb))
    tiff = imagecodecs.tiff_encode(np.zeros((10, 20), np.uint16))
    with pytest.raises(ResourceLimitError):
        load(tiff, max_pixels=199)
    with pytest.raises(ResourceLimitError):
        load(np.zeros((3, 10, 20), np.uint8), max_pixels=599)


def test_description_is_one_line() -> None:
    for source in (load(np.zeros((3, 4), np.int16)), load(imagecodecs.png_encode(np.zeros((3, 4), np.uint8)))):
        assert source.description and "\n" not in source.description


@settings(max_examples=40, deadline=None)
@given(hnp.arrays(dtype=st.sampled_from([np.uint8, np.uint16, np.int8, np.int16, np.dtype(">u2")]),
                  shape=hnp.array_shapes(min_dims=2, max_dims=3, min_side=1, max_side=9)))
def test_any_small_integer_array_roundtrips(array: np.ndarray) -> None:
    buffer = io.BytesIO()
    np.save(buffer, array)
    data = buffer.getvalue()
    source = load(data)
    assert restore(source.kind, source.envelope, source.planes) == data
    for plane in source.planes:
        assert plane.dtype == np.uint16 and int(plane.max(initial=0)) < (1 << source.bits)


def test_corpus_samples_roundtrip() -> None:
    """A handful of real files of every kind; benchmarks/io_roundtrip_corpus.py checks them all."""
    if not CORPUS.is_dir():
        pytest.skip("needs the shared corpus (/work/shared/corpus)")
    samples = []
    for folder in ("train/dicom16", "test/compressed_dicom", "train/png8", "test/natural"):
        samples += sorted((CORPUS / folder).rglob("*.*"))[:3]
    assert samples
    for path in samples:
        data = path.read_bytes()
        source = load(path)
        rebuilt = restore(source.kind, source.envelope, source.planes)
        if source.kind == "dicom":
            assert rebuilt == data, path
        else:
            np.testing.assert_array_equal(imagecodecs.png_decode(rebuilt), imagecodecs.png_decode(data))
