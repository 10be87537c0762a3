"""``python -m robustbench_mix.compare A [B ...] [--by FIELD[,FIELD]]``: is one side more robust than another?

Runs are pooled from the files or directories given and split into sides by ``--by``: the input they came from
(the default, with two or more inputs), or any configuration field (``--by model`` compares two of your own
models, ``--by method`` ERM against mixup, ``--by model,method`` your model against a suite-trained ERM). Sides
keep the order of the command line (within one input, sorted); each side is compared with the first.

Runs are aligned by configuration, never by row order. A field that varies within a side (noise, say) aligns
the runs; one that is constant on each side but differs between them is part of what is compared and listed
(``--strict`` aligns on it instead); every other field is the same. Per configuration and headline metric at the
final epoch: both means ± std over seeds in % (NLL as is), the difference in points and, where both sides have
two or more seeds, a Welch 95% interval of it (one run a side: the difference alone, said). When nothing
matches, the fields that differ are named.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field, fields

import numpy as np
import pandas as pd
from scipy import stats

from robustbench_mix.core.errors import UsageError
from robustbench_mix.core.parsing import exact_text
from robustbench_mix.core.registry import unknown
from robustbench_mix.evaluation.metrics import percent_scale
from robustbench_mix.experiment.experiment import Experiment
from robustbench_mix.experiment.grids import SURROGATE_SUFFIX
from robustbench_mix.methods import run_label
from robustbench_mix.store.summary import NOT_CONFIG, headline_rows, last_epoch

INPUT = "input"  # the pseudo-field of the file or directory a run came from: the default --by
FIELDS = [f.name for f in fields(Experiment) if f.name not in ("seed", "device")]


def no_spread(v: np.ndarray) -> bool:
    """Equal up to the CSV's 6 significant digits: a t interval would only divide rounding noise."""
    return bool(np.ptp(v) <= 1e-5 * max(1.0, float(np.abs(v).max())))


def welch_ci(a: np.ndarray, b: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """Confidence interval of mean(b) - mean(a) without assuming equal variances (Welch's t), by
    ``scipy.stats``; two sides without any spread give the difference itself."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if no_spread(a) and no_spread(b):
        d = float(b.mean() - a.mean())
        return d, d
    with warnings.catch_warnings():
        # scipy warns of precision loss for a side whose values are all equal (one side may well be, e.g.
        # 100% memorized on every seed); its variance is still exactly 0 and the interval right
        warnings.filterwarnings("ignore", "Precision loss", RuntimeWarning)
        ci = stats.ttest_ind(b, a, equal_var=False).confidence_interval(level)
    return float(ci.low), float(ci.high)


def paired_ci(a: np.ndarray, b: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """Confidence interval of mean(b - a) for values measured in pairs (two quantities of the same runs)."""
    d = np.asarray(b, dtype=float) - np.asarray(a, dtype=float)
    if no_spread(d):
        return float(d.mean()), float(d.mean())
    ci = stats.ttest_1samp(d, 0.0).confidence_interval(level)
    return float(ci.low), float(ci.high)


def scale(metric: str) -> float:
    """100 for a metric that is a fraction (accuracy, ECE, memorized), 1 for NLL and losses."""
    return percent_scale(metric)


def _text(v) -> str:
    """A field's value as text that tells every two values apart (:func:`core.parsing.exact_text`: runs at eps
    0.1 and 0.1000001 were pooled as seeds of one configuration when floats were compared at 6 digits)."""
    if isinstance(v, tuple):
        return ",".join(_text(x) for x in v) or "()"
    if isinstance(v, float):
        return exact_text(v)
    return "none" if v is None else str(v)


# ------------------------------------------------------------------------------------------- the runs
def runs_of(frames: list[pd.DataFrame], names: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(one row per run: its input and every config field as text; the headline values per run and metric).

    Black-box surrogates are auxiliary runs and are left out.
    """
    recs, values = {}, []
    for name, df in zip(names, frames, strict=True):
        df = df[~df["preset"].str.endswith(SURROGATE_SUFFIX)]
        for rid, text in df.drop_duplicates("run_id")[["run_id", "config"]].itertuples(index=False):
            d = Experiment.from_json(text).to_dict()
            recs[(name, rid)] = {INPUT: name, "run_id": rid, "seed": d["seed"],
                                 **{f: _text(d[f]) for f in FIELDS}}
        m = headline_rows(last_epoch(df))
        values.append(m.assign(**{INPUT: name})[[INPUT, "run_id", "name", "value"]])
    runs = pd.DataFrame(list(recs.values()), columns=[INPUT, "run_id", "seed", *FIELDS])
    vals = pd.concat(values, ignore_index=True) if values else pd.DataFrame(columns=[INPUT, "run_id", "name", "value"])
    return runs, vals


def check_by(by: tuple[str, ...]) -> None:
    for f in by:
        if f not in (INPUT, *FIELDS):
            raise UsageError("--by: " + unknown("field", f, [INPUT, *FIELDS]))


def sides_of(runs: pd.DataFrame, by: tuple[str, ...], names: list[str]) -> list[tuple[str, ...]]:
    """The distinct values of the ``by`` fields, in command-line order of the inputs (sorted within one)."""
    out: dict[tuple[str, ...], None] = {}
    for name in names:
        mine = runs[runs[INPUT] == name]
        for v in sorted(set(map(tuple, mine[list(by)].to_numpy().tolist()))):
            out.setdefault(v, None)
    return list(out)


def side_label(value: tuple[str, ...]) -> str:
    return ", ".join(value)


# ------------------------------------------------------------------------------------------ comparing
@dataclass
class Comparison:
    """One side against the first: the table (fractions, as in runs.csv) and what was matched or not."""

    by: tuple[str, ...]
    base: str
    other: str
    table: pd.DataFrame
    keys: list[str]  # the fields that align runs (each configuration is one combination of them)
    differs: dict[str, tuple[str, str]] = field(default_factory=dict)  # constant per side, different: listed
    only_base: list[str] = field(default_factory=list)
    only_other: list[str] = field(default_factory=list)
    why_none: str = ""  # when no configuration is on both sides: the fields that differ

    @property
    def diff_name(self) -> str:
        return f"{self.other} − {self.base}"


def _values(g: pd.DataFrame, f: str) -> str:
    return " / ".join(sorted(set(g[f])))


def _describe(run: pd.Series, shown: list[str]) -> str:
    """'mixup (α=1), noise 0.4, eval_every 5': the method as the suite names it, then the other fields shown."""
    parts = []
    if {"method", "alpha", "dropout"} & set(shown):
        parts.append(run_label(run["method"], float(run["alpha"]), float(run["dropout"]),
                               str(run.get("method_options", ""))))
    parts += [f"{f} {run[f]}" for f in shown if f not in ("method", "alpha", "dropout", "method_options")
              and str(run[f]) != ""]  # method options are in the method's label; an empty field says nothing
    return ", ".join(parts) or "all runs"


def align(runs: pd.DataFrame, vals: pd.DataFrame, by: tuple[str, ...], base: tuple, other: tuple,
          strict: bool = False) -> Comparison:
    """Compare side ``other`` with side ``base`` (values of the ``by`` fields), configuration by configuration."""
    ra = runs[(runs[list(by)] == pd.Series(base, index=list(by))).all(axis=1)]
    rb = runs[(runs[list(by)] == pd.Series(other, index=list(by))).all(axis=1)]
    if INPUT not in by:  # one run given twice (a directory and its copy) counts once
        ra, rb = ra.drop_duplicates("run_id"), rb.drop_duplicates("run_id")
    rest = [f for f in FIELDS if f not in by and f not in NOT_CONFIG]  # the preset is a label, not a setting
    keys, differs = [], {}
    for f in rest:
        va, vb = set(ra[f]), set(rb[f])
        if strict or len(va) > 1 or len(vb) > 1:
            keys.append(f)
        elif va != vb:
            differs[f] = (_values(ra, f), _values(rb, f))
    ka = ra.assign(key=list(map(tuple, ra[keys].to_numpy().tolist())))
    kb = rb.assign(key=list(map(tuple, rb[keys].to_numpy().tolist())))
    # a description names the fields that tell the configurations apart (hidden ones too) and the usual ones
    both = pd.concat([ka, kb])
    shown = [f for f in keys if both[f].nunique() > 1]
    first = both.drop_duplicates("key").set_index("key")

    def describe(k: tuple) -> str:
        return _describe(first.loc[[k]].iloc[0], shown)

    va = vals.merge(ka[[INPUT, "run_id", "key"]], on=[INPUT, "run_id"])
    vb = vals.merge(kb[[INPUT, "run_id", "key"]], on=[INPUT, "run_id"])
    if INPUT not in by:
        va, vb = va.drop_duplicates(["run_id", "name"]), vb.drop_duplicates(["run_id", "name"])
    rows = []
    common = sorted(set(ka["key"]) & set(kb["key"]))
    for key in common:
        ga, gb = va[va["key"] == key], vb[vb["key"] == key]
        for name in dict.fromkeys([*ga["name"], *gb["name"]]):
            xa = ga[ga["name"] == name]["value"].to_numpy(dtype=float)
            xb = gb[gb["name"] == name]["value"].to_numpy(dtype=float)
            if not len(xa) or not len(xb):
                continue
            lo, hi = welch_ci(xa, xb) if len(xa) >= 2 and len(xb) >= 2 else (np.nan, np.nan)
            rows.append({"config": describe(key), "metric": name,
                         "base_mean": xa.mean(), "base_std": xa.std(ddof=1) if len(xa) > 1 else np.nan,
                         "base_seeds": len(xa), "other_mean": xb.mean(),
                         "other_std": xb.std(ddof=1) if len(xb) > 1 else np.nan, "other_seeds": len(xb),
                         "diff": xb.mean() - xa.mean(), "ci95_low": lo, "ci95_high": hi,
                         "config_key": json.dumps(dict(zip(keys, key, strict=True)), sort_keys=True)})
    cols = ["config", "metric", "base_mean", "base_std", "base_seeds", "other_mean", "other_std", "other_seeds",
            "diff", "ci95_low", "ci95_high", "config_key"]
    cmp = Comparison(by, side_label(base), side_label(other), pd.DataFrame(rows, columns=cols), keys, differs)
    cmp.only_base = [describe(k) for k in sorted(set(ka["key"]) - set(kb["key"]))]
    cmp.only_other = [describe(k) for k in sorted(set(kb["key"]) - set(ka["key"]))]
    if cmp.table.empty:
        cmp.why_none = _why_none(ka, kb, keys, cmp.base, cmp.other, bool(common), by, strict)
    return cmp


def _why_none(ka: pd.DataFrame, kb: pd.DataFrame, keys: list[str], base: str, other: str, common: bool,
              by: tuple[str, ...], strict: bool) -> str:
    if common:
        return "the configurations on both sides share no headline metric at the final epoch"
    apart = [f for f in keys if not set(ka[f]) & set(kb[f])] or [f for f in keys if set(ka[f]) != set(kb[f])]
    named = "; ".join(f"{f}: {_values(ka, f)} in {base}, {_values(kb, f)} in {other}" for f in apart)
    if strict:
        hint = " Without --strict, a field that is constant on each side is listed as a difference instead of matched."
    else:
        hint = f" To compare across {apart[0]}, add it to the sides: --by {','.join([*by, apart[0]])}." if apart else ""
    return f"no configuration is on both sides; they differ in {named or 'the combination of ' + ', '.join(keys)}." \
           + hint


def compare_sides(frames: list[pd.DataFrame], names: list[str], by: tuple[str, ...] = (INPUT,),
                  strict: bool = False) -> list[Comparison]:
    """Every side against the first, sides split by the ``by`` fields (``input``: the file a run came from)."""
    check_by(by)
    runs, vals = runs_of(frames, names)
    if runs.empty:
        raise UsageError("no runs to compare (the inputs hold only black-box surrogates or nothing)")
    sides = sides_of(runs, by, names)
    if len(sides) < 2:
        what = "input" if by == (INPUT,) else f"--by {','.join(by)}"
        raise UsageError(f"{what}: every run has {', '.join(by)} {side_label(sides[0])}, so there is one side and "
                         f"nothing to compare; give runs that differ in it (fields: {', '.join(FIELDS)})")
    return [align(runs, vals, by, sides[0], s, strict) for s in sides[1:]]


def compare(a: pd.DataFrame, b: pd.DataFrame) -> tuple[pd.DataFrame, list[str], list[str]]:
    """Two results frames, every configuration field matched (the reference check's strict comparison): the
    table with ``a_*`` / ``b_*`` columns (fractions), and the configurations on one side only."""
    (cmp,) = compare_sides([a, b], ["a", "b"], strict=True)
    t = cmp.table.rename(columns=lambda c: c.replace("base_", "a_").replace("other_", "b_"))
    return t, cmp.only_base, cmp.only_other


# --------------------------------------------------------------------------------------------- output
def _signed(x: float) -> str:
    return f"{round(x, 2) + 0.0:+.2f}"  # never '-0.00'


def _cell(mean: float, std: float, n: int, sc: float) -> str:
    return f"{mean * sc:.2f}" + ("" if np.isnan(std) else f" ± {std * sc:.2f}") + f" (n={n})"


def interval_text(r, base: str, other: str) -> str:
    if not np.isnan(r["ci95_low"]):
        sc = scale(r["metric"])
        return f"[{_signed(r['ci95_low'] * sc)}, {_signed(r['ci95_high'] * sc)}]"
    if r["base_seeds"] < 2 and r["other_seeds"] < 2:
        return "one run each: no interval"
    return f"one run of {base if r['base_seeds'] < 2 else other}: no interval"


def to_frame(cmp: Comparison) -> pd.DataFrame:
    """The comparison as the CSV holds it: columns named by the sides, values in % where the metric is a fraction
    (``unit``), the difference in points."""
    t = cmp.table
    sc = t["metric"].map(scale)
    out = pd.DataFrame({"configuration": t["config"], "metric": t["metric"],
                        "unit": np.where(sc == 100, "%", ""),
                        f"{cmp.base} mean": t["base_mean"] * sc, f"{cmp.base} std": t["base_std"] * sc,
                        f"{cmp.base} seeds": t["base_seeds"],
                        f"{cmp.other} mean": t["other_mean"] * sc, f"{cmp.other} std": t["other_std"] * sc,
                        f"{cmp.other} seeds": t["other_seeds"],
                        cmp.diff_name: t["diff"] * sc, "ci95_low": t["ci95_low"] * sc, "ci95_high": t["ci95_high"] * sc,
                        "interval": [interval_text(r, cmp.base, cmp.other) for _, r in t.iterrows()],
                        "config_key": t["config_key"]})
    return out


def to_markdown(cmp: Comparison, inputs: list[str]) -> str:
    by = ", ".join(cmp.by)
    lines = [f"# {cmp.other} against {cmp.base} (by {by})", "",
             f"Inputs: {', '.join(inputs)}. Sides split by {by}, each compared with the first; configurations "
             f"aligned by {', '.join(cmp.keys) or 'nothing (one configuration a side)'}."]
    if cmp.differs:
        lines.append("Also different between the sides, and so part of what is compared: "
                     + "; ".join(f"{f} {a} ({cmp.base}) against {b} ({cmp.other})" for f, (a, b) in cmp.differs.items())
                     + ".")
    lines.append("Every other configuration field is the same on both sides.")
    lines += ["", "Accuracies, ECE and memorized fraction in % (NLL as is), mean ± std over seeds (n = seeds); the "
              f"difference {cmp.diff_name} in points, with a Welch 95% confidence interval where both sides have "
              "two or more seeds.", ""]
    t = cmp.table
    if len(t):
        one_config = t["config"].nunique() == 1
        head = ([] if one_config else ["configuration"]) + ["metric", cmp.base, cmp.other, cmp.diff_name, "95% CI"]
        if one_config:
            lines += [f"Configuration: {t['config'].iloc[0]}.", ""]
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for _, r in t.iterrows():
            sc = scale(r["metric"])
            cells = ([] if one_config else [r["config"]]) + [
                r["metric"], _cell(r["base_mean"], r["base_std"], r["base_seeds"], sc),
                _cell(r["other_mean"], r["other_std"], r["other_seeds"], sc), _signed(r["diff"] * sc),
                interval_text(r, cmp.base, cmp.other)]
            lines.append("| " + " | ".join(cells) + " |")
    else:
        lines.append(f"Nothing to compare: {cmp.why_none}")
    for side, only in ((cmp.base, cmp.only_base), (cmp.other, cmp.only_other)):
        if only:
            lines += ["", f"Only in {side}:", *[f"- {c}" for c in only]]
    return "\n".join(lines) + "\n"
