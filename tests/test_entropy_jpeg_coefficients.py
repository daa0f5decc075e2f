"""entropy.jpeg_coefficients: quantised DCT coefficients coded with context-modelled arithmetic coding."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jpegs import grey_coefficients, lossy_jpeg

from medcodec.entropy import jpeg_coefficients
from medcodec.errors import CorruptStreamError, UnsupportedVersionError


@pytest.mark.parametrize("bits,level", [(12, 90), (12, 60), (8, 75)])
def test_real_coefficients_come_back_smaller_than_their_huffman_scan(bits, level):
    jpeg = lossy_jpeg(bits, level)
    scan, blocks, quant = grey_coefficients(jpeg)
    stream = jpeg_coefficients.encode(blocks, quant)
    assert np.array_equal(jpeg_coefficients.decode(stream, *blocks.shape[:2], quant), blocks)
    assert len(stream) < 0.97 * (scan.segment_end - scan.segment_start)  # 256 blocks: little to learn from
    assert jpeg_coefficients.encode(blocks, quant) == stream  # deterministic
    assert len(jpeg_coefficients.encode(blocks)) > len(stream)  # the DC prediction needs the table


@settings(max_examples=40, deadline=None, derandomize=True)
@given(rows=st.integers(0, 5), cols=st.integers(0, 6), density=st.floats(0, 1), scale=st.integers(0, 18),
       seed=st.integers(0, 2**32 - 1))
def test_any_blocks_come_back(rows, cols, density, scale, seed):
    rng = np.random.default_rng(seed)
    values = rng.integers(-(1 << scale), (1 << scale), size=(rows, cols, 64))
    blocks = np.where(rng.random((rows, cols, 64)) < density, values, 0).astype(np.int32)
    quant = rng.integers(1, 65536, 64)  # any table: DC predictions far off are clamped
    stream = jpeg_coefficients.encode(blocks, quant)
    assert np.array_equal(jpeg_coefficients.decode(stream, rows, cols, quant), blocks)


def test_extremes_and_refusals():
    blocks = np.zeros((2, 2, 64), np.int32)
    blocks[0, 0] = (1 << 19) - 1
    blocks[0, 1] = -((1 << 19) - 1)  # a DC difference of 2^20 - 2 from the one before
    blocks[1, 1] = -((1 << 19) - 1)
    assert np.array_equal(jpeg_coefficients.decode(jpeg_coefficients.encode(blocks), 2, 2), blocks)
    quant = np.full(64, 65535)
    assert np.array_equal(jpeg_coefficients.decode(jpeg_coefficients.encode(blocks, quant), 2, 2, quant), blocks)
    blocks[0, 1, 3] = 1 << 19
    with pytest.raises(ValueError):
        jpeg_coefficients.encode(blocks)
    for bad in (np.zeros(64), np.ones(63), np.full(64, 65536)):
        with pytest.raises(ValueError, match="quantisation table"):
            jpeg_coefficients.encode(np.zeros((1, 1, 64), np.int32), bad)
    with pytest.raises(ValueError):
        jpeg_coefficients.encode(np.zeros((2, 64), np.int32))


def test_a_stream_that_ends_early_or_runs_on_is_refused():
    jpeg = lossy_jpeg(12, shape=(48, 48))
    scan, blocks, quant = grey_coefficients(jpeg)
    stream = jpeg_coefficients.encode(blocks, quant)
    for damaged in (stream[:-9], stream + b"\x00", stream[:len(stream) // 2]):
        with pytest.raises(CorruptStreamError):
            jpeg_coefficients.decode(damaged, *blocks.shape[:2], quant)
    with pytest.raises(CorruptStreamError):
        jpeg_coefficients.decode(stream, -1, 3)


def test_priors_are_pinned_and_checked():
    priors = jpeg_coefficients.shipped_priors()
    assert priors.shape == (jpeg_coefficients.CONTEXTS,)
    assert jpeg_coefficients.PROB_MIN <= priors.min() and priors.max() <= jpeg_coefficients.PROB_MAX
    for bad in (priors[:-1], np.full(jpeg_coefficients.CONTEXTS, 5)):
        with pytest.raises(ValueError):
            jpeg_coefficients.encode(np.zeros((1, 1, 64), np.int32), priors=bad)
    # a stream decodes only with the priors it was coded with
    jpeg = lossy_jpeg(12, shape=(32, 32))
    _, blocks, _ = grey_coefficients(jpeg)
    flat = np.full(jpeg_coefficients.CONTEXTS, 32768)
    stream = jpeg_coefficients.encode(blocks, priors=flat)
    assert np.array_equal(jpeg_coefficients.decode(stream, 4, 4, priors=flat), blocks)
    assert stream != jpeg_coefficients.encode(blocks)


def test_statistics_count_every_decision():
    jpeg = lossy_jpeg(8, shape=(24, 40))
    _, blocks, _ = grey_coefficients(jpeg)
    counts = jpeg_coefficients.statistics(blocks)
    assert counts.shape == (jpeg_coefficients.CONTEXTS, 2)
    assert counts[:64 * 12].sum() == 6 * blocks.shape[0] * blocks.shape[1]  # the count tree: 6 a block


@settings(max_examples=30, deadline=None, derandomize=True)
@given(stream=st.binary(min_size=0, max_size=400), rows=st.integers(0, 40), cols=st.integers(0, 40))
def test_garbage_decodes_to_blocks_or_a_clear_error(stream, rows, cols):
    try:
        blocks = jpeg_coefficients.decode(stream, rows, cols)
    except CorruptStreamError as exc:
        assert "JPEG coefficient stream" in str(exc)
    else:
        assert blocks.shape == (rows, cols, 64)


def test_other_priors_on_disk_are_refused(tmp_path, monkeypatch):
    other = tmp_path / "priors.u16"
    other.write_bytes(jpeg_coefficients.PRIORS_FILE.read_bytes()[::-1])
    monkeypatch.setattr(jpeg_coefficients, "PRIORS_FILE", other)
    jpeg_coefficients.shipped_priors.cache_clear()
    try:
        with pytest.raises(UnsupportedVersionError, match="reinstall"):
            jpeg_coefficients.encode(np.zeros((1, 1, 64), np.int32))
    finally:
        jpeg_coefficients.shipped_priors.cache_clear()


def test_blocks_like_the_reference_frames_cost_almost_nothing():
    _, blocks, quant = grey_coefficients(lossy_jpeg(12, 90))
    alone = jpeg_coefficients.encode(blocks, quant)
    same = jpeg_coefficients.encode(blocks, quant, reference=blocks)
    assert len(same) < 0.02 * len(alone)
    assert np.array_equal(jpeg_coefficients.decode(same, *blocks.shape[:2], quant, reference=blocks), blocks)
    moved = blocks.copy()
    moved[4:9, 2:12] = np.roll(blocks, 1, axis=1)[4:9, 2:12]  # a region changed
    stream = jpeg_coefficients.encode(moved, quant, reference=blocks)
    assert len(same) < len(stream) < len(alone)
    assert np.array_equal(jpeg_coefficients.decode(stream, *blocks.shape[:2], quant, reference=blocks), moved)
    zeros = np.zeros_like(blocks)
    unrelated = jpeg_coefficients.encode(blocks, quant, reference=zeros)  # misleads: io.dicom_jpeg_lossy chooses
    assert len(unrelated) > len(alone)
    assert np.array_equal(jpeg_coefficients.decode(unrelated, *blocks.shape[:2], quant, reference=zeros), blocks)
    with pytest.raises(ValueError, match="reference blocks"):
        jpeg_coefficients.encode(blocks, quant, reference=blocks[1:])
    other = jpeg_coefficients.decode(same, *blocks.shape[:2], quant, reference=moved)
    assert not np.array_equal(other, blocks)  # the reference is part of what the stream means
    assert jpeg_coefficients.statistics(blocks, quant).shape == (jpeg_coefficients.CONTEXTS, 2)
