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


@pytest.mark.parametrize("extra", [
    {"attack": "fgsm", "eps": 0.031373},  # a repeated attack or radius: the same key twice
    {"attack": "pgd_l2", "eps": 1.2345681},  # beside 1.2345678: one key once the file keeps 6 digits
], ids=["same key", "same key at 6 digits"])
def test_no_writer_appends_rows_that_would_make_runs_csv_unreadable(tmp_path, extra):
    """Rows under one key made every command on the folder exit 2 until runs.csv was edited by hand: the writer
    refuses them and leaves the file as it was, readable."""
    from robustbench_mix.store.schema import ResultsError

    path = tmp_path / "runs.csv"
    merge_run(path, _frame(0, 0.9))
    before = path.read_bytes()
    bad = _frame(1, 0.8)
    first = {"attack": "pgd_l2", "eps": 1.2345678} if extra["attack"] == "pgd_l2" else {}
    row = bad.iloc[[1]].assign(**extra)
    bad = pd.concat([bad.iloc[:1], bad.iloc[[1]].assign(**first), row, bad.iloc[2:]], ignore_index=True)
    bad["norm"] = bad["attack"].map({"pgd_l2": "L2", "fgsm": "Linf"}).fillna("")
    bad["eps_255"] = bad["eps_255"].where(bad["norm"] != "L2", "")
    bad.loc[bad["metric"] == "rows_in_run", "value"] = len(bad)
    with pytest.raises(ResultsError, match=rf"the rows of run {bad['run_id'][0]} were not written.*repeats the "
                                           "measurement.*the file is as it was"):
        merge_run(path, bad)
    assert path.read_bytes() == before and len(load_runs(path)) == 4


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


def test_summary_never_pools_configurations_that_differ_beyond_the_csvs_six_digits(tmp_path):
    """runs.csv writes lr and the radii at 6 significant digits: runs at lr 0.1 and 0.1000001 (or L2 radius 0.1
    and 0.1000001) were summarized as two seeds of one configuration."""
    for field, values in (("lr", (0.1, 0.1000001)), ("eps_l2", ((0.1,), (0.1000001,)))):
        path = tmp_path / f"{field}.csv"
        for seed, v in enumerate(values):
            exp = Experiment(method="erm", seed=seed, epochs=3, **{field: v})
            rows = [{"epoch": 3, "split": "test", "attack": "none", "eps": 0.0, "metric": "acc", "value": 0.9}]
            merge_run(path, to_frame(exp, rows, device="cpu", command="test", rev="abc"))
        summary = summarize(load_runs(path))
        assert list(summary["n_seeds"]) == [1, 1], field
