"""entropy.jpeg_dct: sequential Huffman JPEG scans to coefficients and written again, bit for bit."""

import os

import imagecodecs
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jpegs import ct_small, lossy_jpeg

from medcodec.entropy import jpeg_dct


@pytest.mark.parametrize("bits,level,shape,optimize", [
    (12, 90, None, False), (12, 75, (37, 53), True), (12, 99, (8, 8), False), (12, 50, (1, 130), False),
    (8, 85, (61, 45), False), (8, 95, None, True)])
def test_the_segment_comes_back_from_its_coefficients(bits, level, shape, optimize):
    jpeg = lossy_jpeg(bits, level, shape=shape, optimize=optimize)
    scan = jpeg_dct.parse(jpeg)
    assert scan is not None and scan.precision == bits and scan.restart_interval == 0
    [component] = scan.components
    assert len(component.quant) == 64 and min(component.quant) >= 1  # the DQT table, zigzag order
    blocks = jpeg_dct.coefficients(jpeg, scan)
    height, width = ct_small(bits, shape=shape).shape
    assert [b.shape for b in blocks] == [((height + 7) // 8, (width + 7) // 8, 64)]
    assert jpeg_dct.write(blocks, scan) == jpeg[scan.segment_start:scan.segment_end]
    assert jpeg_dct.find_pad(jpeg, scan, blocks) == 1
    assert jpeg[scan.segment_end:] == b"\xff\xd9"


def _with_restarts(jpeg: bytes, interval: int, pad: int) -> bytes:
    """The JPEG with a DRI segment before its SOS and its segment written again with restart markers."""
    scan = jpeg_dct.parse(jpeg)
    blocks = jpeg_dct.coefficients(jpeg, scan)
    sos = jpeg.rindex(b"\xff\xda", 0, scan.segment_start)
    restarted = jpeg_dct.DctScan(**{**scan.__dict__, "restart_interval": interval})
    dri = b"\xff\xdd\x00\x04" + interval.to_bytes(2, "big")
    return jpeg[:sos] + dri + jpeg[sos:scan.segment_start] + jpeg_dct.write(blocks, restarted, pad) + b"\xff\xd9"


@pytest.mark.parametrize("bits,interval,pad", [(12, 1, 1), (12, 7, 1), (8, 16, 1), (12, 5, 0), (8, 300, 1)])
def test_restart_markers_as_libjpeg_reads_them(bits, interval, pad):
    jpeg = lossy_jpeg(bits, 90, shape=(40, 72))
    restarted = _with_restarts(jpeg, interval, pad)
    assert np.array_equal(imagecodecs.jpeg8_decode(restarted), imagecodecs.jpeg8_decode(jpeg))
    scan = jpeg_dct.parse(restarted)
    assert scan.restart_interval == interval
    blocks = jpeg_dct.coefficients(restarted, scan)
    assert np.array_equal(blocks[0], jpeg_dct.coefficients(jpeg, jpeg_dct.parse(jpeg))[0])
    assert jpeg_dct.find_pad(restarted, scan, blocks) == pad


def test_what_it_does_not_write_is_refused():
    assert jpeg_dct.parse(bytes(imagecodecs.jpeg8_encode(ct_small(8), lossless=True))) is None
    assert jpeg_dct.parse(b"not a JPEG") is None
    assert jpeg_dct.parse(lossy_jpeg()[:-300]) is None  # no EOI after the segment


def test_a_progressive_scan_or_successive_approximation_is_refused_whatever_ss_and_se_say():
    jpeg = lossy_jpeg(8)
    sof, sos = jpeg.index(b"\xff\xc0"), jpeg.index(b"\xff\xda")
    progressive = bytearray(jpeg)
    progressive[sof + 1] = 0xC2
    assert jpeg_dct.parse(bytes(progressive)) is None
    approximation = bytearray(jpeg)
    approximation[sos + 9] = 0x10  # Ah 1
    assert jpeg_dct.parse(bytes(approximation)) is None
    dc_only = bytearray(jpeg)
    dc_only[sos + 8] = 0  # Se 0 in a sequential scan: it codes the whole spectrum all the same
    assert jpeg_dct.parse(bytes(dc_only)) is not None


def test_a_damaged_segment_does_not_decode_or_does_not_come_back():
    jpeg = lossy_jpeg(12, shape=(64, 64))
    scan = jpeg_dct.parse(jpeg)
    original = jpeg_dct.coefficients(jpeg, scan)
    for at in range(scan.segment_start, scan.segment_end, 97):
        damaged = bytearray(jpeg)
        damaged[at] ^= 0x5A
        damaged = bytes(damaged)
        scan2 = jpeg_dct.parse(damaged)
        if scan2 is None:
            continue
        blocks = jpeg_dct.coefficients(damaged, scan2)
        if blocks is not None:  # decodable garbage: written again only if it is what the bytes say
            assert (jpeg_dct.find_pad(damaged, scan2, blocks) is None) or not np.array_equal(blocks[0], original[0])
    truncated = jpeg[:scan.segment_start + 50] + b"\xff\xd9"
    assert jpeg_dct.coefficients(truncated, jpeg_dct.parse(truncated)) is None


def test_write_refuses_what_the_tables_cannot_code():
    jpeg = lossy_jpeg(8, shape=(16, 16))
    scan = jpeg_dct.parse(jpeg)
    blocks = jpeg_dct.coefficients(jpeg, scan)
    blocks[0][0, 0, 5] = 5000  # size category 13: beyond 8-bit's AC range
    assert jpeg_dct.write(blocks, scan) is None
    with pytest.raises(ValueError):
        jpeg_dct.write([blocks[0][:1, :1]], scan)
    with pytest.raises(ValueError):
        jpeg_dct.write(blocks * 2, scan)


def _colour(shape: tuple[int, int] = (128, 128)) -> np.ndarray:
    """Three different 8-bit channels of CT_small, cut to shape."""
    grey = ct_small(8)
    return np.ascontiguousarray(np.stack([grey, grey[::-1], grey.T], axis=-1)[:shape[0], :shape[1]])


@pytest.mark.parametrize("subsampling,factors", [("444", (1, 1)), ("422", (2, 1)), ("420", (2, 2)), ("411", (4, 1))])
@pytest.mark.parametrize("shape", [(128, 128), (77, 93), (9, 123)])
def test_colour_scans_interleaved_with_any_sampling_come_back(subsampling, factors, shape):
    jpeg = bytes(imagecodecs.jpeg8_encode(_colour(shape), level=85, subsampling=subsampling))
    scan = jpeg_dct.parse(jpeg)
    assert [(c.horizontal, c.vertical) for c in scan.components] == [factors, (1, 1), (1, 1)]
    mcu_rows, mcu_cols = -(-shape[0] // (8 * factors[1])), -(-shape[1] // (8 * factors[0]))
    assert scan.grids == [(mcu_rows * factors[1], mcu_cols * factors[0]), (mcu_rows, mcu_cols), (mcu_rows, mcu_cols)]
    blocks = jpeg_dct.coefficients(jpeg, scan)
    assert [b.shape[:2] for b in blocks] == scan.grids
    assert jpeg_dct.find_pad(jpeg, scan, blocks) == 1
    # each component's blocks where they lie in the image: the luma DCs are the 8x8 means of the luma libjpeg
    # decodes, as far as the quantisation of the DC allows
    rgb = imagecodecs.jpeg8_decode(jpeg).astype(np.float64)
    y = 0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]
    rows, cols = shape[0] // 8, shape[1] // 8
    means = y[:rows * 8, :cols * 8].reshape(rows, 8, cols, 8).mean(axis=(1, 3))
    dc = blocks[0][:rows, :cols, 0] * scan.components[0].quant[0] / 8 + 128
    assert np.abs(dc - means).max() < scan.components[0].quant[0] / 2 + 3


@pytest.mark.parametrize("interval,pad", [(1, 1), (3, 1), (5, 0)])
def test_restart_intervals_count_mcus_as_libjpeg_does(interval, pad):
    jpeg = bytes(imagecodecs.jpeg8_encode(_colour((40, 72)), level=90, subsampling="420"))
    restarted = _with_restarts(jpeg, interval, pad)
    assert np.array_equal(imagecodecs.jpeg8_decode(restarted), imagecodecs.jpeg8_decode(jpeg))
    scan = jpeg_dct.parse(restarted)
    blocks = jpeg_dct.coefficients(restarted, scan)
    assert all(np.array_equal(a, b) for a, b in zip(blocks, jpeg_dct.coefficients(jpeg, jpeg_dct.parse(jpeg))))
    assert jpeg_dct.find_pad(restarted, scan, blocks) == pad


def test_a_scan_of_some_of_the_frames_components_is_refused():
    jpeg = bytearray(imagecodecs.jpeg8_encode(_colour((16, 16)), level=90))
    sos = jpeg.index(b"\xff\xda")
    jpeg[sos + 5] = 9  # a component the frame does not have
    assert jpeg_dct.parse(bytes(jpeg)) is None


@settings(max_examples=int(os.environ.get("MEDCODEC_FUZZ_EXAMPLES", "60")), deadline=None, derandomize=True)
@given(data=st.data())
def test_damaged_colour_jpegs_are_refused_or_read_never_raising(data):
    """Bytes changed anywhere in a colour JPEG (header, tables, segment): parse gives a scan or None,
    coefficients blocks or None, and a segment written again is the frame's only where it is."""
    if not _FUZZ_JPEG:
        _FUZZ_JPEG.append(bytes(imagecodecs.jpeg8_encode(_colour((24, 40)), level=80, subsampling="420")))
    jpeg = bytearray(_FUZZ_JPEG[0])
    for _ in range(data.draw(st.integers(1, 4))):
        jpeg[data.draw(st.integers(2, len(jpeg) - 1))] = data.draw(st.integers(0, 255))
    damaged = bytes(jpeg)
    scan = jpeg_dct.parse(damaged)
    if scan is None:
        return
    blocks = jpeg_dct.coefficients(damaged, scan)
    if blocks is None:
        return
    assert [b.shape[:2] for b in blocks] == scan.grids
    pad = jpeg_dct.find_pad(damaged, scan, blocks)
    if pad is not None:
        assert jpeg_dct.write(blocks, scan, pad) == damaged[scan.segment_start:scan.segment_end]


_FUZZ_JPEG: list[bytes] = []


@pytest.mark.parametrize("counts,symbols", [([0] * 14 + [45, 255], 300),  # more than 256 symbols
                                             ([3] + [0] * 15, 3)])  # three codes of one bit
def test_huffman_tables_beyond_their_code_space_are_refused(counts, symbols):
    jpeg = bytes(imagecodecs.jpeg8_encode(_colour((24, 40)), level=80, subsampling="420"))
    table = bytes([0x11]) + bytes(counts) + bytes(k % 256 for k in range(symbols))
    sos = jpeg.index(b"\xff\xda")
    bad = jpeg[:sos] + b"\xff\xc4" + (len(table) + 2).to_bytes(2, "big") + table + jpeg[sos:]
    assert jpeg_dct.parse(bad) is None
