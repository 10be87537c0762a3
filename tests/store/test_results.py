import pandas as pd
import pytest

from robustbench_mix.evaluation.metrics import expected_calibration_error, memorization_metrics
from robustbench_mix.experiment.experiment import Experiment
from robustbench_mix.store.load import load_runs
from robustbench_mix.store.schema import COLUMNS, KEY, to_frame
from robustbench_mix.store.summary import summarize, summary_markdown
from robustbench_mix.store.write import merge_run


def test_columns_follow_the_documented_contract():
    assert COLUMNS[:24] == ["run_id", "preset", "dataset", "model", "method", "alpha", "dropout", "noise", "seed",
                            "epochs", "batch_size", "lr", "weight_decay", "schedule", "epoch", "split", "attack",
                            "eps", "metric", "value", "torch", "device", "git_rev", "created_at"]


def _frame(seed, acc, method="erm"):
    exp = Experiment(method=method, alpha=1.0 if method == "mixup" else 0.0, seed=seed, epochs=3)
    rows = [{"epoch": 3, "split": "test", "attack": "none", "eps": 0.0, "metric": "acc", "value": acc},
            {"epoch": 3, "split": "test", "attack": "fgsm", "eps": 0.031373, "metric": "acc", "value": acc / 2},
            {"epoch": 1, "split": "test", "attack": "none", "eps": 0.0, "metric": "acc", "value": 0.1}]
    return to_frame(exp, rows, device="cpu", command="test", rev="abc")


def test_merge_replaces_a_runs_rows_instead_of_duplicating(tmp_path):
    path = tmp_path / "runs.csv"
    merge_run(path, _frame(0, 0.9))
    merge_run(path, _frame(1, 0.8))
    merge_run(path, _frame(0, 0.95))  # the same run again (e.g. --force)
    df = load_runs(path)
    assert not df.duplicated(KEY).any() and len(df) == 8  # 3 rows and the rows_in_run marker per run
    clean = (df["metric"] == "acc") & (df["attack"] == "none")
    assert df[(df["seed"] == 0) & (df["epoch"] == 3) & clean]["value"].item() == 0.95


def test_summary_pools_seeds_at_the_final_epoch(tmp_path):
    df = pd.concat([_frame(0, 0.9), _frame(1, 0.8), _frame(2, 0.7), _frame(0, 0.5, "mixup")])
    path = tmp_path / "runs.csv"
    for _, g in df.groupby("run_id"):
        merge_run(path, g)
    s = summarize(load_runs(path))
    erm = s[s["method"] == "erm"].iloc[0]
    assert erm["test acc mean"] == pytest.approx(0.8) and erm["test acc std"] == pytest.approx(0.1)
    assert erm["fgsm 8/255 acc mean"] == pytest.approx(0.4) and erm["n_seeds"] == 3
    md = summary_markdown(s)
    assert "80.00 ± 10.00" in md and "| mixup |" in md


def test_ece_of_perfectly_calibrated_and_overconfident_predictions():
    import torch

    y = torch.tensor([0, 0, 0, 0])
    probs = torch.tensor([[0.75, 0.25]] * 4)  # 75% confident, 100% right -> gap 0.25
    assert expected_calibration_error(probs, y).item() == pytest.approx(0.25)
    y2 = torch.tensor([0, 0, 0, 1])  # 75% right
    assert expected_calibration_error(probs, y2).item() == pytest.approx(0.0)


def test_memorized_fraction_of_noisy_and_true_label_predictors():
    import numpy as np
    import torch

    from robustbench_mix.data.prepare import corrupt_labels

    true = np.random.default_rng(0).integers(0, 10, 2000)
    noisy, mask = corrupt_labels(true, 10, 0.5, seed=0)
    t, n, m = torch.tensor(true), torch.tensor(noisy), torch.tensor(mask)

    def metrics(pred):
        return {(s, k): v.item() for s, k, v in memorization_metrics(torch.nn.functional.one_hot(pred, 10).float(),
                                                                     n, t, m)}

    predicts_noisy = metrics(n)
    assert predicts_noisy[("train_corrupted", "memorized")] == 1.0
    predicts_true = metrics(t)
    same = (noisy[mask] == true[mask]).mean()  # random labels that happen to equal the true one
    assert predicts_true[("train_corrupted", "memorized")] == pytest.approx(same)
    assert predicts_true[("train_corrupted", "acc")] == 1.0 and predicts_true[("train_clean", "acc")] == 1.0
