"""Fast path (LC-H, after LFC-UNet / LC-TMNet): A by JPEG-XL, then D <- A, B <- A+D, C <- A+D+B.

Each predicted subimage takes one integer-exact network pass (``medcodec.networks.lch``) giving, per
pixel, a mean and a scale index; ``medcodec.entropy.residual_model`` turns those into integer tables and
symbols, coded by rANS. Streams of a plane:

* PLANE_META 0: JSON {"lo": int, "shift": int} - the plane's normalisation (see ``split``),
* JXL_SUBIMAGE 0: subimage A, coded by the classical method (JPEG-XL, or raw when smaller),
* RESIDUAL 2k, 2k+1 for k = 0, 1, 2 (D, B, C): main symbols, then escapes and raw low bits.
"""

from __future__ import annotations

import json
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..container.format import SectionKind
from ..entropy import rans
from ..entropy import residual_model as rm
from ..errors import CorruptStreamError, ModelMismatchError
from ..models import load_model
from ..networks.lch import LCHNet
from . import split as sp
from .base import Method, Stream, check_decoded, check_plane
from .classical import ClassicalMethod

DEFAULT_MODEL = "fast-v1"


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
            for t, layers in self.model.params.items()
        }

    @torch.no_grad()
    def predict(self, target: str, normalised: dict[str, torch.Tensor], norm: sp.Normalisation):
        """Integer (mu, ell) in raw sample units for every pixel of the target subimage grid."""
        net = self.nets[target]
        x = sp.network_input(target, normalised).unsqueeze(0)  # [1, C, h, w]
        h, w = x.shape[-2:]
        m = net.multiple
        pad_h, pad_w = (-h) % m, (-w) % m
        if pad_h or pad_w:
            # replicate padding is done on float32, exact for the 10-bit inputs
            x = F.pad(x.to(torch.float32), (0, pad_w, 0, pad_h), mode="replicate").to(torch.int64)
        delta, ell = net.forward_integer(x.to(self.device), self.params[target])
        delta, ell = delta[0, :h, :w].cpu(), ell[0, :h, :w].cpu()
        mu_norm = sp.base_prediction(target, normalised) + delta
        mu = rm.MEAN_ONE * norm.lo + torch.bitwise_left_shift(mu_norm, norm.shift)
        return mu.numpy(), (ell + rm.STEPS_PER_OCTAVE * norm.shift).numpy()


class FastMethod(Method):
    name = "fast"

    def __init__(self, device: str = "auto", model_id: str = DEFAULT_MODEL, effort: int = 7):
        self.predictor = SubimagePredictor(model_id, device)
        self.model_id = model_id
        self.model_sha256 = self.predictor.model.sha256
        self.subimage_a = ClassicalMethod(effort=effort)

    def encode(self, plane: np.ndarray, bits: int) -> list[Stream]:
        plane = check_plane(plane, bits)
        height, width = plane.shape
        norm = sp.Normalisation.of(int(plane.min()), int(plane.max()))
        subs = sp.split(torch.from_numpy(plane.astype(np.int64)), fill=norm.lo)
        streams = [Stream(SectionKind.PLANE_META, 0, json.dumps({"lo": norm.lo, "shift": norm.shift}).encode())]
        a_stream = self.subimage_a.encode(subs["A"].numpy().astype(np.uint16), bits)[0]
        streams.append(Stream(SectionKind.JXL_SUBIMAGE, 0, a_stream.payload))
        normalised = {k: sp.normalise(v, norm.lo, norm.shift) for k, v in subs.items()}
        for k, target in enumerate(sp.PREDICTED):
            mu, ell = self.predictor.predict(target, normalised, norm)
            valid = sp.valid_mask(height, width, target).numpy()
            params = rm.pixel_params(mu[valid], ell[valid])
            main, extra = rm.encode_segments(subs[target].numpy()[valid], params)
            streams.append(Stream(SectionKind.RESIDUAL, 2 * k, rans.encode_segments(main)))
            streams.append(Stream(SectionKind.RESIDUAL, 2 * k + 1, rans.encode_segments(extra)))
        return streams

    def decode(self, streams: Sequence[Stream], shape: tuple[int, int], bits: int) -> np.ndarray:
        height, width = shape
        by_key = {(int(s.kind), s.index): s.payload for s in streams}
        norm = self._read_meta(by_key, bits)
        a_payload = by_key.get((int(SectionKind.JXL_SUBIMAGE), 0))
        if a_payload is None:
            raise CorruptStreamError("fast frame: subimage A stream is missing")
        a_shape = ((height + 1) // 2, (width + 1) // 2)
        a = self.subimage_a.decode([Stream(SectionKind.PLANE_CLASSICAL, 0, a_payload)], a_shape, bits)
        subs = {"A": torch.from_numpy(a.astype(np.int64))}
        normalised = {"A": sp.normalise(subs["A"], norm.lo, norm.shift)}
        for k, target in enumerate(sp.PREDICTED):
            mu, ell = self.predictor.predict(target, normalised, norm)
            valid = sp.valid_mask(height, width, target).numpy()
            params = rm.pixel_params(mu[valid], ell[valid])
            tables, order = rm.decode_main_tables(params)
            main = rans.decode_segments(self._payload(by_key, 2 * k), tables)
            extra = self._payload(by_key, 2 * k + 1)
            values = rm.decode_values(main, order, params, lambda t, data=extra: rans.decode_segments(data, t))
            if values.size and (values.min() < 0 or values.max() >= (1 << bits)):
                raise CorruptStreamError(f"fast frame: decoded {target} values fall outside {bits} bits")
            grid = torch.full(a_shape, norm.lo, dtype=torch.int64)
            grid[torch.from_numpy(valid)] = torch.from_numpy(values)
            subs[target] = grid
            normalised[target] = sp.normalise(grid, norm.lo, norm.shift)
        plane = sp.merge(subs, height, width).numpy()
        return check_decoded(plane, shape, bits, "fast")

    @staticmethod
    def _payload(by_key: dict, index: int) -> bytes:
        payload = by_key.get((int(SectionKind.RESIDUAL), index))
        if payload is None:
            raise CorruptStreamError(f"fast frame: residual stream {index} is missing")
        return payload

    @staticmethod
    def _read_meta(by_key: dict, bits: int) -> sp.Normalisation:
        try:
            meta = json.loads(by_key[(int(SectionKind.PLANE_META), 0)])
            lo, shift = int(meta["lo"]), int(meta["shift"])
        except (KeyError, ValueError, TypeError) as exc:
            raise CorruptStreamError("fast frame: plane side information is missing or damaged") from exc
        if not (0 <= lo < (1 << bits) and 0 <= shift <= 8):
            raise CorruptStreamError("fast frame: plane side information is out of range")
        return sp.Normalisation(lo, shift)
