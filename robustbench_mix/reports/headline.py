"""The short version of a model's rows, as RobustBench reports one (clean accuracy, robust accuracy): clean
accuracy, worst-case robust accuracy per epsilon, mean corruption accuracy, over how many images each; and the
filters that keep accuracies apart from the diagnostics (the attacks' and the sanity checks' own numbers)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from robustbench_mix.attacks.base import WORST, attack_norm
from robustbench_mix.core.units import Norm, eps_255_column, fmt_eps, fraction
from robustbench_mix.corruptions.base import STANDARD_CORRUPTIONS
from robustbench_mix.data.base import short_name
from robustbench_mix.evaluation.metrics import CHECK_PREFIX, NA_PREFIX
from robustbench_mix.store.load import load_results
from robustbench_mix.store.schema import CORRUPTION_PREFIXES, adversarial
from robustbench_mix.store.summary import last_epoch

ACCURACY_METRICS = ("acc", "top5_acc")
CORRUPTION_TITLES = {"corrupt:mean": "corruptions (computed)", "c10c:mean": "CIFAR-10-C",
                     "c100c:mean": "CIFAR-100-C"}
# what tells whether the accuracies can be trusted, not how accurate the model is
DIAGNOSTIC_METRICS = ("max_linf_255", "max_l2", "acc_first_restart", "box_violation", "input_grad_abs_mean",
                      "acc_attacked_subset")


def _rows(rows) -> pd.DataFrame:
    return load_results(rows) if isinstance(rows, str | Path) else rows


def accuracies(rows) -> pd.DataFrame:
    """The accuracy rows (``acc``, ``top5_acc``): clean, under each attack and epsilon, the per-example worst
    case and each corruption; not the sanity checks."""
    rows = _rows(rows)
    return rows[rows["metric"].isin(ACCURACY_METRICS) & (rows["attack"] != "check")]


def diagnostics(rows) -> pd.DataFrame:
    """The rows that say whether the accuracies can be trusted: the sanity checks (attack ``check``, metric
    ``check:NAME``, 1 passed; ``check_na:NAME`` where it had nothing to compare), the largest perturbation and
    box violation each attack made, the input-gradient size and the clean accuracy of the attacked subset."""
    rows = _rows(rows)
    return rows[rows["metric"].isin(DIAGNOSTIC_METRICS) | (rows["attack"] == "check")]


class Headline(pd.DataFrame):
    """A DataFrame, one row per run, that prints its accuracies as percentages."""

    @property
    def _constructor(self):
        return Headline

    def __str__(self) -> str:
        shown = self.copy()
        for c in shown.columns:
            if c == "clean" or c.startswith(("robust ", "corrupt:", "c10c:", "c100c:", "clean on")):
                shown[c] = shown[c].map(lambda v: "" if pd.isna(v) else f"{100 * v:.2f}%")
        # the columns keep their row names (corrupt:mean) for code; a reader gets what they mean
        return pd.DataFrame(shown).rename(columns=CORRUPTION_TITLES).to_string(index=False)

    __repr__ = __str__


def _eps_255(rows: pd.DataFrame) -> pd.Series:
    return rows["eps_255"] if "eps_255" in rows else eps_255_column(rows["eps"])


def _count(rows: pd.DataFrame):
    """The number of images ``rows``' numbers are over, from the ``n_eval`` column when there is one."""
    if "n_eval" in rows and rows["n_eval"].notna().any():
        return int(rows["n_eval"].max())
    return None


def _asked(run: pd.DataFrame, norm: str = Norm.LINF):
    """Whether a row's epsilon is one the run asked for (not 0, not the gradient-masking check's large one); for
    L2 rows, one of the run's L2 radii (``eps_l2``)."""
    config = json.loads(run["config"].iloc[0]) if "config" in run else {}
    if norm == Norm.L2:
        radii = [e for e in config.get("eps_l2", ()) if e > 0]
        return lambda e: any(abs(e - v) < 2e-6 for v in radii)
    if "eps" not in config:
        checked = set(run[(run["attack"] == "check") & (run["eps"] > 0)]["eps"])
        return lambda e: e > 0 and e not in checked
    # the config's epsilons are /255 units or fractions of the pixel range; rows hold fractions (6 decimals)
    asked = [v for e in config["eps"] if e > 0 for v in (fraction(e), e)]
    return lambda e: any(abs(e - v) < 2e-6 for v in asked)


def _run(run: pd.DataFrame) -> dict:
    acc = run[(run["metric"] == "acc") & (run["split"] == "test")]
    clean = acc[acc["attack"] == "none"]
    out = {"model": run["model"].iloc[0], "method": run["method"].iloc[0],
           "dataset": short_name(run["dataset"].iloc[0]),  # imagefolder:<folder name>, never a local path
           "clean": clean["value"].iloc[0] if len(clean) else float("nan")}
    if _count(clean) is not None:
        out["images"] = _count(clean)
    white = acc[adversarial(acc) & ~acc["attack"].str.startswith("bb:")]
    norms = white["attack"].map(attack_norm)
    linf = white[(norms == Norm.LINF) & white["eps"].map(_asked(run))]
    l2 = white[(norms == Norm.L2) & white["eps"].map(_asked(run, Norm.L2))]
    attacked = pd.concat([linf, l2])
    if len(linf):
        linf = linf.assign(eps_255=_eps_255(linf))
        worst = linf[linf["attack"] == "worst"]
        for e, g in linf.groupby("eps_255", sort=True):  # the worst case where several attacks ran, else the min
            w = worst[worst["eps_255"] == e]
            out[f"robust {fmt_eps(e)}"] = (w if len(w) else g)["value"].min()
    if len(l2):  # an L2 radius is a threat model of its own: never in the same column as an L-infinity epsilon
        worst = l2[l2["attack"] == "worst_l2"]
        for e, g in l2.groupby("eps", sort=True):
            w = worst[worst["eps"] == e]
            out[f"robust L2={e:g}"] = (w if len(w) else g)["value"].min()
    if len(attacked):
        out["attacks"] = ", ".join(sorted(set(attacked["attack"]) - set(WORST)))
        n = _count(attacked)
        if n is None:  # before the n_eval column: the run's attack_samples (0: the whole test set)
            n = json.loads(run["config"].iloc[0]).get("attack_samples") if "config" in run else None
            n = {0: "all", None: "unknown"}.get(n, n)
        subsets = set(attacked["eval_subset"]) if "eval_subset" in attacked else set()
        stratified = [x for x in subsets if str(x).startswith("stratified:")]
        # a subset says which: class-stratified, and its fingerprint (the same images for every run on the data)
        out["attacked"] = f"{n} stratified ({stratified[0].removeprefix('stratified:')})" if stratified else n
        subset = run[run["metric"] == "acc_attacked_subset"]
        if len(subset) and n != "all" and n != out.get("images"):
            out["clean on attacked"] = subset["value"].iloc[0]
    for prefix in CORRUPTION_PREFIXES:
        m = acc[acc["attack"] == f"{prefix}mean"]
        if len(m):
            out[f"{prefix}mean"] = m["value"].iloc[0]
            # the mean is over the benchmark corruptions that ran, which may be a few of them
            parts = acc[acc["attack"].str.startswith(prefix) & (acc["attack"].str.count(":") == 2)]
            ran = {a.split(":")[1] for a in parts["attack"]} & set(STANDARD_CORRUPTIONS)
            out[f"{CORRUPTION_TITLES[f'{prefix}mean']}: mean over"] = (
                f"{len(ran)} of {len(STANDARD_CORRUPTIONS)}" if ran else "not recorded")
    checks, na = run[run["metric"].str.startswith(CHECK_PREFIX)], int(run["metric"].str.startswith(NA_PREFIX).sum())
    if len(checks) or na:
        out["checks failed"] = f"{int((checks['value'] < 0.5).sum())} of {len(checks)}" + (
            f" ({na} with nothing to compare)" if na else "")
    return out


def headline(rows) -> Headline:
    """One line per run of ``rows`` (what ``evaluate`` returns, a runs.csv or a results directory): clean test
    accuracy; robust accuracy at each epsilon (written 8/255), the per-example worst case over the white-box
    attacks where several ran (``worst`` rows), else the attack's; which attacks and how many images were
    attacked (``all``: the whole test set); the mean corruption accuracy (``corrupt:mean`` computed,
    ``c10c:mean`` CIFAR-10-C's files, printed as "corruptions (computed)" and "CIFAR-10-C") and over how many of
    the 15 benchmark corruptions it is ("3 of 15"); the data set by its short name (an image folder by its folder's
    name, not its path); and how many sanity checks failed (a failed check flags the robust
    numbers, see ``diagnostics``). Accuracies are fractions; printing shows percentages."""
    rows = last_epoch(_rows(rows))
    if rows.empty:
        return Headline(columns=["model", "method", "dataset", "clean"])
    return Headline([_run(g) for _, g in rows.groupby("run_id", sort=False)])
