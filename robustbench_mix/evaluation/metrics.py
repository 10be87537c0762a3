"""The metrics registry: every metric a results row can carry, with the traits the store, the summaries, compare
and the reference check read. A new metric is one entry here.

Traits: ``fraction`` (a value in [0, 1]; shown in % and checked to lie in [0, 1] when a runs.csv is read; other
metrics are checked to be finite and >= 0), ``summary`` (a headline measurement: in summary.csv/.md, and so in
compare's and claims' tables), ``reference`` (held to the committed reference's tolerance, in % points), ``label``
(what a table or caption calls it).
"""

from __future__ import annotations

from dataclasses import dataclass

from robustbench_mix.core.registry import Registry


@dataclass(frozen=True)
class Metric:
    label: str
    fraction: bool = False
    summary: bool = False
    reference: bool = False


METRICS: Registry[Metric] = Registry("metric")
CHECK_PREFIX = "check:"  # check:<name>: a sanity check's outcome, 1 passed, 0 failed (a fraction)


def metric(name: str, label: str, **traits) -> None:
    METRICS.register(name)(Metric(label, **traits))


metric("acc", "accuracy", fraction=True, summary=True, reference=True)
metric("top5_acc", "top-5 accuracy", fraction=True, summary=True)
metric("nll", "negative log-likelihood", summary=True)
metric("ece", "expected calibration error", fraction=True, summary=True, reference=True)
metric("memorized", "corrupted labels memorized", fraction=True, summary=True, reference=True)
metric("noise_realized", "labels the corruption changed", fraction=True, summary=True)
metric("acc_noisy", "training accuracy on the (corrupted) training labels", fraction=True)
metric("acc_true", "training accuracy on the true labels", fraction=True)
metric("acc_picked", "accuracy on the picked subset", fraction=True)
metric("memorized_picked", "corrupted labels memorized, picked subset", fraction=True)
metric("acc_attacked_subset", "clean accuracy on the attacked images", fraction=True)
metric("acc_first_restart", "robust accuracy after the first restart alone", fraction=True)
metric("loss", "training loss")
metric("max_linf_255", "largest L-infinity perturbation (/255)")
metric("max_l2", "largest L2 perturbation")
metric("box_violation", "largest step outside [0, 1]")
metric("input_grad_abs_mean", "mean absolute input gradient")
metric("rows_in_run", "rows the run wrote, this one included")


def is_fraction(name: str) -> bool:
    """Whether a metric's values lie in [0, 1]. Unknown names (rows of a later version) are not fractions."""
    if name.startswith(CHECK_PREFIX):
        return True
    return name in METRICS and METRICS.get(name).fraction


def summary_metrics() -> set[str]:
    return {n for n in METRICS if METRICS.get(n).summary}


def reference_metrics() -> set[str]:
    return {n for n in METRICS if METRICS.get(n).reference}


def percent_scale(column: str) -> float:
    """100 for a summary column (``'<what> <metric>'``) whose metric is a fraction, else 1."""
    return 100.0 if is_fraction(column.split(" ")[-1]) else 1.0


def label(name: str) -> str:
    return METRICS.get(name).label if name in METRICS else name
