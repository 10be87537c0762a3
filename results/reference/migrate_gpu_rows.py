"""Bring the two GPU-measured reference directories up to the current results contract, without retraining.

Run once, from the repository root, on 2026-11-28 (no GPU was lent to that session, so these runs could not be
measured again):

    python results/reference/migrate_gpu_rows.py

What it changes in ``quick-h200/runs.csv`` and ``cifar10-jpeg-h200/runs.csv`` (nothing else is edited):

- ``top5_acc`` rows are dropped: both data sets have 10 classes, where top-5 accuracy is near 100% for any
  model; the suite now writes it only for more than 10 classes.
- ``train_clean`` / ``train_corrupted`` rows of quick-h200 were measured when "corrupted" meant every label
  picked for corruption, about 1/10 of which kept their true class. Their metrics are renamed
  ``acc_picked`` / ``memorized_picked`` so that no table mixes them with the current definition (over the
  labels that changed); the values are kept as measured.

Then it regenerates each directory's summary, tables, plots, report and claims with the current code.
"""

from __future__ import annotations

import shlex
from pathlib import Path

from robustbench_mix.cli.claims import main as claims_main
from robustbench_mix.cli.suite_args import build_parser, suite_from_args
from robustbench_mix.reports.outputs import write_outputs
from robustbench_mix.store.load import load_runs
from robustbench_mix.store.write import atomic_write_csv

HERE = Path(__file__).resolve().parent
DIRS = {"quick-h200": [], "cifar10-jpeg-h200": ["--relax", "dataset"]}  # the claims' options where claims.md exists


def migrate(df):
    df = df[df["metric"] != "top5_acc"]
    old = df["split"].isin(["train_clean", "train_corrupted"]) & ~df["metric"].str.endswith("_picked")
    df.loc[old, "metric"] = df.loc[old, "metric"] + "_picked"
    return df.reset_index(drop=True)


def main() -> None:
    for name, claims_args in DIRS.items():
        out = HERE / name
        df = migrate(load_runs(out / "runs.csv"))
        atomic_write_csv(df, out / "runs.csv")
        # the suite as the recorded command built it, so the summary names the flags that overrode the preset
        suite = suite_from_args(build_parser().parse_args(shlex.split(df["command"].iloc[-1])[3:]))
        write_outputs(load_runs(out / "runs.csv"), suite, [], out, 0.0)
        if (out / "claims.md").exists():
            claims_main([str(out), *claims_args])


if __name__ == "__main__":
    main()
