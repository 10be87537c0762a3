"""``python -m robustbench_mix.leaderboard RESULTS [--run ID | --model NAME] [--eps 8/255]``: one run's result as a
RobustBench-style model-info JSON entry.

The fields are those of RobustBench's ``model_info/<dataset>/<threat model>/<name>.json`` files (``name``,
``dataset``, ``architecture``, ``eps`` as "8/255", ``clean_acc``, ``autoattack_acc``, ``corruptions_acc``,
``additional_data``, ``number_forward_passes``, ``footnote``; accuracies as text in % with two decimals), plus
``threat_model`` (their folder: "Linf", as every attack here is L-infinity) and ``n_examples`` (the test images
attacked). ``autoattack_acc`` appears only when AutoAttack was run; otherwise the robust accuracy is
``robust_acc`` with the attacks named in ``robust_attack``, never passed off as AutoAttack's. What differs from
RobustBench's protocol (a subset of the test set, computed corruptions rather than CIFAR-10-C) is said in
``footnote``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from robustbench_mix.attacks.base import attack_norm
from robustbench_mix.core.errors import UsageError
from robustbench_mix.core.units import LEVELS, Norm, fmt_eps
from robustbench_mix.data.base import test_size
from robustbench_mix.experiment.experiment import Experiment
from robustbench_mix.experiment.grids import SURROGATE_SUFFIX
from robustbench_mix.methods import run_label
from robustbench_mix.store.summary import last_epoch


def _pct(v: float) -> str:
    return f"{100 * v:.2f}"


def pick_run(df: pd.DataFrame, run_id: str | None = None, model: str | None = None) -> pd.DataFrame:
    """The rows of the one run chosen by id or model name (or the only run there is); else a usage error
    listing the candidates."""
    d = df[~df["preset"].str.endswith(SURROGATE_SUFFIX)]
    if run_id:
        d = d[d["run_id"] == run_id]
    if model:
        d = d[d["model"] == model]
    ids = list(dict.fromkeys(d["run_id"]))
    if len(ids) == 1:
        return d
    runs = df.drop_duplicates("run_id")
    listed = "; ".join(f"{r.run_id} ({r.model}, {run_label(r.method, r.alpha, r.dropout)}, seed {r.seed})"
                       for r in runs.itertuples())
    what = " and ".join(f"{k} {v!r}" for k, v in (("run", run_id), ("model", model)) if v) or "these results"
    raise UsageError(f"{what} {'matches no run' if not ids else f'matches {len(ids)} runs'}; choose one with --run "
                     f"(or --model where a model has one run): {listed}")


def entry(df: pd.DataFrame, run_id: str | None = None, model: str | None = None, eps: float = 8.0,
          name: str | None = None) -> dict:
    """The RobustBench-style entry of one run at ``eps`` (/255): see the module's docstring for the fields."""
    rows = pick_run(df, run_id, model)
    exp = Experiment.from_json(rows["config"].iloc[0])
    d = last_epoch(rows)
    test = d[d["split"] == "test"]
    if not (test["metric"] == "acc").any():  # e.g. only diagnostic rows, or none at the run's last epoch
        raise UsageError(f"run {exp.run_id} has no final evaluation in these results: none of its {len(rows)} rows "
                         f"is a test accuracy at epoch {exp.epochs}, its last (an entry is the trained model's final "
                         "accuracy); give the runs.csv the suite wrote for it")

    def value(attack: str, metric: str = "acc", at: float = 0.0) -> float | None:
        v = test[(test["attack"] == attack) & (test["metric"] == metric) & np.isclose(test["eps"] * LEVELS, at,
                                                                                      atol=1e-3)]["value"]
        return float(v.iloc[0]) if len(v) else None

    trained = run_label(exp.method, exp.alpha, exp.dropout, exp.method_options)
    out = {"name": name or f"{exp.model} ({trained}, seed {exp.seed})",
           "dataset": exp.dataset, "threat_model": str(Norm.LINF), "eps": fmt_eps(round(eps, 3)),
           "architecture": exp.model, "additional_data": False, "number_forward_passes": 1}
    notes = []
    clean = value("none")
    if clean is not None:
        out["clean_acc"] = _pct(clean)
    attacks = [a for a in exp.attacks if attack_norm(a) == Norm.LINF]  # an entry is one threat model: L-infinity
    if attacks:
        if not any(np.isclose(e, eps, atol=1e-3) for e in exp.eps):
            raise UsageError(f"eps {fmt_eps(eps)} was not measured in run {exp.run_id}; its epsilons: "
                             f"{', '.join(fmt_eps(e) for e in exp.eps)}")
        aa = value("autoattack", at=eps)
        if aa is not None:
            out["autoattack_acc"] = _pct(aa)
        else:
            worst = value("worst", at=eps)
            robust = worst if worst is not None else value(attacks[0], at=eps)
            if robust is None:
                raise UsageError(f"run {exp.run_id} has no final test accuracy under {attacks[0]} at eps "
                                 f"{fmt_eps(eps)} in these results (its config lists the attack); give the runs.csv "
                                 "the suite wrote for it")
            out["robust_acc"] = _pct(robust)
            steps = f"{exp.attack_steps} steps, {exp.attack_restarts} restart(s)"
            out["robust_attack"] = ("per-example worst case over " if worst is not None else "") + ", ".join(
                f"{a} ({steps})" if a in ("ifgsm", "pgd", "pgd_margin") else a for a in attacks) + " (white-box)"
            notes.append(f"robust accuracy under {out['robust_attack']}, not AutoAttack: an upper bound on "
                         "AutoAttack's")
        attacked = test[test["attack"].isin(attacks) & test["n_eval"].notna()]
        if len(attacked):  # recorded with the rows since 0.4.0
            n, subset = int(attacked["n_eval"].iloc[0]), attacked["eval_subset"].iloc[0]
        else:
            n, subset = exp.attack_samples or test_size(exp.dataset), ""
        out["n_examples"] = n
        if subset.startswith("stratified:"):
            notes.append(f"attacks on a class-stratified {n} of the test images (subset "
                         f"{subset.removeprefix('stratified:')}); clean accuracy on the whole test set")
        elif exp.attack_samples and not subset:
            notes.append(f"attacks on the first {exp.attack_samples} test images (the rule before 0.4.0); clean "
                         "accuracy on the whole test set")
        elif n is None:
            notes.append("attacks on every test image (their number is not recorded in runs.csv)")
    standard = value("c10c:mean") if value("c10c:mean") is not None else value("c100c:mean")
    computed = value("corrupt:mean")
    if standard is not None:
        out["corruptions_acc"] = _pct(standard)
        notes.append("corruptions_acc: mean over the standard CIFAR-10-C / CIFAR-100-C files, severities 1-5")
    elif computed is not None:
        out["corruptions_acc"] = _pct(computed)
        notes.append(f"corruptions_acc: mean over {len(exp.corruptions)} corruptions computed by robustbench_mix "
                     "at severities 1-5 (CIFAR-10-C's recipe), not the CIFAR-10-C files")
    if exp.method != "external":
        notes.append(f"trained by robustbench_mix: {trained}, "
                     f"{exp.epochs} epochs, seed {exp.seed}")
    out["footnote"] = "; ".join(notes)
    out["run_id"] = exp.run_id
    return out
