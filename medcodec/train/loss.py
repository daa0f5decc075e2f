"""Training objective: the code length, in bits, of each predicted pixel under the residual model.

It is the model the coder uses (discretised logistic with mean mu and scale 2**(ell/8-4), see
``medcodec.entropy.residual_model``), evaluated in each crop's normalised units so 8- and 16-bit data
share one loss: x_n = (x - lo) / 2**G, bin width 2**-G.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..entropy.residual_model import LOG2_MIN_SCALE, MAX_ELL, MEAN_ONE, STEPS_PER_OCTAVE
from ..networks.quant import round_ste


def quantised_outputs(
    base_q4: torch.Tensor, delta_q4: torch.Tensor, ell: torch.Tensor, shift: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Real network outputs -> the integer grid the coder uses (straight-through): (mu in Q4 units, ell)."""
    mu_q4 = base_q4 + round_ste(delta_q4)
    lo_ell = -STEPS_PER_OCTAVE * shift.view(-1, 1, 1).float()
    ell_q = torch.maximum(torch.minimum(round_ste(ell), MAX_ELL - 1 + lo_ell), lo_ell)
    return mu_q4, ell_q


def code_length_bits(
    x: torch.Tensor, lo: torch.Tensor, shift: torch.Tensor, mu_q4: torch.Tensor, ell: torch.Tensor
) -> torch.Tensor:
    """-log2 P(x) per pixel. x raw samples [N, h, w]; mu_q4 in 1/16 normalised units; ell normalised."""
    scale_pow = (2.0 ** (-shift.float())).view(-1, 1, 1)
    x_n = (x.float() - lo.view(-1, 1, 1).float()) * scale_pow
    mu_n = mu_q4 / MEAN_ONE
    inv_s = 2.0 ** (-(ell / STEPS_PER_OCTAVE + LOG2_MIN_SCALE))
    upper = (x_n + scale_pow - mu_n) * inv_s
    lower = (x_n - mu_n) * inv_s
    width = scale_pow * inv_s  # = upper - lower, computed without cancellation
    log_p = F.logsigmoid(upper) + F.logsigmoid(-lower) + torch.log(-torch.expm1(-width))
    return -log_p / torch.log(torch.tensor(2.0))
