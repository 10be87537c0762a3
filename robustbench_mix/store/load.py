"""Reading runs.csv: schema-checked loading with errors naming the file, line, column and value."""

from __future__ import annotations

import io
import json
import math
import re
import sys
from pathlib import Path

import pandas as pd

from robustbench_mix.attacks.base import ATTACKS, WORST, attack_norm
from robustbench_mix.core.units import Norm
from robustbench_mix.evaluation.metrics import is_fraction
from robustbench_mix.experiment.experiment import SCHEDULES, Experiment, plugin_entries
from robustbench_mix.store.schema import (
    COLUMNS,
    CORRUPTION_PREFIXES,
    FORMULA_START,
    KEY,
    MARKED_SINCE,
    MAY_BE_EMPTY,
    NUMERIC,
    ROWS_MARKER,
    SPLITS,
    ResultsError,
    eps_255,
)


def _line(df: pd.DataFrame, mask) -> int:
    """The file line of the first row where ``mask`` holds (the header is line 1)."""
    return int(pd.Series(mask, index=df.index).to_numpy().argmax()) + 2


def load_runs(path: str | Path, strict: bool = True, text: str | None = None) -> pd.DataFrame:
    """Read a runs.csv and check it against the contract; errors name the file, line, column and value.

    ``strict``: a damaged run (lost rows, a non-finite or impossible value, see :func:`damaged_runs`) is an
    error; the suite reads with ``strict=False`` and redoes such runs instead. ``text``: the content to check
    instead of the file's (what a writer is about to write there), named as ``path``.
    """
    path = Path(path)
    try:
        df = pd.read_csv(path if text is None else io.StringIO(text), dtype=str, keep_default_na=False,
                         encoding="utf-8")
    except pd.errors.EmptyDataError:
        raise ResultsError(f"{path}: the file is empty; expected a header with columns {', '.join(COLUMNS)}") from None
    except pd.errors.ParserError as e:
        raise ResultsError(f"{path}: not a well-formed CSV ({e}); was the file truncated?") from e
    except UnicodeDecodeError as e:
        raise ResultsError(f"{path}: not UTF-8 text (byte {e.start}: {e.reason}); the file is damaged") from None
    except OSError as e:  # a directory of that name, no permission: not a results file that can be read
        raise ResultsError(f"{path}: cannot be read as a results file ({e.strerror or e})") from None
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
    if df.empty:  # a header alone: no runs (typed as a file with rows is, so callers need no special case)
        return df.astype({c: float for c in NUMERIC}).astype({"n_eval": "Int64"})
    empty = df[[c for c in COLUMNS if c not in MAY_BE_EMPTY | {"eps_255"}]].eq("")
    if empty.any(axis=None):
        row = empty.any(axis=1)
        col = empty.columns[empty[row].iloc[0].to_numpy()][0]
        raise ResultsError(f"{path}: line {_line(df, row)} has no value in column {col!r}; was the file truncated?")
    recorded = recorded_plugins(df)
    unloaded = df["attack"].str.removeprefix("bb:").map(lambda a: f"attack:{a}" in recorded and a not in ATTACKS)
    wrong = (df["norm"] != df["attack"].map(attack_norm)) & ~(unloaded & df["norm"].isin(list(map(str, Norm))))
    if wrong.any():
        raise ResultsError(f"{path}: line {_line(df, wrong)}, column 'norm' holds {df['norm'][wrong].iloc[0]!r}, not "
                           f"the norm of attack {df['attack'][wrong].iloc[0]!r}; was the file edited?")
    no_255 = df["eps_255"].eq("") & df["norm"].eq(str(Norm.L2))  # an L2 radius has no /255 form
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
    _check_names(df, path, recorded)
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


def recorded_plugins(df: pd.DataFrame) -> dict[str, str]:
    """'kind:name' -> 'module@fingerprint' of every plugin entry the rows' configs record (Experiment.plugins)."""
    out: dict[str, str] = {}
    for text in df["config"].unique() if "config" in df else ():
        try:
            out.update(plugin_entries(json.loads(text).get("plugins", "") or ""))
        except (ValueError, AttributeError):  # not a config: _check_names names the line
            pass
    return out


def plugin_notes(df: pd.DataFrame) -> list[str]:
    """What a reader should know of rows made by plugins that are not loaded here (the rows are still read,
    tabulated and compared as data), or by another version of a loaded plugin."""
    from robustbench_mix.corruptions.base import CORRUPTIONS
    from robustbench_mix.data.base import DATASETS
    from robustbench_mix.methods import METHODS
    from robustbench_mix.models.base import MODELS

    registries = {r.kind: r for r in (METHODS, MODELS, ATTACKS, CORRUPTIONS, DATASETS)}
    notes = []
    for key, origin in sorted(recorded_plugins(df).items()):
        kind, name = key.split(":", 1)
        registry = registries.get(kind)
        now = registry.origin(name) if registry is not None else None
        if now is None:
            notes.append(f"the rows of {kind} {name} were made by plugin {origin}, which is not loaded: they are "
                         f"read as data (load it with --plugin to run it)")
        elif str(now) != origin:
            notes.append(f"the rows of {kind} {name} were made by plugin {origin}; the one loaded is {now} (its "
                         "file changed): they are read as data, and new runs get other run ids")
    return notes


def _check_names(df: pd.DataFrame, path: Path, recorded: dict[str, str]) -> None:
    """Text columns hold only what the suite can write (so nothing a spreadsheet or a plot would interpret
    reaches a table), and each run's config is valid JSON. Names of plugin entries the configs record are
    allowed, loaded or not."""
    from robustbench_mix.corruptions import SOURCES
    from robustbench_mix.data.base import DATASETS, split_spec
    from robustbench_mix.methods import METHODS
    from robustbench_mix.models.base import MODELS
    from robustbench_mix.models.families import is_model_name

    attacks = set(ATTACKS) | {"none", "check", *WORST}
    rules = {
        "split": (lambda v: v in SPLITS, f"one of {', '.join(sorted(SPLITS))}"),
        "method": (lambda v: v in METHODS or f"method:{v}" in recorded, f"a method ({', '.join(METHODS)})"),
        "model": (lambda v: is_model_name(v) or f"model:{v}" in recorded,
                  f"a model ({', '.join(MODELS)}, tv:NAME, timm:NAME)"),
        "dataset": (lambda v: (split_spec(v)[0] in DATASETS or v in SOURCES or v.startswith("tensors:")
                               or f"dataset:{v}" in recorded)
                    and not v.startswith(FORMULA_START),
                    f"a data set ({', '.join(DATASETS)}, imagefolder:PATH, cifar10c, cifar100c, tensors:SHA)"),
        "attack": (lambda v: (v.removeprefix("bb:") in attacks or v.startswith(CORRUPTION_PREFIXES)
                              or f"attack:{v.removeprefix('bb:')}" in recorded
                              or v.removeprefix("bb:").startswith("ta:")) and NAME.match(v) is not None,
                   "an attack name (fgsm, bb:pgd, ta:NAME, none, check, worst, worst_l2) or corruption "
                   "(corrupt:NAME:S)"),
        "norm": (lambda v: v in ("", *map(str, Norm)), "Linf, L2 or empty"),
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
    frac = df["metric"].map(is_fraction).astype(bool)
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


def load_results(path: str | Path) -> pd.DataFrame:
    """A runs.csv, or a results directory holding one, with at least one row (what the reading commands need)."""
    p = Path(path)
    if p.is_dir():
        p = p / "runs.csv"
    if not p.exists():
        raise ResultsError(f"{path}: no such results file (give a runs.csv or a directory holding one)")
    if not p.is_file():
        raise ResultsError(f"{p} is {'a directory' if p.is_dir() else 'not a regular file'}, not a results file "
                           "(give a runs.csv or a directory holding one)")
    df = load_runs(p)
    if df.empty:
        raise ResultsError(f"{p}: a header and no rows, so no runs to read (the suite writes rows as runs finish)")
    for note in plugin_notes(df):
        print(f"note: {p}: {note}", file=sys.stderr)
    return df
