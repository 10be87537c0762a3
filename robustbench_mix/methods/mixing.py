"""The mixing methods: mixup (Zhang et al., 2018), manifold mixup (Verma et al., 2019) and CutMix (Yun et al.,
2019), each as its authors' code computes it (the tests hold each against an independent implementation)."""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from robustbench_mix.core.parsing import not_finite
from robustbench_mix.methods import METHODS, LossFn, Method, Option, erm_apply


def mixup_lambda(alpha: float, rng: np.random.Generator) -> float:
    """lambda ~ Beta(alpha, alpha); alpha = 0 means no mixing (lambda = 1), as in the authors' code."""
    return float(rng.beta(alpha, alpha)) if alpha > 0 else 1.0


def mix(x, y, lam: float | torch.Tensor, perm: torch.Tensor) -> tuple[torch.Tensor, LossFn]:
    """Mix each example with its partner ``x[perm]``; the loss is the lambda-weighted pair of CEs."""
    y_b = y[perm]
    mixed = lam * x + (1.0 - lam) * x[perm]

    return mixed, lambda out: mixed_ce(out, y, y_b, lam, None)


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


# Beyond this, Beta(alpha, alpha) is 0.5 to the digits a float keeps, and near 1e308 numpy draws 0: a bound, not a
# limit of the method
ALPHA_MAX = 1e6


def beta_check(alpha: float) -> str | None:
    allowed = f"in [0, {ALPHA_MAX:.0f}]"
    problem = not_finite("alpha", alpha, allowed)
    if problem:
        return problem
    if alpha < 0:
        return f"alpha {alpha} is negative; the Beta(alpha, alpha) mixing needs alpha >= 0"
    return None if alpha <= ALPHA_MAX else (f"alpha {alpha:g} is above {ALPHA_MAX:.0f}; the Beta(alpha, alpha) mixing "
                                            f"takes alpha {allowed} (beyond it every lambda is 0.5)")


mixup = METHODS.register("mixup")(Method(mixup_draw, mixup_apply, uses_alpha=True, title="mixup",
                                         check=beta_check, default=1.0))


# ----------------------------------------------------------------------------------------- manifold mixup
def manifold_draw(n, alpha, rng, generator, device) -> tuple:
    """mixup's lambda and partners, and the mixing point: uniform over the model's three (input, after the
    first stage, after the second; Verma et al.'s ``random.randint(0, 2)``), drawn from the same host generator
    after lambda."""
    lam, perm = mixup_draw(n, alpha, rng, generator, device)
    return lam, perm, int(rng.integers(3))


def mixed_bce(out, y, y_b, lam, num_classes) -> torch.Tensor:
    """Verma et al.'s training loss (their ``bce_loss(softmax(output), reweighted_target)``): the binary
    cross-entropy of the softmax against the mixed one-hot target, averaged over examples and classes (and so
    about 1/K of the cross-entropy's scale). Outside autocast: CUDA autocast refuses binary_cross_entropy."""
    with torch.autocast(out.device.type, enabled=False):
        target = lam * F.one_hot(y, num_classes).float() + (1.0 - lam) * F.one_hot(y_b, num_classes).float()
        return F.binary_cross_entropy(out.float().softmax(1), target)


def mixed_ce(out, y, y_b, lam, num_classes) -> torch.Tensor:
    """The mixed cross-entropy of mixup and CutMix (= the cross-entropy against the mixed one-hot target)."""
    return lam * F.cross_entropy(out, y) + (1.0 - lam) * F.cross_entropy(out, y_b)


MIXED_LOSSES = {"ce": mixed_ce, "bce": mixed_bce}


def manifold_step(model, x, y, num_classes, lam, perm, point, *, loss: str) -> torch.Tensor:
    """Verma et al. (ICML 2019), Manifold Mixup: mix the hidden states at a randomly chosen layer, and the
    labels with the same lambda; ``loss`` 'ce' or 'bce' (see MANIFOLD_LOSS). The model's mixing points are named
    in ``model.mix_points`` (models.build); a forward hook on that layer replaces its output by the mix for this
    one forward."""
    def mixer(h):
        return lam * h + (1.0 - lam) * h[perm]

    name = model.mix_points[point]
    if name is None:
        out = model(mixer(x))
    else:
        handle = model.get_submodule(name).register_forward_hook(lambda m, i, o: mixer(o))
        try:
            out = model(x)
        finally:
            handle.remove()
    return MIXED_LOSSES[loss](out.float(), y, y[perm], lam, num_classes)


MANIFOLD_LOSS = Option(
    "loss", "ce", "ce (default): the mixed cross-entropy, the loss of every other method here; bce: Verma et al.'s "
    "code, binary cross-entropy of the softmax against the mixed one-hot target", choices=tuple(MIXED_LOSSES))
manifold_mixup = METHODS.register("manifold_mixup")(Method(
    manifold_draw, uses_alpha=True, title="manifold mixup", step=manifold_step, graphable=False, mixes_hidden=True,
    graph_reason="each step hooks a randomly chosen layer",
    check=beta_check, default=2.0, options=(MANIFOLD_LOSS,)))


# ----------------------------------------------------------------------------------------------- CutMix
def cutmix_box(h: int, w: int, lam: float, cy: int, cx: int) -> tuple[int, int, int, int]:
    """Yun et al.'s ``rand_bbox`` for a drawn lambda and integer centre (row ``cy``, column ``cx``): sides
    ``int(side * sqrt(1 - lam))``, half of each (rounded down) on either side of the centre, clipped to the
    image. Returns the rows y1:y2 and columns x1:x2 that are pasted (an odd side loses its last pixel, as there)."""
    r = math.sqrt(1.0 - lam)
    cut_h, cut_w = int(h * r), int(w * r)
    return (min(max(cy - cut_h // 2, 0), h), min(max(cy + cut_h // 2, 0), h),
            min(max(cx - cut_w // 2, 0), w), min(max(cx + cut_w // 2, 0), w))


def cutmix_draw(n, alpha, rng, generator, device, *, prob: float, image_size: tuple[int, int]) -> tuple:
    """The reference's per-batch draws: ``r`` uniform, and when ``alpha > 0 and r < prob``, lambda ~
    Beta(alpha, alpha), the partners, and the box centre (a row, then a column, uniform over the pixels).
    Returns the box (floats, so a graphed step holds them in buffers) and the partners; a batch left alone gets
    an empty box and the identity, drawn from no torch generator (its stream stays ERM's)."""
    h, w = image_size
    r = rng.random()
    if not (alpha > 0 and r < prob):
        return 0.0, 0.0, 0.0, 0.0, torch.arange(n, device=device)
    lam = float(rng.beta(alpha, alpha))
    perm = torch.randperm(n, device=device, generator=generator)
    cy, cx = int(rng.integers(h)), int(rng.integers(w))
    return (*(float(v) for v in cutmix_box(h, w, lam, cy, cx)), perm)


def cutmix_mask(h: int, w: int, y1, y2, x1, x2, device) -> torch.Tensor:
    """(h, w) bool mask of the box rows y1:y2, columns x1:x2 (numbers or 0-dim tensors)."""
    rows = torch.arange(h, device=device)[:, None]
    cols = torch.arange(w, device=device)[None, :]
    return (rows >= y1) & (rows < y2) & (cols >= x1) & (cols < x2)


def cutmix_apply(x, y, num_classes, y1, y2, x1, x2, perm) -> tuple[torch.Tensor, LossFn]:
    """Yun et al. (ICCV 2019), CutMix: paste the box of the partner image; the label weight is the fraction of
    the image that stays the example's own (the reference's lambda 'adjusted to exactly match pixel ratio')."""
    h, w = x.shape[-2:]
    if not torch.is_tensor(y1) and (y2 - y1) * (x2 - x1) == 0:  # eager: skip the work of an empty box
        return erm_apply(x, y, num_classes)
    mixed = torch.where(cutmix_mask(h, w, y1, y2, x1, x2, x.device), x[perm], x)
    kept = 1.0 - (y2 - y1) * (x2 - x1) / (h * w)
    y_b = y[perm]
    return mixed, lambda out: mixed_ce(out, y, y_b, kept, num_classes)


def prob_check(p: float) -> str | None:
    return not_finite("CutMix probability prob", p, "in [0, 1]") or (
        None if 0 <= p <= 1 else f"CutMix probability prob={p:g} is outside [0, 1]")


CUTMIX_PROB = Option("prob", 0.5, "the probability that a batch is CutMixed (the reference's cutmix_prob; 0.5 in its "
                     "CIFAR command); the other batches train as ERM", check=prob_check)
cutmix = METHODS.register("cutmix")(Method(cutmix_draw, cutmix_apply, uses_alpha=True, title="CutMix",
                                           check=beta_check, default=1.0, options=(CUTMIX_PROB,)))
