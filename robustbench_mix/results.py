"""The results contract: the columns of runs.csv, atomic writes, schema-checked loading and summaries."""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import subprocess
from pathlib import Path

import pandas as pd
import torch

from . import __version__
from .config import NOT_HASHED, Experiment, fmt_eps

CONFIG_COLUMNS = ["run_id", "preset", "dataset", "model", "method", "alpha", "dropout", "noise", "seed",
                  "epochs", "batch_size", "lr", "weight_decay", "schedule"]
MEASURE_COLUMNS = ["epoch", "split", "attack", "eps", "metric", "value"]
PROVENANCE_COLUMNS = ["torch", "device", "git_rev", "created_at"]
# Added after the design sketch's contract (appended, never renamed): the full config as JSON so a row
# alone says how to rerun it, the command line that produced it and the package version.
# ``resumed_from``: empty for a run trained in one environment, else which epochs ran under which device,
# thread count and torch (they change the numbers, not the run id); added later, so a file without it loads
# with it empty.
EXTRA_COLUMNS = ["config", "command", "package_version", "resumed_from"]
MAY_BE_EMPTY = {"resumed_from"}
COLUMNS = CONFIG_COLUMNS + MEASURE_COLUMNS + PROVENANCE_COLUMNS + EXTRA_COLUMNS
KEY = ["run_id", "epoch", "split", "attack", "eps", "metric"]
SPLITS = {"train", "train_clean", "train_corrupted", "val", "test"}
NUMERIC = ["alpha", "dropout", "noise", "seed", "epochs", "batch_size", "lr", "weight_decay", "epoch", "eps",
           "value"]
FAILURE_COLUMNS = ["run_id", "preset", "dataset", "model", "method", "alpha", "dropout", "noise", "seed",
                   "reason", "created_at", "config"]


class ResultsError(ValueError):
    """A results file that does not follow the contract; the message names the file, column or row."""


def git_rev() -> str:
    here = Path(__file__).resolve().parent
    try:
        rev = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=here, capture_output=True,
                             text=True, timeout=5)
        if rev.returncode != 0:
            return "unknown"
        # only the package's own files: results written beside it do not make the code dirty
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", "."], cwd=here,
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return rev.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({platform.machine()}, {torch.get_num_threads()} threads)"


def now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def to_frame(exp: Experiment, rows: list[dict], *, device: str, command: str, rev: str,
             resumed_from: str = "") -> pd.DataFrame:
    cfg = exp.to_dict()
    common = {c: cfg[c] for c in CONFIG_COLUMNS if c != "run_id"}
    common.update(run_id=exp.run_id, torch=torch.__version__, device=device, git_rev=rev, created_at=now(),
                  config=exp.to_json(), command=command, package_version=__version__, resumed_from=resumed_from)
    df = pd.DataFrame([{**common, **r} for r in rows])
    return df[COLUMNS] if len(df) else pd.DataFrame(columns=COLUMNS)


def atomic_write_text(path: Path, text: str) -> None:
    """Write via a temporary file and a rename: a reader (or a killed writer) never leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", newline="") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def atomic_write_csv(df: pd.DataFrame, path: Path) -> None:
    atomic_write_text(path, df.to_csv(index=False, float_format="%.6g"))


def load_runs(path: str | Path) -> pd.DataFrame:
    """Read a runs.csv and check it against the contract; errors name the file, column and row."""
    path = Path(path)
    try:
        df = pd.read_csv(path, dtype={"run_id": str, "attack": str, "git_rev": str}, keep_default_na=False)
    except pd.errors.EmptyDataError:
        raise ResultsError(f"{path}: the file is empty; expected a header with columns {', '.join(COLUMNS)}") from None
    except pd.errors.ParserError as e:
        raise ResultsError(f"{path}: not a well-formed CSV ({e}); was the file truncated?") from e
    for c in MAY_BE_EMPTY:  # files written before the column existed
        if c not in df.columns and len(df.columns) >= COLUMNS.index(c) and list(df.columns[:COLUMNS.index(c)]) \
                == COLUMNS[:COLUMNS.index(c)]:
            df.insert(COLUMNS.index(c), c, "")
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise ResultsError(f"{path}: missing column(s) {', '.join(missing)}; runs.csv needs {', '.join(COLUMNS)}")
    if list(df.columns[:len(COLUMNS)]) != COLUMNS:
        raise ResultsError(f"{path}: columns out of order; expected {', '.join(COLUMNS)} first")
    empty = df[[c for c in COLUMNS if c not in MAY_BE_EMPTY]].astype(str).eq("")
    if empty.any(axis=None):
        i = int(empty.any(axis=1).idxmax())
        col = empty.columns[empty.iloc[i].to_numpy()][0]
        raise ResultsError(f"{path}: line {i + 2} has no value in column {col!r}; was the file truncated?")
    for c in NUMERIC:
        bad = pd.to_numeric(df[c], errors="coerce").isna() & (df[c].astype(str) != "nan")
        if bad.any():
            i = int(bad.idxmax())
            raise ResultsError(f"{path}: row {i + 2} (line {i + 2}), column {c!r} holds {df[c].iloc[i]!r}, "
                               f"not a number; was the file truncated or edited?")
        df[c] = pd.to_numeric(df[c])
    bad_split = ~df["split"].isin(SPLITS)
    if bad_split.any():
        i = int(bad_split.idxmax())
        raise ResultsError(f"{path}: line {i + 2} has split {df['split'].iloc[i]!r}; "
                           f"allowed: {', '.join(sorted(SPLITS))}")
    dup = df.duplicated(KEY)
    if dup.any():
        i = int(dup.idxmax())
        raise ResultsError(f"{path}: line {i + 2} repeats the measurement "
                           f"{dict(df.loc[i, KEY])} of an earlier row")
    return df


def merge_run(path: Path, run_rows: pd.DataFrame) -> pd.DataFrame:
    """Replace this run's rows in ``path`` (atomically), so a results file never holds a row twice."""
    old = load_runs(path) if path.exists() else pd.DataFrame(columns=COLUMNS)
    ids = set(run_rows["run_id"])
    merged = pd.concat([old[~old["run_id"].isin(ids)], run_rows], ignore_index=True) if len(old) else run_rows
    merged = merged.sort_values(["preset", "run_id", "epoch"], kind="stable").reset_index(drop=True)
    atomic_write_csv(merged, path)
    return merged


def finished_ids(path: Path) -> set[str]:
    return set(load_runs(path)["run_id"]) if path.exists() else set()


def record_failure(path: Path, exp: Experiment, reason: str) -> None:
    old = pd.read_csv(path, dtype=str, keep_default_na=False) if path.exists() else None
    rec = {c: v for c, v in exp.to_dict().items() if c in FAILURE_COLUMNS}
    rec.update(run_id=exp.run_id, reason=reason, created_at=now(), config=exp.to_json())
    new = pd.DataFrame([rec])[FAILURE_COLUMNS]
    if old is not None and len(old):
        new = pd.concat([old[old["run_id"] != exp.run_id], new], ignore_index=True)
    atomic_write_csv(new, path)


def clear_failure(path: Path, run_id: str) -> None:
    if path.exists():
        old = pd.read_csv(path, dtype=str, keep_default_na=False)
        rest = old[old["run_id"] != run_id]
        if len(rest) != len(old):
            if len(rest):
                atomic_write_csv(rest, path)
            else:
                path.unlink()


# ------------------------------------------------------------------------------------------ summaries
GROUP = [c for c in CONFIG_COLUMNS if c not in ("run_id", "seed")]
# what does not tell configurations apart when seeds are pooled: the unhashed fields and the seed
NOT_CONFIG = NOT_HASHED | {"seed"}
# The headline metrics; diagnostics (perturbation sizes, gradients, checks) stay in runs.csv only.
SUMMARY_METRICS = {"acc", "top5_acc", "nll", "ece", "memorized", "noise_realized"}
SUMMARY_SPLITS = {"test", "val", "train", "train_corrupted"}


def config_fields(df: pd.DataFrame) -> pd.DataFrame:
    """Every Experiment field of each run (from the ``config`` JSON), indexed by run_id; lists as text."""
    recs = {}
    for rid, text in df.drop_duplicates("run_id")[["run_id", "config"]].itertuples(index=False):
        d = Experiment.from_json(text).to_dict()
        d.pop("device")  # the requested device; the device column says where it really ran
        recs[rid] = {k: (",".join(f"{x:g}" if isinstance(x, float) else str(x) for x in v)
                         if isinstance(v, tuple) else ("" if v is None else v)) for k, v in d.items()}
    out = pd.DataFrame.from_dict(recs, orient="index")
    # a field whose name is also a measurement column (eps) gets a prefix
    return out.rename(columns={c: f"config_{c}" for c in out.columns if c in COLUMNS and c not in CONFIG_COLUMNS})


def group_keys(cfg: pd.DataFrame) -> list[str]:
    """What makes a configuration: every hashed field but the seed, the CSV's own columns first."""
    rest = [c for c in cfg.columns if c not in GROUP and c not in NOT_CONFIG]
    return GROUP + rest


def metric_name(split: str, attack: str, eps: float, metric: str) -> str:
    """'test acc', 'fgsm 8/255 acc', 'train_corrupted memorized'."""
    if attack == "none":
        return f"{split} {metric}"
    return f"{attack} {fmt_eps(round(eps * 255, 3))} {metric}"


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


def headline(final: pd.DataFrame) -> pd.DataFrame:
    """The headline measurements among final rows, each named (``metric_name``) in a ``name`` column."""
    m = final[final["metric"].isin(SUMMARY_METRICS) & final["split"].isin(SUMMARY_SPLITS)
              & (final["attack"] != "check") & ~((final["attack"] != "none") & (final["eps"] == 0))]
    return m.assign(name=[metric_name(*t) for t in zip(m["split"], m["attack"], m["eps"], m["metric"], strict=True)])


def config_key(config_json: str) -> str:
    """What identifies a configuration across files and seeds: the config without seed, preset and device."""
    d = Experiment.from_json(config_json).to_dict()
    return json.dumps({k: v for k, v in d.items() if k not in NOT_CONFIG}, sort_keys=True)


def load_results(path: str | Path) -> pd.DataFrame:
    """A runs.csv, or a results directory holding one."""
    p = Path(path)
    if p.is_dir():
        p = p / "runs.csv"
    if not p.exists():
        raise ResultsError(f"{path}: no such results file (give a runs.csv or a directory holding one)")
    return load_runs(p)


def summarize(df: pd.DataFrame) -> pd.DataFrame:
    """One row per configuration (seeds pooled): ``<metric> mean`` and ``<metric> std`` columns, n_seeds
    and ``checks failed`` (failed sanity checks summed over seeds)."""
    d = last_epoch(df)
    if d.empty:
        return pd.DataFrame(columns=GROUP + ["n_seeds"])
    cfg = config_fields(d)
    keys = group_keys(cfg)
    cfg = cfg[[k for k in keys if k not in GROUP]]
    d = d.join(cfg, on="run_id")
    fails = d[d["attack"] == "check"].assign(failed=lambda t: (t["value"] < 0.5).astype(int))
    m = headline(d)
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


def summary_markdown(summary: pd.DataFrame, percent: bool = True, full: bool = False) -> str:
    """A readable table: only the config columns that vary, metrics as mean ± std (accuracies in %).

    Unless ``full``, only the clean metrics, memorization and the white-box accuracy under attack are shown
    (the per-example worst case over attacks where several ran); top-5, black-box and per-attack columns
    stay in summary.csv and the robust-accuracy and paper tables.
    """
    if summary.empty:
        return "(no finished runs)\n"
    varying = [c for c in summary.columns[:summary.columns.get_loc("n_seeds")]
               if not c.endswith((" mean", " std")) and summary[c].nunique() > 1] or ["method"]
    names = [c[:-5] for c in summary.columns if c.endswith(" mean")]
    if not full:
        names = [n for n in names if "top5" not in n and n != "train_clean acc" and not n.startswith("bb:")]
        if any(n.startswith("worst ") for n in names):
            names = [n for n in names if n.split(" ")[0] in SUMMARY_SPLITS or n.startswith("worst ")]
    head = varying + names + ["seeds"] + (["checks failed"] if "checks failed" in summary else [])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for _, r in summary.iterrows():
        cells = [f"{r[c]:g}" if isinstance(r[c], float) else str(r[c]) for c in varying]
        for n in names:
            m, s = r[f"{n} mean"], r[f"{n} std"]
            scale = 100.0 if percent and any(k in n for k in ("acc", "memorized", "ece", "noise_realized")) else 1.0
            cells.append("" if pd.isna(m) else f"{m * scale:.2f}" + ("" if pd.isna(s) else f" ± {s * scale:.2f}"))
        cells.append(str(int(r["n_seeds"])))
        if "checks failed" in summary:
            cells.append(str(int(r["checks failed"])))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
