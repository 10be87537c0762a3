"""What the suite writes after a grid: summary.csv/.md, the paper-shaped tables, plots, the report."""

from __future__ import annotations

import sys
from dataclasses import fields
from pathlib import Path

from robustbench_mix.core.atomic import atomic_write_text
from robustbench_mix.core.units import fmt_eps
from robustbench_mix.evaluation.checks import failed_checks, unchecked
from robustbench_mix.experiment.experiment import Experiment
from robustbench_mix.experiment.grids import Suite
from robustbench_mix.experiment.presets import PRESETS
from robustbench_mix.reports import reference
from robustbench_mix.reports.plots import training_curves
from robustbench_mix.reports.report import checks_markdown, write_report
from robustbench_mix.reports.tables import TABLES
from robustbench_mix.store.summary import subset_note, summarize, summary_markdown
from robustbench_mix.store.write import atomic_write_csv


def _note(text: str) -> str:
    return f"\n{text}\n" if text else ""


def write_outputs(df, suite: Suite, runs: list[Experiment], out: Path, seconds: float) -> None:
    """summary.csv/.md, the suite's paper-shaped tables and plots; print this invocation's summary."""
    summary = summarize(df)
    atomic_write_csv(summary, out / "summary.csv")
    atomic_write_text(out / "summary.md",
        f"# {suite.name}: summary\n\n{describe_suite(suite)}. Accuracies, memorized and ECE in %, mean ± std over "
        f"seeds; epsilons in /255; 'checks failed' counts failed robustness sanity checks (each kind below).\n\n"
        + summary_markdown(summary) + _note(subset_note(df)) + _note(checks_markdown(df)))
    training_curves(df, out / "curves.png")
    ids = {r.run_id for r in runs}
    print(f"\n{suite.name}: {len(runs)} runs, {seconds:.0f}s; eps: "
          f"{', '.join(fmt_eps(e) for e in suite.base.eps)}; results in {out}/\n")
    mine = df[df["run_id"].isin(ids)]
    print(summary_markdown(summarize(mine)) + _note(subset_note(mine)))
    for name in dict.fromkeys((*suite.tables, "corruptions")):  # the last writes nothing without corruption rows
        md = TABLES.get(name)(df, out)
        if md:
            print(md)
    write_report(out)
    print_reference_check(df[df["run_id"].isin(ids)], suite.name, out)
    for rid, check in failed_checks(df[df["run_id"].isin(ids)]):
        print(f"WARNING: run {rid}: robustness check {check!r} failed; its numbers may not be trustworthy "
              f"(see runs.csv rows with attack 'check')", file=sys.stderr)
    for rid, check, why in unchecked(df[df["run_id"].isin(ids)]):
        print(f"note: run {rid}: robustness check {check!r} had nothing to compare ({why}): neither passed nor "
              "failed", file=sys.stderr)


def describe_suite(suite: Suite) -> str:
    """The preset's description, and every flag that overrode it: a preset called 'the paper's recipe' run with
    another batch size or data set must not be described as the paper's recipe."""
    preset = PRESETS.get(suite.name)
    if preset is None:
        return suite.description
    changed = [f"{f.name} {getattr(suite.base, f.name)} (preset: {getattr(preset.base, f.name)})"
               for f in fields(Experiment) if f.name not in ("preset", "device")
               and getattr(suite.base, f.name) != getattr(preset.base, f.name)]
    for name in ("noise", "seeds"):
        if getattr(suite, name) != getattr(preset, name):
            changed.append(f"{name} {', '.join(f'{v:g}' for v in getattr(suite, name))} (preset: "
                           f"{', '.join(f'{v:g}' for v in getattr(preset, name))})")
    if (suite.variants, suite.by_noise) != (preset.variants, preset.by_noise):
        changed.append("methods (see the method, alpha and dropout columns)")
    return suite.description + (f"; overridden here: {', '.join(changed)}" if changed else "")


def print_reference_check(df, preset: str, out: Path) -> None:
    """Ours against the committed reference of the same preset (reference_check.csv / .md in ``out``)."""
    if out.resolve() == (reference.REFERENCE_DIR / preset).resolve():
        return  # regenerating the reference itself
    check = reference.reference_check(df, preset)
    if check is None:
        print(reference.describe_missing(preset))
    elif check.empty:
        print(f"(none of these configurations is in the committed reference results/reference/{preset}/)\n")
    else:
        md = reference.to_markdown(check, preset)
        atomic_write_csv(check, out / "reference_check.csv")
        atomic_write_text(out / "reference_check.md", f"# {preset}: against the committed reference\n\n{md}")
        print(md)
