"""Training methods registry: how a batch becomes (inputs, loss function).

A method is a callable ``(x, y, alpha, num_classes, rng, generator) -> (inputs, loss_fn)`` where
``loss_fn(logits)`` returns the scalar training loss. ``rng`` is a numpy Generator for host-side draws
(mixup's lambda, so no device sync is needed), ``generator`` a torch Generator on x's device.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from .registry import Registry

LossFn = Callable[[torch.Tensor], torch.Tensor]
METHODS: Registry = Registry("method")
# Methods whose behaviour depends on --alpha; for the others alpha is recorded as 0.
USES_ALPHA = {"mixup"}


@METHODS.register("erm")
def erm(x, y, alpha, num_classes, rng, generator) -> tuple[torch.Tensor, LossFn]:
    return x, lambda out: F.cross_entropy(out, y)


def mixup_lambda(alpha: float, rng: np.random.Generator) -> float:
    """lambda ~ Beta(alpha, alpha); alpha = 0 means no mixing (lambda = 1), as in the authors' code."""
    return float(rng.beta(alpha, alpha)) if alpha > 0 else 1.0


def mix(x, y, lam: float, perm: torch.Tensor) -> tuple[torch.Tensor, LossFn]:
    """Mix each example with its partner ``x[perm]``; the loss is the lambda-weighted pair of CEs."""
    y_b = y[perm]
    mixed = lam * x + (1.0 - lam) * x[perm]

    def loss(out):
        return lam * F.cross_entropy(out, y) + (1.0 - lam) * F.cross_entropy(out, y_b)

    return mixed, loss


@METHODS.register("mixup")
def mixup(x, y, alpha, num_classes, rng, generator) -> tuple[torch.Tensor, LossFn]:
    """Zhang et al. (2018): one lambda per batch, partners from a random permutation of the same batch."""
    lam = mixup_lambda(alpha, rng)
    if lam == 1.0:
        return erm(x, y, alpha, num_classes, rng, generator)
    perm = torch.randperm(x.shape[0], device=x.device, generator=generator)
    return mix(x, y, lam, perm)
