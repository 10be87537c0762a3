"""The metrics registry and the clean metrics' definitions: every metric a results row can carry, with the traits
that the store, the summaries, compare and the reference check read. A new metric is one entry here (and, for a
clean metric, one line of :func:`clean_metrics`).

Traits: ``fraction`` (a value in [0, 1]; shown in % and checked to lie in [0, 1] when a runs.csv is read; other
metrics are checked to be finite and >= 0), ``summary`` (a headline measurement: in summary.csv/.md, and so in
compare's and claims' tables), ``reference`` (held to the committed reference's tolerance, in % points), ``label``
(what a table or caption calls it).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from robustbench_mix.core.errors import RunFailed
from robustbench_mix.core.registry import Registry


@dataclass(frozen=True)
class Metric:
    label: str
    fraction: bool = False
    summary: bool = False
    reference: bool = False


METRICS: Registry[Metric] = Registry("metric")
CHECK_PREFIX = "check:"  # check:<name>: a sanity check's outcome, 1 passed, 0 failed (a fraction)
NA_PREFIX = "check_na:"  # check_na:<name>: a check with nothing to compare, neither passed nor failed (value 0)


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
metric("acc_first_restart", "robust accuracy with one restart (the attack evaluated once, on its own)", fraction=True)
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


# ------------------------------------------------------------------------- the clean metrics' definitions
ECE_BINS = 15
# top-5 accuracy is written only where it carries information: with 10 classes it is near 100% for any model
TOP5_MIN_CLASSES = 11


def expected_calibration_error(probs: torch.Tensor, y: torch.Tensor, bins: int = ECE_BINS) -> torch.Tensor:
    """ECE with equal-width confidence bins (Guo et al., 2017)."""
    conf, pred = probs.max(1)
    correct = (pred == y).float()
    idx = torch.clamp((conf * bins).long(), max=bins - 1)
    s_conf = torch.zeros(bins, device=probs.device).index_add_(0, idx, conf)
    s_acc = torch.zeros(bins, device=probs.device).index_add_(0, idx, correct)
    return (s_conf - s_acc).abs().sum() / max(len(y), 1)


def accuracy_metrics(logits: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
    out = {"acc": (logits.argmax(1) == y).float().mean()}
    if logits.shape[1] >= TOP5_MIN_CLASSES:
        top5 = logits.topk(5, dim=1).indices
        out["top5_acc"] = (top5 == y[:, None]).any(1).float().mean()
    return out


def clean_metrics(logits: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
    if not bool(torch.isfinite(logits).all()):  # calibration and NLL of NaN outputs mean nothing
        raise RunFailed("the model's outputs are not finite at evaluation (NaN or inf logits): the weights "
                        "diverged; lower --lr")
    m = accuracy_metrics(logits, y)
    m["nll"] = F.cross_entropy(logits, y)
    m["ece"] = expected_calibration_error(logits.softmax(1), y)
    return m


def memorization_metrics(logits, noisy_y, true_y, corrupted) -> list[tuple[str, str, torch.Tensor]]:
    """Training-set predictions split by whether the label was corrupted (``corrupted``: the labels that
    differ from the true ones, see :func:`data.corrupt_labels`).

    ``memorized``: fraction of corrupted examples predicted as their (wrong) noisy label;
    ``acc``: accuracy against the true labels on each subset.
    """
    pred = logits.argmax(1)
    rows = []
    for split, mask in (("train_clean", ~corrupted), ("train_corrupted", corrupted)):
        if mask.any():
            rows.append((split, "acc", (pred[mask] == true_y[mask]).float().mean()))
    if corrupted.any():
        rows.append(("train_corrupted", "memorized", (pred[corrupted] == noisy_y[corrupted]).float().mean()))
    rows.append(("train", "acc_true", (pred == true_y).float().mean()))  # against the real labels
    rows.append(("train", "acc_noisy", (pred == noisy_y).float().mean()))  # against the labels trained on
    return rows
