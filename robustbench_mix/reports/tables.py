"""Paper-shaped tables built from runs.csv: a registry of ``name -> fn(df, out_dir) -> markdown``.

Each writes ``<name>.csv`` and ``<name>.md`` into the results directory; the plots are :mod:`plots`' (the report
makes both from the rows alone).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from robustbench_mix.attacks.base import WORST, attack_norm
from robustbench_mix.core.atomic import atomic_write_text
from robustbench_mix.core.registry import Registry
from robustbench_mix.core.units import Norm, fmt_eps, grid_key, to_255
from robustbench_mix.experiment.grids import SURROGATE_SUFFIX
from robustbench_mix.experiment.presets import PRESETS
from robustbench_mix.methods import run_label
from robustbench_mix.store.schema import adversarial, corrupted, corruption_parts, fmt_row_eps
from robustbench_mix.store.summary import clean_curve, config_fields, last_epoch, method_options
from robustbench_mix.store.write import atomic_write_csv

TABLES: Registry = Registry("table")
# what every directory gets (each writes nothing where its rows are absent), besides its presets' own tables
ALWAYS = ("robust", "corruptions")


def tables_for(df: pd.DataFrame) -> list[str]:
    """The tables the suite makes for these rows: each preset's own (``Suite.tables``; a preset the suite does not
    know, such as the API's or the checkpoint command's, has none of its own), then ``ALWAYS``."""
    names = [t for p in dict.fromkeys(df["preset"].str.removesuffix(SURROGATE_SUFFIX))
             for t in (PRESETS[p].tables if p in PRESETS else ())]
    return list(dict.fromkeys([*names, *ALWAYS]))


def _label_runs(df: pd.DataFrame) -> pd.DataFrame:
    """Name each run's variant; black-box surrogates are auxiliary runs and are left out of the tables."""
    df = df[~df["preset"].str.endswith(SURROGATE_SUFFIX)]
    return df.assign(variant=[run_label(m, a, d, o) for m, a, d, o in
                              zip(df["method"], df["alpha"], df["dropout"], method_options(df), strict=True)])


def _mean_std_md(table: pd.DataFrame, std: pd.DataFrame | None, title: str, note: str) -> str:
    cols = [str(c) for c in table.columns]
    lines = [f"## {title}", "", note, "", "| " + " | ".join([table.index.name or "", *cols]) + " |",
             "|" + "---|" * (len(cols) + 1)]
    for idx, r in table.iterrows():
        cells = []
        for c in table.columns:
            v = r[c]
            s = std.loc[idx, c] if std is not None else float("nan")
            cells.append("" if pd.isna(v) else f"{v:.1f}" + ("" if pd.isna(s) else f" ± {s:.1f}"))
        lines.append("| " + " | ".join([f"{idx:g}" if isinstance(idx, float) else str(idx), *cells]) + " |")
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------- Table 2
def per_run_errors(df: pd.DataFrame) -> pd.DataFrame:
    """Per run, in %: best and last test error, test error at the epoch of best validation accuracy,
    and final training error against the real labels and (on corrupted examples) the noisy labels."""
    recs = []
    for rid, g in df.groupby("run_id"):
        first = g.iloc[0]
        test, val = clean_curve(g, "test"), clean_curve(g, "val")
        last = g[g["epoch"] == first["epochs"]]

        def final(split, metric, frame=last):
            v = frame[(frame["split"] == split) & (frame["metric"] == metric) & (frame["attack"] == "none")]["value"]
            return v.iloc[0] if len(v) else float("nan")

        rec = {"run_id": rid, "noise": first["noise"], "variant": first["variant"], "seed": first["seed"],
               "order": (first["method"] != "erm", first["dropout"] > 0, first["method"], first["alpha"],
                         first["dropout"]),
               "epochs recorded": len(test),
               "best test err (test-selected)": 100 * (1 - test.max()),
               "last test err": 100 * (1 - test.loc[first["epochs"]]),
               "test err at best val epoch": float("nan"),
               "train err (real labels)": 100 * (1 - final("train", "acc_true")),
               "train err on corrupted (noisy labels)": 100 * (1 - final("train_corrupted", "memorized")),
               "labels changed": 100 * final("train", "noise_realized")}
        if len(val):
            common = val.index.intersection(test.index)
            rec["test err at best val epoch"] = 100 * (1 - test.loc[val.loc[common].idxmax()])
        recs.append(rec)
    return pd.DataFrame(recs)


TABLE2_QUANTITIES = ["best test err (test-selected)", "last test err", "test err at best val epoch",
                     "train err (real labels)", "train err on corrupted (noisy labels)"]


@TABLES.register("table2")
def table2(df: pd.DataFrame, out: Path) -> str:
    """The paper's Table 2 layout: rows = (corruption, method), columns = best and last test error, then
    training error on the real and on the corrupted labels; mean ± std over seeds, in %."""
    errs = per_run_errors(_label_runs(df[df["noise"] > 0]))
    if errs.empty:
        return ""
    qty = [q for q in TABLE2_QUANTITIES if not errs[q].isna().all()]
    # the paper's row order: ERM, ERM + dropout, mixup, mixup + dropout
    order = dict(zip(errs["variant"], errs["order"], strict=True))
    g = errs.groupby(["noise", "variant"])[qty]
    mean, std = g.mean(), g.std(ddof=1)
    n = g.size()
    keys = sorted(mean.index, key=lambda k: (k[0], order[k[1]]))
    mean, std, n = mean.loc[keys], std.loc[keys], n.loc[keys]
    # the realized corruption: labels that really changed (a nominal rate p changes about p * (1 - 1/K))
    changed = errs.groupby("noise")["labels changed"].mean()
    flat = mean.add_suffix(" mean").join(std.add_suffix(" std")).assign(seeds=n).reset_index()
    flat.insert(1, "labels changed (%)", flat["noise"].map(changed))
    atomic_write_csv(flat.rename(columns={"noise": "corruption", "variant": "method"}), out / "table2.csv")
    few = errs["epochs recorded"].min()
    lines = ["## Table 2: corrupted labels", "",
             "Error in % (mean ± std over seeds). 'best (test-selected)' is the lowest test error over the epochs, "
             "which peeks at the test set as the paper's 'best' does; 'at best val epoch' picks the epoch by "
             "accuracy on a held-out part of the noisy training data: the honest number. Training error is "
             "measured against the real labels, and on the corrupted examples against their corrupted labels "
             "(0 = fully memorized); 'corrupted' means the labels that changed: the corruption rate picks "
             "that fraction of labels and redraws each uniformly, so about 1/K keep their class, and the "
             "realized fraction of changed labels is given in brackets."
             + (f" Only {few} evaluated epoch(s) per run: record curves with --eval-every 1 for a meaningful "
                "'best'." if few < 5 else ""), "",
             "| corruption | method | " + " | ".join(qty) + " | seeds |", "|" + "---|" * (len(qty) + 3)]
    for (p, v), r in mean.iterrows():
        cells = [f"{r[q]:.1f}" + ("" if pd.isna(std.loc[(p, v), q]) else f" ± {std.loc[(p, v), q]:.1f}")
                 for q in qty]
        rate = f"{100 * p:g}%" + ("" if pd.isna(changed.loc[p]) else f" ({changed.loc[p]:.1f}% changed)")
        lines.append(f"| {rate} | {v} | " + " | ".join(cells) + f" | {n.loc[(p, v)]} |")
    md = "\n".join(lines) + "\n"
    atomic_write_text(out / "table2.md", md)
    return md


# ------------------------------------------------------------------------------------- Table 3
@TABLES.register("table3")
def table3(df: pd.DataFrame, out: Path) -> str:
    """The paper's Table 3 layout: rows = (threat, attack, eps, top-k), columns = method; test error in %."""
    d = _label_runs(last_epoch(df))
    clean = d[(d["split"] == "test") & (d["metric"] == "acc_attacked_subset")]
    d = d[(d["split"] == "test") & d["metric"].isin(["acc", "top5_acc"]) & (d["eps"] > 0) & adversarial(d)]
    if d.empty:
        return ""
    # only the epsilons the runs asked for (not the large gradient-masking check epsilon)
    d = d[asked_eps(d)]
    # the clean error of the attacked images, at the attacks' precision: what each attack's error adds to
    d = pd.concat([clean.assign(attack="clean", metric="acc"), d], ignore_index=True)
    d = d.assign(threat=["black-box" if a.startswith("bb:") else "none" if a == "clean" else "white-box"
                         for a in d["attack"]],
                 attack_name=[a.removeprefix("bb:") for a in d["attack"]],
                 eps_255=[fmt_row_eps(a, e) for a, e in zip(d["attack"], d["eps"], strict=True)],
                 k=["top-1" if m == "acc" else "top-5" for m in d["metric"]],
                 err=100 * (1 - d["value"]))
    order = {a: i for i, a in enumerate(dict.fromkeys(d["attack_name"]))}
    d = d.assign(o_threat=d["threat"].map({"none": 0, "white-box": 1, "black-box": 2}),
                 o_attack=d["attack_name"].map(order))
    keys = ["o_threat", "threat", "o_attack", "attack_name", "eps", "eps_255", "k"]
    g = d.groupby([*keys, "variant"], sort=True)["err"]
    mean, std = g.mean().unstack("variant"), g.std(ddof=1).unstack("variant")
    mean.index = ["clean (attacked images, attack precision) top-1" if t == "none" else f"{t} {a} {e} {k}"
                  for _, t, _, a, _, e, k in mean.index]
    std.index = mean.index
    mean.index.name = "attack (test error %)"
    atomic_write_csv(mean.reset_index(), out / "table3.csv")
    md = _mean_std_md(mean, std, "Table 3: test error (%) under attack",
                      "White-box attacks use each model's own gradients; black-box examples are crafted on a "
                      "separately trained ERM surrogate (another seed) and evaluated on each target. The first "
                      "row is the clean error of the attacked images at the attacks' precision, the reference "
                      "for the errors an attack adds. Top-5 rows appear only for data sets with more than 10 "
                      "classes (the evaluation writes them only there). This is the paper's Table 3 protocol "
                      "(FGSM and I-FGSM, white-box and black-box) on these runs' data and model; the paper's "
                      "Table 3 is ImageNet-2012 with ResNet-101.")
    atomic_write_text(out / "table3.md", md)
    return md


def asked_eps(d: pd.DataFrame) -> list[bool]:
    """Whether each row's epsilon is one its run asked for (``eps`` for L-infinity rows, ``eps_l2`` for L2 ones),
    not the large gradient-masking check epsilon."""
    cfg = config_fields(d)
    linf = {rid: {round(float(e), 3) for e in v.split(",") if e} for rid, v in cfg["config_eps"].items()}
    l2 = {rid: {round(float(e), 6) for e in v.split(",") if e}
          for rid, v in (cfg["eps_l2"] if "eps_l2" in cfg else pd.Series("", index=cfg.index)).items()}
    return [grid_key(Norm.L2, e) in l2[r] if attack_norm(a) == Norm.L2 else grid_key(Norm.LINF, e) in linf[r]
            for r, a, e in zip(d["run_id"], d["attack"], d["eps"], strict=True)]


def _percent_md(t: pd.DataFrame) -> str:
    """A table indexed by (variant, noise, third key) as Markdown, one decimal, blank where missing."""
    names = list(t.index.names)
    lines = ["| " + " | ".join([*names, *map(str, t.columns)]) + " |", "|" + "---|" * (len(t.columns) + 3)]
    for (v, p, k), r in t.iterrows():
        lines.append(f"| {v} | {p:g} | {k} | " + " | ".join("" if pd.isna(x) else f"{x:.1f}" for x in r) + " |")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- robust accuracy vs eps
@TABLES.register("robust")
def robust_table(df: pd.DataFrame, out: Path) -> str:
    """Robust accuracy (%) against epsilon for every configuration and attack: robust_accuracy.csv in long form
    (a row per configuration and attack, a column per epsilon), and for reading one table per threat model, a
    row per configuration and a column per attack and epsilon, mean ± std over seeds."""
    d = _label_runs(last_epoch(df))
    d = d[(d["split"] == "test") & (d["metric"] == "acc") & adversarial(d)]
    if d.empty:
        return ""
    # a column per (norm, epsilon): an L2 radius never shares a column with an L-infinity epsilon
    d = d.assign(acc=100 * d["value"], o_norm=[attack_norm(a) == Norm.L2 for a in d["attack"]],
                 e_col=[e if attack_norm(a) == Norm.L2 else to_255(e)
                        for a, e in zip(d["attack"], d["eps"], strict=True)])
    t = d.pivot_table(index=["variant", "noise", "attack"], columns=["o_norm", "e_col"], values="acc",
                      aggfunc="mean")
    t.columns = [f"L2={e:g}" if l2 else fmt_eps(round(e, 3)) for l2, e in t.columns]
    atomic_write_csv(t.reset_index(), out / "robust_accuracy.csv")
    md = "## Robust accuracy (%) against epsilon\n\n" + "\n".join(
        _per_threat_md(d[d["o_norm"] == l2], "L2" if l2 else "L-infinity") for l2 in (False, True)
        if (d["o_norm"] == l2).any())
    atomic_write_text(out / "robust_accuracy.md", md)
    return md


def _per_threat_md(d: pd.DataFrame, threat: str) -> str:
    """One threat model's rows as a table: a row per (variant, noise), a column per attack at each epsilon (white-box,
    the per-example worst case, then black-box), mean ± std over seeds; epsilon 0 (each attack's clean reference)
    and empty columns left out (robust_accuracy.csv has them)."""
    d = d[d["e_col"] > 0]
    if d.empty:
        return ""
    order = {a: (a.startswith("bb:"), a in WORST, a) for a in d["attack"].unique()}
    per_run = d.groupby(["variant", "noise", "attack", "e_col", "run_id"], sort=False)["acc"].mean().reset_index()
    g = per_run.groupby(["variant", "noise", "attack", "e_col"])["acc"]
    stats = pd.DataFrame({"mean": g.mean(), "std": g.std(ddof=1)}).reset_index()
    cols = sorted({(a, e) for a, e in zip(stats["attack"], stats["e_col"], strict=True)},
                  key=lambda k: (order[k[0]], k[1]))
    def title(a: str) -> str:  # 'worst_l2' and 'bb:pgd' as a reader says them
        return "worst case" if a in WORST else f"black-box {a.removeprefix('bb:')}" if a.startswith("bb:") else a

    name = {(a, e): f"{title(a)} {f'L2={e:g}' if threat == 'L2' else fmt_eps(round(e, 3))}" for a, e in cols}
    lines = [f"### {threat}", "", "| method | noise | " + " | ".join(name[c] for c in cols) + " |",
             "|" + "---|" * (len(cols) + 2)]
    for (v, p), rows in stats.groupby(["variant", "noise"], sort=True):
        cell = {(r.attack, r.e_col): f"{r.mean:.1f}" + ("" if pd.isna(r.std) else f" ± {r.std:.1f}")
                for r in rows.itertuples(index=False)}
        lines.append(f"| {v} | {p:g} | " + " | ".join(cell.get(c, "") for c in cols) + " |")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- common corruptions
@TABLES.register("corruptions")
def corruption_table(df: pd.DataFrame, out: Path) -> str:
    """Accuracy (%) under each common corruption, averaged over severities 1-5, and the mean over all, per
    configuration (the per-severity numbers are in corruptions.csv and the plot)."""
    d = _label_runs(last_epoch(df))
    d = d[(d["split"] == "test") & (d["metric"] == "acc") & corrupted(d)]
    if d.empty:
        return ""
    d = corruption_parts(d).assign(acc=100 * d["value"])
    atomic_write_csv(d.pivot_table(index=["variant", "noise", "source", "corruption"], columns="severity",
                                   values="acc", aggfunc="mean").reset_index(), out / "corruptions.csv")
    from robustbench_mix.corruptions import EXTRA_CORRUPTIONS, STANDARD_CORRUPTIONS

    t = d.pivot_table(index=["variant", "noise", "source"], columns="corruption", values="acc", aggfunc="mean")
    keys = ["variant", "noise", "source"]
    # as the benchmark's mean and the :mean rows: over the 15 benchmark corruptions; the extras apart
    for label, group in (("mean", STANDARD_CORRUPTIONS), ("extras mean", EXTRA_CORRUPTIONS)):
        members = d[d["corruption"].isin(group)]
        if len(members):
            t[label] = members.groupby(keys)["acc"].mean()
    md = ("## Accuracy (%) under common corruptions\n\nMean over severities 1-5 (and seeds). `corrupt`: computed by "
          "the suite (corruptions.py), not CIFAR-10-C; `c10c` / `c100c`: the standard CIFAR-10-C / CIFAR-100-C "
          "files. `mean`: over the 15 benchmark corruptions present; `extras mean`: over the release's 4 extra ones "
          "(speckle_noise, gaussian_blur, spatter, saturate), never in `mean`.\n\n" + _percent_md(t))
    atomic_write_text(out / "corruptions.md", md)
    return md

