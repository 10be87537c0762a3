"""Training methods registry: how a batch becomes (inputs, loss function).

A method is a :class:`Method`: ``draw(n, alpha, rng, generator, device)`` makes the batch's random numbers
(``rng`` a numpy Generator for host-side draws such as mixup's lambda, so no device sync is needed;
``generator`` a torch Generator on the batch's device), and ``apply(x, y, num_classes, *draws)`` returns
``(inputs, loss_fn)`` where ``loss_fn(logits)`` is the scalar training loss. ``apply`` must accept each
float draw as a 0-dim tensor too: a training step captured as a CUDA graph (``fit(cuda_graphs="step")``)
makes the draws outside the graph and passes them in through tensor buffers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .registry import Registry

LossFn = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class Method:
    """``draw`` and ``apply`` (see the module's docstring), and the traits other modules ask about instead
    of naming methods: ``uses_alpha`` (alpha is a grid axis for it and part of its label; recorded as 0
    otherwise) and ``title`` (how tables and plots name it)."""

    draw: Callable[..., tuple]
    apply: Callable[..., tuple[torch.Tensor, LossFn]]
    uses_alpha: bool = False
    title: str = ""

    def __call__(self, x, y, alpha, num_classes, rng, generator) -> tuple[torch.Tensor, LossFn]:
        """Draw and apply for one batch (the eager training step)."""
        return self.apply(x, y, num_classes, *self.draw(len(x), alpha, rng, generator, x.device))


METHODS: Registry[Method] = Registry("method")


def run_label(method: str, alpha: float, dropout: float) -> str:
    """The one way a run's method is named: 'ERM', 'mixup (α=1)', 'mixup (α=8) + dropout (p=0.3)'."""
    m = METHODS.get(method)
    s = m.title or method
    s += f" (α={alpha:g})" if m.uses_alpha else ""
    return s + (f" + dropout (p={dropout:g})" if dropout else "")


def no_draws(n, alpha, rng, generator, device) -> tuple:
    return ()


def erm_apply(x, y, num_classes) -> tuple[torch.Tensor, LossFn]:
    return x, lambda out: F.cross_entropy(out, y)


erm = METHODS.register("erm")(Method(no_draws, erm_apply, title="ERM"))


def mixup_lambda(alpha: float, rng: np.random.Generator) -> float:
    """lambda ~ Beta(alpha, alpha); alpha = 0 means no mixing (lambda = 1), as in the authors' code."""
    return float(rng.beta(alpha, alpha)) if alpha > 0 else 1.0


def mix(x, y, lam: float | torch.Tensor, perm: torch.Tensor) -> tuple[torch.Tensor, LossFn]:
    """Mix each example with its partner ``x[perm]``; the loss is the lambda-weighted pair of CEs."""
    y_b = y[perm]
    mixed = lam * x + (1.0 - lam) * x[perm]

    def loss(out):
        return lam * F.cross_entropy(out, y) + (1.0 - lam) * F.cross_entropy(out, y_b)

    return mixed, loss


def mixup_draw(n, alpha, rng, generator, device) -> tuple[float, torch.Tensor]:
    """One lambda per batch and a random permutation of the batch for the partners. Without mixing
    (lambda = 1) the partners are the identity, drawn from no generator: the random streams stay those of
    ERM and a graphed step keeps its shapes (mixing with weight 0 is then exactly ERM)."""
    lam = mixup_lambda(alpha, rng)
    if lam == 1.0:
        return lam, torch.arange(n, device=device)
    return lam, torch.randperm(n, device=device, generator=generator)


def mixup_apply(x, y, num_classes, lam, perm) -> tuple[torch.Tensor, LossFn]:
    """Zhang et al. (2018): ``lam * x + (1 - lam) * x[perm]`` and the same mix of the two CEs."""
    if not torch.is_tensor(lam) and lam == 1.0:  # eager: skip the work of a mix with weight 0
        return erm_apply(x, y, num_classes)
    return mix(x, y, lam, perm)


mixup = METHODS.register("mixup")(Method(mixup_draw, mixup_apply, uses_alpha=True, title="mixup"))
