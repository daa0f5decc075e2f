"""entropy.jpeg_dct: sequential Huffman JPEG scans to coefficients and written again, bit for bit."""

import imagecodecs
import numpy as np
import pytest

from jpegs import ct_small, lossy_jpeg

from medcodec.entropy import jpeg_dct


@pytest.mark.parametrize("bits,level,shape,optimize", [
    (12, 90, None, False), (12, 75, (37, 53), True), (12, 99, (8, 8), False), (12, 50, (1, 130), False),
    (8, 85, (61, 45), False), (8, 95, None, True)])
def test_the_segment_comes_back_from_its_coefficients(bits, level, shape, optimize):
    jpeg = lossy_jpeg(bits, level, shape=shape, optimize=optimize)
    scan = jpeg_dct.parse(jpeg)
    assert scan is not None and scan.precision == bits and scan.restart_interval == 0
    assert len(scan.quant) == 64 and min(scan.quant) >= 1  # the DQT table, zigzag order
    blocks = jpeg_dct.coefficients(jpeg, scan)
    height, width = ct_small(bits, shape=shape).shape
    assert blocks.shape == ((height + 7) // 8, (width + 7) // 8, 64)
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
    assert np.array_equal(blocks, jpeg_dct.coefficients(jpeg, jpeg_dct.parse(jpeg)))
    assert jpeg_dct.find_pad(restarted, scan, blocks) == pad


@pytest.mark.parametrize("options", [{"lossless": True}, {"colorspace": "rgb"}])
def test_what_it_does_not_write_is_refused(options):
    samples = ct_small(8)
    if options.get("colorspace"):
        samples = np.stack([samples, samples[::-1], samples.T], axis=-1)
    assert jpeg_dct.parse(bytes(imagecodecs.jpeg8_encode(samples, **options))) is None
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
            assert (jpeg_dct.find_pad(damaged, scan2, blocks) is None) or not np.array_equal(blocks, original)
    truncated = jpeg[:scan.segment_start + 50] + b"\xff\xd9"
    assert jpeg_dct.coefficients(truncated, jpeg_dct.parse(truncated)) is None


def test_write_refuses_what_the_tables_cannot_code():
    jpeg = lossy_jpeg(8, shape=(16, 16))
    scan = jpeg_dct.parse(jpeg)
    blocks = jpeg_dct.coefficients(jpeg, scan)
    blocks[0, 0, 5] = 5000  # size category 13: beyond 8-bit's AC range
    assert jpeg_dct.write(blocks, scan) is None
    with pytest.raises(ValueError):
        jpeg_dct.write(blocks[:1, :1], scan)
