"""Tests that check numbers, not only that rows exist: each was written against a bug planted by hand that the
other tests let through (the per-example worst case, ECE's bins and weights, each sanity check's ability to
fail, a non-number in a numeric column of runs.csv)."""

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from helpers import CHECK_EXP, Threshold, check_verdicts, passing_rows, set_value

from robustbench_mix.attacks.base import ATTACKS, Attack
from robustbench_mix.data.base import ImageData
from robustbench_mix.data.prepare import prepare
from robustbench_mix.evaluation.evaluators import finish, robustness_rows
from robustbench_mix.evaluation.metrics import ECE_BINS, clean_metrics, expected_calibration_error
from robustbench_mix.experiment.experiment import Experiment
from robustbench_mix.store.load import load_runs
from robustbench_mix.store.schema import NUMERIC, ResultsError


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


BREAKS = {  # check -> a change of the passing rows that must fail it (and only it)
    "eps0_is_clean:pgd": lambda r: set_value(r, "pgd", 0, "acc", 0.85),
    "in_ball:fgsm": lambda r: set_value(r, "fgsm", 8, "max_linf_255", 8.5),
    "in_ball:pgd": lambda r: set_value(r, "pgd", 8, "box_violation", 0.01),
    "monotone_in_eps:pgd": lambda r: set_value(r, "pgd", 64, "acc", 0.5),
    "stronger_than_fgsm:pgd": lambda r: set_value(r, "pgd", 8, "acc", 0.52),
    "blackbox_weaker:fgsm": lambda r: set_value(r, "bb:fgsm", 8, "acc", 0.45),
    "large_eps_breaks:pgd": lambda r: set_value(r, "pgd", 64, "acc", 0.2),
    "input_grad_nonzero": lambda r: set_value(r, "none", 0, "input_grad_abs_mean", 0.0),
}


def test_every_check_passes_on_the_passing_rows():
    v = check_verdicts(passing_rows())
    assert set(BREAKS) <= set(v) and all(x == 1.0 for x in v.values()), v


@pytest.mark.parametrize("check", sorted(BREAKS))
def test_each_check_fails_on_an_input_built_to_fail_it(check):
    v = check_verdicts(BREAKS[check](passing_rows()))
    failed = {k for k, x in v.items() if x == 0.0}
    # accuracy rising to 0.5 at 64/255 is also no break at the large epsilon; every other change fails one check
    assert failed == ({check, "large_eps_breaks:pgd"} if check == "monotone_in_eps:pgd" else {check}), failed


def test_checks_tolerate_one_point_of_noise_and_no_more():
    rows = set_value(passing_rows(), "pgd", 8, "acc", 0.509)  # PGD 0.9 points worse than FGSM: noise
    assert check_verdicts(rows)["stronger_than_fgsm:pgd"] == 1.0
    assert check_verdicts(set_value(rows, "pgd", 8, "acc", 0.515))["stronger_than_fgsm:pgd"] == 0.0
    assert check_verdicts(passing_rows(), replace(CHECK_EXP, check_eps=0.0)).get("large_eps_breaks:pgd") is None


# ----------------------------------------------------------------------------- numeric columns of runs.csv
@pytest.mark.parametrize("column", NUMERIC + ["n_eval"])
def test_a_non_number_in_any_numeric_column_is_refused_naming_it(tmp_path, column):
    load_runs("results/reference/quick/runs.csv").to_csv(tmp_path / "runs.csv", index=False)  # every column
    df = pd.read_csv(tmp_path / "runs.csv", dtype=str, keep_default_na=False)
    df.loc[3, column] = "12abc"
    df.to_csv(tmp_path / "runs.csv", index=False)
    with pytest.raises(ResultsError, match=f"line 5.*'{column}'"):
        load_runs(tmp_path / "runs.csv")


# ---------------------------------------------------- definitions checked against planted bugs (experiments/mutation)


# ------------------------------------------------------------------------------------------- clean metrics
def test_clean_metrics_nll_and_top5_equal_their_definitions():
    """nll_of_probabilities, top5_is_top4: NLL is the mean -log softmax of the label; top-5 counts the label among
    the 5 largest logits (12 classes, so the row is written)."""
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(300, 12, generator=g) * 3
    y = torch.randint(0, 12, (300,), generator=g)
    m = clean_metrics(logits, y)
    nll = -np.mean([np.log(np.exp(r[c]) / np.exp(r).sum()) for r, c in zip(logits.double().numpy(), y.numpy(),
                                                                             strict=True)])
    top5 = np.mean([c in np.argsort(-r)[:5] for r, c in zip(logits.numpy(), y.numpy(), strict=True)])
    assert m["nll"].item() == pytest.approx(nll, rel=1e-5)
    assert m["top5_acc"].item() == pytest.approx(top5) and 0.3 < top5 < 0.7


# ------------------------------------------------------------------------------------------- memorization
def test_memorization_rows_split_the_training_set_by_the_corrupted_mask():
    """memorization_splits_swapped: a model that has memorized every noisy label is right on the clean subset,
    wrong (against the truth) on the corrupted one, and has memorized all of the latter."""
    from robustbench_mix.evaluation.metrics import memorization_metrics

    true_y = torch.arange(20) % 10
    noisy = true_y.clone()
    noisy[:5] = (true_y[:5] + 1) % 10
    rows = {(s, m): v.item() for s, m, v in memorization_metrics(F.one_hot(noisy, 10).float(), noisy, true_y,
                                                                 noisy != true_y)}
    assert rows == {("train_clean", "acc"): 1.0, ("train_corrupted", "acc"): 0.0,
                    ("train_corrupted", "memorized"): 1.0, ("train", "acc_true"): 0.75, ("train", "acc_noisy"): 1.0}


# ------------------------------------------------------------------------------------- corruption rows
class _Contrasty(torch.nn.Module):
    """Class 1 where the image's pixel std exceeds 20 levels: accuracy (all labels 1) falls with contrast."""

    def forward(self, x):
        s = x.flatten(1).std(1) * 255
        return torch.stack([torch.zeros_like(s), s - 20], 1)


def test_the_row_of_severity_s_holds_the_accuracy_at_severity_s():
    """corruption_severity_shift: each corrupt:<name>:<s> row is the accuracy on corrupt(x, name, s), and the mean
    is theirs (contrast's five factors give five different accuracies here)."""
    from robustbench_mix.corruptions import corrupt
    from robustbench_mix.evaluation.evaluators import corruption_rows, finish

    amp = torch.linspace(5, 127, 40)
    pattern = torch.tensor([1.0, -1.0]).repeat(32)[:64].view(1, 1, 8, 8)
    x = (128 + amp.view(-1, 1, 1, 1) * pattern).round().to(torch.uint8).expand(-1, 3, -1, -1).contiguous()
    y = torch.ones(40, dtype=torch.long)
    rows = finish(corruption_rows(_Contrasty(), x, y, ("contrast",), batch_size=16, seed=0))
    got = {r["attack"]: r["value"] for r in rows}
    want = [(_Contrasty()(corrupt(x, "contrast", s).float() / 255).argmax(1) == 1).float().mean().item()
            for s in range(1, 6)]
    assert len(set(want)) == 5
    assert [got[f"corrupt:contrast:{s}"] for s in range(1, 6)] == pytest.approx(want)
    assert got["corrupt:mean"] == pytest.approx(np.mean(want))
