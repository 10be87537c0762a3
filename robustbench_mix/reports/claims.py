"""``python -m robustbench_mix.claims RESULTS [...]``: check results against the paper's claims.

The claims live as data in ``claims.toml`` (in the package). Each line printed gives the paper's values,
ours (mean ± std over seeds), B − A with its 95% interval, how our setting differs from the paper's, and a
verdict: ``reproduced`` (the paper's setting, the direction's interval clear of zero and both numbers within
tolerance), ``direction only`` (the direction holds by its interval, but on another setting or with other
numbers), ``inconclusive`` (the interval straddles zero, or the margin), ``not reproduced`` (the interval
lies on the other side), ``1 seed`` (one run on a side: no interval, no verdict) or ``not run`` (with the
preset that produces the runs it needs). Exits non-zero only on errors.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from robustbench_mix.attacks.base import attack_norm
from robustbench_mix.core.errors import UsageError
from robustbench_mix.core.units import LEVELS, Norm
from robustbench_mix.experiment.grids import SURROGATE_SUFFIX
from robustbench_mix.reports.compare import paired_ci, welch_ci
from robustbench_mix.store.summary import clean_curve, configuration_key

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib


CLAIMS_FILE = Path(__file__).with_name("claims.toml")
VERDICTS = ("reproduced", "direction only", "inconclusive", "not reproduced", "1 seed", "not run")
RELAXABLE = ("dataset", "model")
# the recipe fields a claim's ``paper`` setting may name: each is a column of runs.csv
SETTING_FIELDS = ("dataset", "model", "epochs", "batch_size", "lr", "weight_decay", "schedule")


def load_claims(path: Path = CLAIMS_FILE) -> list[dict]:
    with open(path, "rb") as f:
        claims = tomllib.load(f)["claim"]
    for c in claims:
        if c["direction"] not in ("lower", "higher"):
            raise UsageError(f"claim {c['id']}: direction {c['direction']!r} is not 'lower' or 'higher'")
        bad = [k for k in c.get("paper", {}) if k not in SETTING_FIELDS]
        if bad:
            raise UsageError(f"claim {c['id']}: paper setting field {bad[0]!r} is not one of "
                             f"{', '.join(SETTING_FIELDS)}")
    return claims


def run_values(runs: pd.DataFrame, quantity: str, claim: dict) -> dict[str, float]:
    """The quantity (in %) of each run in ``runs`` (all rows of those runs), by run id."""
    out = {}
    for rid, g in runs.groupby("run_id"):
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
                       & (np.isclose(last["eps"] * (1 if attack_norm(claim["attack"]) == Norm.L2 else LEVELS),
                                     claim["eps"], atol=1e-3))]["value"]  # an L2 claim gives its radius
            v = 100 * (1 - adv.iloc[0]) if len(adv) else np.nan
            if quantity == "attack_added_err":
                # the clean side at the attacks' precision and on the attacked images, as the eps-0 check
                ref = last[(last["attack"] == "none") & (last["metric"] == "acc_attacked_subset")]["value"]
                v -= 100 * (1 - ref.iloc[0]) if len(ref) else np.nan
        else:
            raise UsageError(f"claim {claim['id']}: unknown quantity {quantity!r}")
        if not np.isnan(v):
            out[rid] = float(v)
    return out


def select(df: pd.DataFrame, fields: dict) -> pd.DataFrame:
    m = pd.Series(True, index=df.index)
    for k, v in fields.items():
        m &= np.isclose(df[k], v) if isinstance(v, float | int) and not isinstance(v, bool) else df[k] == v
    return df[m]


def setting_differences(runs: pd.DataFrame, paper: dict) -> list[str]:
    """How the runs' setting differs from the paper's for this claim, e.g. 'epochs 60 (paper: 200)'."""
    out = []
    for k, want in paper.items():
        have = list(dict.fromkeys(runs[k]))
        same = all(np.isclose(h, want) if isinstance(want, float | int) and not isinstance(want, bool)
                   else h == want for h in have)
        if not same:
            out.append(f"{k} {', '.join(f'{h:g}' if isinstance(h, float) else str(h) for h in have)} "
                       f"(paper: {want})")
    return out


def judge(a: dict[str, float], b: dict[str, float], claim: dict) -> tuple[str, float, float, float, str]:
    """(direction verdict, B - A, interval low, high, test) from the per-run values of the two sides.

    With two or more runs a side the claimed direction holds only if the 95% interval of B - A lies
    beyond the margin on the claimed side; an interval on the other side of it is 'not reproduced', one
    across it 'inconclusive'. Two quantities of the same runs are compared in pairs, other sides by Welch's t.
    With one run on a side there is no interval: '1 seed'.
    """
    va, vb = np.array(list(a.values())), np.array(list(b.values()))
    diff = float(vb.mean() - va.mean())
    sign = 1.0 if claim["direction"] == "higher" else -1.0
    margin = claim.get("margin", 0.0)
    if len(va) < 2 or len(vb) < 2:
        return "1 seed", diff, np.nan, np.nan, ""
    if a.keys() == b.keys():
        keys = sorted(a)
        lo, hi = paired_ci(np.array([a[k] for k in keys]), np.array([b[k] for k in keys]))
        test = "paired t"
    else:
        lo, hi = welch_ci(va, vb)
        test = "Welch"
    s_lo, s_hi = sorted((sign * lo, sign * hi))  # the interval of the effect in the claimed direction
    verdict = "holds" if s_lo > margin else "not reproduced" if s_hi < margin else "inconclusive"
    return verdict, diff, lo, hi, test


def assess(claim: dict, df: pd.DataFrame, relax: tuple[str, ...] = ()) -> dict:
    df = df[~df["preset"].str.endswith(SURROGATE_SUFFIX)]
    base = {k: v for k, v in claim["select"].items() if k not in relax}
    sides, notes, used = {}, [], []
    for s in ("a", "b"):
        side = dict(claim[s])
        q = side.pop("quantity", claim.get("quantity"))
        runs = select(df, {**base, **side})
        keys = runs["config"].map(configuration_key) if len(runs) else runs["config"]
        if keys.nunique() > 1:  # never pool different recipes as if they were seeds: take the longest one
            sizes = runs.assign(key=keys).groupby("key").agg(epochs=("epochs", "max"), n=("run_id", "nunique"))
            best = sizes.sort_values(["epochs", "n"]).index[-1]
            runs = runs[keys == best]
            notes.append(f"side {s.upper()}: {len(sizes)} recipes matched, used the longest "
                         f"({int(sizes.loc[best, 'epochs'])} epochs)")
        sides[s] = run_values(runs, q, claim)
        used.append(runs[runs["run_id"].isin(list(sides[s]))])
    res = {"claim": claim["id"], "statement": claim["statement"], "source": claim["source"],
           "paper_a": claim.get("paper_a", np.nan), "paper_b": claim.get("paper_b", np.nan),
           "margin": float(claim.get("margin", 0.0)), "direction": claim["direction"]}
    for s, vals in sides.items():
        v = list(vals.values())
        res[f"ours_{s}"] = float(np.mean(v)) if v else np.nan
        res[f"ours_{s}_std"] = float(np.std(v, ddof=1)) if len(v) > 1 else np.nan
        res[f"ours_{s}_seeds"] = len(v)
    res.update(diff=np.nan, ci95_low=np.nan, ci95_high=np.nan, test="", setting="")
    if not sides["a"] or not sides["b"]:
        res["verdict"] = "not run"
        res["note"] = f"needs the runs of preset {claim['preset']}"
        return res
    direction, res["diff"], res["ci95_low"], res["ci95_high"], res["test"] = judge(sides["a"], sides["b"], claim)
    differs = setting_differences(pd.concat(used), claim.get("paper", {}))
    res["setting"] = "; ".join(differs) if differs else "the paper's"
    comparable = claim.get("values_comparable", True) and "paper_a" in claim and "tolerance" in claim
    if direction == "1 seed":
        holds = (res["diff"] > claim.get("margin", 0.0)) if claim["direction"] == "higher" else (
            res["diff"] < -claim.get("margin", 0.0))
        res["verdict"] = "1 seed"
        notes.append(f"one run on a side, no interval: the point estimates {'follow' if holds else 'go against'} "
                     "the claimed direction; run 2 or more seeds a side for a verdict")
    elif direction != "holds":
        res["verdict"] = direction
    elif differs or relax or not comparable:
        res["verdict"] = "direction only"
    else:
        tol = claim["tolerance"]
        close = abs(res["ours_a"] - claim["paper_a"]) <= tol and abs(res["ours_b"] - claim["paper_b"]) <= tol
        res["verdict"] = "reproduced" if close else "direction only"
        if not close:
            notes.append(f"numbers further than {tol:g} points from the paper's")
    if relax:
        notes.append("relaxed " + ", ".join(f"{k}={claim['select'][k]}" for k in relax if k in claim["select"]))
    if res["verdict"] == "direction only" and (differs or not claim.get("values_comparable", True)):
        notes.append("not the paper's setting for this claim, so at most direction only")
    res["note"] = "; ".join(notes)
    return res


def fmt(mean, std, n) -> str:
    if np.isnan(mean):
        return "—"
    return f"{mean:.2f}" + ("" if np.isnan(std) else f" ± {std:.2f}") + f" (n={n})"


def fmt_diff(r) -> str:
    if np.isnan(r["diff"]):
        return "—"
    ci = "" if np.isnan(r["ci95_low"]) else f" [{r['ci95_low']:+.2f}, {r['ci95_high']:+.2f}] {r['test']}"
    return f"{r['diff']:+.2f}{ci}"


def fmt_margin(r) -> str:
    """The margin B − A must clear, signed in the claimed direction ('> +2.00', '< -2.00'): the verdict compares the
    interval with it, not with zero."""
    m = r.get("margin", 0.0)
    m = 0.0 if pd.isna(m) else float(m)
    direction = r.get("direction", "higher")
    return f"> {m:+.2f}" if direction == "higher" else f"< {-m if m else 0.0:+.2f}"


def to_markdown(table: pd.DataFrame) -> str:
    lines = ["| claim | verdict | paper A / B | ours A | ours B | B − A [95% CI] | margin | setting | statement |",
             "|---|---|---|---|---|---|---|---|---|"]
    for _, r in table.iterrows():
        paper = "—" if np.isnan(r["paper_a"]) else f"{r['paper_a']:g} / {r['paper_b']:g}"
        note = f" ({r['note']})" if r["note"] else ""
        lines.append(f"| {r['claim']} | **{r['verdict']}** | {paper} | "
                     f"{fmt(r['ours_a'], r['ours_a_std'], r['ours_a_seeds'])} | "
                     f"{fmt(r['ours_b'], r['ours_b_std'], r['ours_b_seeds'])} | {fmt_diff(r)} | "
                     f"{fmt_margin(r)} | {r['setting'] or '—'} | {r['statement']} [{r['source']}]{note} |")
    return "\n".join(lines) + "\n"


def check_all(df: pd.DataFrame, relax: tuple[str, ...] = (), claims: list[dict] | None = None) -> pd.DataFrame:
    return pd.DataFrame([assess(c, df, relax) for c in (claims or load_claims())])


VERDICT_TEXT = ("Verdicts: `reproduced` only in the paper's setting for the claim (data set, model and recipe), with "
                "the 95% interval of B − A beyond the claim's margin in the claimed direction (column `margin`: "
                "`> +2.00` means B − A must exceed 2 points, `> +0.00` beyond zero) and both numbers within tolerance "
                "of the paper's; `direction only` when the interval holds the direction on another setting or with "
                "other numbers; `inconclusive` when the interval straddles the margin; `not reproduced` when it lies "
                "on the other side of it; `1 seed` when a side has one run (no interval, no verdict). A = first side, "
                "B = second; values in %; each claim's definition is in robustbench_mix/claims.toml.")


def section(table: pd.DataFrame, relax: tuple[str, ...] = ()) -> str:
    """The verdicts as the claims command and the report both show them: the claims whose runs are here (only
    those: a claim on CIFAR-10 has no row for digits unless relaxed, and then the note says so), then the claims
    not run, with the preset that makes their runs."""
    ran = table[table["verdict"] != "not run"]
    lines = [VERDICT_TEXT, ""]
    if relax:
        lines += [f"Relaxed ({', '.join(relax)}): each claim's {' and '.join(relax)} are not required, so claims are "
                  "checked on these runs' own and are at most `direction only`.", ""]
    if len(ran):
        lines.append(to_markdown(ran))
    else:
        lines += ["None of the claims has its runs here" + ("." if relax else
                  " (each names the paper's data set and model; `--relax dataset,model` checks their directions on "
                  "other data and models, with the claims command and the report alike)."), ""]
    nr = table[table["verdict"] == "not run"]
    if len(nr):
        by_preset: dict[str, list[str]] = {}
        for c, note in zip(nr["claim"], nr["note"], strict=True):
            by_preset.setdefault(note.removeprefix("needs the runs of preset "), []).append(c)
        lines.append("Not run here: " + "; ".join(f"{', '.join(cs)} (preset {p})" for p, cs in by_preset.items())
                     + ".")
    return "\n".join(lines).rstrip("\n") + "\n"


def parse_relax(text: str) -> tuple[str, ...]:
    """'--relax dataset,model' -> ('dataset', 'model'); anything else is a usage error naming what is allowed."""
    relax = tuple(r.strip() for r in str(text).split(",") if r.strip())
    bad = [r for r in relax if r not in RELAXABLE]
    if bad:
        raise UsageError(f"--relax {bad[0]!r} is not one of {', '.join(RELAXABLE)}")
    return relax
