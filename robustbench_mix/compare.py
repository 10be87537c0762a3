"""``python -m robustbench_mix.compare A B [C ...]``: compare results files (or directories) run by run.

Runs are aligned by configuration (the config without seed, preset and device), never by row order. For
each configuration and headline metric at the final epoch it prints both means, the difference (other
minus the first file) and, when both sides have at least two seeds, a Welch 95% confidence interval of the
difference. Configurations present on one side only are listed.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from .errors import UsageError
from .methods import run_label
from .results import ResultsError, atomic_write_csv, atomic_write_text, config_key, headline, last_epoch, load_results


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


def per_seed(df: pd.DataFrame) -> pd.DataFrame:
    """config key x metric name -> the values over seeds."""
    m = headline(last_epoch(df))
    keys = {c: config_key(c) for c in m["config"].unique()}
    return m.assign(key=m["config"].map(keys))[["key", "name", "seed", "value"]]


def describe(key: str) -> str:
    d = json.loads(key)
    return f"{d['dataset']} {d['model']} {run_label(d['method'], d['alpha'], d['dropout'])} noise={d['noise']:g} " \
           f"ep={d['epochs']}"


def compare(a: pd.DataFrame, b: pd.DataFrame) -> tuple[pd.DataFrame, list[str], list[str]]:
    pa, pb = per_seed(a), per_seed(b)
    ka, kb = set(pa["key"]), set(pb["key"])
    rows = []
    for key in sorted(ka & kb):
        ga, gb = pa[pa["key"] == key], pb[pb["key"] == key]
        for name in dict.fromkeys([*ga["name"], *gb["name"]]):
            va = ga[ga["name"] == name]["value"].to_numpy()
            vb = gb[gb["name"] == name]["value"].to_numpy()
            if not len(va) or not len(vb):
                continue
            lo, hi = welch_ci(va, vb) if len(va) >= 2 and len(vb) >= 2 else (np.nan, np.nan)
            rows.append({"config": describe(key), "metric": name, "a_mean": va.mean(), "a_seeds": len(va),
                         "b_mean": vb.mean(), "b_seeds": len(vb), "diff": vb.mean() - va.mean(),
                         "ci95_low": lo, "ci95_high": hi, "config_key": key})
    only_a = [describe(k) for k in sorted(ka - kb)]
    only_b = [describe(k) for k in sorted(kb - ka)]
    return pd.DataFrame(rows), only_a, only_b


def to_markdown(table: pd.DataFrame, only_a: list[str], only_b: list[str], a: str, b: str) -> str:
    lines = [f"# Comparison: {b} vs {a}", "", f"diff = {b} - {a}; 95% CI by Welch's t where both sides have >= 2 "
             "seeds. Accuracies are fractions.", ""]
    if len(table):
        lines += ["| configuration | metric | A | B | diff | 95% CI |", "|---|---|---|---|---|---|"]
        for _, r in table.iterrows():
            ci = "" if np.isnan(r["ci95_low"]) else f"[{r['ci95_low']:+.4f}, {r['ci95_high']:+.4f}]"
            lines.append(f"| {r['config']} | {r['metric']} | {r['a_mean']:.4f} (n={r['a_seeds']}) | "
                         f"{r['b_mean']:.4f} (n={r['b_seeds']}) | {r['diff']:+.4f} | {ci} |")
    else:
        lines.append("(no configuration is present on both sides)")
    for side, only in ((a, only_a), (b, only_b)):
        if only:
            lines += ["", f"Only in {side}:", *[f"- {c}" for c in only]]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m robustbench_mix.compare", description=__doc__.split("\n\n")[0])
    p.add_argument("results", nargs="+", help="runs.csv files or results directories; each is compared to the first")
    p.add_argument("--out", default="results/compare", help="where comparison CSV/Markdown go (default: %(default)s)")
    args = p.parse_args(argv)
    if len(args.results) < 2:
        p.error("give at least two results files or directories")
    try:
        frames = [load_results(r) for r in args.results]
    except (ResultsError, UsageError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    out = Path(args.out)
    for i, (path, df) in enumerate(zip(args.results[1:], frames[1:], strict=True), 1):
        table, only_a, only_b = compare(frames[0], df)
        md = to_markdown(table, only_a, only_b, args.results[0], path)
        stem = "comparison" if len(frames) == 2 else f"comparison_{i}"
        atomic_write_csv(table, out / f"{stem}.csv")
        atomic_write_text(out / f"{stem}.md", md)
        print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
