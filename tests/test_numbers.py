"""Tests that check numbers, not only that rows exist: each was written against a bug planted by hand that the
other tests let through (the per-example worst case, ECE's bins and weights, each sanity check's ability to
fail, a non-number in a numeric column of runs.csv)."""

from dataclasses import replace

import pandas as pd
import pytest
import torch

from robustbench_mix.attacks.base import ATTACKS, Attack
from robustbench_mix.data.base import ImageData
from robustbench_mix.data.prepare import prepare
from robustbench_mix.evaluation.checks import check_rows
from robustbench_mix.evaluation.evaluators import ECE_BINS, expected_calibration_error, finish, robustness_rows
from robustbench_mix.experiment.experiment import Experiment
from robustbench_mix.store.load import load_runs
from robustbench_mix.store.schema import NUMERIC, ResultsError

# ------------------------------------------------------------------------------- per-example worst case


class Threshold(torch.nn.Module):
    """Predicts class 1 as soon as pixel 0 or pixel 1 rises above 0: every image of zeros is class 0."""

    def forward(self, x):
        s = x[:, 0, 0, 0] + x[:, 0, 0, 1]
        return torch.stack([torch.zeros_like(s), 1000 * s - 1], 1)


def _flipper(pixel: int, mod: int):
    """An attack that pushes ``pixel`` by eps on the images whose id (pixel 2, in 1/255 steps) is ``mod`` mod 4."""
    def fn(model, x, y, eps, steps=1, step_size=None, loss="ce"):
        ids = torch.round(x[:, 0, 0, 2] * 255).long()
        x_adv = x.clone()
        x_adv[ids % 4 == mod, 0, 0, pixel] += eps
        return x_adv
    return fn


def test_worst_case_is_per_example_over_attacks_not_the_lowest_accuracy(monkeypatch):
    n = 40
    x = torch.zeros(n, 1, 1, 3, dtype=torch.uint8)
    x[:, 0, 0, 2] = torch.arange(n, dtype=torch.uint8)
    y = torch.zeros(n, dtype=torch.long)
    data = prepare(ImageData("toy", x, y, x, y, ["a", "b"], "none"), 0.0, 0.0, 0, torch.device("cpu"))
    monkeypatch.setitem(ATTACKS._items, "flip_a", Attack(_flipper(0, 0), random_start=False, iterative=False))
    monkeypatch.setitem(ATTACKS._items, "flip_b", Attack(_flipper(1, 1), random_start=False, iterative=False))
    exp = Experiment(attacks=("flip_a", "flip_b"), eps=(8.0,), check_eps=0.0)
    rows = finish(robustness_rows(Threshold(), data, exp, 16, progress=False))
    acc = {(r["attack"], round(r["eps"] * 255)): r["value"] for r in rows if r["metric"] == "acc"}
    assert acc[("flip_a", 8)] == pytest.approx(0.75) and acc[("flip_b", 8)] == pytest.approx(0.75)
    assert acc[("worst", 8)] == pytest.approx(0.5)  # a quarter broken by each, different quarters


# --------------------------------------------------------------------------------------------------- ECE
def _ece_reference(conf, correct, bins=ECE_BINS):
    """Guo et al.: bins (k/M, (k+1)/M], weight |B|/n, |accuracy - confidence| per bin; written as a loop."""
    total = 0.0
    for k in range(bins):
        lo, hi = k / bins, (k + 1) / bins
        members = [i for i, c in enumerate(conf) if (lo < c <= hi) or (k == 0 and c == 0)]
        if members:
            acc = sum(correct[i] for i in members) / len(members)
            avg = sum(conf[i] for i in members) / len(members)
            total += len(members) / len(conf) * abs(acc - avg)
    return total


def test_ece_equals_the_binned_definition_on_uneven_bins():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(500, 10, generator=g) * torch.rand(500, 1, generator=g) * 6
    probs = logits.softmax(1)
    y = torch.randint(0, 10, (500,), generator=g)
    conf, pred = probs.max(1)
    ours = expected_calibration_error(probs, y).item()
    ref = _ece_reference(conf.tolist(), (pred == y).float().tolist())
    assert ours == pytest.approx(ref, abs=1e-6)


def test_ece_weights_each_bin_by_its_share_of_examples():
    # 3 examples at 0.95 confidence (all right: gap 0.05) and 1 at 0.55 (wrong: gap 0.55)
    probs = torch.tensor([[0.95, 0.05]] * 3 + [[0.55, 0.45]])
    y = torch.tensor([0, 0, 0, 1])
    assert expected_calibration_error(probs, y).item() == pytest.approx(0.75 * 0.05 + 0.25 * 0.55)


# ----------------------------------------------------------------------------------- sanity checks fail
EXP = Experiment(attacks=("fgsm", "pgd"), eps=(8.0,), check_eps=64.0)


def _passing_rows():
    r = []

    def add(attack, e, metric, value):
        r.append({"split": "test", "attack": attack, "eps": e / 255, "metric": metric, "value": value})

    add("none", 0, "acc_attacked_subset", 0.9)
    for a, accs in (("fgsm", {0: 0.9, 8: 0.5}), ("pgd", {0: 0.9, 8: 0.3, 64: 0.0})):
        for e, v in accs.items():
            add(a, e, "acc", v)
            add(a, e, "max_linf_255", float(e))
            add(a, e, "box_violation", 0.0)
    add("bb:fgsm", 8, "acc", 0.7)
    add("bb:pgd", 8, "acc", 0.6)
    add("none", 0, "input_grad_abs_mean", 0.01)
    return r


def _set(rows, attack, e, metric, value):
    hits = [x for x in rows if x["attack"] == attack and round(x["eps"] * 255) == e and x["metric"] == metric]
    assert len(hits) == 1
    hits[0]["value"] = value
    return rows


BREAKS = {  # check -> a change of the passing rows that must fail it (and only it)
    "eps0_is_clean:pgd": lambda r: _set(r, "pgd", 0, "acc", 0.85),
    "in_ball:fgsm": lambda r: _set(r, "fgsm", 8, "max_linf_255", 8.5),
    "in_ball:pgd": lambda r: _set(r, "pgd", 8, "box_violation", 0.01),
    "monotone_in_eps:pgd": lambda r: _set(r, "pgd", 64, "acc", 0.5),
    "stronger_than_fgsm:pgd": lambda r: _set(r, "pgd", 8, "acc", 0.52),
    "blackbox_weaker:fgsm": lambda r: _set(r, "bb:fgsm", 8, "acc", 0.45),
    "large_eps_breaks:pgd": lambda r: _set(r, "pgd", 64, "acc", 0.2),
    "input_grad_nonzero": lambda r: _set(r, "none", 0, "input_grad_abs_mean", 0.0),
}


def _verdicts(rows, exp=EXP):
    return {x["metric"].removeprefix("check:"): x["value"] for x in check_rows(rows, exp)}


def test_every_check_passes_on_the_passing_rows():
    v = _verdicts(_passing_rows())
    assert set(BREAKS) <= set(v) and all(x == 1.0 for x in v.values()), v


@pytest.mark.parametrize("check", sorted(BREAKS))
def test_each_check_fails_on_an_input_built_to_fail_it(check):
    v = _verdicts(BREAKS[check](_passing_rows()))
    failed = {k for k, x in v.items() if x == 0.0}
    # accuracy rising to 0.5 at 64/255 is also no break at the large epsilon; every other change fails one check
    assert failed == ({check, "large_eps_breaks:pgd"} if check == "monotone_in_eps:pgd" else {check}), failed


def test_checks_tolerate_one_point_of_noise_and_no_more():
    rows = _set(_passing_rows(), "pgd", 8, "acc", 0.509)  # PGD 0.9 points worse than FGSM: noise
    assert _verdicts(rows)["stronger_than_fgsm:pgd"] == 1.0
    assert _verdicts(_set(rows, "pgd", 8, "acc", 0.515))["stronger_than_fgsm:pgd"] == 0.0
    assert _verdicts(_passing_rows(), replace(EXP, check_eps=0.0)).get("large_eps_breaks:pgd") is None


# ----------------------------------------------------------------------------- numeric columns of runs.csv
@pytest.mark.parametrize("column", NUMERIC + ["n_eval"])
def test_a_non_number_in_any_numeric_column_is_refused_naming_it(tmp_path, column):
    load_runs("results/reference/quick/runs.csv").to_csv(tmp_path / "runs.csv", index=False)  # every column
    df = pd.read_csv(tmp_path / "runs.csv", dtype=str, keep_default_na=False)
    df.loc[3, column] = "12abc"
    df.to_csv(tmp_path / "runs.csv", index=False)
    with pytest.raises(ResultsError, match=f"line 5.*'{column}'"):
        load_runs(tmp_path / "runs.csv")
