"""The results contract: the columns of runs.csv, atomic writes, schema-checked loading and summaries."""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import math
import os
import platform
import re
import socket
import subprocess
from pathlib import Path

import pandas as pd
import torch
from filelock import FileLock

from . import __version__

# the atomic writes live in their own module (data and training use them too); kept importable from here
from .atomic import atomic_file, atomic_write_bytes, atomic_write_text, temporary_name  # noqa: F401
from .attacks import WORST, attack_norm
from .config import NOT_HASHED, SCHEDULES, Experiment, fmt_eps
from .models import channels_last

CONFIG_COLUMNS = ["run_id", "preset", "dataset", "model", "method", "alpha", "dropout", "noise", "seed",
                  "epochs", "batch_size", "lr", "weight_decay", "schedule"]
MEASURE_COLUMNS = ["epoch", "split", "attack", "eps", "metric", "value"]
PROVENANCE_COLUMNS = ["torch", "device", "git_rev", "created_at"]
# Added after the design sketch's contract (appended, never renamed): the full config as JSON so a row
# alone says how to rerun it, the command line that produced it and the package version.
# ``resumed_from``: empty for a run trained in one environment, else which epochs ran under which device,
# thread count and torch (they change the numbers, not the run id); added later, so a file without it loads
# with it empty.
# ``data_sha``: the fingerprint of the data set's content the run was measured on (ImageData.fingerprint), so
# a finished run whose data changed is noticed although its id (the config) is the same.
# ``n_eval``: how many images the row's value is over; ``eval_subset``: which ones, ``all`` of the split or
# ``stratified:<sha>`` (the attacked subset, data.attack_subset, when --attack-samples is below the test set);
# ``eps_255``: the epsilon in /255 units (``eps`` is the fraction of the [0, 1] pixel range: 8/255 = 0.031373).
# Added in 0.4.0: older files load with n_eval and eval_subset empty and eps_255 computed from eps.
# ``norm``: the threat model of a row's attack, "Linf" or "L2" (white-box, black-box ``bb:``, ``worst`` and
# ``worst_l2``), empty for every other row; an L2 row's ``eps`` is its L2 radius in [0, 1] pixel space and its
# ``eps_255`` is empty (a radius has no /255 form). Added with the L2 attacks: older files load with it filled in.
EXTRA_COLUMNS = ["config", "command", "package_version", "resumed_from", "data_sha", "n_eval", "eval_subset",
                 "eps_255", "norm"]
MAY_BE_EMPTY = {"resumed_from", "data_sha", "n_eval", "eval_subset", "norm"}
# every run written by 0.2.0 or later ends with this row: the number of rows the run has, itself included, so a
# runs.csv that lost lines is noticed and the run redone instead of counted as finished
ROWS_MARKER = "rows_in_run"
MARKED_SINCE = (0, 2, 0)
# metrics that are fractions (and must lie in [0, 1]); others are checked to be finite and non-negative
FRACTIONS = re.compile(r"^(acc.*|top5_acc|ece|memorized.*|noise_realized|check:.*)$")
COLUMNS = CONFIG_COLUMNS + MEASURE_COLUMNS + PROVENANCE_COLUMNS + EXTRA_COLUMNS
KEY = ["run_id", "epoch", "split", "attack", "eps", "metric"]
SPLITS = {"train", "train_clean", "train_corrupted", "val", "test"}
NUMERIC = ["alpha", "dropout", "noise", "seed", "epochs", "batch_size", "lr", "weight_decay", "epoch", "eps",
           "value", "eps_255"]
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
    layout = ", channels_last" if channels_last(device) else ""
    return f"cpu ({platform.machine()}, {torch.get_num_threads()} threads{layout})"


def now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def to_frame(exp: Experiment, rows: list[dict], *, device: str, command: str, rev: str,
             resumed_from: str = "", data_sha: str = "") -> pd.DataFrame:
    """A run's rows with its config and provenance, ended by the ``rows_in_run`` marker."""
    cfg = exp.to_dict()
    common = {c: cfg[c] for c in CONFIG_COLUMNS if c != "run_id"}
    common.update(run_id=exp.run_id, torch=torch.__version__, device=device, git_rev=rev, created_at=now(),
                  config=exp.to_json(), command=command, package_version=__version__, resumed_from=resumed_from,
                  data_sha=data_sha)
    marker = {"epoch": exp.epochs, "split": "train", "attack": "none", "eps": 0.0, "metric": ROWS_MARKER,
              "value": len(rows) + 1}
    df = pd.DataFrame([{"n_eval": None, "eval_subset": "", **common, **r} for r in [*rows, marker]])
    df["n_eval"] = df["n_eval"].astype("Int64")  # a count: written as 1000, not 1000.0
    df["eval_subset"] = df["eval_subset"].fillna("")
    df["norm"] = df["attack"].map(attack_norm)
    df["eps_255"] = eps_255(df["eps"]).where(df["norm"] != "L2")
    return df[COLUMNS]


def eps_255(eps: pd.Series) -> pd.Series:
    """Epsilon as a fraction of the pixel range -> in /255 units (0.031373 -> 8.0)."""
    return (pd.to_numeric(eps) * 255).round(3)


def fmt_row_eps(attack: str, eps: float) -> str:
    """A row's epsilon as tables name it: '8/255' for L-infinity, 'L2=0.5' for an L2 radius."""
    return f"L2={eps:g}" if attack_norm(attack) == "L2" else fmt_eps(round(eps * 255, 3))


FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def neutralize(value):
    """A text cell that a spreadsheet would run as a formula gets a leading quote (OWASP's CSV injection rule)."""
    return "'" + value if isinstance(value, str) and value.startswith(FORMULA_START) else value


def atomic_write_csv(df: pd.DataFrame, path: Path) -> None:
    text_cols = [c for c in df.columns if df[c].dtype == object]
    if text_cols:
        df = df.assign(**{c: df[c].map(neutralize) for c in text_cols})
    atomic_write_text(path, df.to_csv(index=False, float_format="%.6g"))


def results_lock(path: Path) -> FileLock:
    """The lock every writer of the results files in ``path``'s folder holds while it reads, changes and
    writes them (runs.csv, failures.csv): processes on one --out, also on several machines sharing it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return FileLock(path.parent / ".results.lock")


def _line(df: pd.DataFrame, mask) -> int:
    """The file line of the first row where ``mask`` holds (the header is line 1)."""
    return int(pd.Series(mask, index=df.index).to_numpy().argmax()) + 2


def load_runs(path: str | Path, strict: bool = True) -> pd.DataFrame:
    """Read a runs.csv and check it against the contract; errors name the file, line, column and value.

    ``strict``: a damaged run (lost rows, a non-finite or impossible value, see :func:`damaged_runs`) is an
    error; the suite reads with ``strict=False`` and redoes such runs instead.
    """
    path = Path(path)
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8")
    except pd.errors.EmptyDataError:
        raise ResultsError(f"{path}: the file is empty; expected a header with columns {', '.join(COLUMNS)}") from None
    except pd.errors.ParserError as e:
        raise ResultsError(f"{path}: not a well-formed CSV ({e}); was the file truncated?") from e
    except UnicodeDecodeError as e:
        raise ResultsError(f"{path}: not UTF-8 text (byte {e.start}: {e.reason}); the file is damaged") from None
    for c in sorted(MAY_BE_EMPTY | {"eps_255"}, key=COLUMNS.index):  # files written before the column existed
        if c not in df.columns and len(df.columns) >= COLUMNS.index(c) and list(df.columns[:COLUMNS.index(c)]) \
                == COLUMNS[:COLUMNS.index(c)]:
            df.insert(COLUMNS.index(c), c, "")
            if c == "eps_255":
                df[c] = eps_255(pd.to_numeric(df["eps"], errors="coerce")).map("{:g}".format)  # eps is checked next
            if c == "norm":  # before the L2 attacks every attack was L-infinity
                df[c] = df["attack"].map(attack_norm) if "attack" in df else ""
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise ResultsError(f"{path}: missing column(s) {', '.join(missing)}; runs.csv needs {', '.join(COLUMNS)}")
    if list(df.columns[:len(COLUMNS)]) != COLUMNS:
        raise ResultsError(f"{path}: columns out of order; expected {', '.join(COLUMNS)} first")
    empty = df[[c for c in COLUMNS if c not in MAY_BE_EMPTY | {"eps_255"}]].eq("")
    if empty.any(axis=None):
        row = empty.any(axis=1)
        col = empty.columns[empty[row].iloc[0].to_numpy()][0]
        raise ResultsError(f"{path}: line {_line(df, row)} has no value in column {col!r}; was the file truncated?")
    wrong = df["norm"] != df["attack"].map(attack_norm)
    if wrong.any():
        raise ResultsError(f"{path}: line {_line(df, wrong)}, column 'norm' holds {df['norm'][wrong].iloc[0]!r}, not "
                           f"the norm of attack {df['attack'][wrong].iloc[0]!r}; was the file edited?")
    no_255 = df["eps_255"].eq("") & df["norm"].eq("L2")  # an L2 radius has no /255 form
    empty = df["eps_255"].eq("") & ~no_255
    if empty.any():
        raise ResultsError(f"{path}: line {_line(df, empty)} has no value in column 'eps_255', which only L2 rows "
                           "leave empty; was the file edited?")
    for c in NUMERIC:
        num = pd.to_numeric(df[c], errors="coerce")
        bad = num.isna() & (df[c].str.lower() != "nan") & ~(no_255 if c == "eps_255" else False)
        if bad.any():
            raise ResultsError(f"{path}: line {_line(df, bad)}, column {c!r} holds {df[c][bad].iloc[0]!r}, "
                               f"not a number; was the file truncated or edited?")
        df[c] = num
    n_eval = pd.to_numeric(df["n_eval"], errors="coerce")
    bad = (n_eval.isna() & df["n_eval"].ne("")) | (n_eval.notna() & ((n_eval < 1) | (n_eval % 1 != 0)))
    if bad.any():
        raise ResultsError(f"{path}: line {_line(df, bad)}, column 'n_eval' holds {df['n_eval'][bad].iloc[0]!r}, "
                           "not a count of images (an integer >= 1, or empty)")
    df["n_eval"] = n_eval.astype("Int64")
    _check_names(df, path)
    dup = df.duplicated(KEY)
    if dup.any():
        raise ResultsError(f"{path}: line {_line(df, dup)} repeats the measurement "
                           f"{dict(df.loc[dup.idxmax(), KEY])} of an earlier row")
    if strict:
        bad = damaged_runs(df)
        if bad:
            rid, reason = next(iter(bad.items()))
            raise ResultsError(f"{path}: run {rid} {reason}; the file was damaged or edited. Rerun the suite "
                               f"command that wrote it (it redoes damaged runs), or remove that run's rows")
    return df


NAME = re.compile(r"^[A-Za-z0-9_.:\-]+$")  # presets, metrics, attacks: what the suite itself writes
# common-corruption rows: computed (corrupt:NAME:S), or CIFAR-10-C / CIFAR-100-C's files (c10c:, c100c:)
CORRUPTION_PREFIXES = ("corrupt:", "c10c:", "c100c:")


def adversarial(df: pd.DataFrame) -> pd.Series:
    """Rows measured under an attack (white- or black-box, or the per-example worst case): not clean, not a
    sanity check, not a common corruption."""
    return ~df["attack"].isin(["none", "check"]) & ~df["attack"].str.startswith(CORRUPTION_PREFIXES)


def corrupted(df: pd.DataFrame) -> pd.Series:
    """Rows measured under one common corruption at one severity (not their mean)."""
    return df["attack"].str.startswith(CORRUPTION_PREFIXES) & ~df["attack"].str.endswith(":mean")


def corruption_parts(df: pd.DataFrame) -> pd.DataFrame:
    """``corrupted`` rows with their attack ``<source>:<corruption>:<severity>`` as three columns."""
    parts = df["attack"].str.split(":")
    return df.assign(source=parts.str[0], corruption=parts.str[1], severity=parts.str[2].astype(int))


def _check_names(df: pd.DataFrame, path: Path) -> None:
    """Text columns hold only what the suite can write (so nothing a spreadsheet or a plot would interpret
    reaches a table), and each run's config is valid JSON."""
    from .attacks import ATTACKS
    from .corruptions import SOURCES
    from .data import DATASETS, split_spec
    from .methods import METHODS
    from .models import MODELS, is_model_name

    attacks = set(ATTACKS) | {"none", "check", *WORST}
    rules = {
        "split": (lambda v: v in SPLITS, f"one of {', '.join(sorted(SPLITS))}"),
        "method": (lambda v: v in METHODS, f"a method ({', '.join(METHODS)})"),
        "model": (is_model_name, f"a model ({', '.join(MODELS)}, tv:NAME, timm:NAME)"),
        "dataset": (lambda v: (split_spec(v)[0] in DATASETS or v in SOURCES or v.startswith("tensors:"))
                    and not v.startswith(FORMULA_START),
                    f"a data set ({', '.join(DATASETS)}, imagefolder:PATH, cifar10c, cifar100c, tensors:SHA)"),
        "attack": (lambda v: (v.removeprefix("bb:") in attacks or v.startswith(CORRUPTION_PREFIXES)
                              or v.removeprefix("bb:").startswith("ta:")) and NAME.match(v) is not None,
                   "an attack name (fgsm, bb:pgd, ta:NAME, none, check, worst, worst_l2) or corruption "
                   "(corrupt:NAME:S)"),
        "norm": (lambda v: v in ("", "Linf", "L2"), "Linf, L2 or empty"),
        "preset": (lambda v: NAME.match(v.removesuffix("/surrogate")) is not None, "letters, digits, _ . : -"),
        "metric": (lambda v: NAME.match(v) is not None, "letters, digits, _ . : -"),
        "schedule": (lambda v: v in SCHEDULES, ", ".join(SCHEDULES)),
    }
    for col, (ok, allowed) in rules.items():
        values = df[col].unique()
        bad = [v for v in values if not ok(v)]
        if bad:
            raise ResultsError(f"{path}: line {_line(df, df[col] == bad[0])}, column {col!r} holds {bad[0]!r}, "
                               f"which the suite does not write (expected {allowed}); was the file edited?")
    for text in df["config"].unique():
        try:
            Experiment.from_json(text)
        except (ValueError, TypeError) as e:
            raise ResultsError(f"{path}: line {_line(df, df['config'] == text)}, column 'config' is not a valid "
                               f"experiment ({e.__class__.__name__}: {e}); was the file edited?") from None


def _version(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(p) for p in str(text).split(".")[:3])
    except ValueError:
        return (0,)


def damaged_runs(df: pd.DataFrame) -> dict[str, str]:
    """run_id -> what is wrong with its rows: fewer rows than its ``rows_in_run`` marker (or no marker where
    the writing version always adds one), or a value that no evaluation can produce (non-finite, a fraction
    outside [0, 1], a negative loss)."""
    out: dict[str, str] = {}
    finite = df["value"].map(lambda v: math.isfinite(v))
    frac = df["metric"].str.match(FRACTIONS)
    impossible = ~finite | (frac & ((df["value"] < 0) | (df["value"] > 1))) | (~frac & (df["value"] < 0))
    for rid, g in df[impossible].groupby("run_id", sort=False):
        r = g.iloc[0]
        out[rid] = (f"has an impossible value {float(r['value']):g} for {r['split']} {r['attack']} {r['metric']} "
                    f"(line {int(g.index[0]) + 2})")
    for rid, g in df.groupby("run_id", sort=False):
        if rid in out:
            continue
        marker = g[g["metric"] == ROWS_MARKER]["value"]
        if len(marker) and int(marker.iloc[0]) != len(g):
            out[rid] = f"has {len(g)} of its {int(marker.iloc[0])} rows"
        elif not len(marker) and _version(g["package_version"].iloc[0]) >= MARKED_SINCE:
            out[rid] = f"has lost its {ROWS_MARKER} row ({len(g)} rows left)"
    return out


def merge_run(path: Path, run_rows: pd.DataFrame) -> pd.DataFrame:
    """Replace this run's rows in ``path``, under the results lock (other processes may write the same file)
    and atomically, so a results file never holds a row twice or loses another writer's run."""
    with results_lock(path):
        old = load_runs(path, strict=False) if path.exists() else pd.DataFrame(columns=COLUMNS)
        ids = set(run_rows["run_id"])
        merged = pd.concat([old[~old["run_id"].isin(ids)], run_rows], ignore_index=True) if len(old) else run_rows
        merged = merged.sort_values(["preset", "run_id", "epoch"], kind="stable").reset_index(drop=True)
        atomic_write_csv(merged, path)
    return merged


def finished_ids(path: Path) -> set[str]:
    """Runs whose rows are complete and plausible (damaged ones are to be redone)."""
    if not path.exists():
        return set()
    df = load_runs(path, strict=False)
    return set(df["run_id"]) - set(damaged_runs(df))


def read_failures(path: Path) -> pd.DataFrame:
    """failures.csv, or an empty frame when it is absent, empty or unreadable (it is rewritten whole)."""
    try:
        old = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError):
        return pd.DataFrame(columns=FAILURE_COLUMNS)
    return old if "run_id" in old.columns else pd.DataFrame(columns=FAILURE_COLUMNS)


def record_failure(path: Path, exp: Experiment, reason: str) -> None:
    rec = {c: v for c, v in exp.to_dict().items() if c in FAILURE_COLUMNS}
    rec.update(run_id=exp.run_id, reason=reason, created_at=now(), config=exp.to_json())
    new = pd.DataFrame([rec])[FAILURE_COLUMNS]
    with results_lock(path):
        old = read_failures(path)
        if len(old):
            new = pd.concat([old[old["run_id"] != exp.run_id], new], ignore_index=True)
        atomic_write_csv(new, path)


def clear_failure(path: Path, run_id: str) -> None:
    with results_lock(path):
        if path.exists():
            old = read_failures(path)
            rest = old[old["run_id"] != run_id]
            if len(rest) != len(old) or not len(old):
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


def headline(final: pd.DataFrame) -> pd.DataFrame:
    """The headline measurements among final rows, each named (``metric_name``) in a ``name`` column."""
    mean_corruption = final["attack"].str.startswith(CORRUPTION_PREFIXES) & final["attack"].str.endswith(":mean")
    m = final[final["metric"].isin(SUMMARY_METRICS) & final["split"].isin(SUMMARY_SPLITS)
              & (final["attack"] != "check") & (~((final["attack"] != "none") & (final["eps"] == 0))
                                                | mean_corruption)]
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
            scale = 100.0 if percent and any(k in n for k in ("acc", "memorized", "ece", "noise_realized")) else 1.0
            cells.append("" if pd.isna(m) else f"{m * scale:.2f}" + ("" if pd.isna(s) else f" ± {s * scale:.2f}"))
        cells.append(str(int(r["n_seeds"])))
        if "checks failed" in summary:
            cells.append(str(int(r["checks failed"])))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------- one trainer per run
OWNER = "owner.json"


class RunBusy(Exception):
    """Another process (maybe on another machine sharing --out) holds this run's lock: it is training it."""


def run_owner(run_dir: Path) -> str:
    """Who holds a run's lock, from the note the holder leaves: 'pid 123 on host h since <time>'."""
    try:
        o = json.loads((run_dir / OWNER).read_text())
        return f"pid {o['pid']} on host {o['host']} since {o['since']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "another process"


@contextlib.contextmanager
def run_lock(run_dir: Path, wait: bool = False):
    """Hold ``run_dir``'s lock while training or redoing the run: at most one process works on a run at a time.

    Without ``wait`` a held lock raises :class:`RunBusy` at once; with it the call waits for the holder.
    """
    from filelock import Timeout

    run_dir.mkdir(parents=True, exist_ok=True)
    lock = FileLock(run_dir / ".lock")
    try:
        lock.acquire(timeout=-1 if wait else 0)
    except Timeout:
        raise RunBusy(run_owner(run_dir)) from None
    try:
        atomic_write_text(run_dir / OWNER, json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                                       "since": now()}))
        yield
    finally:
        with contextlib.suppress(OSError):
            (run_dir / OWNER).unlink()
        lock.release()
