"""``python -m robustbench_mix.claims RESULTS [...]``: check results against the paper's claims.

The claims live as data in ``claims.toml`` (in the package). Each line printed gives the paper's values,
ours (mean ± std over seeds) and a verdict: ``reproduced``, ``direction only``, ``not reproduced`` or
``not run`` (with the preset that produces the runs it needs). Exits non-zero only on errors.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from .config import SURROGATE_SUFFIX
from .errors import UsageError
from .results import ResultsError, atomic_write_csv, atomic_write_text, clean_curve, config_key, load_results

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

CLAIMS_FILE = Path(__file__).with_name("claims.toml")
VERDICTS = ("reproduced", "direction only", "not reproduced", "not run")
RELAXABLE = ("dataset", "model")


def load_claims(path: Path = CLAIMS_FILE) -> list[dict]:
    with open(path, "rb") as f:
        claims = tomllib.load(f)["claim"]
    for c in claims:
        if c["direction"] not in ("lower", "higher"):
            raise UsageError(f"claim {c['id']}: direction {c['direction']!r} is not 'lower' or 'higher'")
    return claims


def run_values(runs: pd.DataFrame, quantity: str, claim: dict) -> list[float]:
    """The quantity (in %) for each run in ``runs`` (all rows of those runs)."""
    out = []
    for _, g in runs.groupby("run_id"):
        epochs = g["epochs"].iloc[0]
        last = g[g["epoch"] == epochs]
        clean = clean_curve(g)  # the same best/last definitions as Table 2 (tables.per_run_errors)
        clean_last = 100 * (1 - clean.get(epochs, np.nan))
        if quantity == "test_err_last":
            v = clean_last
        elif quantity == "test_err_best":
            v = 100 * (1 - clean.max()) if len(clean) else np.nan
        elif quantity in ("attack_err", "attack_added_err"):
            metric = "top5_acc" if claim.get("k", 1) == 5 else "acc"
            adv = last[(last["attack"] == claim["attack"]) & (last["metric"] == metric)
                       & (np.isclose(last["eps"] * 255, claim["eps"], atol=1e-3))]["value"]
            v = 100 * (1 - adv.iloc[0]) if len(adv) else np.nan
            if quantity == "attack_added_err":
                v -= clean_last
        else:
            raise UsageError(f"claim {claim['id']}: unknown quantity {quantity!r}")
        if not np.isnan(v):
            out.append(float(v))
    return out


def select(df: pd.DataFrame, fields: dict) -> pd.DataFrame:
    m = pd.Series(True, index=df.index)
    for k, v in fields.items():
        m &= np.isclose(df[k], v) if isinstance(v, float | int) and not isinstance(v, bool) else df[k] == v
    return df[m]


def evaluate(claim: dict, df: pd.DataFrame, relax: tuple[str, ...] = ()) -> dict:
    df = df[~df["preset"].str.endswith(SURROGATE_SUFFIX)]
    base = {k: v for k, v in claim["select"].items() if k not in relax}
    sides, notes = {}, []
    for s in ("a", "b"):
        side = dict(claim[s])
        q = side.pop("quantity", claim.get("quantity"))
        runs = select(df, {**base, **side})
        keys = runs["config"].map(config_key) if len(runs) else runs["config"]
        if keys.nunique() > 1:  # never pool different recipes as if they were seeds: take the longest one
            sizes = runs.assign(key=keys).groupby("key").agg(epochs=("epochs", "max"), n=("run_id", "nunique"))
            best = sizes.sort_values(["epochs", "n"]).index[-1]
            runs = runs[keys == best]
            notes.append(f"side {s.upper()}: {len(sizes)} recipes matched, used the longest "
                         f"({int(sizes.loc[best, 'epochs'])} epochs)")
        sides[s] = run_values(runs, q, claim)
    res = {"claim": claim["id"], "statement": claim["statement"], "source": claim["source"],
           "paper_a": claim.get("paper_a", np.nan), "paper_b": claim.get("paper_b", np.nan)}
    for s, vals in sides.items():
        res[f"ours_{s}"] = float(np.mean(vals)) if vals else np.nan
        res[f"ours_{s}_std"] = float(np.std(vals, ddof=1)) if len(vals) > 1 else np.nan
        res[f"ours_{s}_seeds"] = len(vals)
    if not sides["a"] or not sides["b"]:
        res["verdict"] = "not run"
        res["note"] = f"needs the runs of preset {claim['preset']}"
        return res
    a, b, margin = res["ours_a"], res["ours_b"], claim.get("margin", 0.0)
    holds = (b <= a - margin if margin else b < a) if claim["direction"] == "lower" else (
        b >= a + margin if margin else b > a)
    comparable = (claim.get("values_comparable", True) and "paper_a" in claim and not relax)
    tol = claim.get("tolerance", 0.0)
    if not holds:
        res["verdict"] = "not reproduced"
    elif relax:
        res["verdict"] = "direction only"
    elif comparable:
        close = abs(a - claim["paper_a"]) <= tol and abs(b - claim["paper_b"]) <= tol
        res["verdict"] = "reproduced" if close else "direction only"
    else:
        res["verdict"] = "reproduced"  # a directional claim whose numbers are from another setting
    if relax:
        notes.append("relaxed " + ", ".join(f"{k}={claim['select'][k]}" for k in relax if k in claim["select"]))
    if not claim.get("values_comparable", True):
        notes.append("paper's numbers are from another setting: direction only")
    res["note"] = "; ".join(notes)
    return res


def fmt(mean, std, n) -> str:
    if np.isnan(mean):
        return "—"
    return f"{mean:.2f}" + ("" if np.isnan(std) else f" ± {std:.2f}") + f" (n={n})"


def to_markdown(table: pd.DataFrame) -> str:
    lines = ["| claim | verdict | paper A / B | ours A | ours B | statement |", "|---|---|---|---|---|---|"]
    for _, r in table.iterrows():
        paper = "—" if np.isnan(r["paper_a"]) else f"{r['paper_a']:g} / {r['paper_b']:g}"
        note = f" ({r['note']})" if r["note"] else ""
        lines.append(f"| {r['claim']} | **{r['verdict']}** | {paper} | "
                     f"{fmt(r['ours_a'], r['ours_a_std'], r['ours_a_seeds'])} | "
                     f"{fmt(r['ours_b'], r['ours_b_std'], r['ours_b_seeds'])} | {r['statement']}{note} |")
    return "\n".join(lines) + "\n"


def check_all(df: pd.DataFrame, relax: tuple[str, ...] = (), claims: list[dict] | None = None) -> pd.DataFrame:
    return pd.DataFrame([evaluate(c, df, relax) for c in (claims or load_claims())])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m robustbench_mix.claims", description=__doc__.split("\n\n")[0])
    p.add_argument("results", nargs="+", help="runs.csv files or results directories (pooled)")
    p.add_argument("--relax", default="", help=f"ignore these selection fields ({', '.join(RELAXABLE)}), e.g. to "
                   "check the directions on digits; verdicts are then at most 'direction only'")
    p.add_argument("--claims", default=str(CLAIMS_FILE), help="claims file (default: the package's)")
    p.add_argument("--out", help="write claims.csv and claims.md here (default: the first results directory)")
    args = p.parse_args(argv)
    try:
        relax = tuple(r for r in args.relax.split(",") if r)
        bad = [r for r in relax if r not in RELAXABLE]
        if bad:
            raise UsageError(f"--relax {bad[0]!r} is not one of {', '.join(RELAXABLE)}")
        df = pd.concat([load_results(r) for r in args.results], ignore_index=True)
        table = check_all(df, relax, load_claims(Path(args.claims)))
    except (ResultsError, UsageError, OSError, KeyError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    md = to_markdown(table)
    first = Path(args.results[0])
    out = Path(args.out) if args.out else (first if first.is_dir() else first.parent)
    atomic_write_csv(table, out / "claims.csv")
    atomic_write_text(out / "claims.md", "# The paper's claims against these results\n\nA = first side, B = second; "
                                   "values in %. See robustbench_mix/claims.toml for each claim's definition.\n\n"
                                   + md)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
