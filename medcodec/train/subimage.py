"""What training the subimage predictors means (``python -m medcodec.train --method subimage``): the
networks (D from A, B from A+D, C from A+D+B, each also taking the known-left planes of the slow
path), their loss on a batch of crops, warm starts, and export to integer weights."""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from ..entropy.residual_model import MEAN_ONE, tables_sha256
from ..networks.lch import LCHNet
from ..pipelines import split as sp
from .loss import code_length_bits, quantised_outputs
from .publish import publish_model

ARCHITECTURE = "lch-se-unet-int8/v1"
DEFAULT_WIDTHS = (16, 24, 32, 48)


def build_networks(widths=DEFAULT_WIDTHS) -> dict[str, LCHNet]:
    return {t: LCHNet(sp.input_channels(t), widths) for t in sp.PREDICTED}


def subimage_bits(nets: dict[str, LCHNet], crops: torch.Tensor, lo: torch.Tensor, shift: torch.Tensor) -> dict:
    """Code lengths (bits per subimage pixel) for a batch of raw crops [N, H, W] with even sides.

    Per target: 'fast' (every pixel by the LC-H pass, left unknown) and 'right' (the odd columns by
    the LC-L pass, the even columns known). The slow path costs (even columns of fast + right) / 2.
    """
    out = {}
    for target, maps in subimage_bit_maps(nets, crops, lo, shift).items():
        fast, right = maps["fast"][0], maps["right"][0]
        out[f"fast_{target}"] = fast.mean()
        out[f"right_{target}"] = right[..., 1::2].mean()
        out[f"slow_{target}"] = 0.5 * (fast[..., 0::2].mean() + right[..., 1::2].mean())
    return out


def subimage_bit_maps(nets: dict[str, LCHNet], crops: torch.Tensor, lo: torch.Tensor, shift: torch.Tensor) -> dict:
    """{target: {'fast' | 'right': (bits [N, h, w], residual [N, h, w])}} for every pixel of each target
    subimage, by the LC-H pass and by the LC-L pass (even columns known); the residual is the target
    minus the predicted mean in the crop's normalised units (for analyses of the loss)."""
    subs = sp.split(crops, fill=0)
    norm = {k: sp.normalise(v, lo.view(-1, 1, 1), shift.view(-1, 1, 1)) for k, v in subs.items()}
    scale = (2.0 ** (-shift.float())).view(-1, 1, 1)
    out = {}
    for target in sp.PREDICTED:
        base = sp.base_prediction(target, norm).float()
        target_n = (subs[target].float() - lo.view(-1, 1, 1).float()) * scale
        out[target] = {}
        for name, left in (("fast", None), ("right", norm[target])):
            delta, ell = nets[target](sp.network_input(target, norm, left=left).float())
            mu, ell_q = quantised_outputs(base, delta, ell, shift)
            bits = code_length_bits(subs[target], lo, shift, mu, ell_q)
            out[target][name] = (bits, target_n - mu.detach() / MEAN_ONE)
    return out


class SubimageTask:
    """The subimage predictors as a training task (see ``trainer.train``)."""

    name = "subimage"
    defaults = {"steps": 20000, "batch": 32, "qat_fraction": 0.3, "log_every": 100,
                "widths": ",".join(map(str, DEFAULT_WIDTHS))}
    log_prefix = "bits_"

    @staticmethod
    def config_from_args(args: argparse.Namespace) -> dict:
        return {"widths": [int(w) for w in args.widths.split(",")]}

    @staticmethod
    def build(config: dict) -> dict[str, torch.nn.Module]:
        return build_networks(tuple(config["widths"]))

    @staticmethod
    def prepare(batch: torch.Tensor, args, gen: torch.Generator) -> torch.Tensor:
        return batch

    @staticmethod
    def metrics(nets, crops, lo, shift) -> dict[str, torch.Tensor]:
        return subimage_bits(nets, crops, lo, shift)

    @staticmethod
    def loss(metrics: dict[str, torch.Tensor]) -> torch.Tensor:
        """Mean bits of the fast pass and the LC-L pass over the three targets (slow_* is derived)."""
        return sum(v for k, v in metrics.items() if not k.startswith("slow")) / 6

    @staticmethod
    def initialise(nets: dict[str, LCHNet], checkpoint: Path) -> None:
        """Warm start from an earlier run; input channels added since then start with zero weights."""
        ckpt = torch.load(checkpoint, map_location="cpu", weights_only=True)
        for target, net in nets.items():
            state = net.state_dict()
            for key, value in ckpt["nets"][target].items():
                if key in state and state[key].shape != value.shape and key.endswith("enc0a.conv.weight"):
                    padded = torch.zeros_like(state[key])
                    padded[:, : value.shape[1]] = value
                    value = padded
                state[key] = value
            net.load_state_dict(state)

    @staticmethod
    def export(ckpt: dict, model_id: str, extra: dict) -> dict:
        first = ckpt["nets"][sp.PREDICTED[0]]
        widths = ckpt.get("config", {}).get("widths") or [
            int(first[f"layers.enc{i}a.conv.weight"].shape[0]) for i in range(8) if f"layers.enc{i}a.conv.weight" in first
        ]
        nets = build_networks(tuple(widths))
        params = {}
        for target, net in nets.items():
            net.load_state_dict(ckpt["nets"][target])
            if not bool((net.layers["enc0a"].act_range > 0).item()):
                raise SystemExit("checkpoint has no calibrated activation ranges: train into the QAT phase first")
            params[target] = net.export_integer()
        metadata = {
            "architecture": ARCHITECTURE,
            "networks": {t: n.config() for t, n in nets.items()},
            "residual_tables_sha256": tables_sha256(),
            "checkpoint_step": int(ckpt["step"]),
        }
        return publish_model(model_id, params, metadata, extra)
