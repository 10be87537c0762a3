"""A method, a model and an attack defined in one file outside the package run through the suite, resume, and
reach compare, report, claims and leaderboard; rows of a plugin that is not loaded are still read; a plugin
method that raises or goes non-finite fails its run only."""

import json
import re
from dataclasses import replace

import pandas as pd
import pytest
from helpers import sigkill_once_checkpointed

from robustbench_mix.bench import without_plugins
from robustbench_mix.cli.checkpoint import main as checkpoint
from robustbench_mix.cli.claims import main as claims
from robustbench_mix.cli.compare import main as compare
from robustbench_mix.cli.leaderboard import main as leaderboard
from robustbench_mix.cli.report import main as report
from robustbench_mix.cli.suite import main as suite
from robustbench_mix.execution.runner import run_experiment
from robustbench_mix.experiment.experiment import RunOptions
from robustbench_mix.plugins import load_plugins, unload_all
from robustbench_mix.store.load import load_runs
from robustbench_mix.store.write import atomic_write_csv

GRID = ["--model", "my_net", "--attacks", "fgsm,my_fgsm", "--eps", "8", "--seeds", "0,1", "--noise", "0",
        "--epochs", "2", "--batch-size", "64", "--no-progress"]


@pytest.fixture
def plugin_results(write_plugin, tmp_path):
    path = write_plugin()
    out = tmp_path / "grid"
    assert suite(["--plugin", str(path), "--methods", "erm,my_mix:0.5", "--out", str(out), *GRID]) == 0
    return path, out


def test_a_plugin_grid_runs_and_every_reading_command_reads_it(plugin_results, tmp_path, capsys):
    path, out = plugin_results
    df = load_runs(out / "runs.csv")
    assert set(df["method"]) == {"erm", "my_mix"} and set(df["model"]) == {"my_net"}
    assert {"my_fgsm", "fgsm"} <= set(df["attack"]) and df["run_id"].nunique() == 4
    mine = json.loads(df.loc[df["method"] == "my_mix", "config"].iloc[0])
    assert "method:my_mix=my_plugin.py@" in mine["plugins"] and "model:my_net=my_plugin.py@" in mine["plugins"]
    assert df.loc[(df["attack"] == "my_fgsm"), "norm"].eq("Linf").all()
    plugin = ["--plugin", str(path)]
    assert compare([str(out), "--by", "method", "--out", str(tmp_path / "cmp"), *plugin]) == 0
    assert "# my_mix against erm (by method)" in capsys.readouterr().out
    assert claims([str(out), "--relax", "dataset,model", *plugin]) == 0
    assert report([str(out), *plugin]) == 0 and (out / "report.md").exists()
    rid = df.loc[df["method"] == "my_mix", "run_id"].iloc[0]
    capsys.readouterr()
    # digits is no RobustBench data set (refused, as for a built-in); the plugin's rows labelled cifar10 export
    assert leaderboard([str(out), "--run", rid, "--eps", "8/255", *plugin]) == 2
    assert "digits is not one of RobustBench's" in capsys.readouterr().err
    mine_rows = df[df["run_id"] == rid]
    (tmp_path / "c").mkdir()
    atomic_write_csv(mine_rows.assign(dataset="cifar10", config=mine_rows["config"].str.replace(
        '"dataset":"digits"', '"dataset":"cifar10"')), tmp_path / "c" / "runs.csv")
    assert leaderboard([str(tmp_path / "c"), "--run", rid, "--eps", "8/255", *plugin]) == 0
    assert "my_mix" in json.dumps(json.loads(capsys.readouterr().out))
    evaluated = tmp_path / "evaluated"  # the checkpoint command rebuilds the plugin's model from the run's config
    assert checkpoint([str(out / "runs" / rid / "checkpoint.pt"), "--out", str(evaluated), "--no-progress",
                       *plugin]) == 0
    rows = load_runs(evaluated / "runs.csv")
    assert set(rows["model"]) == {"my_net"} and set(rows["method"]) == {"my_mix"}
    assert "my_fgsm" in set(rows["attack"])


def test_bench_takes_the_plugin_flag_and_hands_the_script_the_rest():
    assert without_plugins(["--plugin", "a.py", "--method", "my_mix", "--plugin=b.py"]) == ["--method", "my_mix"]


def test_rows_of_a_plugin_that_is_not_loaded_are_still_read_and_named(plugin_results, tmp_path, capsys):
    path, out = plugin_results
    unload_all()
    capsys.readouterr()
    assert compare([str(out), "--by", "method", "--out", str(tmp_path / "cmp")]) == 0
    captured = capsys.readouterr()
    assert "# my_mix against erm (by method)" in captured.out
    assert "the rows of method my_mix were made by plugin my_plugin.py@" in captured.err
    assert "which is not loaded: they are read as data" in captured.err
    assert report([str(out)]) == 0 and "my_mix" in (out / "report.md").read_text()
    rows = load_runs(out / "runs.csv").query("method == 'my_mix'")
    rid = rows["run_id"].iloc[0]
    (tmp_path / "c").mkdir()  # labelled cifar10: the leaderboard refuses digits, no RobustBench data set
    atomic_write_csv(rows.assign(dataset="cifar10", config=rows["config"].str.replace(
        '"dataset":"digits"', '"dataset":"cifar10"')), tmp_path / "c" / "runs.csv")
    capsys.readouterr()
    assert leaderboard([str(tmp_path / "c"), "--run", rid, "--eps", "8/255"]) == 0
    assert "my_mix (α=0.5)" in capsys.readouterr().out


def status(dry_run: str) -> list[str]:
    return re.findall(r"^\s+[0-9a-f]{10}\s+(\w+)", dry_run, re.M)


def test_a_rerun_of_an_unchanged_plugin_skips_its_finished_runs_and_an_edited_one_does_not(plugin_results, capsys):
    """An edit anywhere in the file is a new definition of each of its entries (a helper they call may have
    changed): every run using one of them is new, the ERM runs too (they use its model and attack)."""
    path, out = plugin_results
    grid = ["--plugin", str(path), "--methods", "erm,my_mix:0.5", "--out", str(out), *GRID, "--dry-run"]
    capsys.readouterr()
    assert suite(grid) == 0
    assert status(capsys.readouterr().out) == ["finished"] * 4
    path.write_text(path.read_text().replace("return lam * F", "return 1.0 * lam * F"))
    assert suite(grid) == 0
    assert status(capsys.readouterr().out) == ["new"] * 4


FAILING = '''
import torch
import robustbench_mix as rbm


@rbm.register_method("boom")
def boom(model, x, y, num_classes, alpha, generator):
    raise ValueError("a bug in the plugin")


@rbm.register_method("nan_loss")
def nan_loss(model, x, y, num_classes, alpha, generator):
    return model(x).sum() * float("nan")
'''


def test_a_plugin_method_that_raises_or_goes_non_finite_fails_its_run_only(write_plugin, tmp_path, capsys):
    path = write_plugin(FAILING, name="failing.py")
    out = tmp_path / "f"
    grid = ["--methods", "erm,boom,nan_loss", "--seeds", "0", "--noise", "0", "--epochs", "1", "--attacks", "fgsm",
            "--eps", "8", "--no-progress", "--out", str(out)]
    assert suite(["--plugin", str(path), *grid]) == 1
    failures = pd.read_csv(out / "failures.csv")
    reasons = dict(zip(failures["method"], failures["reason"], strict=True))
    assert set(reasons) == {"boom", "nan_loss"}
    assert "ValueError: a bug in the plugin (at failing.py:" in reasons["boom"]
    assert "non-finite training loss" in reasons["nan_loss"]
    assert set(load_runs(out / "runs.csv")["method"]) == {"erm"}


class Interrupted(Exception):
    pass


def test_an_interrupted_plugin_run_resumes_to_identical_numbers(write_plugin, small_digits, tiny_exp, tmp_path):
    load_plugins([str(write_plugin())])
    exp = replace(tiny_exp, method="my_mix", alpha=1.0, model="my_net", noise=0.4, epochs=4, eval_every=1,
                  attacks=("fgsm", "my_fgsm"))

    def stop(epoch, model):
        if epoch == 2:
            raise Interrupted

    def values(rows):
        return sorted((r["epoch"], r["split"], r["attack"], r["eps"], r["metric"], r["value"]) for r in rows)

    quiet = RunOptions(progress=False)
    ref = run_experiment(exp, small_digits, run_dir=tmp_path / "ref", options=quiet)
    with pytest.raises(Interrupted):
        run_experiment(exp, small_digits, run_dir=tmp_path / "a", options=quiet, hooks=(stop,))
    assert values(run_experiment(exp, small_digits, run_dir=tmp_path / "a", options=quiet)) == values(ref)


def test_a_plugin_run_killed_with_sigkill_resumes_to_the_uninterrupted_numbers(write_plugin, tmp_path):
    """As tests/execution/test_resume.py does for the built-ins: SIGKILL once a checkpoint exists, then rerun."""
    plugin = ["--plugin", str(write_plugin())]
    args = [*plugin, "--methods", "my_mix", "--seeds", "0", "--noise", "0.4", "--epochs", "40", "--no-progress",
            "--eps", "8/255", "--attacks", "fgsm,my_fgsm", "--attack-steps", "2", "--eval-every", "5"]
    out = tmp_path / "killed"
    sigkill_once_checkpointed(out, args)
    assert suite(["--out", str(out), *args]) == 0
    assert suite(["--out", str(tmp_path / "ref"), *args]) == 0
    final = [load_runs(d / "runs.csv").set_index(["run_id", "epoch", "split", "attack", "eps", "metric"])["value"]
             .sort_index() for d in (out, tmp_path / "ref")]
    pd.testing.assert_series_equal(*final)
