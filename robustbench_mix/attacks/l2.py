"""L2 attacks: FGM (the L2 fast gradient method) and PGD-L2 (as torchattacks' PGDL2)."""

from __future__ import annotations

import torch

from robustbench_mix.attacks.base import input_grad, register_attack
from robustbench_mix.core.units import Norm


def l2_norms(v: torch.Tensor) -> torch.Tensor:
    """Each example's L2 norm over all its values, shaped to broadcast against ``v``."""
    return v.flatten(1).norm(p=2, dim=1).view(-1, *([1] * (v.dim() - 1)))


def project_l2(x_adv, x, eps):
    """Back into the L2 ball of radius eps around x (each example's perturbation scaled down, never up) and into
    [0, 1]; clamping only moves values towards x, so the result stays in the ball. As torchattacks' PGDL2, with a
    zero perturbation left as it is (eps 0 gives x, not 0/0)."""
    delta = x_adv - x
    norms = l2_norms(delta)
    factor = torch.where(norms > 0, eps / norms, torch.ones_like(norms))
    return torch.clamp(x + delta * torch.min(factor, torch.ones_like(norms)), 0.0, 1.0)


def unit_l2(g: torch.Tensor) -> torch.Tensor:
    """``g`` divided by its per-example L2 norm (+1e-10, as torchattacks, so a zero gradient stays zero)."""
    return g / (l2_norms(g) + 1e-10)


def exact_unit_l2(g: torch.Tensor) -> torch.Tensor:
    """``g`` scaled to L2 length exactly 1 per example, however small its norm (a zero gradient stays zero).

    ``unit_l2``'s +1e-10 shortens the direction of a gradient whose norm is near 1e-10, which is what a confident
    model's gradient is: each example's step then falls short of eps (by more in a larger batch, whose mean loss
    scales each gradient by 1 / batch). Dividing by each example's largest entry first keeps the norm's
    computation clear of float underflow."""
    flat = g.flatten(1)
    peak = flat.abs().amax(dim=1, keepdim=True)
    flat = flat / torch.where(peak > 0, peak, torch.ones_like(peak))
    norms = flat.norm(p=2, dim=1, keepdim=True)
    return torch.where(norms > 0, flat / torch.where(norms > 0, norms, torch.ones_like(norms)),
                       torch.zeros_like(flat)).view_as(g)


@register_attack("fgm_l2", random_start=False, iterative=False, norm=Norm.L2)
def fgm_l2(model, x, y, eps, steps=1, step_size=None, loss="ce"):
    """The fast gradient method in L2 (Goodfellow et al., 2015; Miyato et al., 2016): one step of L2 length eps
    along each example's gradient, the one-step baseline every iterative L2 attack must beat.

    Norm L2, radius ``eps`` in [0, 1] pixel space; the result is clamped to [0, 1]. The gradient is of the summed
    loss and every example with a non-zero gradient moves by exactly eps before the clamp, whatever its
    confidence and the batch size (as foolbox's ``L2FastGradientAttack``). This rule is hashed into the run id
    (``experiment.ATTACK_RULES``), so runs made with the earlier +1e-10 normalization keep their own ids.
    Example: ``fgm_l2(model, x, y, eps=1.0)``."""
    return torch.clamp(x + eps * exact_unit_l2(input_grad(model, x, y, loss, summed=True)), 0.0, 1.0).detach()


@register_attack("pgd_l2", random_start=True, iterative=True, norm=Norm.L2)
def pgd_l2(model, x, y, eps, steps=10, step_size=None, loss="ce"):
    """PGD in L2 (Madry et al., 2018), exactly torchattacks' PGDL2: a random start at a normal direction scaled to
    radius uniform(0, 1) * eps, then steps of L2 length step_size along the normalized gradient, each projected
    back into the ball and the box. The same RNG draws in the same order, so a seeded run equals PGDL2's."""
    delta = torch.empty_like(x).normal_()
    r = torch.zeros_like(l2_norms(delta)).uniform_(0, 1)
    x_adv = torch.clamp(x + delta * (r / l2_norms(delta) * eps), 0.0, 1.0).detach()
    for _ in range(steps):
        x_adv = project_l2(x_adv + step_size * unit_l2(input_grad(model, x_adv, y, loss)), x, eps).detach()
    return x_adv
