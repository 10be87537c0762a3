"""Interrupted runs resume with the same numbers; damaged files are detected with clear messages."""

import os
from dataclasses import replace

import pandas as pd
import pytest
from helpers import sigkill_once_checkpointed

from robustbench_mix.cli.suite import main
from robustbench_mix.execution.runner import run_experiment
from robustbench_mix.experiment.experiment import RunOptions
from robustbench_mix.store.load import load_runs
from robustbench_mix.store.schema import KEY, ResultsError

QUIET = RunOptions(progress=False)


class Interrupted(Exception):
    pass


def stop_after(k):
    def hook(epoch, model):
        if epoch == k:
            raise Interrupted(f"stopped after epoch {epoch}")

    return hook


def values(rows):
    return sorted((r["epoch"], r["split"], r["attack"], r["eps"], r["metric"], r["value"]) for r in rows)


@pytest.mark.parametrize("method,alpha,checkpoint_every,stop", [
    ("mixup", 1.0, 1, 2), ("mixup", 1.0, 2, 3), ("manifold_mixup", 2.0, 1, 2), ("cutmix", 1.0, 1, 3),
    ("label_smoothing", 0.1, 2, 3), ("pgd_at:steps=2", 0.0, 1, 2), ("trades:steps=2", 6.0, 2, 3),
    ("mixup_at:steps=2", 1.0, 1, 3)])
def test_interrupted_run_resumes_to_identical_numbers(small_digits, tiny_exp, tmp_path, method, alpha,
                                                      checkpoint_every, stop):
    # a method + dropout + noise + curves: every source of randomness the trainer has
    method, _, options = method.partition(":")
    exp = replace(tiny_exp, method=method, alpha=alpha, dropout=0.2, noise=0.4, epochs=5, eval_every=1,
                  method_options=options)
    ref = run_experiment(exp, small_digits, run_dir=tmp_path / "ref", options=QUIET)
    with pytest.raises(Interrupted):
        run_experiment(exp, small_digits, run_dir=tmp_path / "a",
                       options=RunOptions(progress=False, checkpoint_every=checkpoint_every), hooks=(stop_after(stop),))
    resumed = run_experiment(exp, small_digits, run_dir=tmp_path / "a",
                             options=RunOptions(progress=False, checkpoint_every=checkpoint_every))
    assert values(resumed) == values(ref)


def _final(path):
    df = load_runs(path)
    return df.set_index(KEY)["value"].sort_index()


def test_sigkill_at_any_moment_then_rerun_gives_the_uninterrupted_numbers(tmp_path):
    args = ["--methods", "mixup", "--noise", "0.4", "--epochs", "40", "--no-progress", "--eps", "8/255",
            "--attack-steps", "2", "--eval-every", "5"]
    out = tmp_path / "killed"
    sigkill_once_checkpointed(out, args)
    assert main(["--out", str(out), *args]) == 0
    ref = tmp_path / "ref"
    assert main(["--out", str(ref), *args]) == 0
    pd.testing.assert_series_equal(_final(out / "runs.csv"), _final(ref / "runs.csv"))


def test_damaged_checkpoint_fails_that_run_with_a_clear_message(tmp_path, capsys):
    args = ["--out", str(tmp_path), "--methods", "erm", "--noise", "0", "--epochs", "2", "--no-progress",
            "--eps", "8/255", "--attack-steps", "1"]
    assert main([*args, "--dry-run"]) == 0
    run_id = capsys.readouterr().out.split("\n")[1].split()[0]
    ck = tmp_path / "runs" / run_id / "checkpoint.pt"
    ck.parent.mkdir(parents=True)
    ck.write_bytes(b"PK\x03\x04 truncated")
    assert main(args) == 1
    err = capsys.readouterr().err
    assert f"checkpoint '{ck}' is unreadable" in err and "--force" in err
    assert main([*args, "--force"]) == 0  # --force starts the run afresh


@pytest.mark.parametrize("damage,message", [
    (lambda t: t[: len(t) // 2], "was the file truncated"),
    (lambda t: "", "the file is empty"),
    (lambda t: t.replace("run_id,", "runid,", 1), "missing column.* run_id"),
    (lambda t: t + t.splitlines()[-1] + "\n", "repeats the measurement"),
])
def test_damaged_results_csv_is_detected(tmp_path, capsys, damage, message):
    args = ["--out", str(tmp_path), "--methods", "erm", "--noise", "0", "--epochs", "1", "--no-progress",
            "--eps", "8/255", "--attack-steps", "1"]
    assert main(args) == 0
    path = tmp_path / "runs.csv"
    path.write_text(damage(path.read_text()))
    with pytest.raises(ResultsError, match=message):
        load_runs(path)
    assert main(args) == 2
    assert "runs.csv" in capsys.readouterr().err


def test_a_run_resumed_under_another_thread_count_warns_and_says_so_in_its_rows(tmp_path, capsys):
    import torch

    from robustbench_mix.cli.suite_args import build_parser, suite_from_args
    from robustbench_mix.training.train import CHECKPOINT

    args = ["--methods", "erm", "--noise", "0", "--epochs", "3", "--eps", "8", "--attack-steps", "2",
            "--no-progress", "--out", str(tmp_path / "r")]
    exp, = suite_from_args(build_parser().parse_args(args)).expand()
    from robustbench_mix.data.sources import load_digits

    threads = torch.get_num_threads()
    other = 1 if threads != 1 else 2
    torch.set_num_threads(other)
    try:  # the first two epochs under another thread count, then an interruption
        with pytest.raises(Interrupted):
            run_experiment(exp, load_digits(None), run_dir=tmp_path / "r" / "runs" / exp.run_id, options=QUIET,
                           hooks=(stop_after(2),))
    finally:
        torch.set_num_threads(threads)
    assert (tmp_path / "r" / "runs" / exp.run_id / CHECKPOINT).exists()
    capsys.readouterr()
    assert main([*args, "--dry-run"]) == 0
    dry = capsys.readouterr().out
    assert "partial" in dry and f"{other} threads" in dry and "mixes environments" in dry
    assert main(args) == 0
    err = capsys.readouterr().err
    assert f"resumes at epoch 3 from a checkpoint written under cpu ({os.uname().machine}, {other} threads)" in err
    df = load_runs(tmp_path / "r" / "runs.csv")
    note = set(df["resumed_from"])
    assert note == {f"epochs 1-2 under cpu ({os.uname().machine}, {other} threads), torch {torch.__version__}; "
                    f"epochs 3-3 under cpu ({os.uname().machine}, {threads} threads), torch {torch.__version__}"}


def test_a_run_trained_in_one_environment_has_an_empty_resumed_from(small_digits, tiny_exp, tmp_path):
    with pytest.raises(Interrupted):
        run_experiment(tiny_exp, small_digits, run_dir=tmp_path, options=QUIET, hooks=(stop_after(1),))
    run_experiment(tiny_exp, small_digits, run_dir=tmp_path, options=QUIET)
    from robustbench_mix.training.train import CHECKPOINT, checkpoint_environments, mixed_environments

    envs = checkpoint_environments(tmp_path / CHECKPOINT)
    assert len(envs) == 1 and envs[0][0] == 1 and mixed_environments(envs, tiny_exp.epochs) == ""
