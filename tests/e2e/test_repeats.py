"""A repeated attack or radius, on every path the issue found, and then every command on the results folder."""

import shutil

import pytest

from robustbench_mix.cli.checkpoint import main as checkpoint_main
from robustbench_mix.cli.claims import main as claims_main
from robustbench_mix.cli.compare import main as compare_main
from robustbench_mix.cli.leaderboard import main as leaderboard_main
from robustbench_mix.cli.report import main as report_main
from robustbench_mix.cli.suite import main as suite_main
from robustbench_mix.store.load import load_runs
from robustbench_mix.store.schema import KEY

pytestmark = pytest.mark.e2e

FAST = ["--epochs", "1", "--no-progress", "--attack-steps", "2", "--attack-samples", "40", "--methods", "erm",
        "--noise", "0", "--seeds", "0", "--surrogate-seed", "100"]
ONCE = ["--attacks", "fgsm,pgd_l2", "--eps", "8", "--eps-l2", "0.5"]


def test_repeated_attacks_and_radii_never_leave_the_folder_unreadable(tmp_path, capsys, monkeypatch):
    """`--attacks pgd_l2,pgd_l2`, `--eps-l2 0.5,0.5` and `--eps 8,8/255` with a surrogate trained, wrote rows under
    one key twice and exited 2; from then on every command on the folder exited 2."""
    import robustbench_mix.execution.executors as executors

    out = tmp_path / "r"
    repeated = ["--attacks", "fgsm,pgd_l2,pgd_l2,fgsm", "--eps", "8,8/255", "--eps-l2", "0.5,0.5"]
    assert suite_main(["--out", str(out), *FAST, *repeated]) == 0
    df = load_runs(out / "runs.csv")
    assert not df.duplicated(KEY).any() and df["run_id"].nunique() == 2  # the run and its black-box surrogate
    assert set(df[df["attack"] == "bb:pgd_l2"]["eps"]) == {0.5}
    # the same grid with each value once is those runs: nothing trains again
    monkeypatch.setattr(executors, "run_experiment", lambda *a, **k: pytest.fail("training started"))
    assert suite_main(["--out", str(out), *FAST, *ONCE]) == 0
    # values that are one key only as runs.csv stores them: refused before training, the file as it was
    before = (out / "runs.csv").read_bytes()
    for near in (["--eps", "8,8.0000001"], ["--eps-l2", "0.5,0.5000001"]):
        capsys.readouterr()
        assert suite_main(["--out", str(out), *FAST, *ONCE, *near]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert err[-1].startswith("error: ") and "are one value in runs.csv" in err[-1], err
    # the other writer of runs.csv: the checkpoint command, with repeats of its own
    rid = df[~df["preset"].str.endswith("/surrogate")]["run_id"].iloc[0]
    assert checkpoint_main([str(out / "runs" / rid / "checkpoint.pt"), "--out", str(out), "--no-progress",
                            "--attacks", "pgd,pgd", "--eps", "8,8/255", "--attack-samples", "40"]) == 0
    assert checkpoint_main([str(out / "runs" / rid / "checkpoint.pt"), "--out", str(out), "--no-progress",
                            "--attacks", "pgd", "--eps", "8,8.0000001", "--attack-samples", "40"]) == 2
    assert not load_runs(out / "runs.csv").duplicated(KEY).any() and (out / "runs.csv").read_bytes() != before
    # every command reads the folder
    shutil.copytree(out, tmp_path / "copy")
    capsys.readouterr()
    assert suite_main(["--out", str(out), *FAST, *ONCE, "--dry-run"]) == 0
    assert report_main([str(out)]) == 0
    assert compare_main([str(out), str(tmp_path / "copy"), "--out", str(tmp_path / "cmp")]) == 0
    assert claims_main([str(out)]) == 0
    assert "error" not in capsys.readouterr().err
    # the leaderboard reads the folder too: it refuses digits, no RobustBench data set, and nothing else
    assert leaderboard_main([str(out), "--run", rid, "--out", str(tmp_path / "entry.json")]) == 2
    assert capsys.readouterr().err.splitlines() == ["error: the run's data set digits is not one of RobustBench's "
                                                    "(cifar10, cifar100, imagenet): their leaderboards hold only "
                                                    "those"]
