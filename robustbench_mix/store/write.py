"""Writing the results files: CSV-injection-safe atomic writes under the results lock, merges, failures.csv."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from filelock import FileLock

from robustbench_mix.core.atomic import atomic_write_text
from robustbench_mix.core.units import FLOAT_FORMAT
from robustbench_mix.experiment.experiment import Experiment
from robustbench_mix.store.load import damaged_runs, load_runs
from robustbench_mix.store.schema import COLUMNS, FAILURE_COLUMNS, FORMULA_START, ResultsError, now


def neutralize(value):
    """A text cell that a spreadsheet would run as a formula gets a leading quote (OWASP's CSV injection rule)."""
    return "'" + value if isinstance(value, str) and value.startswith(FORMULA_START) else value


def csv_text(df: pd.DataFrame) -> str:
    """The CSV text of a results frame, as every results file is written."""
    text_cols = [c for c in df.columns if df[c].dtype == object]
    if text_cols:
        df = df.assign(**{c: df[c].map(neutralize) for c in text_cols})
    return df.to_csv(index=False, float_format=FLOAT_FORMAT)


def atomic_write_csv(df: pd.DataFrame, path: Path) -> None:
    atomic_write_text(path, csv_text(df))


def results_lock(path: Path) -> FileLock:
    """The lock every writer of the results files in ``path``'s folder holds while it reads, changes and
    writes them (runs.csv, failures.csv): processes on one --out, also on several machines sharing it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return FileLock(path.parent / ".results.lock")


def merge_run(path: Path, run_rows: pd.DataFrame) -> pd.DataFrame:
    """Replace this run's rows in ``path``, under the results lock (other processes may write the same file)
    and atomically, so a results file never holds a row twice or loses another writer's run.

    The text to be written is read back first as every command reads runs.csv (:func:`load_runs`): rows that
    would make the file unreadable (two rows under one key, also two that differ only beyond the 6 digits the
    file keeps) are a ResultsError and the file stays as it was."""
    with results_lock(path):
        old = load_runs(path, strict=False) if path.exists() else pd.DataFrame(columns=COLUMNS)
        ids = set(run_rows["run_id"])
        merged = pd.concat([old[~old["run_id"].isin(ids)], run_rows], ignore_index=True) if len(old) else run_rows
        merged = merged.sort_values(["preset", "run_id", "epoch"], kind="stable").reset_index(drop=True)
        text = csv_text(merged)
        try:
            load_runs(path, strict=False, text=text)
        except ResultsError as e:
            raise ResultsError(f"the rows of run {', '.join(sorted(ids))} were not written, since {path} would then "
                               f"be unreadable ({e}); the file is as it was") from None
        atomic_write_text(path, text)
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
