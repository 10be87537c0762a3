"""The results contract: the columns of runs.csv, their provenance, and a run's rows as a frame."""

from __future__ import annotations

import datetime as _dt
import subprocess
from pathlib import Path

import pandas as pd
import torch

from robustbench_mix.attacks.base import attack_norm
from robustbench_mix.core.units import Norm, eps_255_column
from robustbench_mix.core.units import fmt_row_eps as fmt_norm_eps
from robustbench_mix.core.version import __version__
from robustbench_mix.experiment.experiment import Experiment

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
COLUMNS = CONFIG_COLUMNS + MEASURE_COLUMNS + PROVENANCE_COLUMNS + EXTRA_COLUMNS
KEY = ["run_id", "epoch", "split", "attack", "eps", "metric"]
SPLITS = {"train", "train_clean", "train_corrupted", "val", "test"}
NUMERIC = ["alpha", "dropout", "noise", "seed", "epochs", "batch_size", "lr", "weight_decay", "epoch", "eps",
           "value", "eps_255"]
FAILURE_COLUMNS = ["run_id", "preset", "dataset", "model", "method", "alpha", "dropout", "noise", "seed",
                   "reason", "created_at", "config"]

# a text cell starting so is a formula to a spreadsheet (OWASP's CSV injection rule)
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


class ResultsError(ValueError):
    """A results file that does not follow the contract; the message names the file, column or row."""


def git_rev() -> str:
    here = Path(__file__).resolve().parents[1]  # the package folder
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
    df["eps_255"] = eps_255(df["eps"]).where(df["norm"] != Norm.L2)
    return df[COLUMNS]


def eps_255(eps: pd.Series) -> pd.Series:
    """Epsilon as a fraction of the pixel range -> in /255 units (0.031373 -> 8.0)."""
    return eps_255_column(eps)


def fmt_row_eps(attack: str, eps: float) -> str:
    """A row's epsilon as tables name it: '8/255' for L-infinity, 'L2=0.5' for an L2 radius."""
    return fmt_norm_eps(attack_norm(attack), eps)
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
