"""The attack registry and what every attack shares: the Attack record and its norm, losses, input gradients."""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from robustbench_mix.attacks.adapters import _torchattacks_fn, torchattacks_class
from robustbench_mix.core.registry import Registry
from robustbench_mix.core.units import Norm


@dataclass(frozen=True)
class Attack:
    """An attack and the traits the evaluation and the sanity checks ask about: ``random_start`` (restarts
    make sense, and the gradient-masking check at a large epsilon runs it), ``iterative`` (it must be at
    least as strong as the one-step attack of its norm), ``norm`` (a :class:`Norm`: which epsilon grid it runs
    on and which ball the checks hold it to). Calling it runs the attack."""

    fn: Callable[..., torch.Tensor]
    random_start: bool
    iterative: bool
    needs: Callable[[], object] | None = None  # raises UsageError when an optional package is missing
    norm: Norm = Norm.LINF
    budget: Callable[[int], int] | None = None  # gradient steps per image at most, given ``steps``: see below

    def __call__(self, model, x, y, eps, steps=10, step_size=None, loss="ce"):
        return self.fn(model, x, y, eps, steps=steps, step_size=step_size, loss=loss)

    def gradient_steps(self, steps: int) -> int:
        """The most forward-backward passes per image the attack takes (an attack that sets its own, as
        AutoAttack, declares ``budget``): what the progress line's estimate multiplies one step's time by."""
        return self.budget(steps) if self.budget else steps if self.iterative else 1


ATTACKS: Registry[Attack] = Registry("attack")




@dataclass(frozen=True)
class NormTraits:
    """What the evaluation and the checks need of a threat model, in one place: ``grid`` the Experiment field
    holding its radii, ``worst`` the name of its per-example worst-case rows, ``one_step`` the one-step attack every
    iterative attack of the norm must beat, ``autoattack_vs_pgd`` the pair the positive control compares,
    ``ball_tol`` the float rounding allowed at the edge of its ball (the in-ball check)."""

    grid: str
    worst: str
    one_step: str
    autoattack_vs_pgd: tuple[str, str]
    ball_tol: float


NORM_TRAITS = {
    Norm.LINF: NormTraits("eps", "worst", "fgsm", ("autoattack", "pgd"), 1e-3),  # /255 units, 3 decimals
    Norm.L2: NormTraits("eps_l2", "worst_l2", "fgm_l2", ("autoattack_l2", "pgd_l2"), 1e-4),
}
NORMS = tuple(NORM_TRAITS)
# the per-example worst case over the white-box attacks of each norm (rows of their own)
WORST = {t.worst: norm for norm, t in NORM_TRAITS.items()}
# the one-step attack of each norm, which every iterative attack of that norm must beat
ONE_STEP = {norm: t.one_step for norm, t in NORM_TRAITS.items()}


def register_attack(name: str, *, random_start: bool, iterative: bool, needs: Callable[[], object] | None = None,
                    norm: Norm = Norm.LINF, budget: Callable[[int], int] | None = None):
    """Register ``fn`` as attack ``name`` with its traits; the function itself stays importable."""
    norm = Norm(norm)  # a ValueError naming the value for anything but a norm

    def deco(fn):
        ATTACKS.register(name)(Attack(fn, random_start, iterative, needs, norm, budget))
        return fn

    return deco


def attack_loss(logits: torch.Tensor, y: torch.Tensor, kind: str, summed: bool = False) -> torch.Tensor:
    if kind == "ce":  # mean by default, like torchattacks, so both take identical steps
        return F.cross_entropy(logits, y, reduction="sum" if summed else "mean")
    # Carlini-Wagner margin: best wrong logit minus true logit; not saturated by soft-target training.
    true = logits.gather(1, y[:, None]).squeeze(1)
    wrong = logits.scatter(1, y[:, None], float("-inf")).amax(1)
    return (wrong - true).sum()


def input_grad(model, x, y, loss: str, summed: bool = False) -> torch.Tensor:
    """The loss's gradient with respect to the input; ``summed``: of the summed rather than the mean
    cross-entropy, so that each example's gradient does not shrink with the batch size."""
    x = x.detach().requires_grad_(True)
    return torch.autograd.grad(attack_loss(model(x), y, loss, summed), x)[0]


def check_attack_name(name: str) -> None:
    if name.startswith("ta:"):
        torchattacks_class(name[3:])
    elif ATTACKS.get(name).needs is not None:
        ATTACKS.get(name).needs()


def get_attack(name: str) -> Attack:
    """The registered attack, or a torchattacks one (``ta:NAME``) with its traits read from its signature."""
    if not name.startswith("ta:"):
        return ATTACKS.get(name)
    params = inspect.signature(torchattacks_class(name[3:])).parameters
    random_start = "random_start" in params and params["random_start"].default is True
    return Attack(_torchattacks_fn(name[3:]), random_start=random_start, iterative="steps" in params,
                  norm=attack_norm(name))


def attack_norm(attack: str) -> str:
    """The threat model of a results row's attack: "Linf" or "L2" for an attack (white-box, ``bb:`` black-box, the
    ``worst`` / ``worst_l2`` cases), "" for anything else (clean, checks, corruptions). A torchattacks attack is
    L2 when its class name says so (``ta:PGDL2``), else L-infinity."""
    name = attack.removeprefix("bb:")
    if name in WORST:
        return str(WORST[name])
    if name.startswith("ta:"):
        return str(Norm.L2 if "L2" in name[3:] else Norm.LINF)
    return str(ATTACKS.get(name).norm) if name in ATTACKS else ""


def default_step_size(eps: float, steps: int) -> float:
    """2.5 * eps / steps lets an iterative attack walk from one side of the ball to the other."""
    return 2.5 * eps / steps


@contextlib.contextmanager
def frozen_eval(model: torch.nn.Module):
    """Eval mode (batch-norm statistics fixed, dropout off) and no parameter gradients, restored after."""
    modes = [m.training for m in model.modules()]
    grads = [p.requires_grad for p in model.parameters()]
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    try:
        yield model
    finally:
        for m, t in zip(model.modules(), modes, strict=True):
            m.training = t
        for p, g in zip(model.parameters(), grads, strict=True):
            p.requires_grad_(g)
