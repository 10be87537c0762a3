"""Sanity checks that run with every robustness evaluation and are written next to the numbers.

They are the usual signs of gradient masking or a broken attack (Carlini et al., 2019, "On evaluating
adversarial robustness"). Each check is a row with ``attack='check'``, ``metric='check:<name>[:<attack>]'``
and value 1 (passed) or 0 (failed); the summary counts failures and the CLI prints a warning.
"""

from __future__ import annotations

import math
from collections import defaultdict

from .attacks import get_attack

TOL = 0.01  # accuracy tolerance (1 percentage point) for comparisons between attacks and epsilons
LARGE_EPS_MAX_ACC = 0.10  # "near zero" at check_eps


def _check(name: str, ok: bool, eps: float = 0.0) -> dict:
    return {"split": "test", "attack": "check", "eps": eps, "metric": f"check:{name}", "value": float(bool(ok))}


def check_rows(rows: list[dict], exp) -> list[dict]:
    acc = defaultdict(dict)  # attack -> eps255 -> accuracy
    linf, box = defaultdict(dict), defaultdict(dict)
    clean = grad = None
    for r in rows:
        e = round(r["eps"] * 255, 3)
        if r["metric"] == "acc" and r["attack"] not in ("none", "check") and r["split"] == "test":
            acc[r["attack"]][e] = r["value"]
        elif r["metric"] == "max_linf_255":
            linf[r["attack"]][e] = r["value"]
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
        if 0.0 in curve and clean is not None:
            out.append(_check(f"eps0_is_clean:{a}", abs(curve[0.0] - clean) <= 1e-9))
        out.append(_check(f"in_ball:{a}", all(linf[a][e] <= e + 1e-3 and box[a][e] == 0 for e in linf[a])))
        es = sorted(curve)
        pairs = zip(es, es[1:], strict=False)
        out.append(_check(f"monotone_in_eps:{a}", all(curve[j] <= curve[i] + TOL for i, j in pairs)))
        if get_attack(a).iterative and "fgsm" in acc:
            common = [e for e in curve if e in acc["fgsm"] and e > 0]
            out.append(_check(f"stronger_than_fgsm:{a}", all(curve[e] <= acc["fgsm"][e] + TOL for e in common)))
        bb = acc.get(f"bb:{a}")
        if bb:
            out.append(_check(f"blackbox_weaker:{a}", all(bb[e] >= curve[e] - TOL for e in bb if e in curve)))
    big = round(exp.check_eps, 3)
    for a in white:
        if big and big in acc[a]:
            out.append(_check(f"large_eps_breaks:{a}", acc[a][big] <= LARGE_EPS_MAX_ACC, round(big / 255, 6)))
    if grad is not None:
        out.append(_check("input_grad_nonzero", math.isfinite(grad) and grad > 0))
    return out


def failed_checks(df) -> list[tuple[str, str]]:
    """(run_id, check name) for every failed check row in a runs.csv frame."""
    bad = df[(df["attack"] == "check") & (df["value"] < 0.5)]
    return list(zip(bad["run_id"], bad["metric"].str.removeprefix("check:"), strict=True))
