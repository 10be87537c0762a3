"""Validation of an Experiment against the registries, with errors naming the bad value and what is allowed."""

from __future__ import annotations

import numbers
import re

from robustbench_mix.core.errors import UsageError
from robustbench_mix.core.parsing import not_finite
from robustbench_mix.core.registry import unknown
from robustbench_mix.core.units import L2_UNITS, Norm, fmt_eps, fmt_row_eps, row_eps, stored_eps
from robustbench_mix.experiment.experiment import PRECISIONS, SCHEDULES, SEED_LIMIT, Experiment


# -------------------------------------------------------------------------------------- validation
def validate(exp: Experiment) -> None:
    """Raise UsageError naming the bad value and what is allowed. Cheap: no data is loaded here."""
    from robustbench_mix.attacks.base import check_attack_name, get_attack
    from robustbench_mix.corruptions import CORRUPTIONS
    from robustbench_mix.methods import LEGACY, METHODS
    from robustbench_mix.models.base import MIX_POINTS
    from robustbench_mix.models.families import check_model_name, is_model_name

    method = METHODS.get(exp.method)
    if method.trainable:
        check_model_name(exp.model)
    elif not is_model_name(exp.model):
        raise UsageError(f"model name {exp.model!r} is not one of the suite's models, tv:NAME, timm:NAME or "
                         "user:NAME (letters, digits, _ . -)")
    for c in exp.corruptions:
        CORRUPTIONS.get(c)
    for a in exp.attacks:
        check_attack_name(a)
    problem = method.check(exp.alpha) if method.uses_alpha else None
    if exp.method_options != LEGACY:  # a recorded run of an earlier version: evaluated, never trained again
        method.option_values(exp.method, exp.method_options)  # a UsageError naming the method and the value
    if problem:
        raise UsageError(f"method {exp.method}: {problem}")
    # every number finite first (and before the comparisons below are made), so that a range check never calls
    # NaN negative nor lets inf pass as positive
    for p in [not_finite(*c) for c in _numbers(exp)] + [
            None if isinstance(v, numbers.Integral) and not isinstance(v, bool) else f"{name} {v!r} is not a whole "
            "number" for name, v in _counts(exp)]:
        if p:
            raise UsageError(p)
    checks = [
        (exp.alpha >= 0, f"alpha {exp.alpha} is negative; the methods' parameters are >= 0"),
        (not method.mixes_hidden or len(MIX_POINTS.get(exp.model, ())) >= 3,
         f"method {exp.method} mixes hidden states, and model {exp.model} declares no mixing points "
         f"(models.MIX_POINTS); models that do: {', '.join(MIX_POINTS)}"),
        (0 <= exp.noise < 1, f"noise {exp.noise} is outside [0, 1): it is the fraction of corrupted labels"),
        (0 <= exp.dropout < 1, f"dropout {exp.dropout} is outside [0, 1)"),
        (exp.epochs >= 1 or not method.trainable, f"epochs {exp.epochs} must be at least 1"),
        (method.trainable or exp.epochs == 0, f"method {exp.method} labels models trained outside the suite "
                                              "(robustbench_mix.evaluate, the checkpoint command); it cannot train"),
        (exp.batch_size >= 1, f"batch size {exp.batch_size} must be at least 1"),
        (exp.lr > 0, f"learning rate {exp.lr} must be positive"),
        (exp.weight_decay >= 0, f"weight decay {exp.weight_decay} must be >= 0"),
        (0 <= exp.momentum < 1, f"momentum {exp.momentum} is outside [0, 1)"),
        (exp.schedule in SCHEDULES, unknown("schedule", exp.schedule, list(SCHEDULES))),
        (0 <= exp.val_fraction < 1, f"validation fraction {exp.val_fraction} is outside [0, 1)"),
        (exp.train_samples >= 0, f"train samples {exp.train_samples} must be >= 0 (0 = the whole training set)"),
        (exp.attack_steps >= 1, f"attack steps {exp.attack_steps} must be at least 1"),
        (exp.attack_step_size is None or exp.attack_step_size > 0,
         f"attack step size {exp.attack_step_size} must be positive (in /255 units)"),
        (exp.attack_precision in PRECISIONS, unknown("attack precision", exp.attack_precision, list(PRECISIONS))),
        (exp.attack_restarts >= 1, f"attack restarts {exp.attack_restarts} must be at least 1"),
        (0 <= exp.check_eps <= 255, f"check epsilon {fmt_eps(exp.check_eps)} is outside [0, 255/255]"),
        (0 <= exp.seed < SEED_LIMIT, f"seed {exp.seed} is outside [0, 2**32): seeds are non-negative 32-bit "
                                     "integers (numpy's and torch's generators take them)"),
        (exp.eval_seed is None or 0 <= exp.eval_seed < SEED_LIMIT,
         f"evaluation seed {exp.eval_seed} is outside [0, 2**32): seeds are non-negative 32-bit integers"),
        (exp.weights in ("", "checkpoint") or re.fullmatch(r"sha256:[0-9a-f]{16}", exp.weights) is not None,
         f"weights {exp.weights!r} is not '', 'checkpoint' or 'sha256:' and 16 hex digits"),
        (exp.surrogate_seed is None or 0 <= exp.surrogate_seed < SEED_LIMIT,
         f"surrogate seed {exp.surrogate_seed} is outside [0, 2**32): seeds are non-negative 32-bit integers"),
        (exp.surrogate_seed is None or exp.surrogate_seed != exp.seed,
         f"surrogate seed {exp.surrogate_seed} equals the run's seed: a black-box surrogate must be trained "
         "separately (another seed)"),
        (exp.attack_samples >= 0, f"attack samples {exp.attack_samples} must be >= 0 (0 = whole test set)"),
        (exp.eval_every >= 0, f"eval-every {exp.eval_every} must be >= 0 (0 = only at the end)"),
        (exp.device == "auto" or exp.device == "cpu" or exp.device.startswith("cuda"),
         f"device {exp.device!r} is not one of auto, cpu, cuda, cuda:N"),
    ]
    for e in exp.eps:
        checks.append((0 <= e <= 255, f"epsilon {fmt_eps(e)} is outside [0, 255/255]: "
                                      f"epsilons are fractions of the pixel range, given in /255 units"))
    for e in exp.eps_l2:
        checks.append((e >= 0, f"L2 radius {e!r} must be a finite number >= 0; {L2_UNITS}"))
    l2 = [a for a in exp.attacks if get_attack(a).norm == Norm.L2]
    checks.append((not l2 or bool(exp.eps_l2),
                   f"attack(s) {', '.join(l2)} are L2 attacks and need their radii: give --eps-l2 (eps_l2 in the "
                   f"Python API), e.g. --eps-l2 0.25,0.5; {L2_UNITS}. --eps holds only the L-infinity epsilons"))
    for ok, msg in checks:
        if not ok:
            raise UsageError(msg)
    check_repeats(exp)


def _numbers(exp: Experiment) -> list[tuple[str, object, str]]:
    """(name, value, allowed range) of every real-valued field."""
    out = [("alpha", exp.alpha, ">= 0"), ("dropout", exp.dropout, "in [0, 1)"), ("noise", exp.noise, "in [0, 1)"),
           ("learning rate", exp.lr, "> 0"), ("weight decay", exp.weight_decay, ">= 0"),
           ("momentum", exp.momentum, "in [0, 1)"), ("validation fraction", exp.val_fraction, "in [0, 1)"),
           ("check epsilon", exp.check_eps, "in [0, 255] (/255 units)")]
    if exp.attack_step_size is not None:
        out.append(("attack step size", exp.attack_step_size, "in (0, 255] (/255 units)"))
    out += [("epsilon", e, "in [0, 255] (/255 units)") for e in exp.eps]
    return out + [("L2 radius", e, f">= 0; {L2_UNITS}") for e in exp.eps_l2]


def _counts(exp: Experiment) -> list[tuple[str, object]]:
    return [("epochs", exp.epochs), ("batch size", exp.batch_size), ("train samples", exp.train_samples),
            ("attack steps", exp.attack_steps), ("attack samples", exp.attack_samples),
            ("attack restarts", exp.attack_restarts), ("eval-every", exp.eval_every), ("seed", exp.seed)]


def check_repeats(exp: Experiment) -> None:
    """No attack, corruption or radius twice: each would write its rows twice under one key of runs.csv
    (``store.schema.KEY``), which no command can read. Radii are compared as runs.csv records them
    (:func:`core.units.stored_eps`), so two values that differ only beyond those digits are one too."""
    for what, names in (("attack", exp.attacks), ("corruption", exp.corruptions)):
        twice = [n for i, n in enumerate(names) if n in names[:i]]
        if twice:
            raise UsageError(f"{what} {twice[0]} is listed twice; list each {what} once")
    for norm, radii, what, whats in ((Norm.LINF, exp.eps, "epsilon", "epsilons"),
                                     (Norm.L2, exp.eps_l2, "L2 radius", "L2 radii")):
        unit = "/255" if norm == Norm.LINF else ""
        seen: dict[float, float] = {}
        for e in radii:
            key = stored_eps(norm, e)
            if key not in seen:
                seen[key] = e
            elif seen[key] == e:
                raise UsageError(f"{what} {e:.10g}{unit} is listed twice; list each {what} once")
            else:
                raise UsageError(f"{whats} {seen[key]:.10g}{unit} and {e:.10g}{unit} are one value in runs.csv, "
                                 f"which records both as {fmt_row_eps(norm, row_eps(norm, e))} (eps {key:g}); give "
                                 f"values that differ there, or one of them")
