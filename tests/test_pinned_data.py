"""pinned_data: format data files read only when they are the pinned ones."""

import hashlib

import pytest

from medcodec.errors import UnsupportedVersionError
from medcodec.pinned_data import read_pinned


def test_the_pinned_file_is_read_and_any_other_refused(tmp_path):
    path = tmp_path / "table.bin"
    path.write_bytes(b"priors")
    pinned = hashlib.sha256(b"priors").hexdigest()
    assert read_pinned(path, pinned, "test table") == b"priors"
    path.write_bytes(b"other")
    with pytest.raises(UnsupportedVersionError, match="test table table.bin is not the one .* reinstall"):
        read_pinned(path, pinned, "test table")
    with pytest.raises(UnsupportedVersionError, match="missing .* reinstall medcodec"):
        read_pinned(tmp_path / "gone.bin", pinned, "test table")
