"""Does LFC-UNet's weighted cross-entropy help? (issue 3: "show in an ablation whether it helps").

LFC-UNet trains a 511-class softmax over the residual with per-class weights w_j against the classes'
imbalance (residuals concentrate around 0). medcodec's head is not a softmax but a discretised logistic
(8-16 bits natively), trained on its exact code length; the weighting carries over unchanged: each
pixel's code length times the weight of its residual class (the signed residual in the crop's 8-bit
normalised units, -255..255: the paper's 511 classes), w_j proportional to 1 / frequency_j ** alpha,
normalised to a mean of 1 over the pixels (alpha 1: the paper's inverse frequency; 0.5: milder).

From the shipped lch-v2 (its warm start, in its quantisation-aware state), each variant fine-tunes the
same steps on the same batches of train crops (every crop but 256 held out at random), then all are scored on
the held-out crops by what the coder pays: the unweighted code length, bits per subimage pixel, fast
and LC-L passes of D, B, C (the training loss of ``medcodec.train``).

    python benchmarks/wce_ablation.py --alpha 0 1 0.5 [--steps 300] [--crops .gpudata/crops96.npz]
        [--out benchmarks/results/wce_ablation.json]

(crops: ``python -m medcodec.train.crops ../shared/corpus/train -o .gpudata/crops96.npz``.)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from medcodec.train.subimage import SubimageTask, build_networks, subimage_bit_maps  # noqa: E402
from medcodec.train.trainer import augment, load_crops  # noqa: E402

CLASSES = 511  # signed residual -255..255 in normalised units, as LFC-UNet's softmax
HELD_OUT = 256  # crops drawn at random (fixed seed), never trained on here


def bits_and_classes(nets, crops, lo, shift):
    """Per target and pass ('fast', 'right': LC-L on the odd columns), as the training loss counts
    them: (bits per pixel, residual class)."""
    out = {}
    for target, maps in subimage_bit_maps(nets, crops, lo, shift).items():
        for name, (bits, residual) in maps.items():
            classes = (torch.round(residual).clamp(-255, 255) + 255).long()
            if name == "right":
                bits, classes = bits[..., 1::2], classes[..., 1::2]
            out[f"{name}_{target}"] = (bits, classes)
    return out


def plain_loss(maps) -> torch.Tensor:
    """medcodec's training loss: mean bits over the six maps (SubimageTask.loss)."""
    return SubimageTask.loss({k: bits.mean() for k, (bits, _) in maps.items()})


def weighted_loss(maps, weights: torch.Tensor) -> torch.Tensor:
    return sum((bits * weights[classes]).mean() for bits, classes in maps.values()) / len(maps)


def class_weights(nets, crops, lo, shift, alpha: float) -> torch.Tensor:
    """w_j ~ 1 / freq_j ** alpha over the starting model's residuals, mean 1 over the pixels."""
    with torch.no_grad():
        counts = torch.zeros(CLASSES)
        for start in range(0, crops.shape[0], 64):
            for _, classes in bits_and_classes(nets, *(t[start:start + 64] for t in (crops, lo, shift))).values():
                counts += torch.bincount(classes.reshape(-1), minlength=CLASSES).float()
    freq = counts / counts.sum()
    w = torch.where(counts > 0, freq.clamp_min(1e-12) ** -alpha, torch.zeros_like(freq))
    return w / float((w * freq).sum())


def evaluate(nets, crops, lo, shift) -> float:
    with torch.no_grad():
        total = 0.0
        for start in range(0, crops.shape[0], 64):
            part = (t[start:start + 64] for t in (crops, lo, shift))
            total += float(plain_loss(bits_and_classes(nets, *part))) * min(64, crops.shape[0] - start)
    return total / crops.shape[0]


def load_shipped(warm_start: Path):
    ckpt = torch.load(warm_start, map_location="cpu", weights_only=True)
    nets = build_networks(tuple(ckpt["config"]["widths"]))
    for target, net in nets.items():
        net.load_state_dict(ckpt["nets"][target])
        net.set_mode(quantised=True)
    return nets


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--alpha", type=float, nargs="+", default=[0.0, 1.0, 0.5],
                   help="class-weight exponents to train with (0: medcodec's plain code length)")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--lr", type=float, default=2e-4)
    p.add_argument("--crops", type=Path, default=ROOT / ".gpudata" / "crops96.npz")
    p.add_argument("--warm-start", type=Path, default=ROOT / "models" / "lch-v2.warm-start.pt")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/wce_ablation.json"))
    args = p.parse_args()
    if not args.crops.exists():
        raise SystemExit(f"{args.crops} not found: python -m medcodec.train.crops ../shared/corpus/train -o {args.crops}")
    torch.set_num_threads(1)
    crops, lo, shift = load_crops(args.crops)
    order = torch.randperm(crops.shape[0], generator=torch.Generator().manual_seed(0))
    held, train = order[:HELD_OUT], order[HELD_OUT:]
    start_bits = evaluate(load_shipped(args.warm_start), crops[held], lo[held], shift[held])
    print(f"shipped lch-v2: {start_bits:.4f} bits per subimage pixel on {HELD_OUT} held-out crops", flush=True)
    runs = []
    for alpha in args.alpha:
        torch.manual_seed(0)
        nets = load_shipped(args.warm_start)
        weights = class_weights(nets, crops[train][:1024], lo[train][:1024], shift[train][:1024], alpha)
        params = [q for n in nets.values() for q in n.parameters()]
        opt = torch.optim.Adam(params, lr=args.lr)
        gen = torch.Generator().manual_seed(1)  # the same batches for every variant
        began = time.time()
        for _ in range(args.steps):
            idx = train[torch.randint(0, train.numel(), (args.batch,), generator=gen)]
            maps = bits_and_classes(nets, augment(crops[idx], gen), lo[idx], shift[idx])
            loss = plain_loss(maps) if alpha == 0 else weighted_loss(maps, weights)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
        bits = evaluate(nets, crops[held], lo[held], shift[held])
        run = {"alpha": alpha, "held_out_bits": round(bits, 4), "vs_shipped": round(bits / start_bits, 4),
               "largest_weight": round(float(weights.max()), 1), "seconds": round(time.time() - began, 1)}
        runs.append(run)
        print(json.dumps(run), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"command": " ".join(["python"] + sys.argv), "steps": args.steps,
                                    "batch": args.batch, "lr": args.lr, "held_out_crops": HELD_OUT,
                                    "shipped_bits": round(start_bits, 4), "runs": runs}, indent=1) + "\n")


if __name__ == "__main__":
    main()
