"""A raster frame's side information (PLANE_META): the per-plane weights and choices the encoder fitted
(``RasterModel``), its compact JSON form and its validation on reading (a damaged or newer frame is a
clear error, never an out-of-range index)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from medcodec.entropy import residual_model as rm
from medcodec.errors import CorruptStreamError, UnsupportedVersionError
from medcodec.pipelines.raster import differences as tap_differences
from medcodec.pipelines.raster import local_ls, phase, prediction
from medcodec.pipelines.raster.layout import (ACTIVITY_CLASSES, BOOST_LIMIT, BORDER_CLASSES, BORDER_DEFAULT, CLASSES,
                                              COEF_LIMIT, ERROR_TAPS, FIRST_LIMIT, KEY_OFFSET_LIMIT, LATTICE_LIMIT,
                                              LATTICE_MAX_STEP, OFFSETS, SCALE_TAPS, STACK_LIMIT, WEIGHT_LIMIT,
                                              block_count, block_index)

KEY = "raster"  # the side information's key
SIDE_INFO_FIELDS = frozenset({"pad", "cs", "g", "first", "second", "w", "blo", "ell", "step", "nb", "pal", "bc", "nn",
                              "sn", "vr", "lw", "lx", "od", "n2", "sk", "lt", "ph", "ko", "dw", "da"})
MAX_PALETTE_RUNS = 1 << 16


def keys_by_class(key_offsets: np.ndarray) -> np.ndarray:
    """int64 [CLASSES]: what each class adds to its pixels' scale keys, given the activity-slot classes'
    offsets (0 on the border and flat classes)."""
    out = np.zeros(CLASSES, np.int64)
    out[:ACTIVITY_CLASSES] = key_offsets
    return out


@dataclass
class RasterModel:
    """The per-plane weights; what PLANE_META carries."""

    pad: int  # value of every out-of-plane neighbour
    class_shift: int  # activity class = clamp(bit_length(activity) - class_shift, 0, 11)
    shared: np.ndarray  # int64 [12]: the first-stage weights of activity classes without their own
    first: np.ndarray  # int64 [CLASSES, 12]: 11 difference weights + intercept (1/256 sample)
    second: np.ndarray  # int64 [CLASSES, ERROR_TAPS] (1/256)
    scale_weights: np.ndarray  # int64 [SCALE_TAPS + 1] (1/16): errors, then 16 * activity
    bucket_low: int  # first bucket with its own scale index; lower buckets use it, higher ones the last
    ell: np.ndarray  # int64 [buckets]: scale index of each bucket
    step: int = 1  # the plane is step * (coded plane) + offset (values on a grid: 12-bit data stored << 4)
    offset: int = 0
    boost: tuple[int, int] = (0, 0)  # neighbour-value boost (seen, per count), 1/16; (0, 0) = none
    lattice: tuple[int, int] = (0, 0)  # the boost's lattice (step, weight in 1/16), format 2.8; (0, 0) = none
    palette: np.ndarray | None = None  # the plane's sorted distinct values: the coded plane is their index
    block_size: int = 0  # > 0: inner pixels with activity take their class from blocks of this side
    block_classes: np.ndarray | None = None  # int64 [block rows * block columns], row-major: 0..11
    correction: str | None = None  # the learned correction's tag (raster_mlp.RasterCorrection.tag), if used
    scale_net: str | None = None  # the learned scale's tag, if used (the buckets of the corrected pixels)
    # (lo, hi, censor) of the coded plane: the tables hold nothing outside [lo, hi]; censor bit 0 (1): the
    # mass below lo goes to lo's entry instead of being dropped, bit 1 (2): the mass above hi to hi's
    value_range: tuple[int, int, int] | None = None
    # int64 [CLASSES] in 1/64: how far each class's prediction moves towards the local least-squares one
    # (local_ls); None: not used
    local_weights: np.ndarray | None = None
    # (radius, int64 [CLASSES] weights) of windows of other radii blended in as well (format 2.5; with
    # local_weights only)
    local_extra: tuple[tuple[int, np.ndarray], ...] = ()
    # int64 [width of the correction's last hidden layer + 1]: additions to its output layer's weights and
    # bias fitted to this plane (format 2.6; with a correction only); None: the shipped layer
    output_delta: np.ndarray | None = None
    # the second correction network's tag and int64 [ACTIVITY_CLASSES, 2] weights (1/64) of the two
    # networks' corrections per class (format 2.7; with a correction only); None: the first network alone
    second_correction: str | None = None
    stack_weights: np.ndarray | None = None
    # (kx, fx, cx, ky, fy, cy): inner pixels with activity take their class from their resampling phase
    # (raster.phase, format 2.16; not with block classes); None: by activity (or block)
    resampling: tuple[int, int, int, int, int, int] | None = None
    # int64 [ACTIVITY_CLASSES]: added to the scale key of every inner pixel of each class (format 2.17; in
    # quarter octaves, |k| <= KEY_OFFSET_LIMIT); None: none
    key_offsets: np.ndarray | None = None
    # int64 [differences.TAPS + 1, differences.WIDTH] in 1/16 bit: the tables reweighted by each value's
    # difference from each neighbour (format 2.20; instead of a boost), then, in the last row, the
    # agreement weights (format 2.21; zeros where not sent); None: not sent
    differences: np.ndarray | None = None

    def keys_by_class(self) -> np.ndarray | None:
        """``keys_by_class(key_offsets)``, or None where the frame sends no key offsets."""
        return None if self.key_offsets is None else keys_by_class(self.key_offsets)

    @property
    def boost_terms(self) -> tuple[int, int, int, int]:
        """The boost and its lattice, as the tables take them (tables.boost_terms)."""
        return (*self.boost, *self.lattice)

    @property
    def boosted(self) -> bool:
        """Whether the tables look at the neighbours' values (a boost, a lattice or tap-difference weights are
        sent)."""
        return any(self.boost) or self.lattice[1] > 0 or self.differences is not None

    def local_blends(self) -> list[tuple[int, np.ndarray]]:
        """(window radius, weights per class) of every local least-squares prediction blended in."""
        if self.local_weights is None:
            return []
        return [(local_ls.RADIUS, self.local_weights), *self.local_extra]

    def classes(self, activity: np.ndarray, border: np.ndarray, rows: np.ndarray, cols: np.ndarray,
                width: int) -> np.ndarray:
        """Each pixel's class: by activity, or by its block where the plane sends block classes."""
        blocks = None
        if self.block_classes is not None:
            blocks = self.block_classes[block_index(rows, cols, width, self.block_size)]
        elif self.resampling is not None:
            by_row, by_column = phase.row_and_column_parts((int(rows.max()) + 1 if rows.size else 0, width),
                                                           self.resampling)
            blocks = by_row[rows] + by_column[cols]
        return prediction.classes(activity, border, self.class_shift, blocks)

    def check_blocks(self, shape: tuple[int, int]) -> None:
        """Block classes must cover the plane exactly (the shape is not in the side information)."""
        if self.block_classes is not None:
            count = block_count(shape, self.block_size)
            if self.block_classes.size != count:
                raise CorruptStreamError(f"raster side information has {self.block_classes.size} block classes, "
                                         f"the plane needs {count}")

    def coded_bits(self, bits: int) -> int:
        if self.palette is not None:
            return index_bits(self.palette.size)
        return coded_bits(bits, self.step, self.offset)

    def plane_of(self, coded: np.ndarray, bits: int) -> np.ndarray:
        """The plane's values from the coded plane's (an index beyond the palette is corruption)."""
        if self.palette is None:
            return coded * self.step + self.offset
        if coded.size and int(coded.max()) >= self.palette.size:
            raise CorruptStreamError("raster stream decodes to an index beyond the plane's palette")
        return self.palette[coded]

    def to_json(self) -> dict:
        """Rows equal to their default are sent as null: a small plane cannot pay for 16 classes' weights."""
        first = [None if np.array_equal(row, default) else row.tolist()
                 for row, default in zip(self.first, default_first(self.shared))]
        second = [row.tolist() if row.any() else None for row in self.second]
        return {"pad": self.pad, "cs": self.class_shift, "g": self.shared.tolist(), "first": first,
                "second": second, "w": self.scale_weights.tolist(), "blo": self.bucket_low,
                "ell": (self.ell - start_ell(self.bucket_low, self.ell.size)).tolist(),
                **({"step": [self.step, self.offset]} if self.step > 1 else {}),
                **({"nb": list(self.boost)} if any(self.boost) else {}),
                **({"lt": list(self.lattice)} if self.lattice[1] else {}),
                **({"pal": _palette_runs(self.palette)} if self.palette is not None else {}),
                **({"bc": [self.block_size] + self.block_classes.tolist()} if self.block_classes is not None else {}),
                **({"nn": self.correction} if self.correction is not None else {}),
                **({"sn": self.scale_net} if self.scale_net is not None else {}),
                **({"vr": list(self.value_range)} if self.value_range is not None else {}),
                **({"lw": self.local_weights.tolist()} if self.local_weights is not None else {}),
                **({"lx": [[radius] + weights.tolist() for radius, weights in self.local_extra]}
                   if self.local_extra else {}),
                **({"od": self.output_delta.tolist()} if self.output_delta is not None else {}),
                **({"n2": self.second_correction, "sk": self.stack_weights.ravel().tolist()}
                   if self.second_correction is not None else {}),
                **({"ph": list(self.resampling)} if self.resampling is not None else {}),
                **({"ko": self.key_offsets.tolist()} if self.key_offsets is not None else {}),
                **({"dw": self.differences[:tap_differences.TAPS].ravel().tolist()}
                   if self.differences is not None else {}),
                **({"da": self.differences[tap_differences.TAPS, :tap_differences.AGREEMENT].tolist()}
                   if self.differences is not None and self.differences[tap_differences.TAPS].any() else {})}

    @classmethod
    def from_json(cls, data: dict, bits: int) -> "RasterModel":
        """Validated: a damaged side information is a CorruptStreamError, never an out-of-range index; a
        field this reader does not know (a newer medcodec's coding option) is an UnsupportedVersionError."""
        unknown = sorted(set(data) - SIDE_INFO_FIELDS) if isinstance(data, dict) else []
        if unknown:
            raise UnsupportedVersionError(f"raster frame uses coding options this medcodec does not know "
                                          f"({', '.join(unknown)}): it was written by a newer medcodec — "
                                          f"upgrade medcodec to decode it")
        try:
            shared = np.array(data["g"], dtype=np.int64)
            if shared.shape != (len(OFFSETS),) or len(data["first"]) != CLASSES or len(data["second"]) != CLASSES:
                raise ValueError("wrong number of weights")
            first = np.array([default if row is None else row
                              for row, default in zip(data["first"], default_first(shared).tolist())], dtype=np.int64)
            second = np.array([[0] * ERROR_TAPS if row is None else row for row in data["second"]], dtype=np.int64)
            bucket_low, ell = int(data["blo"]), np.array(data["ell"], dtype=np.int64)
            if ell.ndim != 1 or not 1 <= ell.size <= 128 or not 0 <= bucket_low <= 128 or np.abs(ell).max() > rm.MAX_ELL:
                raise ValueError("bad scale buckets")
            step, offset = (int(v) for v in data.get("step", (1, 0)))
            if not (1 <= step < (1 << bits) and 0 <= offset < step):
                raise ValueError("bad value grid")
            if "pal" in data and step > 1:
                raise ValueError("both a value grid and a palette")
            boost = tuple(int(v) for v in data.get("nb", (0, 0)))
            if len(boost) != 2 or min(boost) < 0 or max(boost) > BOOST_LIMIT:
                raise ValueError("bad neighbour-value boost")
            lattice = tuple(int(v) for v in data.get("lt", (0, 0)))
            if "lt" in data and (len(lattice) != 2 or not 2 <= lattice[0] <= LATTICE_MAX_STEP
                                 or not 1 <= lattice[1] <= LATTICE_LIMIT):
                raise ValueError("bad lattice boost")
            palette = _palette_of_runs(data["pal"], bits) if "pal" in data else None
            block_size, block_classes = 0, None
            if "bc" in data:
                if not isinstance(data["bc"], list) or len(data["bc"]) < 2:
                    raise ValueError("bad block classes")
                block_size, block_classes = int(data["bc"][0]), np.array(data["bc"][1:], dtype=np.int64)
                if not 1 <= block_size <= 1 << 16 or block_classes.ndim != 1 \
                        or block_classes.min() < 0 or block_classes.max() >= ACTIVITY_CLASSES:
                    raise ValueError("bad block classes")
            correction, scale_net, second_correction = data.get("nn"), data.get("sn"), data.get("n2")
            for name in (correction, scale_net, second_correction):
                if name is not None and (not isinstance(name, str) or not 0 < len(name) <= 200):
                    raise ValueError("bad network name")
            value_range = None
            if "vr" in data:
                if not isinstance(data["vr"], list) or len(data["vr"]) != 3:
                    raise ValueError("bad value range")
                value_range = (int(data["vr"][0]), int(data["vr"][1]), int(data["vr"][2]))
            local_weights = None
            if "lw" in data:
                local_weights = np.array(data["lw"], dtype=np.int64)
                if local_weights.shape != (CLASSES,) or local_weights.min() < 0 \
                        or local_weights.max() > local_ls.WEIGHT_ONE:
                    raise ValueError("bad local least-squares weights")
            local_extra = _local_extra(data["lx"], local_weights) if "lx" in data else ()
            output_delta = None
            if "od" in data:  # its length and bounds are checked against the network it adjusts
                output_delta = np.array(data["od"], dtype=np.int64)
                if correction is None or output_delta.ndim != 1:
                    raise ValueError("bad output-layer delta")
            stack_weights = None
            if "n2" in data or "sk" in data:
                stack_weights = np.array(data["sk"], dtype=np.int64)
                if correction is None or second_correction is None or stack_weights.shape != (2 * ACTIVITY_CLASSES,) \
                        or np.abs(stack_weights).max() > STACK_LIMIT:
                    raise ValueError("bad stacked corrections")
                stack_weights = stack_weights.reshape(ACTIVITY_CLASSES, 2)
            resampling = None
            if "ph" in data:
                if not phase.valid(data["ph"]) or "bc" in data:
                    raise ValueError("bad resampling phase classes")
                resampling = tuple(data["ph"])
            key_offsets = None
            if "ko" in data:
                key_offsets = np.array(data["ko"], dtype=np.int64)
                if key_offsets.shape != (ACTIVITY_CLASSES,) or np.abs(key_offsets).max() > KEY_OFFSET_LIMIT \
                        or not key_offsets.any():
                    raise ValueError("bad scale-key offsets")
            differences = None
            if "dw" in data:
                differences = np.array(data["dw"], dtype=np.int64)
                if differences.size != tap_differences.TAPS * tap_differences.WIDTH or "nb" in data or "lt" in data:
                    raise ValueError("bad tap-difference weights")
                differences = np.concatenate([differences.reshape(tap_differences.TAPS, tap_differences.WIDTH),
                                              np.zeros((1, tap_differences.WIDTH), dtype=np.int64)])
                if "da" in data:
                    agreement = np.array(data["da"], dtype=np.int64)
                    if agreement.shape != (tap_differences.AGREEMENT,) or not agreement.any():
                        raise ValueError("bad agreement weights")
                    differences[tap_differences.TAPS, :tap_differences.AGREEMENT] = agreement
                if not tap_differences.valid(differences):
                    raise ValueError("bad tap-difference weights")
            elif "da" in data:
                raise ValueError("agreement weights without tap-difference weights")
            model = cls(pad=int(data["pad"]), class_shift=int(data["cs"]), shared=shared, first=first, second=second,
                        scale_weights=np.array(data["w"], dtype=np.int64), bucket_low=bucket_low,
                        ell=ell + start_ell(bucket_low, ell.size), step=step, offset=offset,
                        boost=boost, lattice=lattice, palette=palette, block_size=block_size,
                        block_classes=block_classes,
                        correction=correction, scale_net=scale_net, value_range=value_range,
                        local_weights=local_weights, local_extra=local_extra, output_delta=output_delta,
                        second_correction=second_correction, stack_weights=stack_weights, resampling=resampling,
                        key_offsets=key_offsets, differences=differences)
        except (KeyError, TypeError, ValueError, OverflowError) as exc:
            raise CorruptStreamError(f"raster side information is malformed ({exc})") from None
        ok = (0 <= model.pad < (1 << model.coded_bits(bits)) and 0 <= model.class_shift <= 16
              and model.first.shape == (CLASSES, len(OFFSETS)) and model.second.shape == (CLASSES, ERROR_TAPS)
              and model.scale_weights.shape == (SCALE_TAPS + 1,)
              and np.abs(model.first).max() <= FIRST_LIMIT and np.abs(model.second).max() <= COEF_LIMIT
              and model.scale_weights.min() >= 0 and model.scale_weights.max() <= WEIGHT_LIMIT
              and model.ell.min() >= 0 and model.ell.max() < rm.MAX_ELL
              and (model.value_range is None
                   or (0 <= model.value_range[0] <= model.pad <= model.value_range[1] < (1 << model.coded_bits(bits))
                       and 0 <= model.value_range[2] <= 3)))
        if not ok:
            raise CorruptStreamError("raster side information is out of range")
        return model


def _local_extra(entries, local_weights: np.ndarray | None) -> tuple[tuple[int, np.ndarray], ...]:
    """The side information's "lx": [[radius, 17 weights], ...], validated (ValueError)."""
    if local_weights is None or not isinstance(entries, list) or not entries:
        raise ValueError("bad local least-squares radii")
    out = []
    for entry in entries:
        if not isinstance(entry, list) or len(entry) != CLASSES + 1:
            raise ValueError("bad local least-squares radii")
        radius, weights = int(entry[0]), np.array(entry[1:], dtype=np.int64)
        if not 1 <= radius <= local_ls.RADIUS_LIMIT or radius == local_ls.RADIUS \
                or radius in [r for r, _ in out] or weights.min() < 0 or weights.max() > local_ls.WEIGHT_ONE:
            raise ValueError("bad local least-squares radii")
        out.append((radius, weights))
    return tuple(out)


def start_ell(bucket_low: int, count: int) -> np.ndarray:
    """The scale index of a logistic whose mean absolute deviation is a bucket's s (ell ~ 8 log2 s - 4):
    where the encoder's search starts, and what the sent indices are differences from."""
    return np.clip(2 * (np.arange(count, dtype=np.int64) + bucket_low) + 1 - 4, 0, rm.MAX_ELL - 1)


def default_first(shared: np.ndarray) -> np.ndarray:
    return np.array([shared] * ACTIVITY_CLASSES + [BORDER_DEFAULT] * (BORDER_CLASSES + 1), dtype=np.int64)


def _palette_runs(palette: np.ndarray) -> list[int]:
    """A sorted value set as [first value, run of used values, run of unused, run of used, ...]."""
    breaks = np.flatnonzero(np.diff(palette) > 1)
    starts = np.r_[palette[0], palette[breaks + 1]]
    ends = np.r_[palette[breaks], palette[-1]] + 1  # one past each run of used values
    runs = np.empty(2 * starts.size - 1, dtype=np.int64)
    runs[0::2] = ends - starts
    runs[1::2] = starts[1:] - ends[:-1]
    return [int(palette[0])] + runs.tolist()


def _palette_of_runs(runs, bits: int) -> np.ndarray:
    """The inverse of ``_palette_runs``; ValueError unless it is a valid set of ``bits``-bit values."""
    if not isinstance(runs, list) or not 2 <= len(runs) <= MAX_PALETTE_RUNS or len(runs) % 2:
        raise ValueError("bad palette")
    runs = np.array(runs, dtype=np.int64)
    if runs[0] < 0 or runs[1:].min() < 1 or runs[0] + runs[1:].sum() > (1 << bits):
        raise ValueError("bad palette")
    used = np.zeros(int(runs[1:].sum()), dtype=bool)
    edges = np.cumsum(runs[1:])
    for start, end in zip(np.r_[0, edges[1::2]], edges[0::2]):
        used[start:end] = True
    return runs[0] + np.flatnonzero(used)


def coded_bits(bits: int, step: int, offset: int) -> int:
    """Bits of the coded plane: enough for the largest value of ``bits`` on the grid."""
    return max(1, (((1 << bits) - 1 - offset) // step).bit_length())


def index_bits(count: int) -> int:
    """Bits of the coded plane of palette indices 0..count-1."""
    return max(1, (count - 1).bit_length())
