"""--time-limit: a grid stops cleanly between epochs or runs, says what remains, exits 3, and the same command
finishes it with the numbers of an uninterrupted run. Time is a fake clock: each epoch takes 10 s and each
final evaluation 5 s of it, so no test depends on this machine's speed."""

import json
import shutil

import pytest

import robustbench_mix.execution.executors as executors
import robustbench_mix.execution.grid as grid
import robustbench_mix.execution.timelimit as timelimit
from robustbench_mix.cli.suite import main
from robustbench_mix.store.load import load_runs
from robustbench_mix.store.schema import KEY, PROVENANCE_COLUMNS

GRID = ["--methods", "erm", "--noise", "0", "--epochs", "3", "--no-progress", "--eps", "8/255", "--attacks", "fgsm",
        "--attack-steps", "2"]
EPOCH, EVALUATION = 10.0, 5.0


class FakeClock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


@pytest.fixture
def fake_time(monkeypatch):
    """The suite's time source, advanced EPOCH by every epoch and EVALUATION by every final evaluation."""
    clock = FakeClock()
    monkeypatch.setattr(timelimit, "clock", clock)
    real = executors.run_experiment

    def evaluated(*a, **k):
        rows = real(*a, **k)  # trains (the epoch hook advances the clock), then evaluates
        clock.t += EVALUATION
        return rows

    monkeypatch.setattr(executors, "run_experiment", evaluated)
    monkeypatch.delenv(timelimit.ENV, raising=False)

    def run(argv, extra_hooks=()):
        clock.t = 0.0  # a new process
        return main(argv, hooks=(lambda epoch, model: setattr(clock, "t", clock.t + EPOCH), *extra_hooks))

    return run


def comparable(path):
    df = load_runs(path).drop(columns=[*PROVENANCE_COLUMNS, "command"])
    return df.sort_values(KEY).reset_index(drop=True)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    out = tmp_path_factory.mktemp("whole")
    assert main(["--out", str(out), "--seeds", "0,1", *GRID]) == 0
    return comparable(out / "runs.csv")


def test_stops_between_epochs_then_the_same_command_finishes_identically(fake_time, tmp_path, capsys,
                                                                        uninterrupted):
    # run 1: epochs end at 10, 20, 30 s, its evaluation at 35 s; run 2's first epoch ends at 45 s, and a second
    # (10 s, as measured) would end at 55 s, past 50 s: it stops there, with epoch 1 checkpointed
    argv = ["--out", str(tmp_path), "--seeds", "0,1", *GRID, "--time-limit", "50s"]
    assert fake_time(argv) == timelimit.EXIT_CODE == 3
    err = capsys.readouterr().err
    assert "time limit 50s reached: stopped after epoch 1 of run" in err and "5.0s are left" in err
    assert "1 of 2 run(s) finished" in err and ": finished" in err and "partial, epoch 1 of 3" in err
    assert f"python -m robustbench_mix.suite --out {tmp_path}" in err.split("resumes from there:")[1]
    assert load_runs(tmp_path / "runs.csv")["run_id"].nunique() == 1
    assert not list(tmp_path.rglob("*.tmp")) and not (tmp_path / "summary.csv").exists()

    assert fake_time(argv) == 0  # the same command: epochs 2-3 and the evaluation of run 2 take 25 s
    err = capsys.readouterr().err
    assert "finished earlier, skipped" in err and "time limit" not in err
    assert comparable(tmp_path / "runs.csv").equals(uninterrupted)


def test_the_final_evaluation_is_counted_before_the_limit(fake_time, tmp_path, capsys):
    # run 2's last epoch ends at 65 s; its evaluation (5 s, measured on run 1) would end at 70 s, past 68 s
    argv = ["--out", str(tmp_path), "--seeds", "0,1", *GRID, "--time-limit", "68"]
    assert fake_time(argv) == 3
    err = capsys.readouterr().err
    assert "its final evaluation of run" in err and "partial, trained (3 epochs), its final evaluation remains" in err
    assert fake_time(argv) == 0
    assert load_runs(tmp_path / "runs.csv")["run_id"].nunique() == 2


def test_stops_between_runs_when_the_next_runs_first_epoch_would_not_fit(fake_time, tmp_path, capsys):
    argv = ["--out", str(tmp_path), "--seeds", "0,1", *GRID, "--time-limit", "44s"]  # run 1 ends at 35 s; 35+10>44
    assert fake_time(argv) == 3
    err = capsys.readouterr().err
    assert "stopped before run" in err and "not started" in err and "1 of 2 run(s) finished" in err
    assert [p.name for p in (tmp_path / "runs").iterdir() if (p / "checkpoint.pt").exists()] == \
        [load_runs(tmp_path / "runs.csv")["run_id"].iloc[0]]


def test_the_environment_variable_sets_the_limit_and_the_flag_wins(fake_time, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(timelimit.ENV, "0:15")  # one epoch fits (10 s), a second would not
    assert fake_time(["--out", str(tmp_path / "env"), *GRID]) == 3
    assert "time limit 15s reached" in capsys.readouterr().err
    assert fake_time(["--out", str(tmp_path / "flag"), *GRID, "--time-limit", "1h"]) == 0


@pytest.mark.parametrize("flag,env,named", [("25x", None, "--time-limit '25x'"), ("-5m", None, "--time-limit '-5m'"),
                                            (None, "soon", "$ROBUSTBENCH_MIX_TIME_LIMIT 'soon'"),
                                            ("0", None, "must be above 0")])
def test_a_malformed_limit_exits_2_naming_it_before_data_are_loaded(tmp_path, monkeypatch, capsys, flag, env, named):
    def no_loading(*a, **k):
        raise AssertionError("data loaded")

    monkeypatch.setattr(grid, "load", no_loading)
    monkeypatch.delenv(timelimit.ENV, raising=False)
    if env is not None:
        monkeypatch.setenv(timelimit.ENV, env)
    argv = ["--out", str(tmp_path), *GRID] + ([f"--time-limit={flag}"] if flag is not None else [])
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert named in err and "90s, 25m, 1h30m" in err


@pytest.mark.parametrize("text,seconds", [("900", 900), ("90s", 90), ("25m", 1500), ("1h30m", 5400),
                                          ("1h", 3600), ("2m30s", 150), ("1:30:00", 5400), ("25:00", 1500),
                                          ("0.5h", 1800), ("none", None)])
def test_durations(text, seconds):
    assert timelimit.parse_duration(text, "--time-limit") == seconds


def test_a_limit_shorter_than_one_epoch_is_explained(fake_time, tmp_path, capsys):
    argv = ["--out", str(tmp_path), *GRID, "--time-limit", "5s"]
    assert fake_time(argv) == 2  # not 3: the same command again would not progress, so a Slurm loop stops
    err = capsys.readouterr().err
    assert "the time limit 5.0s is shorter than one epoch: epoch 1 of run" in err and "took 10s" in err
    assert "raise --time-limit above" in err and "partial, epoch 1 of 3" in err
    # now measured: the next invocation refuses before training anything
    assert fake_time(argv) == 2
    err = capsys.readouterr().err
    assert "is shorter than one piece of work: epoch 2 of run" in err and "takes ~10s" in err
    assert "partial, epoch 1 of 3" in err


def test_dry_run_estimates_what_remains_from_finished_runs(fake_time, tmp_path, capsys):
    assert fake_time(["--out", str(tmp_path), "--seeds", "0,1,2", *GRID, "--time-limit", "50s"]) == 3
    capsys.readouterr()
    assert main(["--out", str(tmp_path), "--seeds", "0,1,2", *GRID, "--dry-run"]) == 0
    out = capsys.readouterr().out
    # run 2 at epoch 1: 2 epochs of 10 s and an evaluation of 5 s; run 3: 3 epochs and an evaluation
    assert "partial   digits cnn erm" in out and ", ~25s left" in out and ", ~35s left" in out
    assert "expected time of what remains: ~1m 00s for 2 of 2 unfinished run(s)" in out


def test_dry_run_says_when_nothing_has_been_timed(tmp_path, capsys):
    assert main(["--out", str(tmp_path), *GRID, "--dry-run"]) == 0
    assert "expected time of what remains: unknown" in capsys.readouterr().out


def test_the_time_limit_is_refused_with_ray(tmp_path, capsys):
    assert main(["--out", str(tmp_path), *GRID, "--time-limit", "10m", "--executor", "ray", "--dry-run"]) == 2
    assert "--executor local only" in capsys.readouterr().err


# ------------------------------------------------------------------------------ damaged timing.json
def _damage_seconds(value):
    def damage(t):
        t["epochs"]["1"]["seconds"] = value
        return json.dumps(t)
    return damage


def _set(key, value):
    def damage(t):
        t[key] = value
        return json.dumps(t)
    return damage


def _drop(key):
    def damage(t):
        del t["epochs"]["1"][key]
        return json.dumps(t)
    return damage


DAMAGE = {
    "string seconds": _damage_seconds("10"),
    "null seconds": _damage_seconds(None),
    "NaN seconds": _damage_seconds(float("nan")),
    "infinite seconds": _damage_seconds(float("inf")),
    "negative seconds": _damage_seconds(-1.0),
    "true as seconds": _damage_seconds(True),
    "entry not an object": lambda t: json.dumps({**t, "epochs": {**t["epochs"], "2": 10.0}}),
    "evaluation not an object": _set("evaluation", [5.0]),
    "missing seconds": _drop("seconds"),
    "missing environment": _drop("environment"),
    "missing epochs": lambda t: json.dumps({k: v for k, v in t.items() if k != "epochs"}),
    "epochs a list": _set("epochs", [1, 2]),
    "epoch key not a number": lambda t: json.dumps({**t, "epochs": {"first": t["epochs"]["1"]}}),
    "a JSON list": lambda t: json.dumps([t]),
    "not JSON": lambda t: json.dumps(t)[:-7],
    "not text": lambda t: b"\xff\xfe\x00",
}


@pytest.fixture(scope="module")
def one_timed_run(tmp_path_factory):
    """A finished run of seed 0, timed (real clock): its timing.json is the only timing of the configuration."""
    out = tmp_path_factory.mktemp("timed")
    assert main(["--out", str(out), "--seeds", "0", *GRID]) == 0
    (path,) = (out / "runs").glob(f"*/{timelimit.TIMING}")
    return out, path


def _damaged_copy(one_timed_run, tmp_path, kind):
    out, path = one_timed_run
    shutil.copytree(out, tmp_path, dirs_exist_ok=True)
    target = tmp_path / path.relative_to(out)
    text = DAMAGE[kind](json.loads(path.read_text()))
    (target.write_bytes if isinstance(text, bytes) else target.write_text)(text)
    return target


@pytest.mark.parametrize("kind", DAMAGE)
def test_a_damaged_timing_file_costs_the_dry_runs_estimate_only(one_timed_run, tmp_path, capsys, kind):
    target = _damaged_copy(one_timed_run, tmp_path, kind)
    assert main(["--out", str(tmp_path), "--seeds", "0,1", *GRID, "--dry-run"]) == 0
    captured = capsys.readouterr()
    assert f"warning: {target} is damaged (" in captured.err and "Traceback" not in captured.err
    assert "finished  digits cnn erm" in captured.out and "new       digits cnn erm" in captured.out
    assert "expected time of what remains: unknown" in captured.out  # the only timed run of the configuration
    assert f"(1 damaged runs/*/{timelimit.TIMING} left out of it" in captured.out


@pytest.mark.parametrize("kind", DAMAGE)
def test_a_damaged_timing_file_costs_a_time_limited_runs_estimate_only(one_timed_run, tmp_path, capsys, fake_time,
                                                                       kind):
    target = _damaged_copy(one_timed_run, tmp_path, kind)
    # seed 1 is never timed now, so it starts (its first epoch measures it) and finishes within 1h of fake time
    assert fake_time(["--out", str(tmp_path), "--seeds", "0,1", *GRID, "--time-limit", "1h"]) == 0
    err = capsys.readouterr().err
    assert f"warning: {target} is damaged (" in err and "Traceback" not in err
    assert load_runs(tmp_path / "runs.csv")["run_id"].nunique() == 2


def test_a_sound_timing_file_is_read_as_written(one_timed_run):
    out, path = one_timed_run
    timings = timelimit.Timings(out)
    assert not timings.damaged and set(timings.runs) == {path.parent.name}
    assert sorted(timings.runs[path.parent.name]["epochs"]) == [1, 2, 3]


@pytest.mark.parametrize("flag,env,named", [("10m", None, "--force with --time-limit (10m 00s)"),
                                            (None, "25m", "--force with $ROBUSTBENCH_MIX_TIME_LIMIT (25m 00s)")])
def test_force_with_a_time_limit_is_refused_before_data_are_loaded(tmp_path, monkeypatch, capsys, flag, env, named):
    # each resumed piece would delete the checkpoints again: the "rerun while the exit status is 3" loop never ends
    def no_loading(*a, **k):
        raise AssertionError("data loaded")

    monkeypatch.setattr(grid, "load", no_loading)
    monkeypatch.delenv(timelimit.ENV, raising=False)
    if env is not None:
        monkeypatch.setenv(timelimit.ENV, env)
    limit = ["--time-limit", flag] if flag is not None else []
    for extra in ([], ["--dry-run"]):  # the dry run says what the real run would
        assert main(["--out", str(tmp_path), *GRID, "--force", *limit, *extra]) == 2
        err = capsys.readouterr().err
        assert err.count("error:") == 1 and named in err and "never finish" in err
        assert "give another --out" in err and "--time-limit none" in err
    assert main(["--out", str(tmp_path), *GRID, "--force", "--time-limit", "none", "--dry-run"]) == 0


def test_force_without_a_limit_retrains_a_finished_run(fake_time, tmp_path, capsys):
    assert fake_time(["--out", str(tmp_path), *GRID]) == 0
    capsys.readouterr()
    assert fake_time(["--out", str(tmp_path), *GRID, "--force"]) == 0
    err = capsys.readouterr().err
    assert "training 1 run(s), 0 finished earlier" in err and "done in" in err


@pytest.mark.parametrize("extra,n", [([], 1), (["--surrogate-seed", "100"], 2)], ids=["run", "surrogate"])
def test_the_wait_for_another_processs_run_lock_ends_at_the_limit(tmp_path, monkeypatch, capsys, extra, n):
    # the lock held is the run's, or (black-box rows) that of the surrogate its target also waits for
    import fcntl
    import os
    import threading
    import time

    monkeypatch.delenv(timelimit.ENV, raising=False)
    args = ["--out", str(tmp_path), *GRID, *extra]
    assert main([*args, "--dry-run"]) == 0
    rid = capsys.readouterr().out.splitlines()[1].split()[0]
    run_dir = tmp_path / "runs" / rid
    run_dir.mkdir(parents=True)
    (run_dir / "owner.json").write_text(json.dumps({"pid": 4242, "host": "elsewhere", "since": "noon"}))
    fd = os.open(run_dir / ".lock", os.O_RDWR | os.O_CREAT)  # another process is training the run
    fcntl.flock(fd, fcntl.LOCK_EX)
    release = threading.Timer(60, fcntl.flock, [fd, fcntl.LOCK_UN])  # a wait ignoring the limit ends (and fails)
    release.start()
    try:
        t0 = time.monotonic()
        code = main([*args, "--time-limit", "4s"])
        elapsed = time.monotonic() - t0
    finally:
        release.cancel()
        os.close(fd)
    err = capsys.readouterr().err
    assert code == 3, err[-2000:]  # not 0 after waiting, not 2: the other process goes on, the same command resumes
    assert elapsed < 30
    assert "while waiting for pid 4242 on host elsewhere since noon" in err and "stopped waiting" in err
    assert f"0 of {n} run(s) finished" in err and f"{rid} erm" in err and err.count(": not started") == n
    assert not (run_dir / "checkpoint.pt").exists() and not (tmp_path / "runs.csv").exists()


@pytest.fixture
def failing_first_epoch(fake_time):
    """Like fake_time, but the first epoch trained in each invocation raises after its 10 s: that run fails."""

    def run(argv):
        calls = []

        def fail_once(epoch, model):
            calls.append(epoch)
            if len(calls) == 1:
                raise RuntimeError("planted failure")

        return fake_time(argv, extra_hooks=(fail_once,))

    return run


def test_a_run_that_failed_before_the_limit_is_named_and_the_exit_is_1_when_nothing_else_ran(failing_first_epoch,
                                                                                             tmp_path, capsys):
    # run 1 fails at 10 s; run 2 cannot start before the 5 s limit: not "nothing was trained, raise the limit"
    argv = ["--out", str(tmp_path), "--seeds", "0,1", *GRID, "--time-limit", "5s"]
    assert failing_first_epoch(argv) == 1
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if " erm alpha=0 dropout=0 noise=0 seed=" in line and
             line.startswith("  ")]
    assert len(lines) == 2 and "FAILED in this invocation" in lines[0] and lines[1].endswith(": not started")
    block = err.split("1 run(s) failed (details in ")[1].splitlines()
    assert "failures.csv" in block[0] and "RuntimeError: planted failure" in block[1]
    assert "loading the data took it all" not in err and "the run(s) that failed" in err
    assert (tmp_path / "failures.csv").exists()


def test_a_run_that_failed_before_the_limit_is_named_and_the_exit_is_3_when_others_progressed(failing_first_epoch,
                                                                                              tmp_path, capsys):
    # run 1 fails at 10 s; run 2's epochs end at 20 and 30 s, a third would pass the 30 s limit: progress, exit 3
    argv = ["--out", str(tmp_path), "--seeds", "0,1", *GRID, "--time-limit", "30s"]
    assert failing_first_epoch(argv) == 3
    err = capsys.readouterr().err
    states = [line.split(": ", 1)[1] for line in err.splitlines()
              if line.startswith("  ") and " erm alpha=0 dropout=0 noise=0 seed=" in line]
    assert states[0].startswith("FAILED in this invocation") and states[1] == "partial, epoch 2 of 3"
    assert "RuntimeError: planted failure" in err.split("1 run(s) failed (details in ")[1].splitlines()[1]
    assert "the same command resumes from there:" in err and "0.0s are left" in err


def test_the_estimate_uses_only_what_was_measured_on_this_environment(tmp_path):
    """An epoch timed on a GPU says nothing of one on this CPU: a grid resumed elsewhere must not stop (or go on)
    by another machine's speed. Seeds share their configuration's timing; set-up pieces count only when alone."""
    from robustbench_mix.experiment.experiment import Experiment

    timings = timelimit.Timings(tmp_path)
    exp, other_seed = Experiment(epochs=3), Experiment(epochs=3, seed=1)
    timings.record(exp, 1, 50.0, True, "cpu (x86_64, 2 threads)")
    timings.record(exp, 2, 10.0, False, "cpu (x86_64, 2 threads)")
    timings.record(exp, 3, 1.0, False, "cuda (NVIDIA H100)")
    timings.record(exp, None, 4.0, False, "cuda (NVIDIA H100)")
    assert timings.estimate(other_seed, "cpu (x86_64, 2 threads)") == (10.0, None, {"cpu (x86_64, 2 threads)"})
    assert timings.estimate(exp, "cuda (NVIDIA H100)") == (1.0, 4.0, {"cuda (NVIDIA H100)"})
    assert timings.estimate(exp, "cpu (x86_64, 1 threads)") == (None, None, set())
    assert timings.estimate(exp, None)[0] == pytest.approx(5.5)
    assert timelimit.Timings(tmp_path).estimate(exp, "cuda (NVIDIA H100)") == (1.0, 4.0, {"cuda (NVIDIA H100)"})
