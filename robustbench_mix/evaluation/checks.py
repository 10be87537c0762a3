"""Sanity checks that run with every robustness evaluation and are written next to the numbers.

They are the usual signs of gradient masking or a broken attack (Carlini et al., 2019, "On evaluating
adversarial robustness"). Each check is a row with ``attack='check'``, ``metric='check:<name>[:<attack>]'``
and value 1 (passed) or 0 (failed); the summary counts failures and the CLI prints a warning.

They hold per norm (each attack's ``norm`` trait): ``in_ball:<attack>`` (the largest perturbation within eps:
L-infinity in /255 units, L2 ``max_l2 <= eps + 1e-4``; no value outside [0, 1]), ``eps0_is_clean``,
``monotone_in_eps`` and ``blackbox_weaker`` per attack, ``stronger_than_fgsm:<attack>`` against the one-step
attack of the attack's own norm (fgsm for L-infinity, fgm_l2 for L2), ``large_eps_breaks`` (L-infinity only).

Positive controls, only for runs of an adversarially trained method (``Method.adversarial``), where a weak
attack would flatter the model most: ``positive:autoattack_le_pgd:<norm>`` (AutoAttack's accuracy at most
PGD's + TOL at every common epsilon, when both ran), ``positive:restarts_le_single:<attack>`` (accuracy over
all restarts at most that of the first restart alone, with ``--attack-restarts`` > 1) and
``positive:blackbox_weaker:<attack>`` (black-box accuracy at least white-box - TOL).
"""

from __future__ import annotations

import math
from collections import defaultdict

from robustbench_mix.attacks.base import NORM_TRAITS, ONE_STEP, attack_norm, get_attack
from robustbench_mix.core.units import Norm, grid_key, row_eps

TOL = 0.01  # accuracy tolerance (1 percentage point) for comparisons between attacks and epsilons
LARGE_EPS_MAX_ACC = 0.10  # "near zero" at check_eps
# the AutoAttack and PGD of each norm that the positive control compares
AUTOATTACK_VS_PGD = {norm: t.autoattack_vs_pgd for norm, t in NORM_TRAITS.items()}


def _check(name: str, ok: bool, eps: float = 0.0) -> dict:
    return {"split": "test", "attack": "check", "eps": eps, "metric": f"check:{name}", "value": float(bool(ok))}


def eps_key(attack: str, eps: float) -> float:
    """A row's epsilon as the checks compare it: /255 units (3 decimals) for L-infinity, the L2 radius (6)."""
    return grid_key(attack_norm(attack), eps)


def _adversarial_method(exp) -> bool:
    from robustbench_mix.methods import METHODS

    return exp.method in METHODS and bool(getattr(METHODS.get(exp.method), "adversarial", False))


def check_rows(rows: list[dict], exp) -> list[dict]:
    acc = defaultdict(dict)  # attack -> eps key -> accuracy
    first = defaultdict(dict)  # attack -> eps key -> accuracy after the first restart
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
        if 0.0 in curve and clean is not None:
            out.append(_check(f"eps0_is_clean:{a}", abs(curve[0.0] - clean) <= 1e-9))
        out.append(_check(f"in_ball:{a}", all(size[a][e] <= e + tol and box[a][e] == 0 for e in size[a])))
        es = sorted(curve)
        pairs = zip(es, es[1:], strict=False)
        out.append(_check(f"monotone_in_eps:{a}", all(curve[j] <= curve[i] + TOL for i, j in pairs)))
        one = ONE_STEP[get_attack(a).norm]
        if get_attack(a).iterative and one in acc:
            common = [e for e in curve if e in acc[one] and e > 0]
            out.append(_check(f"stronger_than_fgsm:{a}", all(curve[e] <= acc[one][e] + TOL for e in common)))
        bb = acc.get(f"bb:{a}")
        if bb:
            out.append(_check(f"blackbox_weaker:{a}", all(bb[e] >= curve[e] - TOL for e in bb if e in curve)))
    big = round(exp.check_eps, 3)
    for a in white:
        if big and big in acc[a] and get_attack(a).norm == Norm.LINF:
            out.append(_check(f"large_eps_breaks:{a}", acc[a][big] <= LARGE_EPS_MAX_ACC, row_eps(Norm.LINF, big)))
    if grad is not None:
        out.append(_check("input_grad_nonzero", math.isfinite(grad) and grad > 0))
    if _adversarial_method(exp):
        out += positive_controls(acc, first, white)
    return out


def positive_controls(acc: dict, first: dict, white: list[str]) -> list[dict]:
    """The checks an adversarially trained model's evaluation must pass (see the module docstring)."""
    out = []
    for norm, (aa, pgd) in AUTOATTACK_VS_PGD.items():
        if aa in acc and pgd in acc:
            common = [e for e in acc[aa] if e in acc[pgd] and e > 0]
            out.append(_check(f"positive:autoattack_le_pgd:{norm}",
                              all(acc[aa][e] <= acc[pgd][e] + TOL for e in common)))
    for a in white:
        if first.get(a):
            out.append(_check(f"positive:restarts_le_single:{a}",
                              all(acc[a][e] <= v + 1e-9 for e, v in first[a].items() if e in acc[a])))
        bb = acc.get(f"bb:{a}")
        if bb:
            out.append(_check(f"positive:blackbox_weaker:{a}",
                              all(bb[e] >= acc[a][e] - TOL for e in bb if e in acc[a])))
    return out


def failed_checks(df) -> list[tuple[str, str]]:
    """(run_id, check name) for every failed check row in a runs.csv frame."""
    bad = df[(df["attack"] == "check") & (df["value"] < 0.5)]
    return list(zip(bad["run_id"], bad["metric"].str.removeprefix("check:"), strict=True))
