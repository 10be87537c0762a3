"""The registries' contracts as rules: each takes an entry's name (and what it is checked on) and returns what is
wrong with it, or None. ``tests/contracts`` runs them on every built-in entry; ``python -m robustbench_mix.check``
runs them on a user's plugins (and the built-ins), naming the entry and the rule of each failure.

attack: returns the input at eps 0; stays in its norm's ball and [0, 1]; reaches half its radius in its declared
norm (so a wrong norm trait fails). method: a finite scalar loss; its randomness only from the generators it is
given (the same seeds twice, the global state changed between: the same loss); a mixing method at alpha 0 gives
its ``erm_multiple`` of ERM's loss (a mix of weight 0 is ERM); an ``apply`` method's inputs stay images and its
label weights sum to one. model: [0, 1] images to finite logits of shape (N, classes). corruption: five
severities, uint8 of the input's shape, each changing the image, severity 1 unlike 5.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from robustbench_mix.attacks.base import ATTACKS, default_step_size, frozen_eval
from robustbench_mix.core.errors import first_line
from robustbench_mix.core.units import Norm
from robustbench_mix.corruptions import CORRUPTIONS, corrupt
from robustbench_mix.methods import METHODS
from robustbench_mix.models.base import MODELS
from robustbench_mix.models.families import build

RADIUS = {Norm.LINF: 16 / 255, Norm.L2: 0.5}  # a ball each attack can reach on a small CNN's digits
BALL_TOL = {Norm.LINF: 1e-6, Norm.L2: 1e-4}
SHAPES = ((1, 8, 8), (3, 32, 32))  # the digits' and CIFAR's images: a model must take one of them
CLASSES = 10


@dataclass
class Batch:
    """What the attack and method rules run on: a model (eval mode) and its images in [0, 1] with labels."""

    model: torch.nn.Module
    x: torch.Tensor
    y: torch.Tensor


def size(delta: torch.Tensor, norm: Norm) -> torch.Tensor:
    """Each example's perturbation in ``norm``."""
    flat = delta.flatten(1)
    return flat.norm(dim=1) if norm == Norm.L2 else flat.abs().amax(dim=1)


def available(name: str) -> bool:
    """Whether an attack's optional package is installed."""
    try:
        ATTACKS.get(name).needs and ATTACKS.get(name).needs()
        return True
    except Exception:
        return False


# ------------------------------------------------------------------------------------------------- attacks
def attack_eps_zero(name: str, b: Batch) -> str | None:
    with frozen_eval(b.model):
        adv = ATTACKS.get(name)(b.model, b.x, b.y, 0.0, steps=3, step_size=default_step_size(0.0, 3))
    return None if torch.equal(adv, b.x) else "eps 0 changed the images (it must return its input)"


def attack_in_ball(name: str, b: Batch) -> str | None:
    fn = ATTACKS.get(name)
    eps = RADIUS[fn.norm]
    with frozen_eval(b.model):
        adv = fn(b.model, b.x, b.y, eps, steps=3, step_size=default_step_size(eps, 3))
    if adv.shape != b.x.shape or adv.dtype != b.x.dtype:
        return f"returned {adv.dtype} {tuple(adv.shape)} for {b.x.dtype} {tuple(b.x.shape)} images"
    if adv.min() < 0 or adv.max() > 1:
        return f"left [0, 1] (values {float(adv.min()):.4g} .. {float(adv.max()):.4g})"
    far = float(size(adv - b.x, fn.norm).max())
    if far > eps + BALL_TOL[fn.norm]:
        return f"left its {fn.norm} ball ({far:.4g} > {eps:.4g})"
    if far < eps / 2:
        return f"never reached half its radius in its declared norm {fn.norm} ({far:.4g} < {eps / 2:.4g}): wrong norm?"
    return None


# ------------------------------------------------------------------------------------------------- methods
def bound(name: str, size: tuple[int, int]):
    m = METHODS.get(name)
    return m.bind(m.option_values(name, ""), image_size=size)


def method_loss(name: str, b: Batch, alpha: float, seed: int) -> torch.Tensor:
    """The method's loss on the batch with its draws from generators seeded ``seed`` (as the trainer makes them)."""
    m = bound(name, tuple(b.x.shape[-2:]))
    gen = torch.Generator().manual_seed(seed)
    draws = m.draw(len(b.x), alpha, np.random.default_rng(seed), gen, torch.device("cpu"))
    return m.loss(b.model, b.x, b.y, CLASSES, *draws)


def alpha_of(name: str) -> float:
    return METHODS.get(name).default or 1.0


def method_finite(name: str, b: Batch) -> str | None:
    loss = method_loss(name, b, alpha_of(name), 0)
    if not torch.is_tensor(loss) or loss.numel() != 1:
        return f"the loss is {type(loss).__name__} {tuple(getattr(loss, 'shape', ()))}, not a scalar tensor"
    return None if math.isfinite(float(loss.detach())) else f"the loss is {float(loss.detach())}, not finite"


def held_global_torch(name: str) -> bool:
    """The built-in adversarial methods' random starts draw from torch's global generator, which the trainer's
    checkpoints hold too (methods/adversarial.py); a plugin's method is given its generator only."""
    return METHODS.origin(name) is None and METHODS.get(name).adversarial


def method_own_generator(name: str, b: Batch) -> str | None:
    second_seed = 123 if held_global_torch(name) else 456
    torch.manual_seed(123)
    np.random.seed(123)
    first = float(method_loss(name, b, alpha_of(name), 7).detach())
    torch.manual_seed(second_seed)
    np.random.seed(456)
    second = float(method_loss(name, b, alpha_of(name), 7).detach())
    if first != second:
        return (f"two calls with the same seed gave losses {first:.6g} and {second:.6g}: its randomness must come "
                "only from the generator it is given, not torch's or numpy's global state")
    return None


def is_mixing(name: str) -> bool:
    m = METHODS.get(name)
    return m.trainable and m.takes_alpha_flag and not m.adversarial


def method_alpha_zero(name: str, b: Batch) -> str | None:
    if not is_mixing(name):
        return None
    with torch.no_grad():
        erm = float(F.cross_entropy(b.model(b.x).float(), b.y))
    want = METHODS.get(name).erm_multiple * erm
    got = float(method_loss(name, b, 0.0, 0).detach())
    if not math.isclose(got, want, rel_tol=1e-4, abs_tol=1e-6):
        return (f"at alpha 0 the loss is {got:.6g}, not {METHODS.get(name).erm_multiple:g} x ERM's {erm:.6g}: a "
                "mixing method's mix of weight 0 is ERM (declare erm_multiple if it adds a term of its own)")
    return None


def method_label_weights(name: str, b: Batch) -> str | None:
    """Mixed inputs are convex combinations (in [0, 1]); at uniform logits the loss is log(C), which holds exactly
    when it is a cross-entropy against labels whose weights sum to one."""
    m = METHODS.get(name)
    if m.apply is None:
        return None
    bm = bound(name, tuple(b.x.shape[-2:]))
    for seed in range(5):
        draws = bm.draw(len(b.x), alpha_of(name), np.random.default_rng(seed), torch.Generator().manual_seed(seed),
                        torch.device("cpu"))
        inputs, loss_fn = bm.apply(b.x, b.y, CLASSES, *draws)
        if inputs.shape != b.x.shape or inputs.min() < 0 or inputs.max() > 1:
            return "its inputs are not images in [0, 1] of the batch's shape"
        loss = float(loss_fn(torch.zeros(len(b.x), CLASSES)))
        if not math.isclose(loss, math.log(CLASSES), rel_tol=1e-5):
            return f"at uniform logits the loss is {loss:.6g}, not log({CLASSES}): its label weights do not sum to one"
    return None


# -------------------------------------------------------------------------------------------------- models
def model_logits(name: str, b: Batch | None = None) -> str | None:
    taken, problems = [], []
    for shape in SHAPES:
        try:
            model = build(name, in_shape=shape, num_classes=CLASSES, mean=(0.5,) * shape[0], std=(0.25,) * shape[0])
            with torch.no_grad():
                out = model.eval()(torch.rand(3, *shape, generator=torch.Generator().manual_seed(0)))
        except Exception as e:  # a model for other images: it must take one of the shapes
            problems.append(f"{shape}: {e.__class__.__name__}: {first_line(e)}")
            continue
        if not torch.is_tensor(out) or tuple(out.shape) != (3, CLASSES):
            return (f"maps 3 images {shape} to {type(out).__name__} {tuple(getattr(out, 'shape', ()))}, not logits of "
                    f"shape (3, {CLASSES})")
        if not torch.isfinite(out).all():
            return f"gives non-finite logits for [0, 1] images {shape}"
        taken.append(shape)
    return None if taken else "takes none of the images " + "; ".join(problems)


# --------------------------------------------------------------------------------------------- corruptions
def colour_images() -> torch.Tensor:
    """Two smooth 32x32 colour images (every corruption, saturation included, has something to change)."""
    low = torch.rand(2, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    return (F.interpolate(low, size=32, mode="bilinear", align_corners=False) * 255).round().to(torch.uint8)


def corruption_severities(name: str, b: Batch | None = None) -> str | None:
    x = colour_images()
    outs = [corrupt(x, name, s, seed=0) for s in range(1, 6)]
    for s, out in enumerate(outs, 1):
        if out.dtype != torch.uint8 or out.shape != x.shape:
            return f"severity {s} gives {out.dtype} {tuple(out.shape)}, not uint8 {tuple(x.shape)}"
    if torch.equal(outs[0], x):
        return "severity 1 does not change the image"
    if torch.equal(outs[0], outs[4]):
        return "severity 1 equals severity 5"
    return None


Rule = Callable[..., str | None]
RULES: dict[str, list[tuple[str, Rule]]] = {
    "attack": [("eps-zero", attack_eps_zero), ("in-ball", attack_in_ball)],
    "method": [("finite-loss", method_finite), ("own-generator", method_own_generator),
               ("alpha-zero-is-erm", method_alpha_zero), ("label-weights", method_label_weights)],
    "model": [("logits", model_logits)],
    "corruption": [("severities", corruption_severities)],
}
REGISTRIES = {"attack": ATTACKS, "method": METHODS, "model": MODELS, "corruption": CORRUPTIONS}


def entries(kind: str, plugins_only: bool) -> list[str]:
    """The entries the rules apply to: a registry's (the plugins' only, if asked), trainable methods only."""
    reg = REGISTRIES[kind]
    names = [n for n in reg if not plugins_only or reg.origin(n) is not None]
    return [n for n in names if kind != "method" or METHODS.get(n).trainable]


def check_entry(kind: str, name: str, batch: Batch | None) -> list[tuple[str, str]]:
    """(rule, problem) for each rule ``name`` breaks; an exception a rule's call raises is that rule's failure."""
    out = []
    for rule, fn in RULES[kind]:
        try:
            problem = fn(name, batch)
        except Exception as e:
            problem = f"raised {e.__class__.__name__}: {first_line(e)}"
        if problem:
            out.append((rule, problem))
    return out


def digits_batch(n: int = 24, seed: int = 0, epochs: int = 3) -> Batch:
    """A small CNN trained briefly on the real digits (so that attacks have correct predictions to break: AutoAttack
    leaves misclassified points alone) and ``n`` test digits: what the command checks on."""
    from robustbench_mix.data.sources import load_digits

    d = load_digits(None)
    torch.manual_seed(seed)
    mean, std = d.channel_stats()
    model = build("cnn", in_shape=d.shape, num_classes=CLASSES, mean=mean, std=std)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    x, y = d.train_x.float() / 255.0, d.train_y
    for _ in range(epochs):
        for idx in torch.randperm(len(y)).split(50):
            opt.zero_grad()
            F.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()
    return Batch(model.eval(), d.test_x[:n].float() / 255.0, d.test_y[:n])
