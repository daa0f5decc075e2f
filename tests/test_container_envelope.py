import hashlib
import zlib

import pytest
from pydicom.data import get_testdata_file

from medcodec.container import envelope
from medcodec.errors import CorruptStreamError, ResourceLimitError, UnsupportedVersionError
from medcodec.io import source as io_source
from medcodec.train import envelope_dictionary

HEADERS = [get_testdata_file(name) for name in ("CT_small.dcm", "MR_small.dcm")]


def test_dictionary_is_the_pinned_one():
    data = envelope.DICTIONARY_FILE.read_bytes()
    assert hashlib.sha256(data).hexdigest() == envelope.DICTIONARY_SHA256
    assert len(data) <= envelope.DICTIONARY_LIMIT
    assert b"DICM" in data and b"1.2.840.10008" in data  # header bytes, as built from the train split


@pytest.mark.parametrize("path", HEADERS)
def test_dicom_headers_code_smaller_with_the_dictionary_and_round_trip(path):
    io_envelope = io_source.load(path).envelope
    coding, payload = envelope.pack(io_envelope)
    assert coding == envelope.DEFLATE_DICOM_V1
    assert len(payload) < 0.9 * len(envelope.lzma_pack(io_envelope))
    assert envelope.unpack(coding, payload) == io_envelope
    assert envelope.unpack(envelope.LZMA, envelope.lzma_pack(io_envelope)) == io_envelope


def test_what_the_dictionary_does_not_help_stays_lzma():
    data = bytes(range(256)) * 4096  # 1 MiB, repetitive at a 256-byte period: LZMA's case
    coding, payload = envelope.pack(data)
    assert coding == envelope.LZMA and envelope.unpack(coding, payload) == data
    assert envelope.pack(b"")[0] == envelope.LZMA  # a tie goes to the coding every reader knows
    rt_dose = io_source.load(get_testdata_file("rtdose.dcm")).envelope  # a header unlike the train split's
    assert envelope.pack(rt_dose) == (envelope.LZMA, envelope.lzma_pack(rt_dose))


@pytest.mark.parametrize("coding", [envelope.LZMA, envelope.DEFLATE_DICOM_V1])
def test_damage_is_refused(coding):
    data = io_source.load(HEADERS[0]).envelope
    payload = envelope.lzma_pack(data) if coding == envelope.LZMA else envelope.deflate_pack(data, envelope.dicom_dictionary())
    for bad in (payload[:-3], payload + b"\0"):
        with pytest.raises(CorruptStreamError, match="envelope"):
            envelope.unpack(coding, bad)
    with pytest.raises(ResourceLimitError, match="limit"):
        envelope.unpack(coding, payload, max_bytes=len(data) - 1)
    assert envelope.unpack(coding, payload, max_bytes=len(data)) == data


def test_a_deflate_payload_decoded_without_the_dictionary_fails():
    data = io_source.load(HEADERS[0]).envelope
    payload = envelope.deflate_pack(data, envelope.dicom_dictionary())
    with pytest.raises(zlib.error):  # why the dictionary is pinned: it is part of the format
        zlib.decompress(payload, -15)


def test_unknown_coding_says_upgrade():
    with pytest.raises(UnsupportedVersionError, match="upgrade"):
        envelope.unpack(7, b"")


def test_a_changed_dictionary_is_refused(tmp_path, monkeypatch):
    changed = tmp_path / "dictionary.bin"
    changed.write_bytes(envelope.DICTIONARY_FILE.read_bytes()[:-1] + b"!")
    monkeypatch.setattr(envelope, "DICTIONARY_FILE", changed)
    envelope.dicom_dictionary.cache_clear()
    try:
        with pytest.raises(UnsupportedVersionError, match="reinstall"):
            envelope.dicom_dictionary()
    finally:
        envelope.dicom_dictionary.cache_clear()


def test_builder_prefers_what_helps_other_sources(tmp_path):
    shared = b"DICM" + bytes(range(200)) * 4
    envelopes = [("a", shared + b"series a" * 20), ("a", shared + b"series a" * 20 + b"!"),
                 ("b", shared + b"series b" * 20)]
    dictionary = envelope_dictionary.build(envelopes, limit=4096)
    assert shared[:100] in dictionary
    assert len(dictionary) <= 4096
    with pytest.raises(SystemExit, match="test split"):
        envelope_dictionary.dicom_envelopes(tmp_path / "test")
