"""L-infinity attacks: FGSM (Goodfellow et al., 2015), I-FGSM (Kurakin et al., 2017), PGD (Madry et al., 2018)."""

from __future__ import annotations

import torch

from robustbench_mix.attacks.base import input_grad, register_attack


def project(x_adv, x, eps):
    """Back into the eps-ball around x and into [0, 1]."""
    return torch.clamp(x + torch.clamp(x_adv - x, -eps, eps), 0.0, 1.0)


@register_attack("fgsm", random_start=False, iterative=False)
def fgsm(model, x, y, eps, steps=1, step_size=None, loss="ce"):
    """Goodfellow et al. (2015): one signed-gradient step of size eps."""
    return torch.clamp(x + eps * input_grad(model, x, y, loss).sign(), 0.0, 1.0).detach()


def _iterate(model, x, y, eps, steps, step_size, loss, random_start):
    x_adv = x.clone()
    if random_start:
        x_adv = torch.clamp(x_adv + torch.empty_like(x_adv).uniform_(-eps, eps), 0.0, 1.0)
    for _ in range(steps):
        x_adv = project(x_adv + step_size * input_grad(model, x_adv, y, loss).sign(), x, eps).detach()
    return x_adv


@register_attack("ifgsm", random_start=False, iterative=True)
def ifgsm(model, x, y, eps, steps=10, step_size=None, loss="ce"):
    """Iterative FGSM / BIM (Kurakin et al., 2017), the paper's 'I-FGSM': no random start."""
    return _iterate(model, x, y, eps, steps, step_size, loss, random_start=False)


@register_attack("pgd", random_start=True, iterative=True)
def pgd(model, x, y, eps, steps=10, step_size=None, loss="ce"):
    """PGD (Madry et al., 2018): uniform random start in the eps-ball, then projected signed steps."""
    return _iterate(model, x, y, eps, steps, step_size, loss, random_start=True)


@register_attack("pgd_margin", random_start=True, iterative=True)
def pgd_margin(model, x, y, eps, steps=10, step_size=None, loss="margin"):
    """PGD on the Carlini-Wagner margin: soft-target training (mixup) can flatten CE without adding
    robustness, so report the stronger of the two (the ``worst`` rows)."""
    return _iterate(model, x, y, eps, steps, step_size, "margin", random_start=True)
