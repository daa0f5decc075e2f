"""JPEG 2000 reversible code-blocks written again from their samples: the 5/3 wavelet and EBCOT tier 1.

Why: as ``jpeg_lossless`` for lossless JPEG. In a lossless JPEG 2000 codestream (the reversible 5/3
wavelet, no quantisation) each code-block's bytes are the MQ coder's output for its integer wavelet
coefficients, bit plane by bit plane in three passes (ISO/IEC 15444-1 Annex D), and both the wavelet
(Annex F, integer lifting) and tier 1 are specified to the bit. So the coefficients, and from them
every code-block's bytes, follow from the samples. What encoders may choose is elsewhere: packet
headers, layers, markers, and how the MQ coder's last bytes are terminated (C.2.9 leaves encoders
free to trim them; Kakadu does, OpenJPEG does not). ``io.dicom_jpeg2000`` therefore keeps everything
but the long runs of code-block bytes this module writes again; the terminations stay verbatim.

Only what is needed for that is here: the forward transform (a decoder gives the samples), the
code-block partition of each subband, and tier 1 without the optional coding styles (bypass, reset,
termination on every pass, vertically causal contexts, segmentation symbols: a codestream that uses
them is not modelled). Written from the standard's procedures; checked by finding the bytes in
OpenJPEG's codestreams (the tests) and in the train split's six JPEG 2000 files (Kakadu 2.2, 4.4 and
5.0, JasPer 1.701 and an unnamed encoder): every code-block, up to each encoder's termination.
"""

from __future__ import annotations

import numpy as np

from medcodec.compiled import kernel

# MQ coder probability states (Table C.2): Qe, next state after an MPS, after an LPS, MPS switch.
_QE = np.array([
    0x5601, 0x3401, 0x1801, 0x0AC1, 0x0521, 0x0221, 0x5601, 0x5401, 0x4801, 0x3801, 0x3001, 0x2401,
    0x1C01, 0x1601, 0x5601, 0x5401, 0x5101, 0x4801, 0x3801, 0x3401, 0x3001, 0x2801, 0x2401, 0x2201,
    0x1C01, 0x1801, 0x1601, 0x1401, 0x1201, 0x1101, 0x0AC1, 0x09C1, 0x08A1, 0x0521, 0x0441, 0x02A1,
    0x0221, 0x0141, 0x0111, 0x0085, 0x0049, 0x0025, 0x0015, 0x0009, 0x0005, 0x0001, 0x5601], np.int64)
_NMPS = np.array([
    1, 2, 3, 4, 5, 38, 7, 8, 9, 10, 11, 12, 13, 29, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28,
    29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 45, 45, 46], np.int64)
_NLPS = np.array([
    1, 6, 9, 12, 29, 33, 6, 14, 14, 14, 17, 18, 20, 21, 14, 14, 15, 16, 17, 18, 19, 19, 20, 21, 22, 23, 24,
    25, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 46], np.int64)
_SWITCH = np.zeros(47, np.int64)
_SWITCH[[0, 6, 14]] = 1

# tier-1 contexts (D.3): zero coding 0-8, sign coding 9-13, magnitude refinement 14-16, run 17, uniform 18
_RUN, _UNIFORM = 17, 18
# orientation of a subband, as the zero-coding contexts of Table D.1 need it
LL, HL, LH, HH = 0, 1, 2, 3


@kernel(inline=True)
def _zero_context(h, v, d, orientation):
    """Table D.1: the zero-coding context from the significant horizontal (0-2), vertical (0-2) and
    diagonal (0-4) neighbours."""
    if orientation == HH:
        hv = h + v
        if d >= 3:
            return 8
        if d == 2:
            return 7 if hv >= 1 else 6
        if d == 1:
            return 5 if hv >= 2 else (4 if hv == 1 else 3)
        return 2 if hv >= 2 else hv
    if orientation == HL:  # vertical neighbours play the horizontal ones' part
        h, v = v, h
    if h == 2:
        return 8
    if h == 1:
        return 7 if v >= 1 else (6 if d >= 1 else 5)
    if v == 2:
        return 4
    if v == 1:
        return 3
    return 2 if d >= 2 else d


@kernel(inline=True)
def _byte_out(state, out):
    """BYTEOUT (C.2.7): the next byte, with the carry into the byte before and 0xFF bit stuffing;
    state = [A, C, CT, BP]."""
    c, bp = state[1], state[3]
    if out[bp] == 0xFF:
        bp += 1
        out[bp] = c >> 20
        c &= 0xFFFFF
        ct = 7
    elif c < 0x8000000:
        bp += 1
        out[bp] = c >> 19
        c &= 0x7FFFF
        ct = 8
    else:
        out[bp] += 1
        if out[bp] == 0xFF:
            c &= 0x7FFFFFF
            bp += 1
            out[bp] = c >> 20
            c &= 0xFFFFF
            ct = 7
        else:
            bp += 1
            out[bp] = c >> 19
            c &= 0x7FFFF
            ct = 8
    state[1], state[2], state[3] = c, ct, bp


@kernel(inline=True)
def _encode_bit(bit, cx, state, index, mps, out):
    """One decision through the MQ encoder (C.2.4-C.2.8); state = [A, C, CT, BP]."""
    a, c = state[0], state[1]
    i = index[cx]
    qe = _QE[i]
    a -= qe
    if bit == mps[cx]:
        if a & 0x8000:
            state[0] = a
            state[1] = c + qe
            return
        if a < qe:
            a = qe
        else:
            c += qe
        index[cx] = _NMPS[i]
    else:
        if a < qe:
            c += qe
        else:
            a = qe
        if _SWITCH[i]:
            mps[cx] = 1 - mps[cx]
        index[cx] = _NLPS[i]
    ct = state[2]
    while True:  # RENORME
        a <<= 1
        c <<= 1
        ct -= 1
        if ct == 0:
            state[1] = c
            _byte_out(state, out)
            c, ct = state[1], state[2]
        if a & 0x8000:
            break
    state[0], state[1], state[2] = a, c, ct


@kernel
def _code_block(coefficients, orientation, out):
    """The code-block's MQ codeword (all passes, from its most significant bit plane, terminated as
    C.2.9 does) into out[1:]; returns its length. out[0] is the coder's byte before the start."""
    height, width = coefficients.shape
    magnitude = np.abs(coefficients)
    planes = 0
    top = magnitude.max() if magnitude.size else 0
    while top >> planes:
        planes += 1
    # significance with sign (+1, -1; 0: not yet), with a border of insignificant neighbours
    sig = np.zeros((height + 2, width + 2), np.int64)
    visited = np.zeros((height, width), np.int64)
    refined = np.zeros((height, width), np.int64)
    index = np.zeros(19, np.int64)
    mps = np.zeros(19, np.int64)
    index[0], index[_RUN], index[_UNIFORM] = 4, 3, 46
    state = np.array([0x8000, 0, 12, 0], np.int64)
    out[0] = 0
    for plane in range(planes - 1, -1, -1):
        first = plane == planes - 1
        if not first:
            # significance propagation
            for stripe in range(0, height, 4):
                for x in range(width):
                    for y in range(stripe, min(stripe + 4, height)):
                        if sig[y + 1, x + 1] != 0:
                            continue
                        h = (sig[y + 1, x] != 0) + (sig[y + 1, x + 2] != 0)
                        v = (sig[y, x + 1] != 0) + (sig[y + 2, x + 1] != 0)
                        d = ((sig[y, x] != 0) + (sig[y, x + 2] != 0) + (sig[y + 2, x] != 0)
                             + (sig[y + 2, x + 2] != 0))
                        if h + v + d == 0:
                            continue
                        bit = (magnitude[y, x] >> plane) & 1
                        _encode_bit(bit, _zero_context(h, v, d, orientation), state, index, mps, out)
                        visited[y, x] = 1
                        if bit:
                            _code_sign(coefficients[y, x] < 0, sig, y, x, state, index, mps, out)
            # magnitude refinement
            for stripe in range(0, height, 4):
                for x in range(width):
                    for y in range(stripe, min(stripe + 4, height)):
                        if sig[y + 1, x + 1] == 0 or visited[y, x]:
                            continue
                        if refined[y, x]:
                            cx = 16
                        else:
                            n = ((sig[y + 1, x] != 0) + (sig[y + 1, x + 2] != 0) + (sig[y, x + 1] != 0)
                                 + (sig[y + 2, x + 1] != 0) + (sig[y, x] != 0) + (sig[y, x + 2] != 0)
                                 + (sig[y + 2, x] != 0) + (sig[y + 2, x + 2] != 0))
                            cx = 15 if n else 14
                        _encode_bit((magnitude[y, x] >> plane) & 1, cx, state, index, mps, out)
                        refined[y, x] = 1
        # cleanup
        for stripe in range(0, height, 4):
            for x in range(width):
                y = stripe
                end = min(stripe + 4, height)
                if end - stripe == 4:
                    quiet = True
                    for k in range(stripe, end):
                        if (visited[k, x] or sig[k + 1, x + 1] != 0 or sig[k + 1, x] != 0 or sig[k + 1, x + 2] != 0
                                or sig[k, x + 1] != 0 or sig[k + 2, x + 1] != 0 or sig[k, x] != 0
                                or sig[k, x + 2] != 0 or sig[k + 2, x] != 0 or sig[k + 2, x + 2] != 0):
                            quiet = False
                            break
                    if quiet:
                        first_one = -1
                        for k in range(4):
                            if (magnitude[stripe + k, x] >> plane) & 1:
                                first_one = k
                                break
                        if first_one < 0:
                            _encode_bit(0, _RUN, state, index, mps, out)
                            continue
                        _encode_bit(1, _RUN, state, index, mps, out)
                        _encode_bit(first_one >> 1, _UNIFORM, state, index, mps, out)
                        _encode_bit(first_one & 1, _UNIFORM, state, index, mps, out)
                        y = stripe + first_one
                        _code_sign(coefficients[y, x] < 0, sig, y, x, state, index, mps, out)
                        y += 1
                for k in range(y, end):
                    if visited[k, x] or sig[k + 1, x + 1] != 0:
                        continue
                    h = (sig[k + 1, x] != 0) + (sig[k + 1, x + 2] != 0)
                    v = (sig[k, x + 1] != 0) + (sig[k + 2, x + 1] != 0)
                    d = (sig[k, x] != 0) + (sig[k, x + 2] != 0) + (sig[k + 2, x] != 0) + (sig[k + 2, x + 2] != 0)
                    bit = (magnitude[k, x] >> plane) & 1
                    _encode_bit(bit, _zero_context(h, v, d, orientation), state, index, mps, out)
                    if bit:
                        _code_sign(coefficients[k, x] < 0, sig, k, x, state, index, mps, out)
        visited[:, :] = 0
    if planes == 0:
        return 0
    # flush (C.2.9): SETBITS, then two bytes out; a final 0xFF is not written
    a, c = state[0], state[1]
    temp = c + a
    c |= 0xFFFF
    if c >= temp:
        c -= 0x8000
    state[1] = c << state[2]
    _byte_out(state, out)
    state[1] = state[1] << state[2]
    _byte_out(state, out)
    bp = state[3]
    if out[bp] != 0xFF:
        bp += 1
    return bp - 1


@kernel(inline=True)
def _code_sign(negative, sig, y, x, state, index, mps, out):
    """Sign coding (Tables D.2, D.3) of a coefficient that just became significant; marks it so."""
    h = sig[y + 1, x] + sig[y + 1, x + 2]
    v = sig[y, x + 1] + sig[y + 2, x + 1]
    h = 1 if h > 0 else (-1 if h < 0 else 0)
    v = 1 if v > 0 else (-1 if v < 0 else 0)
    if h == 0:
        cx = 9 if v == 0 else 10
        flip = 1 if v < 0 else 0
    else:
        cx = 12 if v == 0 else (13 if v == h else 11)
        flip = 1 if h < 0 else 0
    _encode_bit(int(negative) ^ flip, cx, state, index, mps, out)
    sig[y + 1, x + 1] = -1 if negative else 1


def code_block(coefficients: np.ndarray, orientation: int) -> bytes:
    """A code-block's bytes (every coding pass, no optional coding style) from its integer wavelet
    coefficients; orientation LL, HL, LH or HH."""
    block = np.ascontiguousarray(coefficients, dtype=np.int64)
    planes = int(np.abs(block).max()).bit_length() if block.size else 0
    # at most three decisions a coefficient and plane, none costing more than 16 bits, a byte in eight
    # for the 0xFF bit stuffing (seven bits a byte after 0xFF), and the flush
    out = np.zeros(block.size * planes * 7 + 16, np.uint8)
    length = _code_block(block, orientation, out)
    return out[1:1 + length].tobytes()


def block_streams(samples: np.ndarray, levels: int, block_sizes: list[tuple[int, int]]) -> list[bytes]:
    """Every code-block's bytes of a single-tile, single-component image at the origin: its (DC-shifted
    or signed) samples through ``levels`` of the 5/3 wavelet, each resolution's subbands cut into blocks
    of 2^w x 2^h (block_sizes[resolution] = (w, h)), in resolution, subband, raster order."""
    streams = []
    for resolution, orientation, band in subbands(samples, levels):
        width, height = block_sizes[resolution]
        for block in code_blocks(band, 1 << width, 1 << height):
            streams.append(code_block(block, orientation))
    return streams


def _lift_53(line: np.ndarray, start: int) -> np.ndarray:
    """One level of the reversible 5/3 analysis (F.4.8.2) along the last axis of int64 samples whose
    first one sits at absolute coordinate start; returns (low, high) interleaved as the samples were."""
    n = line.shape[-1]
    if n == 1:
        return line if start % 2 == 0 else line * 2
    # symmetric extension by two samples each side (F.4.8.1.1), then lifting on absolute parity
    period = 2 * n - 2
    mirrored = np.arange(-2, n + 2) % period
    ext = line[..., np.where(mirrored >= n, period - mirrored, mirrored)]
    first = start - 2  # absolute coordinate of ext[..., 0]
    y = ext.copy()
    odd = np.arange(1 - first % 2, ext.shape[-1] - 1, 2)
    odd = odd[(odd >= 1) & (odd <= ext.shape[-1] - 2)]
    y[..., odd] = ext[..., odd] - ((ext[..., odd - 1] + ext[..., odd + 1]) >> 1)
    even = np.arange(first % 2, ext.shape[-1], 2)
    even = even[(even >= 2) & (even <= ext.shape[-1] - 3)]
    y[..., even] = ext[..., even] + ((y[..., even - 1] + y[..., even + 1] + 2) >> 2)
    return y[..., 2:2 + n]


def subbands(samples: np.ndarray, levels: int, x0: int = 0, y0: int = 0) -> list[tuple[int, int, np.ndarray]]:
    """The reversible 5/3 decomposition (F.4) of a tile-component whose top-left sample is at (x0, y0):
    [(resolution, orientation, coefficients)], resolution 0 the lowest (LL), each level's HL, LH, HH."""
    current = np.asarray(samples, dtype=np.int64)
    bands = []
    for level in range(1, levels + 1):
        lx0, ly0 = -(-x0 // (1 << (level - 1))), -(-y0 // (1 << (level - 1)))  # this level's input origin
        height, width = current.shape
        if height == 0 or width == 0:
            break
        vertical = _lift_53(current.T, ly0).T  # columns first, then rows (F.4.2, 2D_SD)
        both = _lift_53(vertical, lx0)
        ex, ey = lx0 % 2, ly0 % 2  # which columns / rows are low-pass: those at even absolute coordinates
        low_cols, high_cols = np.arange(ex, width, 2), np.arange(1 - ex, width, 2)
        low_rows, high_rows = np.arange(ey, height, 2), np.arange(1 - ey, height, 2)
        resolution = levels - level + 1
        bands.append((resolution, HL, both[np.ix_(low_rows, high_cols)]))
        bands.append((resolution, LH, both[np.ix_(high_rows, low_cols)]))
        bands.append((resolution, HH, both[np.ix_(high_rows, high_cols)]))
        current = both[np.ix_(low_rows, low_cols)]
    bands.append((0, LL, current))
    return sorted(bands, key=lambda band: (band[0], band[1]))


def code_blocks(band: np.ndarray, block_width: int, block_height: int, bx0: int = 0, by0: int = 0):
    """The code-blocks of a subband whose first coefficient is at band coordinates (bx0, by0): the
    partition anchored at multiples of the block size (B.7), row by row."""
    height, width = band.shape
    ys = list(range(by0 - by0 % block_height, by0 + height, block_height))
    xs = list(range(bx0 - bx0 % block_width, bx0 + width, block_width))
    for y in ys:
        for x in xs:
            top, left = max(y, by0) - by0, max(x, bx0) - bx0
            bottom, right = min(y + block_height, by0 + height) - by0, min(x + block_width, bx0 + width) - bx0
            if bottom > top and right > left:
                yield band[top:bottom, left:right]
