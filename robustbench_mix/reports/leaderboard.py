"""``python -m robustbench_mix.leaderboard RESULTS [--run ID | --model NAME] [--eps 8/255 | --eps-l2 0.5]``: one
run's result as a model-info JSON entry that RobustBench's own code reads.

The fields are those of RobustBench's ``model_info/<dataset>/<threat model>/<name>.json`` files, every one they
all carry included (``link``, ``name``, ``authors``, ``additional_data``, ``number_forward_passes``, ``dataset``,
``venue``, ``architecture``, ``eps`` as "8/255" or an L2 radius as "0.5", ``clean_acc``, ``reported``,
``autoattack_acc``, ``corruptions_acc``, ``footnote``; accuracies as text in % with two decimals; what the suite
does not know, such as the paper's link, authors and venue, is "" as in their files, and ``reported`` is "": no
paper reported it), plus ``threat_model`` (their folder: "Linf" or "L2") and ``n_examples`` (the test images
attacked). ``dataset`` is one of RobustBench's names (cifar10, cifar100, imagenet): a run on another data set is
refused, and an image folder only becomes ``cifar10`` when ``--dataset`` states that it holds CIFAR-10's test set
(said in the footnote). ``autoattack_acc`` appears only when AutoAttack was run; otherwise the robust accuracy is
``external`` (the field their sort falls back to: ``("external", "autoattack_acc")``, read with ``float``) and
``robust_acc``, with the attacks named in ``robust_attack`` and the footnote saying it is not AutoAttack's. What
differs from RobustBench's protocol (a subset of the test set, computed corruptions rather than CIFAR-10-C) is said
in ``footnote``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from robustbench_mix.attacks.base import NORM_TRAITS, attack_norm
from robustbench_mix.core.errors import UsageError
from robustbench_mix.core.units import LEVELS, Norm, fmt_eps
from robustbench_mix.data.base import short_name, test_size
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


ROBUSTBENCH_DATASETS = ("cifar10", "cifar100", "imagenet")  # their BenchmarkDataset values
STATABLE = ("imagefolder", "tensors")  # data whose name says nothing of what it holds: --dataset may state it


def benchmark_dataset(spec: str, stated: str | None) -> tuple[str, str]:
    """(RobustBench's name of the run's data set, a footnote when it was stated rather than known)."""
    name = spec.partition(":")[0]
    own = name.removesuffix("c") if name in ("cifar10c", "cifar100c") else name  # CIFAR-10-C: CIFAR-10's models
    if stated is not None and stated not in ROBUSTBENCH_DATASETS:
        raise UsageError(f"--dataset {stated!r} is not one of RobustBench's data sets: "
                         f"{', '.join(ROBUSTBENCH_DATASETS)}")
    if own in ROBUSTBENCH_DATASETS:
        if stated not in (None, own):
            raise UsageError(f"--dataset {stated}: the run was evaluated on {own}")
        return own, ""
    short = short_name(spec)
    if name in STATABLE and stated:
        return stated, (f"evaluated on {short}, which the exporter stated holds {stated}'s test set (--dataset "
                        f"{stated}); not RobustBench's own copy of it")
    how = (f"if {short} holds the test set of one of them, say which with --dataset NAME"
           if name in STATABLE else "their leaderboards hold only those")
    raise UsageError(f"the run's data set {short} is not one of RobustBench's ({', '.join(ROBUSTBENCH_DATASETS)}): "
                     f"{how}")


def entry(df: pd.DataFrame, run_id: str | None = None, model: str | None = None, eps: float = 8.0,
          name: str | None = None, eps_l2: float | None = None, dataset: str | None = None) -> dict:
    """The RobustBench entry of one run at ``eps`` (/255), or at the L2 radius ``eps_l2`` (threat model L2): see the
    module's docstring for the fields."""
    rows = pick_run(df, run_id, model)
    exp = Experiment.from_json(rows["config"].iloc[0])
    d = last_epoch(rows)
    test = d[d["split"] == "test"]
    if not (test["metric"] == "acc").any():  # e.g. only diagnostic rows, or none at the run's last epoch
        raise UsageError(f"run {exp.run_id} has no final evaluation in these results: none of its {len(rows)} rows "
                         f"is a test accuracy at epoch {exp.epochs}, its last (an entry is the trained model's final "
                         "accuracy); give the runs.csv the suite wrote for it")
    linf = [a for a in exp.attacks if attack_norm(a) == Norm.LINF]
    l2 = [a for a in exp.attacks if attack_norm(a) == Norm.L2]
    if eps_l2 is None and l2 and not linf and len(exp.eps_l2) == 1:  # an L2-only run: its one radius
        eps_l2 = exp.eps_l2[0]
    norm = Norm.L2 if eps_l2 is not None else Norm.LINF
    attacks = l2 if norm == Norm.L2 else linf  # an entry is one threat model
    at = eps_l2 if norm == Norm.L2 else eps
    shown = f"{at:g}" if norm == Norm.L2 else fmt_eps(round(eps, 3))
    where, stated_note = benchmark_dataset(exp.dataset, dataset)

    def value(attack: str, metric: str = "acc", at: float = 0.0) -> float | None:
        scale = 1 if attack_norm(attack) == Norm.L2 else LEVELS
        v = test[(test["attack"] == attack) & (test["metric"] == metric)
                 & np.isclose(test["eps"] * scale, at, atol=1e-3 if scale == LEVELS else 2e-6)]["value"]
        return float(v.iloc[0]) if len(v) else None

    trained = run_label(exp.method, exp.alpha, exp.dropout, exp.method_options)
    out = {"link": "", "name": name or f"{exp.model} ({trained}, seed {exp.seed})", "authors": "",
           "additional_data": False, "number_forward_passes": 1, "dataset": where, "venue": "",
           "architecture": exp.model, "eps": shown, "threat_model": str(norm)}
    notes = [stated_note] if stated_note else []
    clean = value("none")
    if clean is not None:
        out["clean_acc"] = _pct(clean)
    out["reported"] = ""  # no paper reported this model's robust accuracy
    if attacks:
        radii = exp.eps_l2 if norm == Norm.L2 else exp.eps
        if not any(np.isclose(e, at, atol=1e-3 if norm == Norm.LINF else 2e-6) for e in radii):
            raise UsageError(f"{'L2 radius' if norm == Norm.L2 else 'eps'} {shown} was not measured in run "
                             f"{exp.run_id}; its {'L2 radii' if norm == Norm.L2 else 'epsilons'}: "
                             f"{', '.join(f'{e:g}' if norm == Norm.L2 else fmt_eps(e) for e in radii)}")
        aa = value("autoattack_l2" if norm == Norm.L2 else "autoattack", at=at)
        if aa is not None:
            out["autoattack_acc"] = _pct(aa)
        else:
            worst_name = NORM_TRAITS[norm].worst
            worst = value(worst_name, at=at)
            robust = worst if worst is not None else value(attacks[0], at=at)
            if robust is None:
                raise UsageError(f"run {exp.run_id} has no final test accuracy under {attacks[0]} at eps "
                                 f"{shown} in these results (its config lists the attack); give the runs.csv "
                                 "the suite wrote for it")
            out["external"] = out["robust_acc"] = _pct(robust)
            steps = f"{exp.attack_steps} steps, {exp.attack_restarts} restart(s)"
            out["robust_attack"] = ("per-example worst case over " if worst is not None else "") + ", ".join(
                f"{a} ({steps})" if a in ("ifgsm", "pgd", "pgd_margin", "pgd_l2") else a for a in attacks
            ) + " (white-box)"
            notes.append(f"robust accuracy (external, robust_acc) under {out['robust_attack']}, not AutoAttack: an "
                         "upper bound on AutoAttack's")
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
    if not attacks and "corruptions_acc" in out:
        out["threat_model"] = "corruptions"  # their folder for corruption entries, sorted by corruptions_acc
    elif not attacks:
        raise UsageError(f"run {exp.run_id} ran no {norm} attack (its attacks: {', '.join(exp.attacks) or 'none'}) "
                         "and no corruptions: an entry needs a robust accuracy"
                         + ("; give --eps-l2 for its L2 attacks" if l2 and norm == Norm.LINF else ""))
    if exp.method != "external":
        notes.append(f"trained by robustbench_mix: {trained}, "
                     f"{exp.epochs} epochs, seed {exp.seed}")
    out["footnote"] = "; ".join(notes)
    out["run_id"] = exp.run_id
    return out
