"""JPEG history: an 8-bit plane that is a decoded JPEG, coded as that JPEG's coefficients.

Why: many archived 8-bit images were JPEG files once (a modality or a PACS stored lossy JPEG, a
migration decompressed it, the archive keeps the pixels losslessly; two of the corpus's five 8-bit
folders went through JPEG upstream). Such a plane is, block by block, the inverse DCT of a few
quantised coefficients - far less information than its pixels suggest. Predictors, JPEG-XL included,
see only the pixels and code them at their full apparent entropy; the coefficients are what to code.

How, on the encoder's side (``recover``):
* the 8x8 blocks' DCT (orthonormal, as JPEG's) on the grid starting at (0, 0), edge blocks padded by
  replicating the last row and column, as a JPEG encoder pads;
* the quantisation table: of the IJG tables (the standard's luminance table scaled by quality 1..95,
  what libjpeg, libjpeg-turbo, Pillow and most software write) and one estimated coefficient by
  coefficient (for other encoders' tables), the one that explains a sample of the blocks in the fewest
  bits; no table putting enough blocks on its grid means no JPEG history;
* the coefficients, rounded; where the rounded ones get a pixel wrong (clamped samples, rounding noise
  across a step's midpoint) or the plane covers the block only in part (its edges), searched again as
  integer least squares on the pixels the block has (``_refit_blocks``);
* written as a baseline JPEG (``entropy.jpeg_baseline``), decoded by libjpeg-turbo (its integer
  "islow" IDCT, the same in C and SIMD; checked against medcodec's own statement of that arithmetic,
  ``entropy.jpeg_idct``, before a file depends on it), and the pixels it gets wrong kept as a correction
  plane (usually a few dozen: pixels changed after decoding, blocks no search reproduced).

A plane cut out of a decoded JPEG at an offset that is not a multiple of 8 (the train split's lung CTs:
screen crops of JPEG slices) has its blocks' boundaries elsewhere: ``grid_padding`` finds them from where
the pixel differences across rows and columns jump (block edges), and the plane is recovered as the
bottom-right part of a JPEG up to 7 rows and columns larger, whose top and left partial blocks are
fitted to the rows and columns the plane has, as the bottom and right ones are. Such a frame is method
"jpeg-crop" (format 2.18): the JPEG's declared size, less the frame's, is the cut.

Streams: METHOD_STREAM 0, the JPEG losslessly recompressed by JPEG-XL (its JPEG transcoding: the
decoder gets the exact JPEG file back) or, in a "jpeg-dct" frame (format 2.19), the cut, the table and
the coefficients coded by ``entropy.jpeg_coefficients`` (the decoder computes the samples itself, no
JPEG file in between); METHOD_STREAM 1 (only when some pixel differs), the correction plane
``pixel - decoded + 256`` (9 bits) in the classical method's PLANE layout. The codec keeps the smallest
of these codings and the others', and the decoder's result is checked against the plane's checksum
like every other method's.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from typing import Sequence

import imagecodecs
import numpy as np

from medcodec.container.format import SectionKind
from medcodec.entropy import jpeg_baseline, jpeg_coefficients, jpeg_idct
from medcodec.errors import CorruptStreamError, ModelMismatchError
from medcodec.pipelines.base import Method, Stream, check_decoded, check_plane
from medcodec.pipelines.classical import ClassicalMethod

_log = logging.getLogger(__name__)

# ITU T.81 Annex K.1 luminance table, natural order; IJG scales it by quality
STANDARD_LUMINANCE = np.array([
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55,
    14, 13, 16, 24, 40, 57, 69, 56, 14, 17, 22, 29, 51, 87, 80, 62,
    18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99,
])
QUALITIES = range(1, 96)  # above 95 the table is mostly ones: any image fits it, nothing to gain
SAMPLE_BLOCKS = 2048  # blocks the table is chosen on (an even stride through the plane)
GRID_TOLERANCE = 1.25  # |coefficient - nearest multiple of q| of a block on the grid (IDCT rounding noise)
MIN_ON_GRID = 0.25  # share of sampled blocks on the chosen table's grid, below which: no JPEG history
CORRECTION_OFFSET = 256  # the correction plane stores pixel - decoded + 256, 9 bits
MIN_SIDE = 16
STEPS = np.arange(2, 256)  # quantisation steps an estimated table may have (baseline: 1..255)
STEP_TOLERANCE = 0.6  # per coefficient: |value - nearest multiple of the step| of a value on its grid
EVIDENCE = 16  # clearly non-zero values a coefficient's step is read from
AGREEMENT = 0.8  # share of them on the step's grid
BLOCK_EDGE_CONTRAST = 1.1  # how far the block edges' phase must stand above the median phase (grid_padding)
SEARCH_WIDTH = 8  # candidate coefficient vectors kept through a block's search (_integer_least_squares)
PIXEL_NOISE = 1 / 12  # variance of a pixel's rounding to an integer: the refitted blocks' equations' noise
PRIOR_FLOOR = 0.02  # added to each coefficient's mean square: no coefficient is held to exactly 0
REFIT_CHUNK = 2048  # blocks searched at once: ~85 KB each while searched, so a large plane's peak stays small
WRONG_PIXEL_BITS = 8.0  # what a pixel the correction plane must carry is taken to cost (choose_table's estimate)


def ijg_table(quality: int) -> np.ndarray:
    """libjpeg's jpeg_set_quality table (baseline: entries clamped to 1..255), natural order."""
    scale = 5000 // quality if quality < 50 else 200 - 2 * quality
    return np.clip((STANDARD_LUMINANCE * scale + 50) // 100, 1, 255)


def _dct_matrix() -> np.ndarray:
    k = np.arange(8)
    m = np.cos((2 * k[None, :] + 1) * k[:, None] * np.pi / 16) * np.sqrt(2 / 8)
    m[0] /= np.sqrt(2)
    return m


_DCT = _dct_matrix()


def _blocks(plane: np.ndarray) -> np.ndarray:
    """[blocks, 64] of the plane in raster order of 8x8 blocks, edge blocks padded by replication."""
    height, width = plane.shape
    rows, cols = -(-height // 8), -(-width // 8)
    padded = np.pad(plane.astype(np.float64), ((0, rows * 8 - height), (0, cols * 8 - width)), mode="edge")
    return padded.reshape(rows, 8, cols, 8).transpose(0, 2, 1, 3).reshape(rows * cols, 64)


def block_dct(plane: np.ndarray) -> np.ndarray:
    """[block rows, block columns, 64] orthonormal DCT of (plane - 128), edge blocks padded by replication."""
    rows, cols = -(-plane.shape[0] // 8), -(-plane.shape[1] // 8)
    blocks = (_blocks(plane) - 128).reshape(-1, 8, 8)
    return (_DCT @ blocks @ _DCT.T).reshape(rows, cols, 64)


def _inverse_dct(coefficients: np.ndarray) -> np.ndarray:
    """[blocks, 64] -> [blocks, 64]: the float inverse of ``block_dct``'s transform (before the +128)."""
    return (_DCT.T @ coefficients.reshape(-1, 8, 8) @ _DCT).reshape(-1, 64)


def estimate_table(sample: np.ndarray) -> np.ndarray | None:
    """A quantisation table read off the coefficients themselves, for JPEGs not written with IJG tables:
    per coefficient, the coarsest step on whose grid nearly all of its clearly non-zero values lie
    (within STEP_TOLERANCE, tighter than the per-block test: a step one off the true one would pass
    that); where too few values are non-zero to tell, the nearest estimated entry in zigzag order.
    None when the two lowest frequencies show no step above 1 (no JPEG history of this kind)."""
    steps = np.zeros(64, np.int64)
    for k in [1, 8] + [k for k in range(64) if k not in (1, 8)]:
        values = np.abs(sample[:, k])
        values = values[values >= 1.0]
        candidates = STEPS[STEPS <= 2 * values.max(initial=0.0)]
        if values.size >= EVIDENCE and candidates.size:
            q = candidates[:, None]
            clear = values[None, :] >= q / 2
            on_grid = clear & (np.abs(values[None, :] - q * np.round(values[None, :] / q)) <= STEP_TOLERANCE)
            fits = (clear.sum(axis=1) >= EVIDENCE) & (on_grid.sum(axis=1) >= AGREEMENT * clear.sum(axis=1))
            steps[k] = candidates[fits].max() if fits.any() else 1
        if k == 8 and steps[1] <= 1 and steps[8] <= 1:
            return None
    known = [i for i in range(64) if steps[jpeg_baseline.ZIGZAG[i]] > 0]
    for i in range(64):
        k = jpeg_baseline.ZIGZAG[i]
        if steps[k] == 0:
            steps[k] = steps[jpeg_baseline.ZIGZAG[min(known, key=lambda j: abs(j - i))]]
    steps[0] = max(steps[0], 1)
    return steps


def _coefficient_bits(coefficients: np.ndarray) -> np.ndarray:
    """[..., 64] -> [...]: an estimate of what a block's quantised coefficients cost, log2(1 + 2|c|) bits each
    (choose_table's description length, and _refit_blocks' choice between candidates)."""
    return np.log2(1 + 2 * np.abs(coefficients)).sum(axis=-1)


def choose_table(dct: np.ndarray, plane: np.ndarray) -> tuple[np.ndarray, float] | None:
    """(quantisation table, share of sampled blocks on its grid) that explains the plane in the fewest
    bits, or None when no table puts enough blocks with some detail on its grid. Candidates: the IJG
    tables (the standard's luminance table scaled by quality, what libjpeg, libjpeg-turbo, Pillow and
    most software write) and a table estimated coefficient by coefficient (``estimate_table``).

    A table finer than the true one (entries dividing it) also puts every block on its grid, and a
    slightly coarser one most: so the choice is by description length on a sample of blocks, an
    estimate of the coefficients' bits (``_coefficient_bits``) plus WRONG_PIXEL_BITS per pixel their float
    inverse DCT gets wrong, among the tables with at least half as many blocks on their grid as the best.
    """
    flat = dct.reshape(-1, 64)
    # flat blocks lie on every grid: only blocks with some detail are evidence
    detailed = np.flatnonzero(np.abs(flat[:, 1:]).max(axis=1) > 2 * GRID_TOLERANCE)
    if detailed.size == 0:
        return None
    index = detailed[np.linspace(0, detailed.size - 1, min(SAMPLE_BLOCKS, detailed.size)).astype(np.int64)]
    sample = flat[index]
    pixels = _blocks(plane)[index]
    tables = [ijg_table(quality) for quality in QUALITIES]
    estimated = estimate_table(sample)
    if estimated is not None:
        tables.append(estimated)
    shares = [float(np.mean(np.all(np.abs(sample - t * np.round(sample / t)) <= GRID_TOLERANCE, axis=1)))
              for t in tables]
    if max(shares) < MIN_ON_GRID:
        return None

    def description_bits(table: np.ndarray) -> float:
        quantised = np.round(sample / table)
        decoded = np.clip(np.round(_inverse_dct(quantised * table) + 128), 0, 255)
        return float(_coefficient_bits(quantised).sum()) + WRONG_PIXEL_BITS * np.count_nonzero(decoded != pixels)

    table, share = min(((t, s) for t, s in zip(tables, shares) if s >= max(shares) / 2),
                       key=lambda candidate: description_bits(candidate[0]))
    return table, share


@functools.lru_cache(maxsize=1)
def installed_decoder_is_islow() -> bool:
    """Whether the installed JPEG decoder gives ``jpeg_idct``'s samples on a fixed set of blocks (smooth,
    textured and clamped ones): checked once per process before any jpeg frame is decoded."""
    rng = np.random.default_rng(20261201)
    table = ijg_table(60)
    coefficients = np.round(rng.laplace(0, 2, (4, 4, 64))).astype(np.int64)  # samples -440..306: clamped both ways
    coefficients[rng.random((4, 4, 64)) < 0.6] = 0
    coefficients[..., 0] = rng.integers(-60, 60, (4, 4))
    reference = jpeg_idct.raster(jpeg_idct.inverse_dct(coefficients, table), 32, 32)
    try:
        decoded = imagecodecs.jpeg8_decode(jpeg_baseline.write(coefficients, table, 32, 32))
    except Exception:  # noqa: BLE001 - no usable decoder is a decoder that is not islow
        return False
    return bool(np.array_equal(decoded, reference))


def decode_jpeg(jpeg: bytes, shape: tuple[int, int]) -> np.ndarray:
    """libjpeg-turbo's decoding of a grey baseline JPEG, after checking its declared size (a hostile
    stream must not make the decoder allocate more than the frame it claims to be)."""
    if _jpeg_shape(jpeg) != tuple(shape):
        raise CorruptStreamError(f"jpeg frame: the JPEG is not the frame's {shape[0]}x{shape[1]} grey image")
    try:
        plane = imagecodecs.jpeg8_decode(jpeg)
    except Exception as exc:  # imagecodecs raises its own Jpeg8Error on garbage
        raise CorruptStreamError(f"jpeg frame: JPEG stream cannot be decoded ({exc})") from exc
    if plane.shape != tuple(shape):
        raise CorruptStreamError("jpeg frame: the JPEG decodes to another size than it declares")
    return plane


def _jpeg_shape(jpeg: bytes) -> tuple[int, int] | None:
    """(height, width) of a one-component JPEG's frame header, or None when there is none."""
    pos = 2
    while pos + 4 <= len(jpeg) and jpeg[pos] == 0xFF:
        marker, length = jpeg[pos + 1], int.from_bytes(jpeg[pos + 2:pos + 4], "big")
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            if pos + 10 > len(jpeg) or jpeg[pos + 9] != 1:
                return None
            return int.from_bytes(jpeg[pos + 5:pos + 7], "big"), int.from_bytes(jpeg[pos + 7:pos + 9], "big")
        pos += 2 + length
    return None


@dataclass(frozen=True)
class Recovery:
    jpeg: bytes  # the baseline JPEG of the recovered coefficients
    decoded: np.ndarray  # what libjpeg-turbo decodes it to
    on_grid: float  # share of the sampled blocks on the table's grid
    coefficients: np.ndarray  # [block rows, block columns, 64] quantised, natural order
    table: np.ndarray  # [64] quantisation table, natural order
    padding: tuple[int, int] = (0, 0)  # rows and columns of the JPEG above and left of the plane


def grid_padding(plane: np.ndarray) -> tuple[int, int]:
    """(rows, columns) to add at the top and left so that the plane's 8x8 block edges, if it shows any,
    fall on a JPEG grid from (0, 0); (0, 0) where they already do or where none shows. Per axis and phase
    (row index mod 8), the median over that phase's rows of their mean |difference| from the next row
    (columns likewise); a JPEG's block edges make one phase stand out (train lung CT crops: 1.2-1.4 x
    the median phase) and the median keeps one strong edge of the picture from passing for a grid."""
    padding = []
    for axis in (0, 1):
        steps = np.abs(np.diff(plane.astype(np.int32), axis=axis)).mean(axis=1 - axis)  # steps[i]: i -> i + 1
        if steps.size < 16:
            return 0, 0
        by_phase = np.array([np.median(steps[k::8]) for k in range(8)])
        edge = int(np.argmax(by_phase))
        if by_phase[edge] < BLOCK_EDGE_CONTRAST * np.median(by_phase):
            return 0, 0
        first_block = (edge + 1) % 8  # the first row (column) of a whole block
        padding.append((8 - first_block) % 8)
    return padding[0], padding[1]


def _may_have_history(plane: np.ndarray, bits: int) -> bool:
    """Only 8-bit planes of at least MIN_SIDE on a side are looked at."""
    return bits == 8 and min(plane.shape) >= MIN_SIDE


def recover(plane: np.ndarray, bits: int, padding: tuple[int, int] = (0, 0)) -> Recovery | None:
    """The plane's JPEG history, when it has one (8-bit planes of at least 16 x 16 only). padding: the
    rows and columns by which the JPEG extends above and left of the plane (``grid_padding``); the
    Recovery's ``decoded`` is the plane's part of its decoding."""
    if not _may_have_history(plane, bits):
        return None
    top, left = padding
    whole = np.pad(plane, ((top, 0), (left, 0)), mode="edge") if top or left else plane
    recovered = _recover_whole(whole, padding)
    if recovered is None or not (top or left):
        return recovered
    return Recovery(recovered.jpeg, recovered.decoded[top:, left:], recovered.on_grid, recovered.coefficients,
                    recovered.table, padding)


def _refit_blocks(plane: np.ndarray, hidden: tuple[int, int], table: np.ndarray,
                  coefficients: np.ndarray) -> np.ndarray:
    """The rounded coefficients [block rows, block columns, 64] with those of two kinds of block searched
    again: blocks the plane covers only in part (plane: the JPEG's whole area, its first hidden[0] rows
    and hidden[1] columns a jpeg-crop frame's cut; the grid also reaches past its bottom and right edges
    where its size is not a multiple of 8), and blocks whose rounded coefficients get a pixel wrong.

    Why: a partial block's pixels beyond the plane are the decoder's to throw away, and the replication
    that stands in for them is a poor guess of what the original JPEG's block held (its picture went
    on): the replicated block's coefficients get many of the visible pixels wrong (train lung CT crops:
    as many wrong pixels in their edge blocks as in all their whole blocks). A whole block's rounded DCT
    is wrong where samples were clamped (0 or 255 says only that the IDCT's value lay beyond) or where
    the pixels' rounding pushed a coefficient across its step's midpoint. The original coefficients
    reproduce the pixels the plane has, and they are small integers: so each such block's are searched
    as integer least squares (``_integer_least_squares``), the unclamped visible pixels as equations
    (their rounding to integers the noise) and a Gaussian prior per coefficient, its variance that
    coefficient's mean square over the plane's other blocks, which makes the problem well posed where
    fewer pixels than coefficients are seen. Of the search's candidates and the rounded coefficients,
    each block keeps the cheapest by choose_table's estimate (the coefficients' bits plus WRONG_PIXEL_BITS
    per visible pixel they get wrong, judged by the decoder's islow IDCT). The decoder is unchanged: it
    only ever reads a JPEG."""
    height, width = plane.shape
    rows, cols = coefficients.shape[:2]
    top, left = hidden
    visible = np.zeros((rows * 8, cols * 8), bool)
    visible[top:height, left:width] = True
    visible = visible.reshape(rows, 8, cols, 8).transpose(0, 2, 1, 3).reshape(rows, cols, 64)
    pixels = _blocks(plane).reshape(rows, cols, 64) - 128
    wrong = np.clip(jpeg_idct.descaled(coefficients, table), -128, 127) != pixels
    refit = ~visible.all(axis=2) | (visible & wrong).any(axis=2)
    if not refit.any():
        return coefficients
    others = coefficients[~refit] if (~refit).any() else coefficients.reshape(-1, 64)
    prior = (others.astype(np.float64) ** 2).mean(axis=0) + PRIOR_FLOOR
    mask, target = visible[refit], pixels[refit]
    fitted = coefficients.copy()
    fitted[refit] = np.concatenate([
        _cheapest_fit(coefficients[refit][i:i + REFIT_CHUNK], mask[i:i + REFIT_CHUNK], target[i:i + REFIT_CHUNK],
                      table, prior) for i in range(0, len(target), REFIT_CHUNK)])
    return fitted


def _cheapest_fit(rounded: np.ndarray, mask: np.ndarray, target: np.ndarray, table: np.ndarray,
                  prior: np.ndarray) -> np.ndarray:
    """[blocks, 64]: per block, the rounded coefficients or one of the search's candidates, whichever
    _refit_blocks' estimate finds cheapest. mask: the pixels the plane has; target: pixels - 128."""
    equations = mask & (target > -128) & (target < 127)  # a clamped sample is no equation
    try:
        searched = _integer_least_squares(equations, target, table, prior)
    except np.linalg.LinAlgError:  # the system is positive definite, but an encoder must not fail on rounding
        _log.warning("jpeg history: a block search failed numerically; its blocks keep their rounded coefficients")
        return rounded
    candidates = np.concatenate([rounded[:, None, :], searched.astype(np.int64)], axis=1)
    values = jpeg_idct.descaled(candidates, table)  # [blocks, 1 + SEARCH_WIDTH, 64]
    wrong = mask[:, None, :] & (np.clip(values, -128, 127) != target[:, None, :])
    cost = _coefficient_bits(candidates) + WRONG_PIXEL_BITS * wrong.sum(axis=2)
    # nothing baseline JPEG cannot hold, nor values on which libjpeg-turbo's builds disagree
    cost[(np.abs(candidates).max(axis=2) > jpeg_baseline.MAX_AC)
         | ~jpeg_idct.in_agreed_range(values).all(axis=2)] = np.inf
    return candidates[np.arange(len(target)), np.argmin(cost, axis=1)]


_IDCT_BASIS = np.kron(_DCT, _DCT).T  # [pixel, coefficient]: block pixels = _IDCT_BASIS @ coefficients


def _integer_least_squares(equations: np.ndarray, targets: np.ndarray, table: np.ndarray,
                           prior: np.ndarray) -> np.ndarray:
    """[blocks, SEARCH_WIDTH, 64] quantised coefficient vectors c per block, best first: those minimising
    sum over the block's equations [blocks, 64] (the pixels that constrain it) of
    (IDCT(c * table) - target)^2 / PIXEL_NOISE, plus sum c^2 / prior, searched as integer least squares
    are: the system's triangular factor (here the normal equations' Cholesky factor, a QR's R up to
    signs), then the unknowns fixed from the last to the first, each rounded to its conditional best and
    one either side, the SEARCH_WIDTH best partial vectors kept (a K-best Babai search). The last
    unknowns are the highest frequencies, mostly held to 0 by the prior, so the less certain low ones are
    decided last, knowing them."""
    blocks = len(targets)
    basis = _IDCT_BASIS * table[None, :]  # pixels of one unit of each quantised coefficient
    weighted = basis[None] * (equations / PIXEL_NOISE)[:, :, None]  # a pixel that is no equation weighs 0
    lower = np.linalg.cholesky(weighted.transpose(0, 2, 1) @ basis + np.diag(1 / prior))
    z = np.linalg.solve(lower, weighted.transpose(0, 2, 1) @ targets[:, :, None])[..., 0]
    r = lower.transpose(0, 2, 1)
    vectors = np.zeros((blocks, 1, 64))
    costs = np.zeros((blocks, 1))
    for j in range(63, -1, -1):
        diagonal = r[:, j, j][:, None]
        centre = (z[:, j, None] - (vectors[:, :, j + 1:] @ r[:, j, j + 1:, None])[..., 0]) / diagonal
        choices = np.round(centre)[:, :, None] + np.array([0.0, -1.0, 1.0])  # [blocks, width, 3]
        grown = costs[:, :, None] + (diagonal[:, :, None] * (centre[:, :, None] - choices)) ** 2
        grown = grown.reshape(blocks, -1)
        keep = np.argsort(grown, axis=1, kind="stable")[:, :SEARCH_WIDTH]
        parents = (np.arange(blocks)[:, None] * vectors.shape[1] + keep // 3).ravel()
        vectors = vectors.reshape(-1, 64)[parents].reshape(blocks, keep.shape[1], 64)
        vectors[:, :, j] = np.take_along_axis(choices.reshape(blocks, -1), keep, axis=1)
        costs = np.take_along_axis(grown, keep, axis=1)
    return vectors  # 3^64 paths: always SEARCH_WIDTH of them


def _recover_whole(plane: np.ndarray, hidden: tuple[int, int] = (0, 0)) -> Recovery | None:
    dct = block_dct(plane)
    chosen = choose_table(dct, plane)
    if chosen is None:
        return None
    table, on_grid = chosen
    coefficients = _refit_blocks(plane, hidden, table, np.round(dct / table).astype(np.int64))
    values = jpeg_idct.descaled(coefficients, table)  # the IDCT once: for the range and the reference
    if not jpeg_idct.agreed(values):  # where libjpeg-turbo's C and SIMD range limiting disagree: not a JPEG's
        return None
    try:
        jpeg = jpeg_baseline.write(coefficients, table, *plane.shape)
    except ValueError:  # a coefficient outside baseline JPEG's range: not a JPEG's
        return None
    decoded = decode_jpeg(jpeg, plane.shape)
    # The file will depend on the decoder's IDCT: only write it when the installed one is libjpeg's
    # islow to the bit (jpeg_idct), the arithmetic docs/FORMAT.md names.
    reference = jpeg_idct.raster(jpeg_idct.range_limit(values), *plane.shape)
    if not np.array_equal(decoded, reference):
        _log.warning("the installed JPEG decoder's IDCT differs from libjpeg's islow: JPEG history not used")
        return None
    return Recovery(jpeg, decoded, on_grid, coefficients, table)


class JpegHistoryMethod(Method):
    """An 8-bit plane as the coefficients of the JPEG it was decoded from, plus a correction plane."""

    name = "jpeg"
    cropped = False  # whether the JPEG may extend above and left of the plane (CroppedJpegHistoryMethod)

    def __init__(self, effort: int | Sequence[int] | None = None) -> None:
        """effort: the JPEG-XL effort(s) of the correction plane (the JPEG's transcoding has none)."""
        self.correction = ClassicalMethod(effort=effort)

    def encode(self, plane: np.ndarray, bits: int) -> list[Stream]:
        """The plane's streams in this method's coding (the smallest of the alternatives it names);
        ValueError when the plane shows no JPEG history this method codes (``encode_alternatives``, what
        the codec calls, offers every method's codings, or nothing)."""
        own = [streams for name, streams in self.encode_alternatives(plane, bits) if name == self.name]
        if not own:
            raise ValueError(f"the plane shows no JPEG history that method {self.name} codes")
        return own[0]

    def encode_alternatives(self, plane: np.ndarray, bits: int) -> list[tuple[str, list[Stream]]]:
        """The plane as a JPEG on the grid from (0, 0) ("jpeg") and, where its block edges lie elsewhere,
        as the part of a larger JPEG ("jpeg-crop"): each that shows JPEG history, its JPEG transcoded by
        JPEG-XL and its coefficients coded by medcodec ("jpeg-dct"), smallest first."""
        plane = check_plane(plane, bits)
        if not _may_have_history(plane, bits):
            return []
        found = []
        padding = grid_padding(plane)
        tries = [("jpeg", (0, 0))] + ([(CroppedJpegHistoryMethod.name, padding)] if padding != (0, 0) else [])
        for name, pad in tries:
            recovery = recover(plane, bits, pad)
            if recovery is not None:
                found.append((name, self._streams(plane, recovery)))
                found.append((JpegCoefficientsMethod.name,
                              self._with_correction(plane, recovery, _coefficient_stream(recovery))))
        return sorted(found, key=lambda alternative: sum(len(s.payload) for s in alternative[1]))

    def _streams(self, plane: np.ndarray, recovery: Recovery) -> list[Stream]:
        return self._with_correction(plane, recovery, imagecodecs.jpegxl_encode_jpeg(recovery.jpeg))

    def _with_correction(self, plane: np.ndarray, recovery: Recovery, jpeg_stream: bytes) -> list[Stream]:
        streams = [Stream(SectionKind.METHOD_STREAM, 0, jpeg_stream)]
        difference = plane.astype(np.int16) - recovery.decoded.astype(np.int16)
        if difference.any():
            correction = (difference + CORRECTION_OFFSET).astype(np.uint16)
            payload = self.correction.encode(correction, 9)[0].payload
            streams.append(Stream(SectionKind.METHOD_STREAM, 1, payload))
        return streams

    def decode(self, streams: Sequence[Stream], shape: tuple[int, int], bits: int) -> np.ndarray:
        payloads = {s.index: s.payload for s in streams if s.kind == SectionKind.METHOD_STREAM}
        if bits != 8 or 0 not in payloads or set(payloads) - {0, 1} or len(payloads) != len(streams):
            raise CorruptStreamError("jpeg frame: expected an 8-bit plane's JPEG stream and at most a correction")
        plane = self._decoded_jpeg(payloads[0], shape)
        if 1 in payloads:
            correction = self.correction.decode([Stream(SectionKind.PLANE_CLASSICAL, 0, payloads[1])], shape, 9)
            plane += correction.astype(np.int32) - CORRECTION_OFFSET
            if plane.min() < 0 or plane.max() > 255:
                raise CorruptStreamError("jpeg frame: corrected pixels fall outside 8 bits")
        return check_decoded(plane.astype(np.uint16), shape, bits, self.name)

    def _decoded_jpeg(self, stream: bytes, shape: tuple[int, int]) -> np.ndarray:
        """The frame's part [shape] of the JPEG that METHOD_STREAM 0 carries, decoded (int32)."""
        if not installed_decoder_is_islow():
            raise ModelMismatchError("this frame is a recovered JPEG, and the installed JPEG decoder's IDCT is not "
                                     "libjpeg's islow (medcodec/entropy/jpeg_idct.py): install imagecodecs with "
                                     "libjpeg-turbo to decode it")
        try:
            jpeg = imagecodecs.jpegxl_decode_jpeg(stream)
        except Exception as exc:  # imagecodecs raises JpegxlError on garbage
            raise CorruptStreamError(f"jpeg frame: JPEG-XL stream cannot be decoded ({exc})") from exc
        jpeg = bytes(jpeg)
        top, left = 0, 0
        if self.cropped:  # the JPEG's declared size, less the frame's, is where the frame was cut from it
            declared = _jpeg_shape(jpeg)
            if declared is None or not (0 <= declared[0] - shape[0] < 8 and 0 <= declared[1] - shape[1] < 8):
                raise CorruptStreamError(f"jpeg-crop frame: the JPEG is not a grey image 0-7 rows and columns "
                                         f"larger than the frame's {shape[0]}x{shape[1]}")
            top, left = declared[0] - shape[0], declared[1] - shape[1]
        return decode_jpeg(jpeg, (shape[0] + top, shape[1] + left))[top:, left:].astype(np.int32)


class CroppedJpegHistoryMethod(JpegHistoryMethod):
    """An 8-bit plane cut out of a decoded JPEG at an offset off its block grid: the coefficients of a
    JPEG up to 7 rows and columns larger, whose bottom-right part the plane is, plus a correction plane."""

    name = "jpeg-crop"
    cropped = True


_ZIGZAG = np.asarray(jpeg_baseline.ZIGZAG)  # natural index of each zigzag position
_DCT_HEADER = 2 + 64  # a jpeg-dct stream's top, left and quantisation table


def _coefficient_stream(recovery: Recovery) -> bytes:
    """A jpeg-dct frame's METHOD_STREAM 0 (``JpegCoefficientsMethod``): the cut, the table, the coefficients."""
    header = bytes(recovery.padding) + recovery.table.astype(np.uint8).tobytes()
    return header + jpeg_coefficients.encode(recovery.coefficients[..., _ZIGZAG], recovery.table[_ZIGZAG])


class JpegCoefficientsMethod(JpegHistoryMethod):
    """A recovered JPEG history (aligned or cut) whose coefficients medcodec codes itself: format 2.19.

    Why: JPEG-XL's JPEG transcoding keeps what it needs to give the JPEG file back byte for byte (its
    markers and Huffman tables, a few hundred bytes a file) and models the coefficients less closely than
    ``entropy.jpeg_coefficients`` (context-modelled binary arithmetic coding after packJPG and Lepton);
    this frame needs neither the file nor libjpeg-turbo: its samples are libjpeg's islow IDCT of the
    coefficients, computed by ``entropy.jpeg_idct`` (the arithmetic a jpeg frame's decoder is checked
    against). Offered beside the transcoded JPEG, the smaller kept: train planes 0.98 x (brain MRI),
    0.95 x (breast ultrasound), 0.90 x (lung CT crops, small planes) the transcoded JPEG's streams
    (benchmarks/results/jpeg_crop_scan.json); test files 0.94 x, 0.95 x, 0.94 x.

    METHOD_STREAM 0: top and left (one byte each, 0..7: the rows and columns of the JPEG above and left
    of the frame), the quantisation table (64 bytes, 1..255, natural order), then the coefficients of the
    ceil((H + top) / 8) x ceil((W + left) / 8) blocks as ``jpeg_coefficients.encode`` writes them (zigzag
    order, the shipped priors); METHOD_STREAM 1 the correction plane, as for "jpeg"."""

    name = "jpeg-dct"

    def _decoded_jpeg(self, stream: bytes, shape: tuple[int, int]) -> np.ndarray:
        if len(stream) < _DCT_HEADER or stream[0] > 7 or stream[1] > 7 or 0 in stream[2:_DCT_HEADER]:
            raise CorruptStreamError("jpeg-dct frame: the stream does not open with a cut of 0-7 rows and columns "
                                     "and a quantisation table of 64 entries 1..255")
        top, left = stream[0], stream[1]
        table = np.frombuffer(stream[2:_DCT_HEADER], np.uint8).astype(np.int64)
        height, width = shape[0] + top, shape[1] + left
        blocks = jpeg_coefficients.decode(stream[_DCT_HEADER:], -(-height // 8), -(-width // 8), table[_ZIGZAG])
        coefficients = np.empty(blocks.shape, np.int64)
        coefficients[..., _ZIGZAG] = blocks
        samples = jpeg_idct.raster(jpeg_idct.inverse_dct(coefficients, table), height, width)
        return samples[top:, left:].astype(np.int32)
