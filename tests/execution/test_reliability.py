"""Reliability under many writers and damaged state: each test plants the failure a hostile user found."""

import os
import shutil
import signal
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from robustbench_mix.cli.suite import main
from robustbench_mix.core.atomic import atomic_write_text
from robustbench_mix.core.errors import RunFailed, UsageError
from robustbench_mix.experiment.experiment import Experiment, RunOptions
from robustbench_mix.store.load import damaged_runs, load_runs
from robustbench_mix.store.schema import KEY, ResultsError, to_frame
from robustbench_mix.store.write import merge_run, neutralize, record_failure

TINY = ["--methods", "erm", "--noise", "0", "--epochs", "1", "--eps", "8", "--attack-steps", "1", "--no-progress"]
ROOT = Path(__file__).resolve().parents[2]


def _cli(*args, **kw):
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
    return subprocess.Popen([sys.executable, "-m", "robustbench_mix.suite", *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


# ----------------------------------------------------------------------------------------------- many writers
def _merge(args):
    path, seed = args
    exp = Experiment(seed=seed, epochs=1)
    rows = [{"epoch": 1, "split": "test", "attack": "none", "eps": 0.0, "metric": "acc", "value": 0.5 + seed / 100}]
    merge_run(Path(path), to_frame(exp, rows, device="cpu", command="t", rev="r"))


def test_simultaneous_merges_keep_every_run(tmp_path):
    path = tmp_path / "runs.csv"
    with ProcessPoolExecutor(6) as pool:
        list(pool.map(_merge, [(str(path), s) for s in range(6)]))
    df = load_runs(path)
    assert sorted(df["seed"].unique()) == list(range(6)) and not df.duplicated(KEY).any()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_four_processes_on_one_out_end_with_every_run_exactly_once(tmp_path):
    out = tmp_path / "shared"
    # overlapping grids: every seed is asked for by two processes
    procs = [_cli("--out", str(out), *TINY, "--seeds", s) for s in ("0,1", "1,2", "2,3", "3,0")]
    results = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0, 0], [e[-2000:] for _, e in results]
    df = load_runs(out / "runs.csv")
    assert sorted(df["seed"].unique()) == [0, 1, 2, 3] and not df.duplicated(KEY).any()
    assert df.groupby("run_id").size().nunique() == 1  # each run complete
    err = "".join(e for _, e in results)
    for rid in df["run_id"].unique():  # no run was trained twice
        assert err.count(f"{rid} erm alpha=0 dropout=0 noise=0 seed=") and \
            sum(f"{rid} " in line and "done in" in line for line in err.splitlines()) == 1
    assert not list(out.rglob("*.tmp"))


def test_a_second_process_says_what_the_first_is_doing_and_waits_for_it(tmp_path, capsys):
    from robustbench_mix.execution.locks import run_lock

    args = ["--out", str(tmp_path / "r"), *TINY]
    assert main([*args, "--dry-run"]) == 0
    rid = capsys.readouterr().out.splitlines()[1].split()[0]
    log = tmp_path / "err.log"
    with run_lock(tmp_path / "r" / "runs" / rid), open(log, "w") as f:  # this process plays the first trainer
        p = subprocess.Popen([sys.executable, "-m", "robustbench_mix.suite", *args], cwd=ROOT, stderr=f,
                             stdout=subprocess.DEVNULL, env=dict(os.environ, PYTHONUNBUFFERED="1"))
        deadline = time.time() + 120
        while "waiting for" not in log.read_text() and time.time() < deadline and p.poll() is None:
            time.sleep(0.1)
    assert p.wait(timeout=300) == 0, log.read_text()[-2000:]
    err = log.read_text()
    assert f"being trained by pid {os.getpid()} on host" in err and "waiting for" in err
    assert load_runs(tmp_path / "r" / "runs.csv")["run_id"].nunique() == 1


def test_temporary_names_are_unique_and_a_failed_write_leaves_none(tmp_path, monkeypatch):
    from robustbench_mix.core.atomic import temporary_name

    target = tmp_path / "x.csv"
    assert temporary_name(target) != temporary_name(target)
    atomic_write_text(target, "old")

    def full(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OSError, match="No space"):
        atomic_write_text(target, "new")
    assert target.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["x.csv"]


def test_a_checkpoint_that_cannot_be_written_fails_the_run_and_leaves_no_temporary_file(tmp_path, monkeypatch):
    from robustbench_mix.core.torchfile import save_checkpoint

    def too_big(fd):
        raise OSError(27, "File too large")

    monkeypatch.setattr(os, "fsync", too_big)
    with pytest.raises(RunFailed, match="could not write checkpoint .*File too large"):
        save_checkpoint({"epoch": 1, "w": torch.zeros(3)}, tmp_path / "checkpoint.pt")
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------------------------------- data identity
def _folder(root: Path, n=12):
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for c, base in (("a", 40), ("b", 200)):
            (root / split / c).mkdir(parents=True, exist_ok=True)
            for i in range(n):
                img = np.clip(base + rng.integers(-20, 20, (8, 8, 3)), 0, 255).astype(np.uint8)
                Image.fromarray(img).save(root / split / c / f"{i}.png")


def test_a_changed_image_folder_is_not_reported_with_the_old_numbers(tmp_path, capsys):
    root = tmp_path / "imgs"
    _folder(root)
    args = ["--dataset", f"imagefolder:{root}", "--model", "mlp", "--batch-size", "8", "--epochs", "2",
            "--eps", "8", "--attack-steps", "1", "--methods", "erm", "--noise", "0", "--no-progress",
            "--out", str(tmp_path / "r"), "--data-dir", str(tmp_path / "cache")]
    assert main(args) == 0
    (root / "test" / "a").rename(root / "test" / "tmp")  # swap the test classes
    (root / "test" / "b").rename(root / "test" / "a")
    (root / "test" / "tmp").rename(root / "test" / "b")
    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "measured on data whose content has changed" in err and "--force" in err
    assert main([*args, "--force"]) == 0


def test_sixteen_bit_png_is_scaled_not_saturated(tmp_path):
    from robustbench_mix.data.sources import _decode

    a = np.full((4, 4), 32768, dtype=np.uint16)
    Image.fromarray(a).save(tmp_path / "x.png")
    img = _decode(tmp_path / "x.png")
    assert img.shape == (4, 4, 3) and (img == 128).all()


def test_image_cache_that_is_wrong_or_truncated_is_rebuilt(tmp_path):
    from robustbench_mix.data.sources import load_image_folder

    a, b = tmp_path / "a", tmp_path / "b"
    _folder(a)
    _folder(b, n=12)
    for p in (b / "train" / "a").iterdir():  # other content, same layout
        Image.fromarray(np.zeros((8, 8, 3), dtype=np.uint8)).save(p)
    cache = tmp_path / "cache"
    real_b = load_image_folder(str(b), cache)
    real_a = load_image_folder(str(a), cache)
    ca = next(cache.glob("imagefolder-a-*.npz"))
    cb = next(cache.glob("imagefolder-b-*.npz"))
    shutil.copy(cb, ca)  # a valid cache of other data under a's name
    assert torch.equal(load_image_folder(str(a), cache).train_x, real_a.train_x)
    ca.write_bytes(ca.read_bytes()[:200])  # truncated
    assert torch.equal(load_image_folder(str(a), cache).train_x, real_a.train_x)
    assert not torch.equal(real_a.train_x, real_b.train_x)


def test_a_decompression_bomb_is_refused_before_decoding_naming_the_file(tmp_path):
    from robustbench_mix.data.sources import MAX_PIXELS, _decode

    side = int(MAX_PIXELS ** 0.5) + 1
    Image.new("L", (side, side)).save(tmp_path / "bomb.png")
    with pytest.raises(UsageError, match=r"bomb.png' is \d+x\d+ pixels, more than"):
        _decode(tmp_path / "bomb.png")


# ------------------------------------------------------------------- errors: refused before training, or a run's
def test_attack_samples_larger_than_the_test_set_is_refused_before_training(tmp_path, capsys, monkeypatch):
    import robustbench_mix.execution.executors as executors

    monkeypatch.setattr(executors, "run_experiment", lambda *a, **k: pytest.fail("training started"))
    assert main(["--out", str(tmp_path), *TINY, "--attack-samples", "100000"]) == 2
    assert "--attack-samples 100000 is larger than the test set of digits (497 images)" in capsys.readouterr().err


@pytest.mark.parametrize("flag,value", [("--seeds", "-1"), ("--seeds", str(2**40)), ("--surrogate-seed", "-5")])
def test_negative_or_huge_seeds_are_refused(tmp_path, capsys, flag, value):
    assert main(["--out", str(tmp_path), *TINY, f"{flag}={value}"]) == 2
    assert "outside [0, 2**32)" in capsys.readouterr().err


def test_nan_outputs_at_evaluation_fail_that_run_with_a_reason():
    from robustbench_mix.evaluation.metrics import clean_metrics

    with pytest.raises(RunFailed, match="not finite at evaluation"):
        clean_metrics(torch.full((4, 10), float("nan")), torch.zeros(4, dtype=torch.long))


def test_an_empty_failures_file_is_rewritten(tmp_path):
    path = tmp_path / "failures.csv"
    path.write_text("")
    record_failure(path, Experiment(), "boom")
    assert list(pd.read_csv(path)["reason"]) == ["boom"]


def test_a_diverging_run_fails_with_the_reason(tmp_path, capsys, monkeypatch):
    import robustbench_mix.training.train as train

    monkeypatch.setattr(train, "DIVERGED", 1e-6)  # any loss now counts as diverged
    assert main(["--out", str(tmp_path), *TINY, "--methods", "erm,mixup"]) == 1
    err = capsys.readouterr().err
    assert "training diverged" in err and "2 run(s) failed" in err


def _finished(tmp_path):
    args = ["--out", str(tmp_path), *TINY]
    assert main(args) == 0
    return args, tmp_path / "runs.csv"


def _set_first_test_acc(path, value):
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    i = df.index[(df["split"] == "test") & (df["attack"] == "none") & (df["metric"] == "acc")][0]
    df.loc[i, "value"] = value
    df.to_csv(path, index=False)


@pytest.mark.parametrize("damage,reason", [
    (lambda p: p.write_text("".join(line for i, line in enumerate(p.read_text().splitlines(keepends=True))
                                    if i not in (3, 4))), r"has \d+ of its \d+ rows"),
    (lambda p: _set_first_test_acc(p, "nan"), "impossible value nan"),
    (lambda p: _set_first_test_acc(p, "7.5"), "impossible value 7.5"),
    (lambda p: _set_first_test_acc(p, "inf"), "impossible value inf"),
])
def test_a_damaged_run_is_reported_and_redone(tmp_path, capsys, damage, reason):
    args, path = _finished(tmp_path)
    good = load_runs(path).set_index(KEY)["value"].sort_index()
    damage(path)
    with pytest.raises(ResultsError, match=reason):
        load_runs(path)
    capsys.readouterr()
    assert main(args) == 0
    assert "it is not counted as finished and will be redone" in capsys.readouterr().err
    redone = load_runs(path).set_index(KEY)["value"].sort_index()
    pd.testing.assert_series_equal(redone, good)  # the CPU is deterministic


def test_a_checkpoint_with_flipped_bits_in_its_weights_is_refused(tmp_path, capsys):
    args, _ = _finished(tmp_path)
    ck = next(tmp_path.glob("runs/*/checkpoint.pt"))
    state = torch.load(ck, weights_only=True)
    w = max(state["model"].values(), key=lambda t: t.numel()).contiguous().numpy().tobytes()
    raw = bytearray(ck.read_bytes())
    at = raw.find(w[:64])
    assert at > 0
    raw[at + 10] ^= 0x04
    ck.write_bytes(bytes(raw))
    from robustbench_mix.core.torchfile import load_checkpoint

    with pytest.raises(RunFailed, match="fails its checksum"):
        load_checkpoint(ck, torch.device("cpu"))


def test_results_files_with_broken_text_name_the_file_and_line(tmp_path):
    _, path = _finished(tmp_path)
    text = path.read_text()
    lines = text.splitlines()
    bad_json = "\n".join([lines[0], lines[1].replace('{""alpha""', '{""alpha""::', 1), *lines[2:]]) + "\n"
    path.write_text(bad_json)
    with pytest.raises(ResultsError, match="line 2, column 'config' is not a valid experiment"):
        load_runs(path)
    path.write_bytes(text.encode()[:50] + b"\xff\xfe" + text.encode()[50:])
    with pytest.raises(ResultsError, match="not UTF-8"):
        load_runs(path)


def test_spreadsheet_formulas_in_a_results_file_are_refused_and_neutralized_where_written(tmp_path):
    _, path = _finished(tmp_path)
    text = path.read_text().replace(",erm,", ",=cmd|' /C calc'!A0,", 1)
    path.write_text(text)
    with pytest.raises(ResultsError, match="column 'method' holds \"=cmd"):
        load_runs(path)
    assert neutralize("=1+1") == "'=1+1" and neutralize("@SUM(A1)") == "'@SUM(A1)" and neutralize("erm") == "erm"


def test_a_dollar_sign_in_a_name_does_not_break_the_plots(tmp_path):
    from robustbench_mix.reports.plots import robust_accuracy

    exp = Experiment(dataset="imagefolder:my$data", epochs=1)
    rows = [{"epoch": 1, "split": "test", "attack": "fgsm", "eps": e, "metric": "acc", "value": 0.9 - e}
            for e in (0.0, 0.03)]
    path = robust_accuracy(to_frame(exp, rows, device="cpu", command="t", rev="r"), tmp_path / "r.png")
    from PIL import Image

    img = np.asarray(Image.open(path).convert("L"), dtype=float)
    assert img.shape[0] > 100 and img.shape[1] > 100 and img.std() > 1  # a drawn figure, not an empty canvas


def test_dry_run_into_a_closed_pipe_exits_quietly(tmp_path):
    p = subprocess.run(f"{sys.executable} -m robustbench_mix.suite --preset table2-cpu --out {tmp_path} --dry-run "
                       "| head -n 1", shell=True, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert p.stdout.startswith("39 runs") or p.stdout.strip()
    assert "Traceback" not in p.stderr and "BrokenPipe" not in p.stderr


# ------------------------------------------------------------------------------------------------- interrupts
def test_sigterm_stops_with_the_resume_message(tmp_path):
    out = tmp_path / "t"
    p = _cli("--out", str(out), "--methods", "erm", "--noise", "0", "--epochs", "200", "--eps", "8",
             "--attack-steps", "1", "--no-progress")
    deadline = time.time() + 120
    while not list(out.glob("runs/*/checkpoint.pt")) and time.time() < deadline and p.poll() is None:
        time.sleep(0.05)
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 143, err[-2000:]
    assert "terminated (SIGTERM)" in err and "run the same command again to resume" in err
    assert "Traceback" not in err


def test_a_surrogate_left_partial_by_an_interrupted_force_rerun_is_retrained(tmp_path, capsys):
    from robustbench_mix.cli.suite_args import build_parser, suite_from_args
    from robustbench_mix.data.sources import load_digits
    from robustbench_mix.execution.runner import run_experiment
    from robustbench_mix.experiment.grids import surrogate_of

    common = ["--preset", "table3-cpu", "--out", str(tmp_path), "--epochs", "2", "--attack-steps", "1", "--eps", "8",
              "--methods", "erm", "--no-progress"]
    args = [*common, "--seeds", "0"]
    assert main(args) == 0
    target, = suite_from_args(build_parser().parse_args(args)).expand()
    sur = surrogate_of(target)

    class Stop(Exception):
        pass

    def stop(epoch, model):
        raise Stop()

    ck = tmp_path / "runs" / sur.run_id / "checkpoint.pt"
    ck.unlink()  # what --force does first, then Ctrl-C after one epoch
    with pytest.raises(Stop):
        run_experiment(sur, load_digits(None), run_dir=ck.parent, options=RunOptions(progress=False), hooks=(stop,))
    capsys.readouterr()
    assert main([*common, "--seeds", "1"]) == 0  # a new target needs the surrogate
    assert "has not finished training" not in capsys.readouterr().err


def test_damaged_runs_lists_lost_rows_and_impossible_values():
    exp = Experiment(epochs=1)
    rows = [{"epoch": 1, "split": "test", "attack": "none", "eps": 0.0, "metric": m, "value": v}
            for m, v in (("acc", 0.9), ("nll", 0.3))]
    df = to_frame(exp, rows, device="cpu", command="t", rev="r")
    assert damaged_runs(df) == {}
    assert "has 2 of its 3 rows" in damaged_runs(df.iloc[1:])[exp.run_id]
    bad = df.copy()
    bad.loc[0, "value"] = 1.5
    assert "impossible value 1.5" in damaged_runs(bad)[exp.run_id]


def test_rows_of_a_run_whose_driver_died_before_recording_them_are_recorded_without_retraining(tmp_path, capsys):
    argv = ["--out", str(tmp_path), *TINY, "--seeds", "0"]
    assert main(argv) == 0
    df = load_runs(tmp_path / "runs.csv")
    (rid,) = df["run_id"].unique()
    # what a worker leaves when its driver dies between the run's end and recording it
    df.to_csv(tmp_path / "runs" / rid / "rows.csv", index=False)
    (tmp_path / "runs.csv").unlink()
    ckpt = tmp_path / "runs" / rid / "checkpoint.pt"
    before = ckpt.stat().st_mtime_ns
    capsys.readouterr()
    assert main(argv) == 0
    assert "finished by another process meanwhile" in capsys.readouterr().err
    assert ckpt.stat().st_mtime_ns == before  # not retrained
    assert load_runs(tmp_path / "runs.csv")[KEY + ["value"]].equals(df[KEY + ["value"]])
    assert not (tmp_path / "runs" / rid / "rows.csv").exists()


def test_damaged_pending_rows_are_not_trusted_and_the_run_is_redone(tmp_path, capsys):
    argv = ["--out", str(tmp_path), *TINY, "--seeds", "0"]
    assert main(argv) == 0
    (rid,) = load_runs(tmp_path / "runs.csv")["run_id"].unique()
    (tmp_path / "runs" / rid / "rows.csv").write_text("run_id,value\nnot,a run\n")
    (tmp_path / "runs.csv").unlink()
    capsys.readouterr()
    assert main(argv) == 0
    assert "done in" in capsys.readouterr().err
    assert load_runs(tmp_path / "runs.csv")["run_id"].unique().tolist() == [rid]


# --------------------------------------------------------------- round three: AutoAttack, attacks, limits, flags
def _classes_folder(root: Path, classes: int, n: int = 6) -> Path:
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for c in range(classes):
            (root / split / f"c{c}").mkdir(parents=True, exist_ok=True)
            for i in range(n):
                img = np.clip(25 * c + rng.integers(-30, 30, (8, 8, 3)), 0, 255).astype(np.uint8)
                Image.fromarray(img).save(root / split / f"c{c}" / f"{i}.png")
    return root


def _cheap_autoattack():
    """The standard AutoAttack with fewer iterations and queries: the same code paths, in seconds."""
    from pyautoattack import AutoAttack

    class Cheap(AutoAttack):
        def __init__(self, *a, **k):
            super().__init__(*a, **k)
            self.apgd.n_iter = self.apgd_targeted.n_iter = self.fab.n_iter = 5
            self.square.n_queries = 20

    return Cheap


@pytest.mark.parametrize("classes, precision", [(3, "fp32"), (5, "fp32"), (10, "bf16")])
def test_autoattack_with_few_classes_or_bf16_gives_rows(tmp_path, monkeypatch, classes, precision):
    pytest.importorskip("pyautoattack")
    import robustbench_mix.attacks.autoattack as autoattack_

    monkeypatch.setattr(autoattack_, "autoattack_class", _cheap_autoattack)
    root = _classes_folder(tmp_path / "img", classes)
    # a tiny epsilon: points survive APGD-CE, so APGD-T, FAB-T and Square all run
    assert main(["--dataset", f"imagefolder:{root}", "--model", "mlp", "--batch-size", "6", "--epochs", "1",
                 "--methods", "erm", "--noise", "0", "--attacks", "autoattack", "--eps", "0.05/255",
                 "--attack-precision", precision, "--out", str(tmp_path / "r"), "--data-dir", str(tmp_path / "c"),
                 "--no-progress"]) == 0
    df = load_runs(tmp_path / "r" / "runs.csv")
    aa = df[(df["attack"] == "autoattack") & (df["metric"] == "acc") & (df["eps"] > 0)]["value"]
    clean = df[(df["attack"] == "none") & (df["metric"] == "acc_attacked_subset")]["value"]
    assert len(aa) == 1 and aa.item() <= clean.item()


def test_autoattack_is_the_standard_version_with_ten_classes_and_targets_what_exists_below():
    pytest.importorskip("pyautoattack")
    from robustbench_mix.attacks.autoattack import autoattack_for

    model = torch.nn.Linear(2, 2)
    ten = autoattack_for(model, 8 / 255, 10, "cpu")
    assert ten.attacks_to_run == ["apgd-ce", "apgd-t", "fab-t", "square"]
    assert ten.apgd_targeted.n_target_classes == ten.fab.n_target_classes == 9 and ten.square.n_queries == 5000
    five = autoattack_for(model, 8 / 255, 5, "cpu")
    assert five.attacks_to_run == ten.attacks_to_run and five.apgd_targeted.n_target_classes == 4
    three = autoattack_for(model, 8 / 255, 3, "cpu")
    assert three.attacks_to_run == ["apgd-ce", "fab-t", "square"] and three.fab.n_target_classes == 2


def test_an_attack_that_raises_fails_its_run_and_the_grid_goes_on(tmp_path, capsys, monkeypatch):
    import robustbench_mix.evaluation.evaluators as evaluators
    from robustbench_mix.attacks.base import Attack

    real, calls = evaluators.get_attack, []

    def flaky(name):
        a = real(name)

        def fn(model, x, y, eps, **kw):
            if not calls:  # the first run's first attack: what pyautoattack raised on 3 classes
                calls.append(name)
                raise IndexError("index -4 is out of bounds for dimension 1 with size 3")
            return a.fn(model, x, y, eps, **kw)

        return Attack(fn, a.random_start, a.iterative)

    monkeypatch.setattr(evaluators, "get_attack", flaky)
    assert main(["--out", str(tmp_path), *TINY, "--methods", "erm,mixup"]) == 1
    err = capsys.readouterr().err
    assert "IndexError: index -4 is out of bounds" in err and "Traceback" not in err
    fails = pd.read_csv(tmp_path / "failures.csv")
    assert len(fails) == 1 and "IndexError" in fails["reason"][0]
    assert load_runs(tmp_path / "runs.csv")["run_id"].nunique() == 1  # the other run finished


def test_a_checkpoint_over_the_file_size_limit_fails_its_run_without_a_traceback(tmp_path):
    import resource

    def limit():  # what `ulimit -f 200` gives, with SIGXFSZ ignored as a batch system may
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))

    p = subprocess.run([sys.executable, "-m", "robustbench_mix.suite", "--out", str(tmp_path), *TINY], cwd=ROOT,
                       preexec_fn=limit, capture_output=True, text=True, timeout=300,
                       env=dict(os.environ, PYTHONDONTWRITEBYTECODE="1", OMP_NUM_THREADS="1"))
    assert p.returncode == 1, p.stderr[-2000:]
    assert "could not write checkpoint" in p.stderr and "File too large" in p.stderr
    assert "Traceback" not in p.stderr
    assert "File too large" in pd.read_csv(tmp_path / "failures.csv")["reason"][0]
    assert not list(tmp_path.rglob("*.tmp"))


@pytest.mark.parametrize("flags, says", [
    (["--gpus-per-run", "1"], "--gpus-per-run 1.0: Ray option(s), and the executor is local"),
    (["--address", "auto", "--max-retries", "3"], "--address auto, --max-retries 3: Ray option(s)"),
    (["--executor", "ray", "--gpus-per-run", "1.5"], "--gpus-per-run 1.5: Ray takes a fraction up to 1"),
    (["--executor", "ray", "--cpus-per-run", "2.5"], "--cpus-per-run 2.5: Ray takes a fraction up to 1"),
])
def test_ray_flags_that_would_be_ignored_or_crash_are_refused(tmp_path, capsys, flags, says):
    assert main(["--out", str(tmp_path), *TINY, *flags]) == 2
    err = capsys.readouterr().err
    assert says in err and "Traceback" not in err and not (tmp_path / "runs").exists()


def test_a_ray_request_no_node_can_hold_is_refused():
    import argparse

    from robustbench_mix.execution.ray import RayExecutor

    def ray(gpus=None, cpus=None):
        return RayExecutor(argparse.Namespace(address="", gpus_per_run=gpus, cpus_per_run=cpus, max_retries=None))

    cpu_only = [{"CPU": 2.0}]
    runs = [Experiment()]
    with pytest.raises(UsageError, match=r"no node of the Ray cluster has that much .*use --gpus-per-run 0"):
        ray(gpus=1).check_feasible(runs, cpu_only)
    with pytest.raises(UsageError, match=r"--cpus-per-run 4: no node .*use --cpus-per-run 2 or less"):
        ray(cpus=4).check_feasible(runs, [{"CPU": 2.0, "GPU": 1.0}, {"CPU": 1.0}])
    with pytest.raises(UsageError, match="--device cuda with --executor ray, but the runs get no GPU share"):
        ray().check_feasible([Experiment(device="cuda")], cpu_only)
    ray().check_feasible(runs, cpu_only)  # the default: no GPU asked for where there is none
    ray(gpus=0.5, cpus=2).check_feasible(runs, [{"CPU": 1.0}, {"CPU": 2.0, "GPU": 1.0}])


def test_dry_run_marks_the_runs_the_real_run_refuses(tmp_path, capsys):
    assert main(["--out", str(tmp_path), *TINY, "--attack-samples", "100000", "--dry-run"]) == 2
    out = capsys.readouterr()
    assert "refused" in out.out and "--attack-samples 100000 is larger than the test set" in out.out
    assert "would be refused" in out.err
    assert main(["--out", str(tmp_path), *TINY, "--dry-run"]) == 0
    assert "refused" not in capsys.readouterr().out


def test_a_run_whose_rows_would_make_runs_csv_unreadable_fails_alone_and_the_file_stays_readable(tmp_path, capsys,
                                                                                                 monkeypatch):
    """The store's last line of defence: rows under one key twice (which validation now refuses before
    training) are not written; that run is recorded as failed, the grid goes on and runs.csv reads."""
    import robustbench_mix.execution.executors as executors

    real = executors.run_experiment

    def twice_for_mixup(exp, *a, **k):
        rows = real(exp, *a, **k)
        return rows + rows[:1] if exp.method == "mixup" else rows

    monkeypatch.setattr(executors, "run_experiment", twice_for_mixup)
    args = ["--out", str(tmp_path), "--epochs", "1", "--no-progress", "--attacks", "none", "--noise", "0"]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "1 run(s) failed" in err and "were not written" in err and "repeats the measurement" in err, err
    df = load_runs(tmp_path / "runs.csv")
    assert set(df["method"]) == {"erm"} and not df.duplicated(KEY).any()
    assert list(pd.read_csv(tmp_path / "failures.csv")["method"]) == ["mixup"]
