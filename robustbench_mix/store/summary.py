"""Summaries of runs.csv: configurations pooled over seeds, the headline measurements, the summary table."""

from __future__ import annotations

import json

import pandas as pd

from robustbench_mix.attacks.base import WORST, attack_norm
from robustbench_mix.core.parsing import exact_text
from robustbench_mix.evaluation.metrics import CHECK_PREFIX, percent_scale, summary_metrics
from robustbench_mix.experiment.experiment import NOT_HASHED, Experiment
from robustbench_mix.store.schema import COLUMNS, CONFIG_COLUMNS, CORRUPTION_PREFIXES, adversarial, fmt_row_eps

# ------------------------------------------------------------------------------------------ summaries
GROUP = [c for c in CONFIG_COLUMNS if c not in ("run_id", "seed")]
# what does not tell configurations apart when seeds are pooled: the unhashed fields and the seed
NOT_CONFIG = NOT_HASHED | {"seed"}
# The headline metrics; diagnostics (perturbation sizes, gradients, checks) stay in runs.csv only.
SUMMARY_METRICS = summary_metrics()
SUMMARY_SPLITS = {"test", "val", "train", "train_corrupted"}


def config_fields(df: pd.DataFrame) -> pd.DataFrame:
    """Every Experiment field of each run (from the ``config`` JSON), indexed by run_id; lists as text."""
    recs = {}
    for rid, text in df.drop_duplicates("run_id")[["run_id", "config"]].itertuples(index=False):
        d = Experiment.from_json(text).to_dict()
        d.pop("device")  # the requested device; the device column says where it really ran
        recs[rid] = {k: (",".join(exact_text(x) if isinstance(x, float) else str(x) for x in v)
                         if isinstance(v, tuple) else ("" if v is None else v)) for k, v in d.items()}
    out = pd.DataFrame.from_dict(recs, orient="index")
    # a field whose name is also a measurement column (eps) gets a prefix
    return out.rename(columns={c: f"config_{c}" for c in out.columns if c in COLUMNS and c not in CONFIG_COLUMNS})


def group_keys(cfg: pd.DataFrame) -> list[str]:
    """What makes a configuration: every hashed field but the seed, the CSV's own columns first."""
    rest = [c for c in cfg.columns if c not in GROUP and c not in NOT_CONFIG]
    return GROUP + rest


def metric_name(split: str, attack: str, eps: float, metric: str) -> str:
    """'test acc', 'fgsm 8/255 acc', 'pgd_l2 L2=0.5 acc', 'train_corrupted memorized'."""
    if attack == "none":
        return f"{split} {metric}"
    if attack.startswith(CORRUPTION_PREFIXES):  # 'corrupt:mean acc': no epsilon
        return f"{attack} {metric}"
    return f"{attack} {fmt_row_eps(attack, eps)} {metric}"


def _column_rank(name: str) -> tuple:
    """Clean test metrics first, then validation, training-set (memorization) and attack columns."""
    first = name.split(" ")[0]
    rank = {"test": 0, "val": 1, "train": 2, "train_clean": 3, "train_corrupted": 4}.get(first, 5)
    return (rank,) if rank < 5 else (rank, first)


def clean_curve(run: pd.DataFrame, split: str = "test") -> pd.Series:
    """One run's clean accuracy on ``split`` by epoch: the curve rows and the final evaluation."""
    m = (run["split"] == split) & (run["attack"] == "none") & (run["metric"] == "acc")
    return run[m].set_index("epoch")["value"]


def last_epoch(df: pd.DataFrame) -> pd.DataFrame:
    """The rows measured at the end of each run (its final evaluation)."""
    return df[df["epoch"] == df["epochs"]]


def headline_rows(final: pd.DataFrame) -> pd.DataFrame:
    """The headline measurements among final rows, each named (``metric_name``) in a ``name`` column."""
    mean_corruption = final["attack"].str.startswith(CORRUPTION_PREFIXES) & final["attack"].str.endswith(":mean")
    m = final[final["metric"].isin(SUMMARY_METRICS) & final["split"].isin(SUMMARY_SPLITS)
              & (final["attack"] != "check") & (~((final["attack"] != "none") & (final["eps"] == 0))
                                                | mean_corruption)]
    return m.assign(name=[metric_name(*t) for t in zip(m["split"], m["attack"], m["eps"], m["metric"], strict=True)])


def configuration_key(config_json: str) -> str:
    """What identifies a configuration across files and seeds: the config without seed, preset and device."""
    d = Experiment.from_json(config_json).to_dict()
    return json.dumps({k: v for k, v in d.items() if k not in NOT_CONFIG}, sort_keys=True)


def summarize(df: pd.DataFrame) -> pd.DataFrame:
    """One row per configuration (seeds pooled): ``<metric> mean`` and ``<metric> std`` columns, n_seeds
    and ``checks failed`` (failed sanity checks summed over seeds)."""
    d = last_epoch(df)
    if d.empty:
        return pd.DataFrame(columns=GROUP + ["n_seeds"])
    cfg = config_fields(d)
    keys = group_keys(cfg)
    # the CSV's own columns hold 6 digits: the config's exact values group (lr 0.1 and 0.1000001 are not seeds
    # of one configuration)
    exact = [c for c in GROUP if c in cfg and d[c].dtype.kind == "f"]
    d = d.assign(**{c: d["run_id"].map(cfg[c].astype(float)) for c in exact})
    cfg = cfg[[k for k in keys if k not in GROUP]]
    d = d.join(cfg, on="run_id")
    # check_na rows (nothing to compare) are neither passed nor failed
    fails = d[d["metric"].str.startswith(CHECK_PREFIX)].assign(failed=lambda t: (t["value"] < 0.5).astype(int))
    m = headline_rows(d)
    order = sorted(dict.fromkeys(m["name"]), key=_column_rank)
    per_seed = m.pivot_table(index=keys + ["seed"], columns="name", values="value", aggfunc="first")
    g = per_seed.groupby(level=keys, sort=True)
    mean, std = g.mean(), g.std(ddof=1)
    cols = {}
    for name in order:
        cols[f"{name} mean"] = mean[name]
        cols[f"{name} std"] = std[name]
    cols["n_seeds"] = g.size()
    if len(fails):
        cols["checks failed"] = fails.groupby(keys)["failed"].sum().reindex(mean.index).fillna(0).astype(int)
    out = pd.concat(cols, axis=1)
    return pd.concat([out.index.to_frame(index=False), out.reset_index(drop=True)], axis=1)


def method_options(df: pd.DataFrame) -> pd.Series:
    """Each row's ``Experiment.method_options`` (e.g. CutMix's ``prob=0.25``), read from its config JSON once per
    run: two runs that differ only there are different variants in every table and plot."""
    per_run = {rid: Experiment.from_json(t).method_options
               for rid, t in df.drop_duplicates("run_id")[["run_id", "config"]].itertuples(index=False)}
    return df["run_id"].map(per_run).fillna("")


def subset_note(df: pd.DataFrame) -> str:
    """One sentence saying over which test images the accuracies under attack are, when not all of them (empty
    when every attacked row is over the whole test set, or the rows predate the n_eval column)."""
    d = last_epoch(df)
    attacked = d[adversarial(d) & d["eval_subset"].str.startswith("stratified:")]
    if attacked.empty:
        return ""
    clean = d[(d["split"] == "test") & (d["attack"] == "none") & (d["metric"] == "acc")]
    total = clean.groupby("dataset")["n_eval"].max()
    parts = []
    for (ds, subset), g in attacked.groupby(["dataset", "eval_subset"]):
        n, of = int(g["n_eval"].iloc[0]), total.get(ds)
        whole = f" of the {int(of):,} test images" if of is not None and not pd.isna(of) else " test images"
        parts.append(f"{ds}: a class-stratified {n:,}{whole} (subset {subset.removeprefix('stratified:')})")
    return ("Accuracies under attack (white-box, black-box, worst) are over " + "; ".join(parts)
            + ", the same images for every run on that data set; clean accuracies are over the whole test set.")


def summary_markdown(summary: pd.DataFrame, percent: bool = True, full: bool = False) -> str:
    """A readable table: only the config columns that vary, metrics as mean ± std (accuracies in %).

    Unless ``full``, only the clean metrics, memorization and the white-box accuracy under attack are shown
    (per norm, the per-example worst case over its attacks where several ran); top-5, black-box and per-attack columns
    stay in summary.csv and the robust-accuracy and paper tables.
    """
    if summary.empty:
        return "(no finished runs)\n"
    varying = [c for c in summary.columns[:summary.columns.get_loc("n_seeds")]
               if not c.endswith((" mean", " std")) and summary[c].nunique() > 1] or ["method"]
    if (summary["method"] == "external").any() and "model" not in varying:  # your own model: say which one
        varying = ["model", *varying]
    names = [c[:-5] for c in summary.columns if c.endswith(" mean")]
    if not full:
        names = [n for n in names if "top5" not in n and n != "train_clean acc" and not n.startswith("bb:")]
        # per norm: its worst case where several of its attacks ran, in place of their own columns
        worsts = {w for w in WORST if any(n.startswith(f"{w} ") for n in names)}
        covered = {WORST[w] for w in worsts}
        names = [n for n in names if n.split(" ")[0] in worsts or attack_norm(n.split(" ")[0]) not in covered]
    head = varying + names + ["seeds"] + (["checks failed"] if "checks failed" in summary else [])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for _, r in summary.iterrows():
        cells = [f"{r[c]:g}" if isinstance(r[c], float) else str(r[c]) for c in varying]
        for n in names:
            m, s = r[f"{n} mean"], r[f"{n} std"]
            scale = percent_scale(n) if percent else 1.0
            cells.append("" if pd.isna(m) else f"{m * scale:.2f}" + ("" if pd.isna(s) else f" ± {s * scale:.2f}"))
        cells.append(str(int(r["n_seeds"])))
        if "checks failed" in summary:
            cells.append(str(int(r["checks failed"])))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
