"""How a run's numbers compare with the committed reference results of the same preset.

The repository keeps reference results in ``results/reference/<preset>/`` (where the default run never
writes). After a run the suite aligns its configurations with the reference's (``compare.compare``: by
configuration, never by row order) and prints, per headline metric, ours, the reference, the difference and
whether it is within ``TOLERANCE``.

Why a tolerance and not equality: on the CPU a run is bit-identical only on the same kind of processor, with
the same thread count and the same torch. Other thread counts or CPU kernels (AVX2 against AVX-512, another
vendor) change the floating-point sums, and 30 epochs of training amplify that into differences the size of
a change of seed (docs/reliability.md gives the measurement).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from robustbench_mix.evaluation.metrics import reference_metrics
from robustbench_mix.reports.compare import compare
from robustbench_mix.store.load import load_results
from robustbench_mix.store.schema import ResultsError

REFERENCE_DIR = Path(__file__).resolve().parents[2] / "results" / "reference"
# percentage points, for accuracies, memorized fraction and ECE: 1.3x the largest difference measured between
# five CPU environments (two processors, 1 and 2 threads, AVX2 and AVX-512 kernels) for the default preset,
# 4.6 points (mixup at 40% noise, worst case at 8/255), itself below that metric's seed-to-seed std (6.0)
TOLERANCE = 6.0
CHECKED = reference_metrics()  # metrics in % (NLL has no common scale to hold a tolerance in)


def reference_check(ours: pd.DataFrame, preset: str, reference_dir: Path | None = None) -> pd.DataFrame | None:
    """One row per configuration and headline metric present in both: ours, reference, diff (points), within.

    None when there is no committed reference for ``preset`` (e.g. an installed package without the repository).
    """
    path = (reference_dir or REFERENCE_DIR) / preset / "runs.csv"
    if not path.exists():
        return None
    try:
        ref = load_results(path)
    except ResultsError:
        return None
    table, _, _ = compare(ref, ours)
    if table.empty:
        return table
    table = table[table["metric"].str.split(" ").str[-1].isin(CHECKED)]
    out = pd.DataFrame({"configuration": table["config"], "metric": table["metric"],
                        "ours": 100 * table["b_mean"], "ours_seeds": table["b_seeds"],
                        "reference": 100 * table["a_mean"], "reference_seeds": table["a_seeds"],
                        "diff": 100 * table["diff"]})
    return out.assign(within=out["diff"].abs() <= TOLERANCE).reset_index(drop=True)


def headline_only(check: pd.DataFrame) -> pd.DataFrame:
    """The lines worth printing: clean test accuracy, memorization and the worst case under attack (or each
    attack where only one ran); every line stays in the CSV."""
    m = check["metric"]
    worst = m.str.startswith("worst ")
    keep = m.isin(["test acc", "train_corrupted memorized"]) | worst
    if not worst.any():
        keep |= m.str.endswith(" acc") & ~m.str.startswith(("test", "val", "train", "bb:"))
    return check[keep]


def to_markdown(check: pd.DataFrame, preset: str) -> str:
    n_out = int((~check["within"]).sum())
    lines = [f"Against the committed reference results/reference/{preset}/ (values in %; within: |diff| <= "
             f"{TOLERANCE:g} points; bit-identical only on the same CPU kind, thread count and torch): "
             f"{len(check) - n_out} of {len(check)} numbers (accuracies, memorized, ECE) within tolerance"
             + (f", {n_out} outside" if n_out else "") + "; the headline ones below, all in reference_check.csv.",
             "",
             "| configuration | metric | ours | reference | diff | within |", "|---|---|---|---|---|---|"]
    for _, r in headline_only(check).iterrows():
        lines.append(f"| {r['configuration']} | {r['metric']} | {r['ours']:.2f} | {r['reference']:.2f} | "
                     f"{r['diff']:+.2f} | {'yes' if r['within'] else '**no**'} |")
    return "\n".join(lines) + "\n"


def describe_missing(preset: str) -> str:
    return f"(no committed reference for preset {preset!r} in {REFERENCE_DIR}/; nothing to compare with)\n"

