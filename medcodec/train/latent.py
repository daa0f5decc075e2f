"""What training LVPNet (latent mode) means (``python -m medcodec.train --method latent``): the network,
its loss = bits of z (rate proxy) + bits of every pixel's residual, and export.

z's rate in training is a learned per-channel logistic prior; the stream codes z by canonical Huffman,
which adapts to each image and so costs about as much or less.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from ..entropy.residual_model import tables_sha256
from ..networks.lvp import LVPNet
from ..pipelines import split as sp
from ..pipelines.latent import ARCHITECTURE
from .loss import code_length_bits, quantised_outputs
from .publish import publish_model


def batch_bits(net: LVPNet, crops: torch.Tensor, lo: torch.Tensor, shift: torch.Tensor) -> dict[str, torch.Tensor]:
    """Bits per pixel of a batch of raw crops [N, H, W] (sides multiples of net.multiple): z, residual, total."""
    v = sp.normalise(crops, lo.view(-1, 1, 1), shift.view(-1, 1, 1)).float().unsqueeze(1)
    z = net.latent(v)
    mu, ell = net(z)
    mu_q4, ell_q = quantised_outputs(torch.zeros_like(mu), mu, ell, shift)
    residual = code_length_bits(crops, lo, shift, mu_q4, ell_q)
    pixels = crops.numel()
    z_bpp = net.z_bits(z).sum() / pixels
    res_bpp = residual.sum() / pixels
    return {"z": z_bpp, "residual": res_bpp, "total": z_bpp + res_bpp}


def random_window(batch: torch.Tensor, size: int, gen: torch.Generator) -> torch.Tensor:
    """One random size x size window of the whole batch: smaller steps, many more of them on a CPU."""
    h, w = batch.shape[-2:]
    if not size or size >= min(h, w):
        return batch
    r, c = (int(torch.randint(0, n - size + 1, (1,), generator=gen)) for n in (h, w))
    return batch[..., r:r + size, c:c + size]


class LatentTask:
    """LVPNet as a training task (see ``trainer.train``)."""

    name = "latent"
    defaults = {"steps": 5000, "batch": 16, "qat_fraction": 0.25, "log_every": 50, "widths": "32,24,16,16"}
    log_prefix = "bpp_"

    @staticmethod
    def config_from_args(args: argparse.Namespace) -> dict:
        return {"levels": args.levels, "latent_channels": args.latent_channels, "q_step": args.q_step,
                "qcm_blocks": args.qcm_blocks, "use_qcm": not args.no_qcm, "plain": args.plain,
                "widths": [int(w) for w in args.widths.split(",")]}

    @staticmethod
    def build(config: dict) -> dict[str, torch.nn.Module]:
        return {"latent": LVPNet(**{**config, "widths": tuple(config["widths"])})}

    @staticmethod
    def prepare(batch: torch.Tensor, args, gen: torch.Generator) -> torch.Tensor:
        return random_window(batch, args.crop, gen)

    @staticmethod
    def metrics(nets, crops, lo, shift) -> dict[str, torch.Tensor]:
        return batch_bits(nets["latent"], crops, lo, shift)

    @staticmethod
    def loss(metrics: dict[str, torch.Tensor]) -> torch.Tensor:
        return metrics["total"]

    @staticmethod
    def initialise(nets, checkpoint: Path) -> None:
        """Warm start from an earlier run or a published models/<id>.warm-start.pt (same architecture)."""
        nets["latent"].load_state_dict(_state_of(torch.load(checkpoint, map_location="cpu", weights_only=True)))

    @staticmethod
    def export(ckpt: dict, model_id: str, extra: dict) -> dict:
        """models/<id>.safetensors (integer decoder + float GMSM) and this id's manifest entry."""
        net = _net_of(ckpt)
        params = {"decoder": net.export_integer(), "gmsm": net.float_state()}
        metadata = {"architecture": ARCHITECTURE, "config": net.config(), "residual_tables_sha256": tables_sha256(),
                    "checkpoint_step": int(ckpt["step"])}
        return publish_model(model_id, params, metadata, extra)


def _state_of(ckpt: dict) -> dict:
    # runs written before the trainers were merged kept the state under "state"
    return ckpt["nets"]["latent"] if "nets" in ckpt else ckpt["state"]


def _net_of(ckpt: dict) -> LVPNet:
    net = LatentTask.build(ckpt["config"])["latent"]
    net.load_state_dict(_state_of(ckpt))
    net.set_mode(quantised=True)
    return net


def load_checkpoint(path: Path) -> tuple[LVPNet, dict]:
    """The quantised network of a latent run's checkpoint, and the checkpoint itself."""
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    return _net_of(ckpt), ckpt
