"""Subimage paths (after LFC-UNet / LC-TMNet): A by JPEG-XL, then D <- A, B <- A+D, C <- A+D+B.

Fast (LC-H): each predicted subimage takes one integer-exact network pass (``medcodec.networks.lch``)
giving, per pixel, a mean and a scale index; ``medcodec.entropy.residual_model`` turns those into
integer tables and symbols, coded by rANS.
Slow (LC-H-Extend + LC-L): each predicted subimage is coded in two column sets: its even columns with
the LC-H pass, then its odd columns with a second pass of the same network that also sees the even
columns (same rows: this is what removes row-correlated noise, e.g. of CR readers) - or, where that
costs more, whole as in the fast path; and a slow plane is also offered in the fast layout
(``encode_alternatives``), for the codec to keep the smaller. The slow path also codes each subimage
with its passes as test-time ensembles (``ensemble``) and keeps them where they save bits.

Streams of a plane:
* PLANE_META 0: JSON (``base.pack_side_info``) {"lo": int, "shift": int, "scale_adjust": [int, ...], "left_pass": [0|1|2, ...]
  (slow only: per subimage, whether its odd columns used the first pass (0) or the LC-L pass (1), or
  whether it was coded whole, as in the fast path (2; the plane then "requires" "whole_set"))} - the plane's
  normalisation (see ``split``) and, per coded pixel set in coding order, the offsets the encoder added to every scale
  index and mean ("mean_adjust", 1/16 sample; ``residual_model.best_adjustment``: a per-plane
  calibration of the network's confidence and bias); optionally, per coded set, "refine" (``refine``:
  neighbour weights and activity-bin offsets; "requires" "refine") and "phase" (``block_phase``: 16
  offsets by place in an earlier JPEG's 8x8 grid, or null; "requires" "phase") and "surprise" (``surprise``:
  24 offsets by how wrong the network's first pass was at the pixel's coded neighbours, or null; "requires"
  "surprise"); optionally, per
  subimage D, B, C, "ensemble": [first-pass size, LC-L pass size] ("requires" "ensemble"; absent: all 1),
* JXL_SUBIMAGE 0: subimage A, coded by the classical method (JPEG-XL, or raw when smaller),
* RESIDUAL: per coded pixel set, a pair (main symbols; escapes and raw low bits). Fast: sets D, B, C
  (indices 0..5). Slow: D-even, D-odd, B-even, B-odd, C-even, C-odd (indices 0..11; a subimage coded
  whole uses its even set's pair for all its pixels).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..container.format import SECTION_OVERHEAD, SectionKind
from ..entropy import rans
from ..entropy import residual_model as rm
from ..errors import CorruptStreamError, ModelMismatchError
from ..models import load_model
from ..networks.lch import LCHNet
from ..parallel import beside
from . import block_phase, ensemble, refine, surprise
from . import split as sp
from .base import (Method, Stream, check_decoded, check_plane, pack_side_info, required_features,
                   unpack_side_info)
from .classical import ClassicalMethod

DEFAULT_MODEL = "lch-v2"
KNOWN_FEATURES = {"ensemble", "phase", "refine", "surprise", "whole_set"}  # PLANE_META "requires" names this decoder implements
NO_ENSEMBLE = (1, 1)  # (first-pass, LC-L pass) ensemble sizes: the network alone
# an ensemble is kept for a subimage only where it saves this share of its bytes: less is not worth the
# decoder's extra network passes (train split, benchmarks/ensemble_ablation.py: at 1 % the slow path
# keeps 78 % of what the ensembles save at 0.1 %, for less than half the extra decode time)
ENSEMBLE_MIN_GAIN = 0.01
WHOLE_SET = 2  # slow path's left_pass value: the subimage is coded as one set (its odd-column set is empty)
TILE = 512  # subimage pixels per tile side: bounds decoder memory on large radiographs
HALO = 32  # context pixels each tile sees beyond its edges


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise ModelMismatchError("--device cuda was asked for, but no CUDA device is available")
    return torch.device(device)


class SubimagePredictor:
    """Runs the integer networks of a model: context planes -> (mu in 1/16 samples, scale index)."""

    def __init__(self, model_id: str, device: str = "auto"):
        self.model = load_model(model_id)
        self.device = resolve_device(device)
        config = self.model.metadata["networks"]
        self.nets = {t: LCHNet(config[t]["in_channels"], tuple(config[t]["widths"])) for t in sp.PREDICTED}
        self.params = {
            t: {layer: {k: v.to(self.device) for k, v in tensors.items()} for layer, tensors in layers.items()}
            for t, layers in self.model.torch_params().items()
        }

    @property
    def supports_left(self) -> bool:
        """Whether the networks take the known-left planes (needed by the slow path)."""
        return all(self.nets[t].in_channels == sp.input_channels(t) for t in sp.PREDICTED)

    @torch.no_grad()
    def predict(self, target: str, normalised: dict[str, torch.Tensor], norm: sp.Normalisation,
                left: torch.Tensor | None = None, variants: int = 1):
        """Integer (mu, ell) in raw sample units for every pixel of the target subimage grid.

        left: the target's normalised grid whose even columns are known (slow path's second pass).
        variants: passes of a test-time ensemble (``ensemble``; 1: the network alone).
        Large grids are predicted tile by tile (TILE x TILE, each seen with a HALO of context), which
        bounds memory; the tiling is part of the method, so encoder and decoder always agree.
        """
        return self._predict(target, normalised, norm, left, variants, (variants,))[variants]

    @torch.no_grad()
    def predict_both(self, target: str, normalised: dict[str, torch.Tensor], norm: sp.Normalisation,
                     left: torch.Tensor | None = None, variants: int = 1):
        """{1: the network alone, variants: the ensemble}, as ``predict`` gives them, for an encoder that
        chooses: the ensemble's first pass is the network alone, so this costs no more than the ensemble."""
        return self._predict(target, normalised, norm, left, variants, (1, variants))

    def _predict(self, target: str, normalised: dict[str, torch.Tensor], norm: sp.Normalisation,
                 left: torch.Tensor | None, variants: int, keep: tuple[int, ...]) -> dict:
        """{count: (mu, ell)} for each count in keep: 1 (the first pass alone) or variants (the ensemble)."""
        chosen = ensemble.transforms(target, variants, left is not None)
        keep = tuple(dict.fromkeys(keep))  # (1, 1) when there is no ensemble
        net = self.nets[target]
        if self.supports_left:
            x = sp.network_input(target, normalised, left)  # [C, h, w]
            names = sp.CONTEXT[target] + (target, target)  # the known-left plane and its mask
        else:
            x = torch.stack([normalised[n] for n in sp.CONTEXT[target]])
            names = sp.CONTEXT[target]
        h, w = x.shape[-2:]
        sums = {count: (torch.empty((h, w), dtype=torch.int64), torch.empty((h, w), dtype=torch.int64))
                for count in keep}
        for r0 in range(0, h, TILE):
            for c0 in range(0, w, TILE):
                r1, c1 = min(h, r0 + TILE), min(w, c0 + TILE)
                wr0, wc0 = max(0, r0 - HALO), max(0, c0 - HALO)
                window = x[:, wr0 : min(h, r1 + HALO), wc0 : min(w, c1 + HALO)]
                first, total = ensemble.summed_passes(target, names, window, chosen,
                                                      lambda win: self._run_window(net, target, win))
                for count, (d, e) in {variants: total, 1: first}.items():  # one entry when variants == 1
                    if count not in sums:
                        continue
                    sums[count][0][r0:r1, c0:c1] = d[r0 - wr0 : r1 - wr0, c0 - wc0 : c1 - wc0]
                    sums[count][1][r0:r1, c0:c1] = e[r0 - wr0 : r1 - wr0, c0 - wc0 : c1 - wc0]
        del x
        base = sp.base_prediction(target, normalised)
        out = {}
        for size in keep:
            delta_sum, ell_sum = sums.pop(size)
            n = 1 if size == 1 else len(chosen)  # passes summed (B and C have no transposes: 4 of size 8)
            # mu = lo + ((base + mean delta) << shift), the floor taken after the shift so the mean
            # keeps its fraction where the shift has room for it; exact integers throughout
            scaled = torch.bitwise_left_shift(base * n + delta_sum, norm.shift)
            mu = rm.MEAN_ONE * norm.lo + torch.div(scaled, n, rounding_mode="floor")
            ell = torch.div(ell_sum, n, rounding_mode="floor") + rm.STEPS_PER_OCTAVE * norm.shift
            out[size] = (mu.numpy(), ell.numpy())
            del scaled, delta_sum, ell_sum, mu, ell
        return out

    def _run_window(self, net: LCHNet, target: str, window: torch.Tensor):
        """One integer network pass over a [C, h, w] window, padded to the U-Net's multiple."""
        h, w = window.shape[-2:]
        m = net.multiple
        x = window.unsqueeze(0)
        if h % m or w % m:
            # replicate padding is done on float32, exact for the 10-bit inputs
            x = F.pad(x.to(torch.float32), (0, (-w) % m, 0, (-h) % m), mode="replicate").to(torch.int64)
        delta, ell = net.forward_integer(x.to(self.device), self.params[target])
        return delta[0, :h, :w].cpu(), ell[0, :h, :w].cpu()


@dataclass(frozen=True)
class _CodedSet:
    """A pixel set as the encoder coded it: calibration, the candidate pass used, the two streams."""

    calibration: refine.Calibration
    used: int | None
    payloads: tuple[bytes, bytes]
    phase: block_phase.Offsets | None = None
    surprise_offsets: surprise.Offsets | None = None

    @property
    def cost(self) -> int:
        """Bytes it adds to the file: streams, their section entries, its refinement's, block-phase and
        surprise offsets' side information."""
        side = 0 if self.calibration.refinement is None else len(pack_side_info(self.calibration.refinement.to_json()))
        if self.phase is not None:
            side += block_phase.side_bytes(self.phase)
        if self.surprise_offsets is not None:
            side += surprise.side_bytes(self.surprise_offsets)
        return sum(map(len, self.payloads)) + 2 * SECTION_OVERHEAD + side


@dataclass
class SetModel:
    """A pixel set as the encoder models it: its values (int64, the set's row-major order), the final
    per-pixel mean (1/16 sample) and scale index it is coded with, and the choices sent for them."""

    values: np.ndarray
    mu: np.ndarray
    ell: np.ndarray
    calibration: refine.Calibration
    used: int | None
    phase: block_phase.Offsets | None
    surprise_offsets: surprise.Offsets | None = None


def _cheaper(costs: list[int], min_gain: float = ENSEMBLE_MIN_GAIN) -> int:
    """Index of the coding to keep: 0 (the network alone) unless a later one (an ensemble) saves at
    least min_gain of it."""
    best = min(range(len(costs)), key=lambda i: (costs[i], i))
    return best if costs[0] - costs[best] >= costs[0] * min_gain and best else 0


def _stream_bytes(streams: list[Stream]) -> int:
    return sum(len(s.payload) + SECTION_OVERHEAD for s in streams)


def _pack(norm: sp.Normalisation, a_payload: bytes, coded_sets: list[tuple[int, _CodedSet]],
          left_pass: list[int], ensemble_sizes: list[tuple[int, int]]) -> list[Stream]:
    """A plane's streams: side information, subimage A, each coded set's residual pair at its index."""
    meta = {"lo": norm.lo, "shift": norm.shift,
            "scale_adjust": [c.calibration.delta[0] for _, c in coded_sets],
            "mean_adjust": [c.calibration.delta[1] for _, c in coded_sets]}
    requires = []
    if any(tuple(e) != NO_ENSEMBLE for e in ensemble_sizes):
        meta["ensemble"] = [list(e) for e in ensemble_sizes]
        requires.append("ensemble")
    if left_pass:
        meta["left_pass"] = left_pass
        if WHOLE_SET in left_pass:
            requires.append("whole_set")
    refinements = [c.calibration.refinement for _, c in coded_sets]
    if any(r is not None for r in refinements):
        meta["refine"] = [None if r is None else r.to_json() for r in refinements]
        requires.append("refine")
    if any(c.phase is not None for _, c in coded_sets):
        meta["phase"] = [None if c.phase is None else block_phase.to_json(c.phase) for _, c in coded_sets]
        requires.append("phase")
    if any(c.surprise_offsets is not None for _, c in coded_sets):
        meta["surprise"] = [None if c.surprise_offsets is None else surprise.to_json(c.surprise_offsets)
                            for _, c in coded_sets]
        requires.append("surprise")
    if requires:
        meta["requires"] = sorted(requires)
    streams = [Stream(SectionKind.PLANE_META, 0, pack_side_info(meta)), Stream(SectionKind.JXL_SUBIMAGE, 0, a_payload)]
    for index, coded in coded_sets:
        streams += [Stream(SectionKind.RESIDUAL, index + k, payload) for k, payload in enumerate(coded.payloads)]
    return streams


class FastMethod(Method):
    name = "fast"
    column_sets: tuple[str, ...] = ("all",)
    # (first pass, LC-L pass) sizes of the test-time ensemble the encoder uses (``ensemble``); the
    # fast path keeps one network pass per subimage: its decoder's speed is the point of it
    ensemble_sizes: tuple[int, int] = NO_ENSEMBLE
    ensemble_choice = "cheaper"  # or "always": every subimage as an ensemble (tests, worst-case measurements)
    ensemble_min_gain = ENSEMBLE_MIN_GAIN  # for ablations
    surprise_choice = "cheaper"  # or "always": surprise offsets on every set (tests, worst cases)

    def __init__(self, device: str = "auto", model_id: str = DEFAULT_MODEL, effort: int | tuple[int, ...] = 7,
                 use_refinement: bool = True, use_block_phase: bool = True,
                 ensemble_sizes: tuple[int, int] | None = None, use_surprise: bool = True):
        """use_refinement / use_block_phase / use_surprise=False: the encoder never tries ``refine`` /
        ``block_phase`` / ``surprise`` (for ablations); ensemble_sizes overrides the class's (for
        ablations); the decoder reads every kind of stream."""
        if ensemble_sizes is not None:
            ensemble.check_sizes(*ensemble_sizes)
            self.ensemble_sizes = tuple(ensemble_sizes)
        self.predictor = SubimagePredictor(model_id, device)
        self.model_id = model_id
        self.model_sha256 = self.predictor.model.sha256
        self.subimage_a = ClassicalMethod(effort=effort)
        self.use_refinement = use_refinement
        self.use_block_phase = use_block_phase
        self.use_surprise = use_surprise

    def _column_masks(self, valid: np.ndarray) -> list[np.ndarray]:
        """The pixel sets coded one after the other, in order (fast: all valid pixels at once)."""
        if self.column_sets == ("all",):
            return [valid]
        even = sp.even_columns(torch.from_numpy(valid)).numpy()[None, :]
        return [valid & even, valid & ~even]

    def encode(self, plane: np.ndarray, bits: int) -> list[Stream]:
        return self.encode_alternatives(plane, bits)[0][1]

    def encode_alternatives(self, plane: np.ndarray, bits: int) -> list[tuple[str, list[Stream]]]:
        """This path's streams; the slow path adds the fast path's layout of the same coding (every
        subimage whole, and subimage A as the slow path coded it), which is what a slow plane falls
        back to where LC-L helps nowhere: no per-subimage choices to send."""
        plane = check_plane(plane, bits)
        height, width = plane.shape
        norm = sp.Normalisation.of(int(plane.min()), int(plane.max()))
        subs = sp.split(torch.from_numpy(plane.astype(np.int64)), fill=norm.lo)
        # subimage A's JPEG-XL coding runs beside the predictions (they need A's values, not its bytes)
        a_streams, layouts = beside(
            lambda: self.subimage_a.encode(subs["A"].numpy().astype(np.uint16), bits),
            lambda: self._code_predicted(subs, norm, height, width))
        a_payload = a_streams[0].payload
        alternatives = []
        for name, versions in layouts:
            # each layout with its subimages' ensemble choices and with none: the choices' side
            # information is counted only here, so the smaller file is kept (the single passes on a tie)
            packed = [_pack(norm, a_payload, sets, left_pass, sizes) for sets, left_pass, sizes in versions]
            if self.ensemble_choice == "always":
                packed = packed[:1]
            alternatives.append((name, min(reversed(packed), key=_stream_bytes)))
        return alternatives

    def _code_predicted(self, subs: dict[str, torch.Tensor], norm: sp.Normalisation, height: int, width: int):
        """D, B, C coded in turn: [(layout name, [(coded sets, left_pass values, per subimage the
        ensemble sizes)] with the ensembles chosen, and with the network alone)] for this path's layout
        and, in the slow path, the fast layout (every subimage whole).

        Where the method has an ensemble, each subimage is coded with the network alone and with the
        ensemble, and the cheaper kept (the ensemble only where it saves ENSEMBLE_MIN_GAIN). The
        choices are independent: later subimages see a subimage's pixels, not its predictions."""
        normalised = {k: sp.normalise(v, norm.lo, norm.shift) for k, v in subs.items()}
        # the surprise classes' error grids, from each subimage's first single pass (the same whichever
        # of its codings is kept, so later subimages' codings do not depend on that choice)
        error_grids = {"A": surprise.a_errors(subs["A"].numpy())} if self.use_surprise else None
        first_size, left_size = self.ensemble_sizes
        options = [NO_ENSEMBLE] if self.ensemble_sizes == NO_ENSEMBLE else [NO_ENSEMBLE, self.ensemble_sizes]
        # per layout and version: ([(first residual stream index, set)] in coding order, left_pass, sizes)
        split_layout = len(self.column_sets) == 2
        own = [([], [], []) for _ in options]
        whole = [([], [], []) for _ in options]
        for number, target in enumerate(sp.PREDICTED):
            truth = subs[target].numpy()
            valid = sp.valid_mask(height, width, target).numpy()
            firsts = self.predictor.predict_both(target, normalised, norm, variants=first_size)
            lc_ls = None
            if split_layout:
                lc_ls = self.predictor.predict_both(target, normalised, norm, normalised[target], left_size)
            codings = [self._code_subimage(target, subs, truth, valid, norm, firsts[f],
                                           None if lc_ls is None else lc_ls[lf], error_grids)
                       for f, lf in options]
            if error_grids is not None:
                error_grids[target] = surprise.errors(truth.shape, valid, truth[valid], firsts[1][0][valid])
            del firsts, lc_ls
            index = 2 * len(self.column_sets) * number  # the subimage's first residual stream
            for version, chosen in enumerate([self._pick([sum(s.cost for s in sets) for _, sets, _ in codings]), 0]
                                             [:len(own)]):
                _, sets, used = codings[chosen]
                own[version][0].extend((index + 2 * k, coded) for k, coded in enumerate(sets))
                if used is not None:
                    own[version][1].append(used)
                own[version][2].append((options[chosen][0], options[chosen][1] if used == 1 else 1))
            for version, chosen in enumerate([self._pick([w.cost for w, _, _ in codings]), 0][:len(whole)]):
                whole[version][0].append((2 * number, codings[chosen][0]))
                whole[version][2].append((options[chosen][0], 1))  # no LC-L pass in the fast layout
        layouts = [(self.name, own)]
        if split_layout:
            layouts.append((FastMethod.name, whole))
        return layouts

    def _pick(self, costs: list[int]) -> int:
        """Which of a subimage's codings (the network alone, then the ensemble) to keep."""
        return len(costs) - 1 if self.ensemble_choice == "always" else _cheaper(costs, self.ensemble_min_gain)

    def _code_subimage(self, target: str, subs: dict[str, torch.Tensor], truth: np.ndarray, valid: np.ndarray,
                       norm: sp.Normalisation, first, lc_l, error_grids: dict | None):
        """One subimage coded from its first pass (and, in the slow path, its LC-L pass):
        (the subimage as one set, the sets this path codes it as, the slow path's left_pass value)."""
        whole = self._code_set(target, subs, truth, valid, [(None, first)], None, error_grids)
        if len(self.column_sets) == 1:
            return whole, [whole], None
        even, odd = self._column_masks(valid)
        split = [self._code_set(target, subs, truth, even, [(None, first)], None, error_grids)]
        # the target's pixels as the decoder has them after its even columns
        known = torch.full_like(subs[target], norm.lo)
        known[torch.from_numpy(even)] = subs[target][torch.from_numpy(even)]
        # odd columns: the LC-L pass (even columns known) or, when it codes them in fewer bits
        # after calibration and refinement, the first pass again
        split.append(self._code_set(target, subs, truth, odd, [(1, lc_l), (0, first)], known, error_grids))
        # or the whole subimage as one set, as the fast path codes it: where LC-L does not help,
        # the split only adds a second calibration and two sections. The choice is sent, so slow
        # never loses to fast on a subimage.
        if self.set_choice == "whole" or (self.set_choice == "cheaper" and whole.cost < sum(c.cost for c in split)):
            return whole, [whole], WHOLE_SET
        return whole, split, split[1].used

    def _code_set(self, target: str, subs: dict[str, torch.Tensor], truth: np.ndarray, pixels: np.ndarray,
                  candidates: list, known: torch.Tensor | None, error_grids: dict | None) -> "_CodedSet":
        """One pixel set coded with the cheapest of the candidate passes [(left_pass value, (mu, ell))]
        after calibration and refinement (known: the target's grid as decoded so far, for the later
        column sets' own-row neighbours; error_grids: the earlier subimages', for the surprise classes)."""
        model = self.model_set(target, subs, truth, pixels, candidates, known, error_grids)
        main, extra = rm.encode_segments(model.values, rm.pixel_params(model.mu, model.ell))
        return _CodedSet(model.calibration, model.used, (rans.encode_segments(main), rans.encode_segments(extra)),
                         model.phase, model.surprise_offsets)

    def model_set(self, target: str, subs: dict[str, torch.Tensor], truth: np.ndarray, pixels: np.ndarray,
                  candidates: list, known: torch.Tensor | None, error_grids: dict | None = None) -> "SetModel":
        """What ``_code_set`` codes a set with: its values and final per-pixel (mu, ell), and the
        choices sent for them (also for analyses that try other corrections on top). Surprise offsets
        are fitted only when error_grids (the earlier subimages' and A's, ``surprise``) are given."""
        values = truth[pixels]
        ring = refine.NeighbourRing(target, subs, pixels, known) if self.use_refinement else None
        choices = []
        for used, (mu, ell) in candidates:
            mu, ell = mu[pixels], ell[pixels]  # gathered once per candidate
            choices.append((refine.choose(values, mu, ell, ring), used, mu, ell))
        calibration, used, mu, ell = min(choices, key=lambda c: (c[0].bits, -(c[1] or 0)))
        if calibration.refinement is not None:
            mu, ell = refine.apply(mu, ell, ring, calibration.refinement)
        mu, ell = mu + calibration.delta[1], ell + calibration.delta[0]
        phase = None
        if self.use_block_phase:
            pixel_classes = block_phase.classes(pixels)
            phase = block_phase.fit(values, mu, ell, pixel_classes)
            if phase is not None:
                mu, ell = block_phase.apply(mu, ell, pixel_classes, phase)
        offsets = None
        if error_grids is not None and values.size:
            pixel_classes = surprise.classes(target, error_grids, pixels, ell)
            offsets = surprise.fit(values, mu, ell, pixel_classes, always=self.surprise_choice == "always")
            if offsets is not None:
                mu, ell = surprise.apply(mu, ell, pixel_classes, offsets)
        return SetModel(values, mu, ell, calibration, used, phase, offsets)

    def decode(self, streams: Sequence[Stream], shape: tuple[int, int], bits: int) -> np.ndarray:
        height, width = shape
        by_key = {(int(s.kind), s.index): s.payload for s in streams}
        norm, left_pass, calibrations, ensemble_sizes = self._read_meta(by_key, bits)
        uses_surprise = any(offsets is not None for *_, offsets in calibrations)
        calibrations = iter(calibrations)
        a_payload = by_key.get((int(SectionKind.JXL_SUBIMAGE), 0))
        if a_payload is None:
            raise CorruptStreamError(f"{self.name} frame: subimage A stream is missing")
        a_shape = ((height + 1) // 2, (width + 1) // 2)
        a = self.subimage_a.decode([Stream(SectionKind.PLANE_CLASSICAL, 0, a_payload)], a_shape, bits)
        subs = {"A": torch.from_numpy(a.astype(np.int64))}
        normalised = {"A": sp.normalise(subs["A"], norm.lo, norm.shift)}
        error_grids = {"A": surprise.a_errors(a)} if uses_surprise else None
        for number, target in enumerate(sp.PREDICTED):
            index = 2 * len(self.column_sets) * number  # the subimage's first residual stream
            valid = sp.valid_mask(height, width, target).numpy()
            grid = torch.full(a_shape, norm.lo, dtype=torch.int64)
            whole = len(self.column_sets) == 1 or left_pass[number] == WHOLE_SET
            masks = [valid] if whole else self._column_masks(valid)
            reuse_first = not whole and left_pass[number] == 0
            first_variants, left_variants = ensemble_sizes[number]
            for step, pixels in enumerate(masks):
                # Only the coded pixels' (mu, ell) are kept, and full grids are dropped as soon as
                # possible: the decoder's peak memory is one network pass plus the planes.
                if step == 0:
                    if uses_surprise:  # the surprise error grids need the first single pass's mean
                        passes = self.predictor.predict_both(target, normalised, norm, variants=first_variants)
                        mu, ell = passes[first_variants]
                        first_mu = passes[1][0][valid]
                        del passes
                    else:
                        mu, ell = self.predictor.predict(target, normalised, norm, variants=first_variants)
                    if reuse_first:  # the odd columns are coded with this first pass too
                        later = (mu[masks[1]], ell[masks[1]])
                    mu, ell = mu[pixels], ell[pixels]
                elif reuse_first:
                    mu, ell = later
                    del later
                else:
                    mu, ell = self.predictor.predict(target, normalised, norm, sp.normalise(grid, norm.lo, norm.shift),
                                                     left_variants)
                    mu, ell = mu[pixels], ell[pixels]
                (d_ell, d_mu), refinement, phase, offsets = next(calibrations)
                if refinement is not None:
                    ring = refine.NeighbourRing(target, subs, pixels, grid if step else None)
                    mu, ell = refine.apply(mu, ell, ring, refinement)
                    del ring
                mu, ell = mu + d_mu, ell + d_ell  # in the encoder's order: the surprise classes read ell
                if phase is not None:
                    mu, ell = block_phase.apply(mu, ell, block_phase.classes(pixels), phase)
                if offsets is not None:
                    mu, ell = surprise.apply(mu, ell, surprise.classes(target, error_grids, pixels, ell), offsets)
                params = rm.pixel_params(mu, ell)
                del mu, ell
                tables, order = rm.decode_main_tables(params)
                main = rans.decode_segments(self._payload(by_key, index), tables)
                extra = self._payload(by_key, index + 1)
                values = rm.decode_values(main, order, params, lambda t, data=extra: rans.decode_segments(data, t))
                if values.size and (values.min() < 0 or values.max() >= (1 << bits)):
                    raise CorruptStreamError(f"{self.name} frame: decoded {target} values fall outside {bits} bits")
                grid[torch.from_numpy(pixels)] = torch.from_numpy(values)
                index += 2
                del params, tables, order, main, values
            subs[target] = grid
            normalised[target] = sp.normalise(grid, norm.lo, norm.shift)
            if uses_surprise:
                error_grids[target] = surprise.errors(a_shape, valid, grid.numpy()[valid], first_mu)
                del first_mu
        plane = sp.merge(subs, height, width).numpy()
        return check_decoded(plane, shape, bits, self.name)

    def _payload(self, by_key: dict, index: int) -> bytes:
        payload = by_key.get((int(SectionKind.RESIDUAL), index))
        if payload is None:
            raise CorruptStreamError(f"{self.name} frame: residual stream {index} is missing")
        return payload

    def _read_meta(self, by_key: dict, bits: int):
        """The plane's normalisation; in the slow path, per subimage its left_pass value; per coded
        pixel set, in coding order, its (scale, mean) adjustment and refinement (or None); and the
        (first pass, LC-L pass) ensemble sizes."""
        try:
            meta = unpack_side_info(by_key[(int(SectionKind.PLANE_META), 0)])
            required_features(meta, KNOWN_FEATURES, self.name)
            lo, shift = int(meta["lo"]), int(meta["shift"])
            left_pass = [int(u) for u in meta.get("left_pass", [])]
            if len(left_pass) != (len(sp.PREDICTED) if len(self.column_sets) == 2 else 0) or not all(
                    u in (0, 1, WHOLE_SET) for u in left_pass):
                raise ValueError("one left_pass value (0, 1 or 2) per subimage in the slow path, none in the fast")
            # the ring size of each coded set: its subimage's ring, plus the target's own row
            # neighbours for the odd columns of a split subimage
            ring_sizes = [len(refine.RING[t]) + (len(refine.OWN_ROW) if step else 0)
                          for number, t in enumerate(sp.PREDICTED)
                          for step in range(1 if not left_pass or left_pass[number] == WHOLE_SET else 2)]
            adjustments = [(int(d), int(m)) for d, m in zip(meta["scale_adjust"], meta["mean_adjust"], strict=True)]
            listed = meta.get("refine", [None] * len(ring_sizes))
            if not isinstance(listed, list) or len(listed) != len(ring_sizes) or len(adjustments) != len(ring_sizes):
                raise ValueError("one adjustment and refinement entry per coded pixel set")
            refinements = [None if r is None else refine.Refinement.from_json(r, n) for r, n in zip(listed, ring_sizes)]
            listed = meta.get("phase", [None] * len(ring_sizes))
            if not isinstance(listed, list) or len(listed) != len(ring_sizes):
                raise ValueError("one block-phase entry per coded pixel set")
            phases = [None if p is None else block_phase.from_json(p) for p in listed]
            listed = meta.get("surprise", [None] * len(ring_sizes))
            if not isinstance(listed, list) or len(listed) != len(ring_sizes):
                raise ValueError("one surprise entry per coded pixel set")
            surprises = [None if p is None else surprise.from_json(p) for p in listed]
            listed = meta.get("ensemble", [list(NO_ENSEMBLE)] * len(sp.PREDICTED))
            if not isinstance(listed, list) or len(listed) != len(sp.PREDICTED):
                raise ValueError("one pair of ensemble sizes per subimage")
            sizes = []
            for first, left in listed:
                ensemble.check_sizes(int(first), int(left))
                sizes.append((int(first), int(left)))
        except (KeyError, ValueError, TypeError) as exc:
            raise CorruptStreamError(f"{self.name} frame: plane side information is missing or damaged") from exc
        if not (0 <= lo < (1 << bits) and 0 <= shift <= 8
                and all(rm.offset_in_range(d, m) for d, m in adjustments)):
            raise CorruptStreamError(f"{self.name} frame: plane side information is out of range")
        return (sp.Normalisation(lo, shift), left_pass, list(zip(adjustments, refinements, phases, surprises)),
                sizes)


class SlowMethod(FastMethod):
    """LC-TMNet's slow path: even columns of each subimage by LC-H, odd columns by LC-L."""

    name = "slow"
    column_sets = ("even", "odd")
    set_choice = "cheaper"  # per subimage: two column sets or the whole set, whichever is cheaper
    # ("split" / "whole" force one, for tests and ablations)
    # each subimage offered as an ensemble too (kept where it saves ENSEMBLE_MIN_GAIN): the first pass
    # over the four flips (D also over their transposes), LC-L over the up-down flip; the decoder then
    # runs the network 8 + 2 times for D, 4 + 2 for B and C, instead of 1 + 1
    ensemble_sizes = (8, 2)

    # the slow path also spends more JPEG-XL effort on subimage A: 7 and 9, the smaller kept
    def __init__(self, device: str = "auto", model_id: str = DEFAULT_MODEL, effort: int | tuple[int, ...] = (7, 9),
                 use_refinement: bool = True, use_block_phase: bool = True,
                 ensemble_sizes: tuple[int, int] | None = None, use_surprise: bool = True):
        super().__init__(device, model_id, effort, use_refinement, use_block_phase, ensemble_sizes, use_surprise)
        if not self.predictor.supports_left:
            raise ModelMismatchError(f"model {model_id!r} has no LC-L inputs; the slow path needs a newer model")
