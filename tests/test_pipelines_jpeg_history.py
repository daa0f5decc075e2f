"""JPEG history: a plane decoded from a JPEG is recovered as that JPEG's coefficients, decodes exactly
(with a correction where pixels were changed after decoding), and other planes are left alone."""

import io

import imagecodecs
import numpy as np
import pytest
from PIL import Image

from medcodec.container.format import SectionKind
from medcodec.errors import CorruptStreamError, ModelMismatchError
from medcodec.pipelines import jpeg_history
from medcodec.pipelines import get_method
from medcodec.pipelines.base import Stream
from medcodec.pipelines.classical import ClassicalMethod
from medcodec.pipelines.jpeg_history import (JpegHistoryMethod, block_dct, choose_table, estimate_table, ijg_table,
                                             recover)

RNG = np.random.default_rng(11)


def _scene(height: int, width: int) -> np.ndarray:
    y, x = np.mgrid[0:height, 0:width]
    image = 110 + 70 * np.sin(x / 9.0) * np.cos(y / 13.0) + RNG.normal(0, 6, (height, width))
    image[: height // 4] = 0  # a black border: decoded ringing is clamped there
    return np.clip(image, 0, 255).astype(np.uint8)


def _once_jpeg(height: int, width: int, quality: int) -> np.ndarray:
    return imagecodecs.jpeg8_decode(imagecodecs.jpeg8_encode(_scene(height, width), level=quality)).astype(np.uint16)


def _bytes(streams) -> int:
    return sum(len(s.payload) for s in streams)


@pytest.mark.parametrize("height,width,quality", [(64, 64, 75), (77, 101, 50), (130, 96, 92), (16, 200, 30)])
def test_once_jpeg_plane_is_recovered_exactly_and_small(height, width, quality):
    plane = _once_jpeg(height, width, quality)
    found = JpegHistoryMethod().encode_alternatives(plane, 8)
    assert sorted(name for name, _ in found) == ["jpeg", "jpeg-dct"]  # transcoded by JPEG-XL, or by medcodec
    for name, streams in found:
        assert all(s.kind == SectionKind.METHOD_STREAM for s in streams)
        np.testing.assert_array_equal(get_method(name).decode(streams, plane.shape, 8), plane)
        assert _bytes(streams) < 0.8 * _bytes(ClassicalMethod(effort=7).encode(plane, 8))


def test_the_quantisation_table_is_found():
    plane = _once_jpeg(96, 128, 75)
    table, on_grid = choose_table(block_dct(plane), plane)
    np.testing.assert_array_equal(table, ijg_table(75))
    assert on_grid > 0.9


def test_a_non_ijg_table_is_estimated_from_the_coefficients():
    """Encoders with their own tables (here Pillow given one) are recovered too."""
    table = (np.arange(64) % 13 + 3).astype(np.int64)  # natural order, nothing like IJG's
    buffer = io.BytesIO()
    Image.fromarray(_scene(120, 136)).save(buffer, "JPEG", qtables=[table.tolist()])
    plane = np.asarray(Image.open(io.BytesIO(buffer.getvalue()))).astype(np.uint16)
    dct = block_dct(plane)
    np.testing.assert_array_equal(choose_table(dct, plane)[0], table)
    method = JpegHistoryMethod()
    streams = method.encode(plane, 8)
    np.testing.assert_array_equal(method.decode(streams, plane.shape, 8), plane)
    assert _bytes(streams) < 0.8 * _bytes(ClassicalMethod(effort=7).encode(plane, 8))
    assert estimate_table(block_dct(RNG.integers(0, 256, (64, 64))).reshape(-1, 64)) is None


def test_pixels_changed_after_decoding_go_in_the_correction():
    plane = _once_jpeg(80, 88, 85)
    plane[40, 10:20] = 255 - plane[40, 10:20]  # e.g. a burned-in annotation
    method = JpegHistoryMethod()
    streams = method.encode(plane, 8)
    assert [s.index for s in streams] == [0, 1]
    np.testing.assert_array_equal(method.decode(streams, plane.shape, 8), plane)


@pytest.mark.parametrize("plane,bits", [
    (RNG.integers(0, 256, (64, 64)).astype(np.uint16), 8),  # noise
    (_scene(64, 64).astype(np.uint16), 8),  # the same scene, never JPEG-coded
    (_once_jpeg(64, 64, 75) * 16, 12),  # not 8-bit
    (_once_jpeg(8, 64, 75), 8),  # too small to tell
])
def test_other_planes_have_no_history(plane, bits):
    method = JpegHistoryMethod()
    assert recover(plane, bits) is None and method.encode_alternatives(plane, bits) == []
    with pytest.raises(ValueError, match="no JPEG history"):
        method.encode(plane, bits)


def test_damaged_or_foreign_streams_are_refused():
    plane = _once_jpeg(48, 40, 75)
    method = JpegHistoryMethod()
    streams = method.encode(plane, 8)
    other = method.encode(_once_jpeg(48, 48, 75), 8)
    bad = [
        ([Stream(SectionKind.METHOD_STREAM, 0, b"not a JPEG-XL stream")], plane.shape, 8),
        (other, plane.shape, 8),  # a JPEG of another size
        (streams, plane.shape, 12),
        ([], plane.shape, 8),
        (streams + [Stream(SectionKind.METHOD_STREAM, 2, b"x")], plane.shape, 8),
        (streams + [Stream(SectionKind.METHOD_STREAM, 1, b"\x01garbage")], plane.shape, 8),
    ]
    for case_streams, shape, bits in bad:
        with pytest.raises(CorruptStreamError):
            method.decode(case_streams, shape, bits)


def test_registered_without_weights():
    method = get_method("jpeg")
    assert isinstance(method, JpegHistoryMethod) and method.model_id == ""


def test_a_decoder_that_is_not_islow_is_never_relied_on(monkeypatch):
    """An IDCT that rounds otherwise: the encoder offers no jpeg frame, the decoder refuses to decode one."""
    plane = _once_jpeg(64, 72, 75)
    streams = JpegHistoryMethod().encode(plane, 8)
    real = imagecodecs.jpeg8_decode

    def off_by_one(data, *args, **kwargs):
        out = real(data, *args, **kwargs).astype(np.int16)
        out[0, 0] = (out[0, 0] + 1) % 256
        return out.astype(np.uint8)

    monkeypatch.setattr(jpeg_history.imagecodecs, "jpeg8_decode", off_by_one)
    jpeg_history.installed_decoder_is_islow.cache_clear()
    try:
        assert recover(plane, 8) is None
        with pytest.raises(ModelMismatchError, match="islow"):
            JpegHistoryMethod().decode(streams, plane.shape, 8)
    finally:
        monkeypatch.undo()
        jpeg_history.installed_decoder_is_islow.cache_clear()
    np.testing.assert_array_equal(JpegHistoryMethod().decode(streams, plane.shape, 8), plane)


def _cut_jpeg(height: int, width: int, quality: int, top: int, left: int) -> np.ndarray:
    """A plane cut out of a decoded JPEG at (top, left): its block edges off the grid from (0, 0)."""
    return _once_jpeg(height + top, width + left, quality)[top:, left:]


@pytest.mark.parametrize("top,left", [(3, 5), (0, 2), (7, 0), (1, 1)])
def test_the_block_grid_of_a_cut_plane_is_found(top, left):
    assert jpeg_history.grid_padding(_cut_jpeg(96, 104, 75, top, left)) == (top, left)  # the rows cut off


@pytest.mark.parametrize("kind", ["aligned", "noise", "never JPEG-coded", "too small"])
def test_no_cut_where_the_grid_is_at_the_origin_or_none_shows(kind):
    plane = {"aligned": lambda: _once_jpeg(96, 104, 75), "noise": lambda: RNG.integers(0, 256, (64, 64)),
             "never JPEG-coded": lambda: _scene(64, 80), "too small": lambda: _once_jpeg(12, 64, 75)}[kind]()
    assert jpeg_history.grid_padding(plane.astype(np.uint16)) == (0, 0)


@pytest.mark.parametrize("height,width,quality,top,left",
                         [(96, 104, 75, 3, 5), (117, 91, 70, 6, 1), (80, 200, 85, 0, 4)])
def test_a_plane_cut_off_the_grid_is_recovered_as_part_of_a_larger_jpeg(height, width, quality, top, left):
    plane = _cut_jpeg(height, width, quality, top, left)
    found = JpegHistoryMethod().encode_alternatives(plane, 8)
    streams = next(s for n, s in found if n == "jpeg-crop")  # smallest first
    np.testing.assert_array_equal(get_method("jpeg-crop").decode(streams, plane.shape, 8), plane)
    aligned = [s for n, s in found if n == "jpeg"]
    assert not aligned or _bytes(streams) < _bytes(aligned[0])
    assert found[0][0] in ("jpeg-crop", "jpeg-dct")  # the cut JPEG's coefficients, however coded
    assert _bytes(streams) < 0.8 * _bytes(ClassicalMethod(effort=7).encode(plane, 8))


def test_a_cut_plane_is_coded_as_jpeg_crop_by_the_codec():
    from medcodec import codec

    plane = _cut_jpeg(64, 72, 75, 5, 2).astype(np.uint8)
    blob = codec.encode(plane, mode="fast")
    [method] = [f["method"] for f in codec.info(blob)["frames"]]
    assert method in ("jpeg-crop", "jpeg-dct")
    np.testing.assert_array_equal(codec.decode(blob).planes[0], plane)


def test_a_jpeg_crop_frame_whose_jpeg_is_not_0_to_7_larger_is_refused():
    method = get_method("jpeg-crop")
    plane = _cut_jpeg(48, 40, 75, 3, 3)
    streams = method.encode(plane, 8)
    for shape in [(plane.shape[0] - 6, plane.shape[1]), (plane.shape[0] + 1, plane.shape[1]),
                  (plane.shape[0], plane.shape[1] + 8)]:
        with pytest.raises(CorruptStreamError):
            method.decode(streams, shape, 8)
    with pytest.raises(CorruptStreamError):  # an aligned frame's decoder takes no larger JPEG
        get_method("jpeg").decode(streams, plane.shape, 8)


def _wrong_pixels_in_edge_blocks(plane: np.ndarray, padding: tuple[int, int]) -> tuple[int, int]:
    """(pixels the recovered JPEG gets wrong in the blocks the plane covers only in part, their count)."""
    wrong = plane.astype(np.int16) != recover(plane, 8, padding).decoded
    rows, cols = np.arange(plane.shape[0]) + padding[0], np.arange(plane.shape[1]) + padding[1]
    edge_rows = (rows < 8) | (rows >= (rows[-1] + 1) // 8 * 8)
    edge_cols = (cols < 8) | (cols >= (cols[-1] + 1) // 8 * 8)
    edge = edge_rows[:, None] | edge_cols[None, :]
    return int(wrong[edge].sum()), int(edge.sum())


@pytest.mark.parametrize("top,left,bottom,right", [(3, 5, 2, 6), (6, 1, 0, 0), (0, 0, 5, 3)])
def test_blocks_the_plane_covers_in_part_are_fitted_to_the_pixels_it_has(top, left, bottom, right, monkeypatch):
    """Cut on all four sides: the partial blocks' hidden pixels went on in the original, so replicating the
    edge gets many visible ones wrong; the integer least-squares fit finds coefficients that reproduce
    nearly all of them."""
    height, width = 90, 101
    plane = _once_jpeg(height + top + bottom, width + left + right, 75)[top:top + height, left:left + width]
    fitted, edge_pixels = _wrong_pixels_in_edge_blocks(plane, (top, left))
    with monkeypatch.context() as patch:
        patch.setattr(jpeg_history, "_refit_blocks", lambda plane, hidden, table, coefficients: coefficients)
        replicated, _ = _wrong_pixels_in_edge_blocks(plane, (top, left))
    assert replicated > 0.2 * edge_pixels
    assert fitted < min(replicated / 4, 0.08 * edge_pixels)  # a block with 2 of 8 rows left has many fits
    (name, streams), *_ = JpegHistoryMethod().encode_alternatives(plane, 8)
    np.testing.assert_array_equal(get_method(name).decode(streams, plane.shape, 8), plane)


@pytest.mark.parametrize("hidden_rows,share", [(1, 0.95), (3, 0.9), (5, 0.65)])
def test_integer_least_squares_finds_coefficients_that_reproduce_the_visible_pixels(hidden_rows, share):
    table = ijg_table(75).astype(np.float64)
    prior = 4.0 / (1 + np.arange(64)) + jpeg_history.PRIOR_FLOOR  # low frequencies larger, as in pictures
    truth = np.round(RNG.normal(0, np.sqrt(prior), (200, 64)))
    truth[:, 0] = RNG.integers(-12, 12, 200)
    pixels = np.round(jpeg_history._inverse_dct(truth * table))
    equations = np.ones((200, 8, 8), bool)
    equations[:, :hidden_rows] = False
    equations = equations.reshape(200, 64)
    candidates = jpeg_history._integer_least_squares(equations, pixels, table, prior)
    assert candidates.shape == (200, jpeg_history.SEARCH_WIDTH, 64)
    reproduced = np.round(jpeg_history._inverse_dct(candidates[:, 0] * table))
    exact = ((reproduced == pixels) | ~equations).all(axis=1)
    assert exact.mean() > share  # with 3 rows of 8 seen, 24 equations for 64 unknowns: other fits exist


def test_blocks_are_refitted_in_chunks_with_the_same_result(monkeypatch):
    """The search runs REFIT_CHUNK blocks at a time (its arrays take ~85 KB a block); the chunks change
    nothing but the memory it needs."""
    plane = _once_jpeg(90 + 5, 101 + 3, 75)[5:, 3:]
    whole = recover(plane, 8, (5, 3))
    monkeypatch.setattr(jpeg_history, "REFIT_CHUNK", 7)
    chunked = recover(plane, 8, (5, 3))
    assert chunked.jpeg == whole.jpeg


def test_a_search_that_fails_numerically_leaves_the_rounded_coefficients(monkeypatch):
    plane = _cut_jpeg(48, 56, 75, 3, 2)

    def singular(*args):
        raise np.linalg.LinAlgError("Matrix is not positive definite")

    monkeypatch.setattr(jpeg_history, "_integer_least_squares", singular)
    (name, streams), *_ = JpegHistoryMethod().encode_alternatives(plane, 8)
    np.testing.assert_array_equal(get_method(name).decode(streams, plane.shape, 8), plane)


@pytest.mark.parametrize("top,left", [(0, 0), (3, 5)])
def test_coefficients_coded_by_medcodec_decode_exactly_with_the_cut_in_the_stream(top, left):
    plane = _cut_jpeg(77, 101, 70, top, left)
    plane[30, 10:40] = 255  # drawn after decoding: a correction plane too
    streams = get_method("jpeg-dct").encode(plane, 8)
    assert [s.index for s in streams] == [0, 1] and streams[0].payload[:2] == bytes([top, left])
    np.testing.assert_array_equal(get_method("jpeg-dct").decode(streams, plane.shape, 8), plane)


def test_medcodecs_coefficient_coding_beats_jpeg_xls_transcoding_on_a_small_plane():
    """JPEG-XL keeps what gives the JPEG file back (a few hundred bytes); this frame needs only pixels."""
    plane = _once_jpeg(64, 72, 80)
    jxl, dct = get_method("jpeg").encode(plane, 8), get_method("jpeg-dct").encode(plane, 8)
    assert _bytes(dct) < _bytes(jxl) - 100


def test_a_jpeg_dct_frame_needs_no_jpeg_decoder(monkeypatch):
    plane = _once_jpeg(48, 56, 75)
    streams = get_method("jpeg-dct").encode(plane, 8)
    monkeypatch.setattr(jpeg_history, "installed_decoder_is_islow", lambda: False)
    monkeypatch.setattr(imagecodecs, "jpeg8_decode", None)
    np.testing.assert_array_equal(get_method("jpeg-dct").decode(streams, plane.shape, 8), plane)


def test_damaged_jpeg_dct_streams_are_refused():
    plane = _once_jpeg(48, 56, 75)
    method = get_method("jpeg-dct")
    payload = method.encode(plane, 8)[0].payload
    for bad in [payload[:40], bytes([8]) + payload[1:], payload[:1] + bytes([9]) + payload[2:],
                payload[:2] + b"\x00" + payload[3:], payload[:-3], payload + b"\x00\x00"]:
        with pytest.raises(CorruptStreamError):
            method.decode([Stream(SectionKind.METHOD_STREAM, 0, bad)], plane.shape, 8)
