"""Sanity checks that run with every robustness evaluation and are written next to the numbers.

They are the usual signs of gradient masking or a broken attack (Carlini et al., 2019, "On evaluating
adversarial robustness"). Each check is a row with ``attack='check'``, ``metric='check:<name>[:<attack>]'``
and value 1 (passed) or 0 (failed); the summary counts failures and the CLI prints a warning. A check whose
inputs are there but give it nothing to compare (e.g. black-box and white-box rows at no common epsilon) is not
a pass: its row is ``metric='check_na:<name>[:<attack>]'``, value 0 (comparisons made), counted neither as passed
nor as failed, and the CLI says why (:data:`CHECKS`' ``nothing``). Where a check's inputs are absent altogether
(e.g. no one-step attack ran) there is no row, as before.

They hold per norm (each attack's ``norm`` trait): ``in_ball:<attack>`` (the largest perturbation within eps:
L-infinity in /255 units, L2 ``max_l2 <= eps + 1e-4``; no value outside [0, 1]), ``eps0_is_clean``,
``monotone_in_eps`` and ``blackbox_weaker`` per attack, ``stronger_than_fgsm:<attack>`` against the one-step
attack of the attack's own norm (fgsm for L-infinity, fgm_l2 for L2), ``large_eps_breaks`` (L-infinity only).

Positive controls, only for runs of an adversarially trained method (``Method.adversarial``), where a weak
attack would flatter the model most: ``positive:autoattack_le_pgd:<norm>`` (AutoAttack's accuracy at most
PGD's + TOL at every common epsilon, when both ran) and ``positive:restarts_le_single:<attack>`` (with
``--attack-restarts`` > 1: the accuracy over all restarts at most TOL above ``acc_first_restart``, the attack's
accuracy with one restart measured by a separate evaluation, the one a run with one restart makes; earlier
versions read it from the restart loop itself, where it could not fail). The black-box comparison is
``blackbox_weaker``, for every run (earlier versions also wrote a ``positive:blackbox_weaker`` row repeating it
row for row).
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass

from robustbench_mix.attacks.base import NORM_TRAITS, ONE_STEP, attack_norm, get_attack
from robustbench_mix.core.registry import Registry
from robustbench_mix.core.units import Norm, grid_key, row_eps
from robustbench_mix.evaluation.metrics import CHECK_PREFIX, NA_PREFIX

TOL = 0.01  # accuracy tolerance (1 percentage point) for comparisons between attacks and epsilons
LARGE_EPS_MAX_ACC = 0.10  # "near zero" at check_eps
# the AutoAttack and PGD of each norm that the positive control compares
AUTOATTACK_VS_PGD = {norm: t.autoattack_vs_pgd for norm, t in NORM_TRAITS.items()}


@dataclass(frozen=True)
class Check:
    doc: str  # what it asserts
    nothing: str  # when it has nothing to compare (its check_na row's reason); "" where it always has one
    positive: bool = False  # a positive control: runs of adversarially trained methods only


CHECKS: Registry[Check] = Registry("check")
for _name, _check_def in {
    "eps0_is_clean": Check("accuracy at epsilon 0 is the clean accuracy of the attacked images, exactly",
                           "no clean accuracy of the attacked images to compare with"),
    "in_ball": Check("the largest perturbation is within epsilon (+ the norm's tolerance) and inside [0, 1]",
                     "no perturbation-size rows for the attack"),
    "monotone_in_eps": Check("accuracy does not rise (by over TOL) from one epsilon to the next",
                             "fewer than two epsilons"),
    "stronger_than_fgsm": Check("an iterative attack is at least as strong (within TOL) as its norm's one-step "
                                "attack", "no epsilon above 0 that both attacks ran at"),
    "blackbox_weaker": Check("the black-box (transfer) attack is no stronger (within TOL) than the white-box one",
                             "the black-box and white-box epsilon grids share no value"),
    "large_eps_breaks": Check("accuracy at the large check epsilon is at most LARGE_EPS_MAX_ACC", ""),
    "input_grad_nonzero": Check("the mean absolute input gradient is finite and above 0", ""),
    "positive:autoattack_le_pgd": Check("AutoAttack is at least as strong (within TOL) as PGD of its norm",
                                        "AutoAttack and PGD share no epsilon above 0", positive=True),
    "positive:restarts_le_single": Check("the attack over all restarts is at least as strong (within TOL) as the "
                                         "attack run once, measured on its own",
                                         "no epsilon with both accuracies", positive=True),
}.items():
    CHECKS.register(_name)(_check_def)


def check_kind(metric: str) -> str:
    """The CHECKS entry of a check:/check_na: metric: 'check:in_ball:pgd' -> 'in_ball'."""
    name = metric.removeprefix(CHECK_PREFIX).removeprefix(NA_PREFIX)
    return max((k for k in CHECKS if name == k or name.startswith(k + ":")), key=len, default=name)


def _verdict(name: str, comparisons: list[bool], eps: float = 0.0) -> dict:
    """Passed (all comparisons hold), failed, or with nothing to compare (a check_na row, never a pass)."""
    ok = all(comparisons)
    return {"split": "test", "attack": "check", "eps": eps, "metric": f"{CHECK_PREFIX if comparisons else NA_PREFIX}"
            f"{name}", "value": float(bool(ok and comparisons))}


def eps_key(attack: str, eps: float) -> float:
    """A row's epsilon as the checks compare it: /255 units (3 decimals) for L-infinity, the L2 radius (6)."""
    return grid_key(attack_norm(attack), eps)


def _adversarial_method(exp) -> bool:
    from robustbench_mix.methods import METHODS

    return exp.method in METHODS and bool(getattr(METHODS.get(exp.method), "adversarial", False))


def check_rows(rows: list[dict], exp) -> list[dict]:
    acc = defaultdict(dict)  # attack -> eps key -> accuracy
    first = defaultdict(dict)  # attack -> eps key -> accuracy with one restart, evaluated on its own
    size, box = defaultdict(dict), defaultdict(dict)  # the largest perturbation in the attack's norm
    clean = grad = None
    for r in rows:
        e = eps_key(r["attack"], r["eps"])
        if r["metric"] == "acc" and r["attack"] not in ("none", "check") and r["split"] == "test":
            acc[r["attack"]][e] = r["value"]
        elif r["metric"] == "acc_first_restart":
            first[r["attack"]][e] = r["value"]
        elif r["metric"] in ("max_linf_255", "max_l2"):
            size[r["attack"]][e] = r["value"]
        elif r["metric"] == "box_violation":
            box[r["attack"]][e] = r["value"]
        elif r["metric"] == "acc_attacked_subset":
            clean = r["value"]
        elif r["metric"] == "input_grad_abs_mean":
            grad = r["value"]
    out = []
    white = [a for a in exp.attacks if a in acc]
    for a in white:
        curve = acc[a]
        tol = NORM_TRAITS[get_attack(a).norm].ball_tol
        if 0.0 in curve:
            out.append(_verdict(f"eps0_is_clean:{a}", [] if clean is None else [abs(curve[0.0] - clean) <= 1e-9]))
        out.append(_verdict(f"in_ball:{a}", [size[a][e] <= e + tol and box[a][e] == 0 for e in size[a]]))
        es = sorted(curve)
        out.append(_verdict(f"monotone_in_eps:{a}",
                            [curve[j] <= curve[i] + TOL for i, j in zip(es, es[1:], strict=False)]))
        one = ONE_STEP[get_attack(a).norm]
        if get_attack(a).iterative and one in acc:
            out.append(_verdict(f"stronger_than_fgsm:{a}", [curve[e] <= acc[one][e] + TOL for e in curve
                                                             if e in acc[one] and e > 0]))
        bb = acc.get(f"bb:{a}")
        if bb:
            out.append(_verdict(f"blackbox_weaker:{a}", [bb[e] >= curve[e] - TOL for e in bb if e in curve]))
    big = round(exp.check_eps, 3)
    for a in white:
        if big and big in acc[a] and get_attack(a).norm == Norm.LINF:
            out.append(_verdict(f"large_eps_breaks:{a}", [acc[a][big] <= LARGE_EPS_MAX_ACC], row_eps(Norm.LINF, big)))
    if grad is not None:
        out.append(_verdict("input_grad_nonzero", [math.isfinite(grad) and grad > 0]))
    if _adversarial_method(exp):
        out += positive_controls(acc, first, white)
    return out


def positive_controls(acc: dict, first: dict, white: list[str]) -> list[dict]:
    """The checks an adversarially trained model's evaluation must pass (see the module docstring)."""
    out = []
    for norm, (aa, pgd) in AUTOATTACK_VS_PGD.items():
        if aa in acc and pgd in acc:
            out.append(_verdict(f"positive:autoattack_le_pgd:{norm}",
                                [acc[aa][e] <= acc[pgd][e] + TOL for e in acc[aa] if e in acc[pgd] and e > 0]))
    for a in white:
        if first.get(a):
            out.append(_verdict(f"positive:restarts_le_single:{a}",
                                [acc[a][e] <= v + TOL for e, v in first[a].items() if e in acc[a]]))
    return out


def failed_checks(df) -> list[tuple[str, str]]:
    """(run_id, check name) for every failed check row in a runs.csv frame."""
    bad = df[df["metric"].str.startswith(CHECK_PREFIX) & (df["value"] < 0.5)]
    return list(zip(bad["run_id"], bad["metric"].str.removeprefix(CHECK_PREFIX), strict=True))


def unchecked(df) -> list[tuple[str, str, str]]:
    """(run_id, check name, why) for every check that had nothing to compare (check_na rows)."""
    na = df[df["metric"].str.startswith(NA_PREFIX)]
    return [(rid, m.removeprefix(NA_PREFIX), CHECKS.get(check_kind(m)).nothing if check_kind(m) in CHECKS
             else "nothing to compare") for rid, m in zip(na["run_id"], na["metric"], strict=True)]
