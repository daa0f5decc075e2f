"""entropy.jpeg2000_tier1: the 5/3 wavelet and EBCOT tier 1 write the code-blocks another encoder wrote."""

import imagecodecs
import numpy as np
import pytest

from medcodec.entropy import jpeg2000_tier1 as tier1
from medcodec.io import dicom_jpeg2000


def textured(shape: tuple[int, int], bits: int, seed: int = 0) -> np.ndarray:
    """Smooth structure, edges and noise over most of the range of `bits` unsigned bits."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:shape[0], :shape[1]]
    top = (1 << bits) - 1
    smooth = (np.sin(x / 7.0) + np.cos(y / 11.0) + 2) / 4 * top * 0.8
    edges = ((x // 13 + y // 9) % 2) * top * 0.1
    noise = rng.normal(0, top * 0.01 + 1, shape)
    return np.clip(smooth + edges + noise, 0, top).astype(np.int64)


@pytest.mark.parametrize("shape,bits,signed,resolutions", [
    ((64, 64), 8, False, 3), ((37, 53), 8, False, 4), ((130, 67), 12, False, 6), ((96, 200), 16, False, 5),
    ((71, 90), 16, True, 4), ((1, 40), 8, False, 2), ((200, 3), 12, False, 3)])
def test_every_code_block_is_in_openjpegs_codestream(shape, bits, signed, resolutions):
    samples = textured(shape, bits)
    dtype = {8: np.uint8, 12: np.uint16, 16: np.uint16}[bits]
    if signed:
        samples -= 1 << (bits - 1)
        dtype = np.int16
    codestream = imagecodecs.jpeg2k_encode(samples.astype(dtype), level=0, codecformat="J2K", reversible=True,
                                           bitspersample=bits, resolutions=resolutions)
    stream = dicom_jpeg2000.parse(codestream)
    assert stream is not None and stream.levels <= resolutions - 1 and stream.signed == signed
    shifted = samples if signed else samples - (1 << (bits - 1))
    blocks = tier1.block_streams(shifted, stream.levels, list(stream.block_sizes))
    assert sum(map(len, blocks)) > len(codestream) - 200 - 12 * len(blocks)  # the rest: headers, packets
    for block in blocks:
        # OpenJPEG ends the codeword as C.2.9 does, but may drop or keep the last byte differently
        assert block[:-2] in codestream


def test_subbands_cover_the_image_at_any_size_and_origin():
    for shape in [(1, 1), (2, 3), (17, 9), (64, 33)]:
        for x0, y0 in [(0, 0), (1, 0), (3, 5)]:
            bands = tier1.subbands(np.arange(shape[0] * shape[1]).reshape(shape), 4, x0, y0)
            assert sum(band.size for _, _, band in bands) == shape[0] * shape[1]
            assert [r for r, _, _ in bands] == sorted(r for r, _, _ in bands)


def test_a_constant_block_costs_nothing_and_the_wavelet_is_integer():
    assert tier1.code_block(np.zeros((64, 64), np.int64), tier1.LL) == b""
    bands = tier1.subbands(np.full((16, 16), 5), 2)
    assert all(band.dtype == np.int64 for _, _, band in bands)
    assert all(not band.any() for r, o, band in bands if o != tier1.LL)  # a flat image has no detail


def test_code_blocks_tile_a_subband():
    band = np.arange(70 * 130).reshape(70, 130)
    blocks = list(tier1.code_blocks(band, 64, 32))
    assert len(blocks) == 3 * 3 and sum(b.size for b in blocks) == band.size
    assert blocks[0].shape == (32, 64) and blocks[-1].shape == (6, 2)
