"""Training methods registry: each method owns its training step's loss.

A method is a :class:`Method`: ``draw(n, alpha, rng, generator, device)`` makes the batch's random numbers
(``rng`` a numpy Generator for host-side draws such as mixup's lambda, so no device sync is needed;
``generator`` a torch Generator on the batch's device), and ``loss(model, x, y, num_classes, *draws)``
returns the scalar training loss of the batch (the trainer runs it under autocast and backpropagates it).
Methods that change only the inputs and the loss give ``apply(x, y, num_classes, *draws) -> (inputs,
loss_fn)`` and get the default ``loss`` (the model on ``inputs``); methods that need the model itself (manifold
mixup mixes hidden states) give ``loss``. Draws must work as 0-dim tensors too where a method allows a CUDA
graph of the step (``graphable``): the graph's draws are made outside it and passed in through buffers.

``alpha`` is the method's one parameter (its ``param`` symbol: mixup's α, label smoothing's ε); ``check``
says what values it allows.
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
    apply: Callable[..., tuple[torch.Tensor, LossFn]] | None = None
    uses_alpha: bool = False
    title: str = ""
    param: str = "α"  # how the label names alpha
    step: Callable[..., torch.Tensor] | None = None  # (model, x, y, num_classes, *draws) -> loss, see loss()
    graphable: bool = True  # can run inside --cuda-graphs and --compile
    mixes_hidden: bool = False  # needs the model's three mixing points (models.MIX_POINTS)
    check: Callable[[float], str | None] = lambda alpha: None  # noqa: E731 - what is wrong with alpha, if anything
    trainable: bool = True  # False: a label for models trained elsewhere, evaluated by the suite

    def loss(self, model, x, y, num_classes, *draws) -> torch.Tensor:
        """The batch's training loss: the method's own step, or the model on its inputs and its loss."""
        if self.step is not None:
            return self.step(model, x, y, num_classes, *draws)
        inputs, loss_fn = self.apply(x, y, num_classes, *draws)
        return loss_fn(model(inputs).float())

    def __call__(self, x, y, alpha, num_classes, rng, generator) -> tuple[torch.Tensor, LossFn]:
        """Draw and apply for one batch (the eager training step)."""
        return self.apply(x, y, num_classes, *self.draw(len(x), alpha, rng, generator, x.device))


METHODS: Registry[Method] = Registry("method")


def run_label(method: str, alpha: float, dropout: float) -> str:
    """The one way a run's method is named: 'ERM', 'mixup (α=1)', 'mixup (α=8) + dropout (p=0.3)'."""
    m = METHODS.get(method)
    s = m.title or method
    s += f" ({m.param}={alpha:g})" if m.uses_alpha else ""
    return s + (f" + dropout (p={dropout:g})" if dropout else "")


def no_draws(n, alpha, rng, generator, device) -> tuple:
    return ()


def erm_apply(x, y, num_classes) -> tuple[torch.Tensor, LossFn]:
    return x, lambda out: F.cross_entropy(out, y)


erm = METHODS.register("erm")(Method(no_draws, erm_apply, title="ERM"))
# the method of rows from robustbench_mix.evaluate() and the checkpoint command: a model trained elsewhere
METHODS.register("external")(Method(no_draws, erm_apply, title="external", trainable=False))


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


def beta_check(alpha: float) -> str | None:
    return None if alpha >= 0 else f"alpha {alpha} is negative; the Beta(alpha, alpha) mixing needs alpha >= 0"


mixup = METHODS.register("mixup")(Method(mixup_draw, mixup_apply, uses_alpha=True, title="mixup",
                                         check=beta_check))


# ----------------------------------------------------------------------------------------- manifold mixup
def manifold_draw(n, alpha, rng, generator, device) -> tuple:
    """mixup's lambda and partners, and the mixing point: uniform over the model's three (input, after the
    first stage, after the second), drawn from the same host generator after lambda."""
    lam, perm = mixup_draw(n, alpha, rng, generator, device)
    return lam, perm, int(rng.integers(3))


def manifold_step(model, x, y, num_classes, lam, perm, point) -> torch.Tensor:
    """Verma et al. (ICML 2019), Manifold Mixup: mix the hidden states at a randomly chosen layer, and the
    labels with the same lambda. The model's mixing points are named in ``model.mix_points`` (models.build);
    a forward hook on that layer replaces its output by the mix for this one forward."""
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
    out = out.float()
    return lam * F.cross_entropy(out, y) + (1.0 - lam) * F.cross_entropy(out, y[perm])


manifold_mixup = METHODS.register("manifold_mixup")(Method(
    manifold_draw, uses_alpha=True, title="manifold mixup", step=manifold_step, graphable=False, mixes_hidden=True,
    check=beta_check))


# ----------------------------------------------------------------------------------------------- CutMix
def cutmix_draw(n, alpha, rng, generator, device) -> tuple:
    """lambda ~ Beta(alpha, alpha), the box centre (fractions of the height and width) and the partners."""
    lam = mixup_lambda(alpha, rng)
    cy, cx = (float(v) for v in rng.random(2))
    perm = torch.arange(n, device=device) if lam == 1.0 else torch.randperm(n, device=device, generator=generator)
    return lam, cy, cx, perm


def cutmix_box(h: int, w: int, lam, cy, cx, device) -> torch.Tensor:
    """(h, w) bool mask of the pasted box: sides sqrt(1 - lam) of the image's, centred at (cy, cx), clipped
    to the image (so near an edge the box, and the pasted fraction, are smaller)."""
    lam, cy, cx = (torch.as_tensor(v, dtype=torch.float32, device=device) for v in (lam, cy, cx))
    r = torch.sqrt(1.0 - lam)
    y1, y2 = (torch.round(cy * h + s * r * h / 2).clamp(0, h) for s in (-1, 1))
    x1, x2 = (torch.round(cx * w + s * r * w / 2).clamp(0, w) for s in (-1, 1))
    rows = torch.arange(h, device=device)[:, None]
    cols = torch.arange(w, device=device)[None, :]
    return (rows >= y1) & (rows < y2) & (cols >= x1) & (cols < x2)


def cutmix_apply(x, y, num_classes, lam, cy, cx, perm) -> tuple[torch.Tensor, LossFn]:
    """Yun et al. (ICCV 2019), CutMix: paste a box of the partner image; the label weight is the exact
    fraction of the image that stays the example's own (lambda corrected for the clipped box)."""
    box = cutmix_box(x.shape[-2], x.shape[-1], lam, cy, cx, x.device)
    mixed = torch.where(box, x[perm], x)
    kept = 1.0 - box.float().mean()
    y_b = y[perm]

    def loss(out):
        return kept * F.cross_entropy(out, y) + (1.0 - kept) * F.cross_entropy(out, y_b)

    return mixed, loss


cutmix = METHODS.register("cutmix")(Method(cutmix_draw, cutmix_apply, uses_alpha=True, title="CutMix",
                                           check=beta_check))


# ------------------------------------------------------------------------------------------ label smoothing
def smoothing_apply(x, y, num_classes, eps) -> tuple[torch.Tensor, LossFn]:
    """Label smoothing (Szegedy et al., CVPR 2016): the target is 1 - eps on the label plus eps / K on every
    class, so the loss is (1 - eps) CE + eps * the mean of -log p over the classes (written out, rather than
    F.cross_entropy's label_smoothing, so that eps may be a tensor in a graphed step)."""
    def loss(out):
        return (1.0 - eps) * F.cross_entropy(out, y) - eps * out.log_softmax(1).mean(1).mean()

    return x, loss


def smoothing_draw(n, alpha, rng, generator, device) -> tuple:
    return (float(alpha),)


label_smoothing = METHODS.register("label_smoothing")(Method(
    smoothing_draw, smoothing_apply, uses_alpha=True, title="label smoothing", param="ε",
    check=lambda a: None if 0 <= a < 1 else f"label smoothing epsilon {a:g} is outside [0, 1)"))
