"""Label smoothing (Szegedy et al., CVPR 2016): a loss on the labels alone, no mixing."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from robustbench_mix.core.parsing import not_finite
from robustbench_mix.methods import METHODS, LossFn, Method


def smoothing_apply(x, y, num_classes, eps) -> tuple[torch.Tensor, LossFn]:
    """The target is 1 - eps on the label plus eps / K on every class, so the loss is (1 - eps) CE + eps * the
    mean of -log p over the classes (written out, rather than F.cross_entropy's label_smoothing, so that eps may
    be a tensor in a graphed step)."""
    def loss(out):
        return (1.0 - eps) * F.cross_entropy(out, y) - eps * out.log_softmax(1).mean(1).mean()

    return x, loss


def smoothing_draw(n, alpha, rng, generator, device) -> tuple:
    return (float(alpha),)


def epsilon_check(eps: float) -> str | None:
    return not_finite("label smoothing epsilon", eps, "in [0, 1)") or (
        None if 0 <= eps < 1 else f"label smoothing epsilon {eps:g} is outside [0, 1)")


label_smoothing = METHODS.register("label_smoothing")(Method(
    smoothing_draw, smoothing_apply, uses_alpha=True, title="label smoothing", param="ε", check=epsilon_check,
    default=0.1))
