"""JPEG-LS lossless (ITU T.87) scans written again, bit for bit, from their samples.

Why: as ``jpeg_lossless`` for lossless JPEG. A JPEG-LS scan is fully determined by its samples and its
parameters (MAXVAL, the thresholds T1-T3 and RESET, NEAR = 0): the context modelling (365 regular
contexts, median-edge prediction, bias correction), the limited-length Golomb codes and the run mode
with its run-interruption contexts are all specified, and so is the bit stuffing (after a 0xFF byte
only seven bits). So ``io.dicom_scans`` keeps a frame's header, lets medcodec's methods code the samples
and writes the segment again when decoding; the last partial byte, whose padding is the encoder's
business, is kept as it was (``body`` is the segment up to it). Written from the standard's procedures;
checked against CharLS's streams (the train split's 10-bit radiograph, 1.67 MB, every byte). Three
components sample-interleaved in one scan (ILV 2, how CharLS writes colour) are written as CharLS does:
shared contexts, run mode where every component's context is 0, a run's interrupting pixel coded a
component at a time in run-interruption context 0 (checked against CharLS on random, smooth, sparse and
ultrasound images). What is not written here (NEAR > 0, line interleave or components in separate scans,
subsampling, mapping tables, a colour transform, restart markers, a point transform) is refused by
``parse``, or found out by ``body_matches``, and stays verbatim.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from medcodec.compiled import kernel
from medcodec.entropy.jpeg_lossless import marker_segments

SOF55, LSE, SOS, DRI, EOI = 0xF7, 0xF8, 0xDA, 0xDD, 0xD9
OTHER_SOF = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})
# the run-length order of each RUNindex (T.87 A.7.1.2)
J = np.array([0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 9, 10, 11, 12, 13, 14, 15],
             np.int64)


@dataclass(frozen=True)
class Scan:
    """A lossless JPEG-LS frame's parameters (one component, or three sample-interleaved in one scan), and
    where its entropy-coded segment lies in the frame's bytes ([segment_start, segment_end): up to EOI)."""

    precision: int
    height: int
    width: int
    maxval: int
    t1: int
    t2: int
    t3: int
    reset: int
    segment_start: int
    segment_end: int
    components: int = 1  # several: sample-interleaved (ILV 2) in the one scan


def default_parameters(maxval: int) -> tuple[int, int, int, int]:
    """(T1, T2, T3, RESET) for NEAR = 0 when the frame does not give them (T.87 C.2.4.1.1.1)."""
    def clamp(value: int, low: int) -> int:
        return low if value > maxval or value < low else value

    if maxval >= 128:
        factor = (min(maxval, 4095) + 128) // 256
        t1 = clamp(factor * (3 - 2) + 2, 1)
        t2 = clamp(factor * (7 - 3) + 3, t1)
        t3 = clamp(factor * (21 - 4) + 4, t2)
    else:
        factor = 256 // (maxval + 1)
        t1 = clamp(max(2, 3 // factor), 1)
        t2 = clamp(max(3, 7 // factor), t1)
        t3 = clamp(max(4, 21 // factor), t2)
    return t1, t2, t3, 64


def parse(frame: bytes) -> Scan | None:
    """The frame's Scan, or None where it is not one this module writes or is malformed. Never raises."""
    try:
        return _parse(bytes(frame))
    except (IndexError, ValueError, KeyError):
        return None


def _parse(frame: bytes) -> Scan | None:
    header: dict[str, int] = {}
    preset: tuple[int, ...] | None = None
    for marker, segment, after in marker_segments(frame):
        if marker in OTHER_SOF or marker == EOI:
            return None
        if marker == SOF55:
            count = segment[5]
            # one component, or three of one sample each a pixel (no subsampling)
            if count not in (1, 3) or len(segment) != 6 + 3 * count or any(
                    segment[7 + 3 * k] != 0x11 for k in range(count) if count > 1):
                return None
            header.update(precision=segment[0], height=int.from_bytes(segment[1:3], "big"),
                          width=int.from_bytes(segment[3:5], "big"), components=count)
            identifiers = [segment[6 + 3 * k] for k in range(count)]
        elif marker == LSE:
            if segment[0] != 1 or len(segment) != 11:  # preset parameters only, not mapping tables
                return None
            preset = tuple(int.from_bytes(segment[1 + 2 * k:3 + 2 * k], "big") for k in range(5))
        elif marker == DRI:
            if int.from_bytes(segment[:2], "big"):
                return None
        elif marker == SOS:
            count = segment[0] if "precision" in header else 0
            # every component in this scan, in the frame's order, no mapping table; several sample-interleaved
            if (count != header.get("components") or len(segment) != 4 + 2 * count
                    or [segment[1 + 2 * k] for k in range(count)] != identifiers
                    or any(segment[2 + 2 * k] for k in range(count))
                    or segment[2 + 2 * count] != (2 if count > 1 else 0)):
                return None
            return _scan(frame, header, preset, near=segment[1 + 2 * count],
                         point_transform=segment[3 + 2 * count] & 15, start=after)
    return None


def _scan(frame: bytes, header: dict[str, int], preset: tuple[int, ...] | None, near: int, point_transform: int,
          start: int) -> Scan | None:
    """The Scan of a frame whose SOS ends at start, with the parameters the frame gives or the defaults."""
    end = _segment_end(frame, start)
    precision = header["precision"]
    if (near or point_transform or end is None or frame[end:end + 2] != b"\xff\xd9"
            or not 2 <= precision <= 16 or not header["height"] or not header["width"]):
        return None
    given = preset or (0, 0, 0, 0, 0)
    maxval = given[0] or (1 << precision) - 1
    if maxval >= 1 << precision:
        return None
    defaults = default_parameters(maxval)
    t1, t2, t3, reset = (given[k + 1] or defaults[k] for k in range(4))
    if not 0 < t1 <= t2 <= t3 <= maxval or reset < 3:
        return None
    return Scan(precision=precision, height=header["height"], width=header["width"], maxval=maxval,
                t1=t1, t2=t2, t3=t3, reset=reset, segment_start=start, segment_end=end,
                components=header["components"])


def _segment_end(frame: bytes, start: int) -> int | None:
    """Where the segment from start ends: the first 0xFF followed by a byte with its top bit set (in the
    segment, a 0xFF is followed by a byte of seven bits, T.87 A.1)."""
    at = start
    while True:
        at = frame.find(b"\xff", at)
        if at < 0 or at + 1 >= len(frame):
            return None
        if frame[at + 1] & 0x80:
            return None if 0xD0 <= frame[at + 1] <= 0xD7 else at
        at += 1


def body(samples: np.ndarray, scan: Scan) -> bytes:
    """The samples' entropy-coded segment up to its last partial byte (the complete bytes); samples are
    [height, width], or [height, width, components]."""
    shape = (scan.height, scan.width) + ((scan.components,) if scan.components > 1 else ())
    if samples.shape != shape:
        raise ValueError(f"samples {samples.shape} for a scan of {shape}")
    if not (2 <= scan.precision <= 16 and 1 <= scan.maxval < 1 << scan.precision
            and 0 < scan.t1 <= scan.t2 <= scan.t3 <= scan.maxval and 3 <= scan.reset <= 0xFFFF):
        raise ValueError("JPEG-LS parameters out of range")  # what parse accepts: a damaged description
    values = np.ascontiguousarray(samples, dtype=np.int64)
    if values.ndim == 2:
        values = values[:, :, None]
    if values.size and (int(values.max()) > scan.maxval or int(values.min()) < 0):
        raise ValueError(f"samples beyond MAXVAL {scan.maxval}")
    out = np.empty(values.size * 8 + 64, np.uint8)  # a sample costs at most LIMIT (<= 64) bits, but stuffing
    n = _encode(values, scan.maxval, scan.t1, scan.t2, scan.t3, scan.reset, out)
    if n > len(out):  # the bytes past the end were counted, not written (_put): again, with room
        out = np.empty(n, np.uint8)
        n = _encode(values, scan.maxval, scan.t1, scan.t2, scan.t3, scan.reset, out)
    return out[:n].tobytes()


def body_matches(frame: bytes, scan: Scan, samples: np.ndarray) -> int | None:
    """The length of ``body(samples, scan)`` where the frame's segment starts with it, else None."""
    try:
        written = body(samples, scan)
    except ValueError:
        return None
    if frame[scan.segment_start:scan.segment_start + len(written)] != written:
        return None
    return len(written) if scan.segment_start + len(written) <= scan.segment_end else None


@kernel(inline=True)
def _put(value, length, out, state):
    """length bits of value, most significant first; a byte after 0xFF takes seven (state: bytes written,
    the bits gathered, their count, whether the last byte was 0xFF)."""
    for i in range(length - 1, -1, -1):
        state[1] = (state[1] << 1) | ((value >> i) & 1)
        state[2] += 1
        if state[2] == (7 if state[3] else 8):
            if state[0] < len(out):  # past the end: counted, not written (``body`` writes again with room)
                out[state[0]] = state[1]
            state[3] = 1 if state[1] == 0xFF else 0
            state[0] += 1
            state[1] = 0
            state[2] = 0


@kernel(inline=True)
def _put_mapped(mapped, k, limit, qbpp, out, state):
    """A mapped error value as a limited-length Golomb code (T.87 A.5.3)."""
    high = mapped >> k
    if high < limit - qbpp - 1:
        _put(0, high, out, state)
        _put(1, 1, out, state)
        _put(mapped & ((1 << k) - 1), k, out, state)
    else:
        _put(0, limit - qbpp - 1, out, state)
        _put(1, 1, out, state)
        _put((mapped - 1) & ((1 << qbpp) - 1), qbpp, out, state)


@kernel(inline=True)
def _modulo(error, size):
    """The error reduced modulo the range into [-(size // 2), (size - 1) // 2] (T.87 A.4.5)."""
    if error < 0:
        error += size
    if error >= (size + 1) // 2:
        error -= size
    return error


@kernel(inline=True)
def _gradient(d, t1, t2, t3):
    if d <= -t3:
        return -4
    if d <= -t2:
        return -3
    if d <= -t1:
        return -2
    if d < 0:
        return -1
    if d == 0:
        return 0
    if d < t1:
        return 1
    if d < t2:
        return 2
    if d < t3:
        return 3
    return 4


@kernel(inline=True)
def median_predictor(a, b, c):
    """LOCO-I's median edge detector (A.4.1): min(a, b) or max(a, b) where c says an edge lies there,
    else a + b - c."""
    if c >= max(a, b):
        return min(a, b)
    if c <= min(a, b):
        return max(a, b)
    return a + b - c


@kernel(inline=True)
def _context(ra, rb, rc, rd, t1, t2, t3):
    """The context (A.3): the three local gradients quantised, -364..364 (0: run mode's condition)."""
    return (_gradient(rd - rb, t1, t2, t3) * 9 + _gradient(rb - rc, t1, t2, t3)) * 9 + _gradient(rc - ra, t1, t2, t3)


@kernel(inline=True)
def _regular(value, ra, rb, rc, q, A, B, C, N, maxval, size, reset, limit, qbpp, out, state):
    """One sample in regular mode (A.4-A.6): its error from the corrected median prediction in context q,
    Golomb coded, and the context's statistics updated."""
    sign = -1 if q < 0 else 1
    q *= sign
    predicted = median_predictor(ra, rb, rc)
    k = 0
    while (N[q] << k) < A[q]:
        k += 1
    predicted = min(max(predicted + sign * C[q], 0), maxval)
    error = _modulo((value - predicted) * sign, size)
    mapped_error = -error - 1 if k == 0 and 2 * B[q] + N[q] - 1 < 0 else error
    _put_mapped(2 * mapped_error if mapped_error >= 0 else -2 * mapped_error - 1, k, limit, qbpp, out, state)
    a, b, n = A[q] + abs(error), B[q] + error, N[q]
    if n == reset:
        a >>= 1
        b >>= 1
        n >>= 1
    n += 1
    A[q], N[q] = a, n
    if b + n <= 0:
        b = max(b + n, -n + 1)
        if C[q] > -128:
            C[q] -= 1
    elif b > 0:
        b = min(b - n, 0)
        if C[q] < 127:
            C[q] += 1
    B[q] = b


@kernel(inline=True)
def _run_length(run, remaining, run_index, out, state):
    """A run's length (A.7.1): a 1 for each full block of 2^J[RUNindex] samples; at the line's end a last
    1 for a partial block, else a 0 and the rest in J[RUNindex] bits. Returns RUNindex after it."""
    left = run
    while left >= (1 << J[run_index]):
        _put(1, 1, out, state)
        left -= 1 << J[run_index]
        run_index = min(31, run_index + 1)
    if run == remaining:
        if left:
            _put(1, 1, out, state)
    else:
        _put(left, J[run_index] + 1, out, state)
    return run_index


@kernel(inline=True)
def _interruption(error, ri_type, A, N, Nn, run_index, size, reset, limit, qbpp, out, state):
    """The sample that ends a run (A.7.2): its error (reduced modulo the range) in run-interruption
    context ri_type (0: predicted from the sample above, 1: equal to Ra and the sample above)."""
    error = _modulo(error, size)
    c = 365 + ri_type
    target = A[c] + (N[c] >> 1) * ri_type
    k = 0
    while (N[c] << k) < target:
        k += 1
    flip = (k == 0 and error > 0 and 2 * Nn[ri_type] < N[c]) or (error < 0 and 2 * Nn[ri_type] >= N[c]) \
        or (error < 0 and k != 0)
    mapped = 2 * abs(error) - ri_type - (1 if flip else 0)
    _put_mapped(mapped, k, limit - J[run_index] - 1, qbpp, out, state)
    if error < 0:
        Nn[ri_type] += 1
    A[c] += (mapped + 1 - ri_type) >> 1
    if N[c] == reset:
        A[c] >>= 1
        N[c] >>= 1
        Nn[ri_type] >>= 1
    N[c] += 1


@kernel
def _encode(img, maxval, t1, t2, t3, reset, out):
    """T.87 Annex A, NEAR = 0: the complete bytes of the segment into out; their count. img is [height,
    width, components]: one component, or several sample-interleaved (ILV 2, as CharLS writes colour): the
    contexts shared by the components, each pixel's components coded in turn, run mode where every
    component's context is 0 and while whole pixels repeat Ra, a run's interrupting pixel coded a component
    at a time in run-interruption context 0, predicted from the sample above (its sign taken as positive
    where it equals Ra)."""
    height, width, components = img.shape
    size = maxval + 1
    qbpp = 0
    while (1 << qbpp) < size:
        qbpp += 1
    limit = 2 * (max(2, qbpp) + max(8, qbpp))
    a_init = max(2, (size + 32) // 64)
    # regular contexts 0..364; the run-interruption contexts at 365 (RItype 0) and 366 (RItype 1)
    A = np.full(367, a_init, np.int64)
    N = np.ones(367, np.int64)
    B = np.zeros(365, np.int64)
    C = np.zeros(365, np.int64)
    Nn = np.zeros(2, np.int64)
    run_index = 0
    state = np.zeros(4, np.int64)
    # lines with one sample of border each side: x's samples at [x + 1]; the line above starts all zero
    prev = np.zeros((width + 2, components), np.int64)
    cur = np.zeros((width + 2, components), np.int64)
    contexts = np.zeros(components, np.int64)
    for y in range(height):
        for x in range(width):
            for c in range(components):
                cur[x + 1, c] = img[y, x, c]
        for c in range(components):
            prev[width + 1, c] = prev[width, c]  # Rd past the last column is Rb
            cur[0, c] = prev[1, c]  # Ra of the first column is Rb; its Rc, the line above's own Ra
        index = 0
        while index < width:
            run_mode = True
            for c in range(components):
                contexts[c] = _context(cur[index, c], prev[index + 1, c], prev[index, c], prev[index + 2, c], t1, t2,
                                       t3)
                if contexts[c] != 0:
                    run_mode = False
            if not run_mode:  # regular mode (A.4)
                for c in range(components):
                    _regular(cur[index + 1, c], cur[index, c], prev[index + 1, c], prev[index, c], contexts[c], A, B,
                             C, N, maxval, size, reset, limit, qbpp, out, state)
                index += 1
                continue
            # run mode (A.7): the run of pixels equal to Ra, then the pixel that interrupts it
            remaining = width - index
            run = 0
            while run < remaining:
                repeats = True
                for c in range(components):
                    if cur[index + 1 + run, c] != cur[index, c]:
                        repeats = False
                        break
                if not repeats:
                    break
                run += 1
            run_index = _run_length(run, remaining, run_index, out, state)
            if run == remaining:
                index += run
                continue
            for c in range(components):
                value = cur[index + run + 1, c]
                ra = cur[index, c]
                above = prev[index + run + 1, c]
                if components == 1 and above == ra:
                    _interruption(value - ra, 1, A, N, Nn, run_index, size, reset, limit, qbpp, out, state)
                else:
                    _interruption((value - above) * (1 if above >= ra else -1), 0, A, N, Nn, run_index, size,
                                  reset, limit, qbpp, out, state)
            run_index = max(0, run_index - 1)
            index += run + 1
        prev, cur = cur, prev
    return state[0]
