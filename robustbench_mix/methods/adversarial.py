"""Adversarial training: PGD-AT (Madry et al., ICLR 2018), TRADES (Zhang et al., ICML 2019) and mixup on
adversarial examples (interpolated adversarial training, Lamb et al., AISec 2019), each one step function.

Every step crafts its adversarial examples with the suite's own attacks (``attacks.pgd``, ``attacks.project``)
in [0, 1] pixel space, with the model in eval mode and its parameters frozen (:func:`attacks.frozen_eval`):
batch-norm statistics are neither used from the batch nor updated by the search, as in TRADES' reference code
(``model.eval()`` before the attack, ``model.train()`` after). Madry et al.'s TensorFlow code searched in
training mode: on an independent audit's digits model the train-mode loss was 2.50 against 2.42 in eval mode and
the input gradients 15% apart, so PGD-AT's examples here are not theirs exactly. The update itself runs in the
trainer's mode (train). The random starts use torch's global generator, which the checkpoint holds, so a
resumed run draws what an uninterrupted one would.

Options (``--methods pgd_at:eps=8:steps=10:step_size=2``) are in /255 units, like ``--eps``: ``eps`` the
training radius (L-infinity), ``steps`` the attack's iterations, ``step_size`` its signed step.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from robustbench_mix.attacks.base import frozen_eval
from robustbench_mix.attacks.linf import pgd, project
from robustbench_mix.core.parsing import not_finite, not_whole
from robustbench_mix.core.units import LEVELS, fraction
from robustbench_mix.methods import METHODS, Method, Option, no_draws
from robustbench_mix.methods.mixing import ALPHA_MAX, beta_check, mixed_ce, mixup_draw

GRAPH_REASON = "each step runs an attack with its own forward and backward passes before the update"


# attack iterations per training step: a bound far above any reference's (10), below what would run for days
MAX_STEPS = 10_000


def _radius(name: str):
    def check(v: float) -> str | None:  # /255 units, as --eps: beyond the whole pixel range means nothing
        return not_finite(name, v, f"in (0, {LEVELS:g}] (/255 units)") or (
            f"{name}={v:g} must be positive" if v <= 0 else None if v <= LEVELS else
            f"{name}={v:g} is outside (0, {LEVELS:g}] (/255 units): 255/255 is the whole pixel range")
    return check


def _steps(v: float) -> str | None:
    return not_whole("steps", v, 1, MAX_STEPS)


def _options(eps: float, steps: int, step_size: float) -> tuple[Option, ...]:
    return (Option("eps", eps, "training radius, L-infinity, /255", check=_radius("eps")),
            Option("steps", float(steps), "attack iterations per training step", check=_steps),
            Option("step_size", step_size, "the attack's signed step, /255", check=_radius("step_size")))


def pgd_examples(model, x, y, *, eps: float, steps: float, step_size: float) -> torch.Tensor:
    """PGD with a uniform random start (``attacks.pgd``, cross-entropy) on the frozen model; radii in /255."""
    with frozen_eval(model):
        return pgd(model, x, y, fraction(eps), steps=int(steps), step_size=fraction(step_size)).detach()


def pgd_at_step(model, x, y, num_classes, *, eps: float, steps: float, step_size: float) -> torch.Tensor:
    """Madry et al. (2018): the cross-entropy on PGD examples only (their min-max objective)."""
    x_adv = pgd_examples(model, x, y, eps=eps, steps=steps, step_size=step_size)
    return F.cross_entropy(model(x_adv).float(), y)


def kl_sum(adv_logits: torch.Tensor, nat_probs: torch.Tensor) -> torch.Tensor:
    """TRADES' ``KLDivLoss(size_average=False)(log_softmax(adv), softmax(nat))``: KL(nat || adv) summed over the
    batch and the classes."""
    return F.kl_div(F.log_softmax(adv_logits.float(), 1), nat_probs, reduction="sum")


def trades_examples(model, x, *, eps: float, steps: float, step_size: float) -> torch.Tensor:
    """TRADES' adversary: from x + 0.001 * N(0, 1), signed steps up the KL between the model's clean and
    adversarial predictions, each projected into the eps-ball and [0, 1] (``attacks.project``)."""
    eps, step_size = fraction(eps), fraction(step_size)
    with frozen_eval(model):
        with torch.no_grad():
            nat = F.softmax(model(x).float(), 1)
        x_adv = x.detach() + 0.001 * torch.randn_like(x)
        for _ in range(int(steps)):
            x_adv.requires_grad_(True)
            grad = torch.autograd.grad(kl_sum(model(x_adv), nat), x_adv)[0]
            x_adv = project(x_adv.detach() + step_size * grad.sign(), x, eps).detach()
    return x_adv


def trades_step(model, x, y, num_classes, beta, *, eps: float, steps: float, step_size: float) -> torch.Tensor:
    """Zhang et al. (2019): CE(f(x), y) + beta * KL(f(x) || f(x_adv)) / batch, the gradient flowing through both
    predictions as in the reference. The reference runs three train-mode forwards per step (clean, adversarial,
    clean again, once per term); this step runs two (clean, adversarial). The loss and its gradient are the same
    (each forward normalizes with its own batch's statistics; no dropout in the adversarial presets), but batch
    norm's running statistics, which evaluation uses, move differently: at momentum 0.1 the reference's step
    weights the clean and adversarial batch statistics 0.181 : 0.090 (67 : 33) and keeps 0.729 of the old, this
    step 0.090 : 0.100 (47 : 53) and keeps 0.81 (an audit measured the statistics 11% apart after one step)."""
    x_adv = trades_examples(model, x, eps=eps, steps=steps, step_size=step_size)
    logits = model(x).float()
    return F.cross_entropy(logits, y) + beta * kl_sum(model(x_adv), F.softmax(logits, 1)) / len(x)


def trades_draw(n, alpha, rng, generator, device) -> tuple[float]:
    """No random numbers of its own (the adversary's start uses torch's generator); beta goes to the step."""
    return (alpha,)


def mixup_at_draw(n, alpha, rng, generator, device, *, pairs: str = "two") -> tuple:
    """One lambda and pairing for the clean half and another for the adversarial half (``pairs=two``, Lamb et
    al.'s Algorithm 1, the default), drawn in that order, or one for both (``pairs=one``, the suite's form before
    the option, which the committed robust-cpu results computed)."""
    first = mixup_draw(n, alpha, rng, generator, device)
    return first if pairs == "one" else first + mixup_draw(n, alpha, rng, generator, device)


def mixup_at_step(model, x, y, num_classes, lam, perm, lam_adv=None, perm_adv=None, *, eps: float, steps: float,
                  step_size: float) -> torch.Tensor:
    """Interpolated adversarial training (Lamb et al., 2019): the mean of mixup's loss on the clean batch and
    on its PGD examples (the attack runs on the unmixed images, as there). The adversarial half is mixed with
    ``lam_adv`` and ``perm_adv`` where given (the paper's two draws), else with the clean half's."""
    x_adv = pgd_examples(model, x, y, eps=eps, steps=steps, step_size=step_size)
    if lam_adv is None:
        lam_adv, perm_adv = lam, perm

    def mixed_loss(inputs, lam, perm):
        out = model(lam * inputs + (1.0 - lam) * inputs[perm]).float()
        return mixed_ce(out, y, y[perm], lam, num_classes)

    return 0.5 * (mixed_loss(x, lam, perm) + mixed_loss(x_adv, lam_adv, perm_adv))


def _beta_check(beta: float) -> str | None:
    return not_finite("beta", beta, f"in [0, {ALPHA_MAX:.0f}]") or (
        f"beta {beta:g} is negative; TRADES' trade-off weight is >= 0" if beta < 0 else
        None if beta <= ALPHA_MAX else f"beta {beta:g} is outside [0, {ALPHA_MAX:.0f}], TRADES' trade-off weight")


# Madry et al.'s CIFAR-10 radius and step (8/255, 2/255), with 10 steps as in Rice et al. (2020)
pgd_at = METHODS.register("pgd_at")(Method(
    no_draws, title="PGD-AT", step=pgd_at_step, graphable=False, graph_reason=GRAPH_REASON, adversarial=True,
    options=_options(8.0, 10, 2.0)))
# the reference's CIFAR-10 command: beta 6, eps 0.031, 10 steps of 0.007 (= 1.785/255); the radius here is 8/255
# = 0.031373 (1.2% larger than 0.031), the field's L-infinity radius, which the evaluation uses too
trades = METHODS.register("trades")(Method(
    trades_draw, title="TRADES", step=trades_step, uses_alpha=True, param="β", default=6.0, check=_beta_check,
    graphable=False, graph_reason=GRAPH_REASON, adversarial=True, options=_options(8.0, 10, 1.785)))
# pairs: Lamb et al.'s Algorithm 1 draws a lambda and a pairing for each half (pairs=two, the default); one draw
# for both (pairs=one; the two forms' gradient variance 2.1x apart on an audit's model) is what mixup_at computed
# before the option, so runs recorded without it read as pairs=one (ADDED_OPTIONS, Experiment.from_json) and keep
# their ids, and the robust-cpu preset names pairs=one, the form its committed results computed.
mixup_at = METHODS.register("mixup_at")(Method(
    mixup_at_draw, title="mixup + AT", step=mixup_at_step, uses_alpha=True, default=1.0, check=beta_check,
    graphable=False, graph_reason=GRAPH_REASON, adversarial=True,
    options=(*_options(8.0, 10, 2.0), Option("pairs", "two", "two: a lambda and pairing per half as Lamb et al.'s "
                                             "Algorithm 1; one: one for both halves", choices=("one", "two")))))
