"""Latent mode (LVPNet): a Huffman-coded global latent z, then every pixel predicted from z in one pass.

The encoder runs the float GMSM on the normalised plane (``split.Normalisation``: 8-16 bits become
10-bit inputs), floors y / q_step to z and sends z. Only z -> probabilities must agree between machines,
and that path is the integer network of ``medcodec.networks.lvp`` (QCM + upsampling predictor), so
decoding is exact anywhere. GMSM runs in float64, which makes encoding reproducible in practice across
thread counts and backends (z would need a float64 rounding tie to differ); decoding never depends on it.
The per-pixel mean is predicted directly in normalised 1/16 units and mapped to raw units as in
``subimage``: mu = 16 lo + (mu_n << G), scale index + 8 G.

Why class offsets (beyond the paper, 2.24): the network's scales are in normalised units, so on a plane of
more than 8 bits its narrowest one is 2**G samples wide, and one calibration per plane cannot make a
mammogram's zero background cheap without making its tissue dear (LVPNet coded 68 % zero background at
~3 bits a pixel). The encoder sends a (scale, mean) offset for each of 18 classes: 16 by the network's
own scale (normalised, in half octaves), one for pixels predicted at or below the plane's least value and
one at or above its greatest (collimation, saturation). On train planes: a mammogram 5.17 -> 2.39 bpp, CT
and MR 10-12 % and CR 16 % smaller, 8-bit 0-6 %.

Streams of a plane:
* PLANE_META 0: JSON {"lo", "shift", "latent": [C, h, w], "scale_adjust": int, "z_bits": int,
  "residual_bits": int} - the normalisation, z's shape, the encoder's per-plane scale calibration
  (``residual_model.best_scale_adjustment``) and, for reporting only, the bits spent on z and residuals;
  from format 2.24 instead, where they code smaller, "class_offsets": 18 [scale, mean] offsets and "hi" (the
  plane's maximum), with "requires": ["classes"] and "scale_adjust" 0 (``pixel_classes``),
* LATENT_Z 0: z (C, h, w row-major, int8 range) by canonical Huffman (``entropy.huffman``),
* RESIDUAL 0 (main symbols), RESIDUAL 1 (escapes and raw low bits): every pixel, row-major, under the
  residual model of ``entropy.residual_model``.
"""

from __future__ import annotations

import copy
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..container.format import SectionKind
from ..entropy import huffman, rans
from ..entropy import residual_model as rm
from ..errors import CorruptStreamError, ModelMismatchError
from ..models import load_model
from ..networks.lvp import MEAN_LIMIT, Z_MAX, Z_MIN, LVPNet
from . import class_offsets
from . import split as sp
from .base import (Method, Stream, check_decoded, check_plane, pack_side_info, required_features,
                   unpack_side_info)
from .subimage import resolve_device

DEFAULT_MODEL = "latent-v2"
ARCHITECTURE = "lvpnet-gmsm-qcm-int8/v1"
BAND_ROWS = 32  # latent rows per integer pass: bounds memory on large planes
SCALE_CLASSES = 16  # classes by the network's own (normalised) scale index, 4 steps (half an octave) each
FLOOR_CLASS, CEILING_CLASS = SCALE_CLASSES, SCALE_CLASSES + 1  # predicted at the plane's least / greatest value
CLASSES = SCALE_CLASSES + 2
CLASS_KEY = "class_offsets"
CLASS_SCALE_LIMIT = 48  # six octaves: a zero background under a scale fitted to noisy tissue
CLASS_SAMPLE = 1 << 20  # pixels the class search looks at (an even stride)
COST_CHUNK = 1 << 20  # pixels costed at once when the encoder weighs its two codings
KNOWN_FEATURES = {"classes"}  # PLANE_META "requires" names this decoder implements


def pixel_classes(mu: np.ndarray, ell: np.ndarray, norm: sp.Normalisation, hi: int) -> np.ndarray:
    """Each pixel's class from what the decoder has before the residuals: the network's scale index in
    normalised units (ell less 8 G) in half octaves, or the floor or ceiling class where the predicted mean
    (1/16 samples) is at or below the plane's least value lo, or at or above its greatest value hi."""
    by_scale = np.clip((ell - rm.STEPS_PER_OCTAVE * norm.shift) // 4, 0, SCALE_CLASSES - 1)
    return np.where(mu <= rm.MEAN_ONE * norm.lo, FLOOR_CLASS,
                    np.where(mu >= rm.MEAN_ONE * hi, CEILING_CLASS, by_scale)).astype(np.int8)


def _cost_bits(values: np.ndarray, mu: np.ndarray, ell: np.ndarray, classes: np.ndarray | None = None,
               offsets: class_offsets.Offsets | None = None) -> float:
    """The ideal code length of a plane (with its class offsets added, if given), a chunk of pixels at a
    time: an encoder-side choice that should not hold a large plane's tables twice."""
    total = 0.0
    for start in range(0, values.size, COST_CHUNK):
        part = slice(start, start + COST_CHUNK)
        mu_part, ell_part = mu[part], ell[part]
        if offsets is not None:
            mu_part, ell_part = class_offsets.apply(mu_part, ell_part, classes[part], offsets)
        total += rm.ideal_cost_bits(values[part], rm.pixel_params(mu_part, ell_part))
    return total


class LatentPredictor:
    """GMSM (float, encoder) and the integer decoder network of one model."""

    def __init__(self, net: LVPNet, params: dict[str, dict], device: str = "auto"):
        self.device = resolve_device(device)
        self.net = net.eval()
        self.gmsm = copy.deepcopy(net.gmsm).to(torch.float64)
        self.params = {layer: {k: v.to(self.device) for k, v in t.items()} for layer, t in params.items()}
        # latent rows of context each side of a band: every 3x3 conv reaches at most one latent row
        self.halo = sum(1 for p in params.values() if p["weight"].shape[-1] > 1) + 1

    @classmethod
    def from_model(cls, model_id: str, device: str = "auto") -> tuple["LatentPredictor", bytes]:
        model = load_model(model_id)
        if model.metadata.get("architecture") != ARCHITECTURE:
            raise ModelMismatchError(f"model {model_id!r} is not an {ARCHITECTURE} model")
        net = LVPNet(**model.metadata["config"])
        params = model.torch_params()
        net.load_float_state(params["gmsm"])
        return cls(net, params["decoder"], device), model.sha256

    @torch.no_grad()
    def latent(self, normalised: torch.Tensor) -> np.ndarray:
        """Normalised plane [H, W] int64 -> z int64 [C, h, w]."""
        m = self.net.multiple
        h, w = normalised.shape
        x = normalised.to(torch.float64)[None, None]
        x = F.pad(x, (0, (-w) % m, 0, (-h) % m), mode="replicate")
        y = self.gmsm(x / 512.0 - 1.0)[0]
        return torch.floor(y / self.net.q_step).clamp(Z_MIN, Z_MAX).to(torch.int64).numpy()

    @torch.no_grad()
    def predict(self, z: np.ndarray, shape: tuple[int, int], norm: sp.Normalisation) -> tuple[np.ndarray, np.ndarray]:
        """Integer (mu in 1/16 raw samples, scale index) of every pixel, flattened row-major."""
        m, rows = self.net.multiple, z.shape[1]
        zt = torch.from_numpy(z)[None].to(self.device)
        mus, ells = [], []
        for start in range(0, rows, BAND_ROWS):
            stop = min(rows, start + BAND_ROWS)
            lo, hi = max(0, start - self.halo), min(rows, stop + self.halo)
            mu, ell = self.net.forward_integer(zt[:, :, lo:hi], self.params)
            keep = slice((start - lo) * m, (stop - lo) * m)
            mus.append(mu[0, keep].cpu())
            ells.append(ell[0, keep].cpu())
        height, width = shape
        mu_n = torch.cat(mus)[:height, :width].clamp(0, MEAN_LIMIT)
        ell = torch.cat(ells)[:height, :width]
        mu = rm.MEAN_ONE * norm.lo + torch.bitwise_left_shift(mu_n, norm.shift)
        return mu.reshape(-1).numpy(), (ell + rm.STEPS_PER_OCTAVE * norm.shift).reshape(-1).numpy()


class LatentMethod(Method):
    name = "latent"

    def __init__(self, device: str = "auto", model_id: str = DEFAULT_MODEL,
                 predictor: LatentPredictor | None = None, model_sha256: bytes = b""):
        if predictor is None:
            predictor, model_sha256 = LatentPredictor.from_model(model_id, device)
        self.predictor = predictor
        self.model_id = model_id
        self.model_sha256 = model_sha256

    def encode(self, plane: np.ndarray, bits: int) -> list[Stream]:
        plane = check_plane(plane, bits)
        norm = sp.Normalisation.of(int(plane.min()), int(plane.max()))
        raw = torch.from_numpy(plane.astype(np.int64))
        z = self.predictor.latent(sp.normalise(raw, norm.lo, norm.shift))
        mu, ell = self.predictor.predict(z, plane.shape, norm)
        values = raw.reshape(-1).numpy()
        delta = rm.best_scale_adjustment(values, mu, ell)
        meta = {"lo": norm.lo, "shift": norm.shift, "latent": list(z.shape), "scale_adjust": delta}
        hi = int(plane.max())
        classes = pixel_classes(mu, ell, norm, hi)
        sample = np.arange(0, values.size, max(1, values.size // CLASS_SAMPLE))
        offsets = class_offsets.fit(values, mu, ell, classes, CLASSES, sample, CLASS_KEY, CLASS_SCALE_LIMIT,
                                    always=True)
        side_bits = 8 * (class_offsets.side_bytes(CLASS_KEY, offsets) + len(pack_side_info({"hi": hi})))
        if _cost_bits(values, mu, ell, classes, offsets) + side_bits < _cost_bits(values, mu, ell + delta):
            mu, ell = class_offsets.apply(mu, ell, classes, offsets)
            meta.update(scale_adjust=0, hi=hi, requires=["classes"])
            meta[CLASS_KEY] = class_offsets.to_json(offsets)
        else:
            ell = ell + delta
        del classes
        main, extra = rm.encode_segments(values, rm.pixel_params(mu, ell))
        z_stream = huffman.huffman_encode(z)
        residual = [rans.encode_segments(main), rans.encode_segments(extra)]
        meta.update(z_bits=8 * len(z_stream), residual_bits=8 * sum(map(len, residual)))
        return [Stream(SectionKind.PLANE_META, 0, pack_side_info(meta)),
                Stream(SectionKind.LATENT_Z, 0, z_stream),
                Stream(SectionKind.RESIDUAL, 0, residual[0]),
                Stream(SectionKind.RESIDUAL, 1, residual[1])]

    def decode(self, streams: Sequence[Stream], shape: tuple[int, int], bits: int) -> np.ndarray:
        by_key = {(int(s.kind), s.index): s.payload for s in streams}
        norm, latent_shape, delta, by_class = self._read_meta(by_key, shape, bits)
        z = huffman.huffman_decode(self._payload(by_key, SectionKind.LATENT_Z, 0),
                                   max_count=int(np.prod(latent_shape)))
        if z.size != int(np.prod(latent_shape)) or (z.size and (z.min() < Z_MIN or z.max() > Z_MAX)):
            raise CorruptStreamError("latent frame: z has the wrong size or values outside int8")
        mu, ell = self.predictor.predict(z.reshape(latent_shape), shape, norm)
        if by_class is not None:
            hi, offsets = by_class
            mu, ell = class_offsets.apply(mu, ell, pixel_classes(mu, ell, norm, hi), offsets)
        params = rm.pixel_params(mu, ell + delta)
        tables, order = rm.decode_main_tables(params)
        main = rans.decode_segments(self._payload(by_key, SectionKind.RESIDUAL, 0), tables)
        extra = self._payload(by_key, SectionKind.RESIDUAL, 1)
        values = rm.decode_values(main, order, params, lambda t: rans.decode_segments(extra, t))
        if values.size and (values.min() < 0 or values.max() >= (1 << bits)):
            raise CorruptStreamError(f"latent frame: decoded values fall outside {bits} bits")
        return check_decoded(values.reshape(shape), shape, bits, self.name)

    @staticmethod
    def _payload(by_key: dict, kind: SectionKind, index: int) -> bytes:
        payload = by_key.get((int(kind), index))
        if payload is None:
            raise CorruptStreamError(f"latent frame: {kind.name} stream {index} is missing")
        return payload

    def _read_meta(self, by_key: dict, shape: tuple[int, int], bits: int):
        """(normalisation, z's shape, scale calibration, and (hi, class offsets) or None) of a frame."""
        try:
            meta = unpack_side_info(self._payload(by_key, SectionKind.PLANE_META, 0))
            required = required_features(meta, KNOWN_FEATURES, self.name)
            lo, shift, delta = int(meta["lo"]), int(meta["shift"]), int(meta["scale_adjust"])
            latent_shape = tuple(int(n) for n in meta["latent"])
            by_class = None
            if ("classes" in required) != (CLASS_KEY in meta):
                raise ValueError("class offsets without their requirement, or the reverse")
            if "classes" in required:
                hi = meta["hi"]
                if type(hi) is not int or not lo <= hi < (1 << bits):
                    raise ValueError("hi out of range")
                by_class = hi, class_offsets.from_json(meta[CLASS_KEY], CLASSES, "latent class")
        except (KeyError, ValueError, TypeError) as exc:
            raise CorruptStreamError("latent frame: plane side information is missing or damaged") from exc
        if not (0 <= lo < (1 << bits) and 0 <= shift <= 8 and abs(delta) <= rm.MAX_ELL
                and latent_shape == self.predictor.net.latent_shape(*shape)):
            raise CorruptStreamError("latent frame: plane side information is out of range")
        return sp.Normalisation(lo, shift), latent_shape, delta, by_class
