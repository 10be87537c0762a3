"""The Ray executor on a real local Ray cluster (CPU only; a fake GPU count for the packing logic)."""

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from robustbench_mix.cli.suite import main
from robustbench_mix.data.sources import load_digits
from robustbench_mix.execution.executors import Job, Outcome, Recorder
from robustbench_mix.execution.ray import RayExecutor
from robustbench_mix.experiment.experiment import DEFAULT_OPTIONS, Experiment
from robustbench_mix.store.load import load_runs
from robustbench_mix.store.schema import KEY

ROOT = Path(__file__).resolve().parents[2]
GRID = ["--methods", "erm", "--noise", "0", "--eps", "8", "--attack-steps", "2", "--no-progress"]
VALUES = [*KEY, "value"]


@pytest.fixture(scope="session")
def ray_cluster():
    """One Ray instance for every test here (its start-up costs seconds): 2 CPUs and one fake GPU."""
    ray = pytest.importorskip("ray")
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the hooks below travel to the workers
    ray.init(num_cpus=2, num_gpus=1, include_dashboard=False, log_to_driver=True)
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


def _cli(*args):
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1", RAY_USAGE_STATS_ENABLED="0")
    return subprocess.Popen([sys.executable, "-m", "robustbench_mix.suite", *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_a_ray_grid_with_a_surrogate_gives_the_local_executors_rows(ray_cluster, tmp_path):
    grid = ["--methods", "erm,mixup", "--seeds", "0", "--epochs", "2", "--surrogate-seed", "7", *GRID[2:]]
    assert main([*grid, "--out", str(tmp_path / "local")]) == 0
    threads = torch.get_num_threads()  # the same thread count gives the same arithmetic
    assert main([*grid, "--out", str(tmp_path / "ray"), "--executor", "ray", "--cpus-per-run", str(threads)]) == 0
    local, ray = (load_runs(tmp_path / d / "runs.csv") for d in ("local", "ray"))
    assert ray["run_id"].nunique() == 3 and ray["attack"].str.startswith("bb:").any()  # surrogate rows
    a, b = (df[VALUES].sort_values(KEY).reset_index(drop=True) for df in (local, ray))
    pd.testing.assert_frame_equal(a, b)


def test_adversarial_training_and_the_cpu_layout_run_on_ray_workers_as_locally(ray_cluster, tmp_path):
    # the method's options and --cpu-channels-last travel in the job; the worker's rows say which layout ran
    grid = ["--methods", "pgd_at:steps=2,trades:steps=2", "--seeds", "0", "--epochs", "2", "--cpu-channels-last",
            "--attack-restarts", "2", *GRID[2:]]
    assert main([*grid, "--out", str(tmp_path / "local")]) == 0
    threads = torch.get_num_threads()
    assert main([*grid, "--out", str(tmp_path / "ray"), "--executor", "ray", "--cpus-per-run", str(threads)]) == 0
    local, ray = (load_runs(tmp_path / d / "runs.csv") for d in ("local", "ray"))
    assert set(ray["method"]) == {"pgd_at", "trades"} and ray["device"].str.endswith("channels_last)").all()
    positive = ray[ray["metric"].str.startswith("check:positive:restarts_le_single")]  # the adversarial trait
    assert len(positive) == 2 and (positive["value"] == 1).all()  # reached the checks, one per run
    a, b = (df[VALUES].sort_values(KEY).reset_index(drop=True) for df in (local, ray))
    pd.testing.assert_frame_equal(a, b)


def _die_once(marker: Path, log: Path):
    def hook(epoch, model):
        with open(log, "a") as f:
            f.write(f"{epoch}\n")
        if epoch == 1 and not marker.exists():
            marker.touch()
            os._exit(1)  # the worker dies mid-run, after its epoch-1 checkpoint
    return hook


def test_a_worker_that_dies_is_retried_and_resumes_from_its_checkpoint(ray_cluster, tmp_path):
    marker, log = tmp_path / "died", tmp_path / "epochs.log"
    argv = [*GRID, "--seeds", "0", "--epochs", "3", "--out", str(tmp_path / "out"), "--executor", "ray",
            "--max-retries", "1"]
    assert main(argv, hooks=(_die_once(marker, log),)) == 0
    assert marker.exists()
    assert log.read_text().split() == ["1", "2", "3"]  # epoch 1 once: the retry resumed, it did not restart
    df = load_runs(tmp_path / "out" / "runs.csv")
    assert df["run_id"].nunique() == 1 and not df.duplicated(KEY).any() and df["epoch"].max() == 3
    assert not (tmp_path / "out" / "failures.csv").exists()


def _always_die(epoch, model):
    os._exit(1)


def test_a_run_whose_worker_keeps_dying_fails_alone(ray_cluster, tmp_path, capsys):
    argv = [*GRID, "--seeds", "0", "--epochs", "1", "--out", str(tmp_path), "--executor", "ray", "--max-retries", "0"]
    assert main(argv, hooks=(_always_die,)) == 1
    fails = pd.read_csv(tmp_path / "failures.csv")
    assert len(fails) == 1 and "Worker" in fails["reason"][0]
    assert "1 run(s) failed" in capsys.readouterr().err


def test_a_ray_grid_and_a_local_process_on_one_out_end_with_every_run_once(ray_cluster, tmp_path):
    out = str(tmp_path)
    ray = _cli(*GRID, "--seeds", "0,1,2", "--epochs", "2", "--out", out, "--executor", "ray",
               "--address", ray_cluster)
    local = _cli(*GRID, "--seeds", "1,2,3", "--epochs", "2", "--out", out)
    for p in (ray, local):
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    df = load_runs(tmp_path / "runs.csv")
    assert sorted(df["seed"].unique()) == [0, 1, 2, 3]
    assert not df.duplicated(KEY).any()
    assert not (tmp_path / "failures.csv").exists()


class _Keep(Recorder):
    def __init__(self, out):
        super().__init__(out, 0, progress=False)
        self.outcomes: list[Outcome] = []

    def record(self, o, tag):
        self.outcomes.append(o)
        super().record(o, tag)


def _max_overlap(outcomes) -> int:
    events = sorted([(o.started, 1) for o in outcomes] + [(o.ended, -1) for o in outcomes])
    now = top = 0
    for _, d in events:
        now += d
        top = max(top, now)
    return top


@pytest.mark.parametrize("share, most", [(1.0, 1), (0.5, 2)])
def test_a_gpu_fraction_packs_that_many_runs_per_gpu_and_no_more(ray_cluster, tmp_path, share, most):
    data = {"digits": load_digits(None)}
    runs = [(Experiment(dataset="digits", model="mlp", epochs=2, batch_size=100, attacks=(), seed=s), f"seed {s}")
            for s in range(4)]
    args = argparse.Namespace(address="", gpus_per_run=share, cpus_per_run=0.5, max_retries=0)
    rec = _Keep(tmp_path)
    job = Job(tmp_path, DEFAULT_OPTIONS, False, frozenset(), "test", "rev", hooks=(lambda e, m: time.sleep(0.5),))
    RayExecutor(args).run(runs, data, job, rec)
    assert [o.status for o in rec.outcomes] == ["done"] * 4
    assert all(o.resources.get("GPU") == share for o in rec.outcomes)
    assert _max_overlap(rec.outcomes) <= most


def test_missing_ray_names_the_extra(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray raises ImportError
    assert main([*GRID, "--out", str(tmp_path), "--executor", "ray"]) == 2
    err = capsys.readouterr().err
    assert "robustbench_mix[ray]" in err and "Traceback" not in err


@pytest.mark.parametrize("address, says", [("not an address", "is not 'auto', HOST:PORT"),
                                           ("127.0.0.1:1", "cannot reach a Ray head there")])
def test_a_bad_address_fails_before_any_training_naming_it(tmp_path, address, says):
    pytest.importorskip("ray")
    p = _cli(*GRID, "--out", str(tmp_path), "--executor", "ray", "--address", address)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 2 and address in err and says in err and "Traceback" not in err
    assert not (tmp_path / "runs").exists()


def test_ctrl_c_on_the_driver_cancels_the_tasks_and_says_how_to_resume(ray_cluster, tmp_path):
    p = _cli(*GRID, "--seeds", "0,1", "--epochs", "200", "--out", str(tmp_path), "--executor", "ray",
             "--address", ray_cluster)
    deadline = time.time() + 120
    while not list(tmp_path.glob("runs/*/checkpoint.pt")) and time.time() < deadline:
        time.sleep(0.5)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 130, err
    assert "cancelled 2 Ray task(s)" in err and "run the same command again to resume" in err
    time.sleep(2)
    ckpts = list(tmp_path.glob("runs/*/checkpoint.pt"))
    sizes = {c: c.stat().st_mtime for c in ckpts}
    time.sleep(3)  # cancelled: nobody writes checkpoints any more
    assert {c: c.stat().st_mtime for c in ckpts} == sizes


@pytest.mark.parametrize("flags, says", [(["--cpus-per-run", "3"], "use --cpus-per-run 2 or less"),
                                         (["--gpus-per-run", "2"], "use --gpus-per-run 0 (no node has 2 GPU(s))")])
def test_a_request_no_node_can_hold_is_refused_before_the_data_are_loaded(ray_cluster, tmp_path, capsys, monkeypatch,
                                                                          flags, says):
    import robustbench_mix.execution.grid as grid

    monkeypatch.setattr(grid, "load", lambda *a, **k: pytest.fail("data loaded"))
    assert main([*GRID, "--seeds", "0", "--out", str(tmp_path), "--executor", "ray", *flags]) == 2
    err = capsys.readouterr().err
    assert "no node of the Ray cluster has that much (its nodes have: 2 CPU(s), 1 GPU(s))" in err and says in err


def test_an_address_where_another_server_listens_fails_in_seconds_naming_it(tmp_path):
    import socket
    import threading

    pytest.importorskip("ray")
    server = socket.create_server(("127.0.0.1", 0))
    held = []

    def accept():  # a server that is not Ray's: it takes connections and says nothing
        while True:
            try:
                held.append(server.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    address = f"127.0.0.1:{server.getsockname()[1]}"
    t = time.time()
    try:
        p = _cli(*GRID, "--out", str(tmp_path), "--executor", "ray", "--address", address)
        _, err = p.communicate(timeout=120)
    finally:
        server.close()
    assert p.returncode == 2 and f"--address {address}: something listens there, but it does not answer as a Ray " \
        "head does" in err and "Traceback" not in err
    assert time.time() - t < 60 and not (tmp_path / "runs").exists()


def test_sigterm_under_ray_stops_with_the_resume_message(ray_cluster, tmp_path):
    p = _cli(*GRID, "--seeds", "0", "--epochs", "200", "--out", str(tmp_path), "--executor", "ray",
             "--address", ray_cluster)
    deadline = time.time() + 120
    while not list(tmp_path.glob("runs/*/checkpoint.pt")) and time.time() < deadline:
        time.sleep(0.5)
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 143, err[-2000:]
    assert "terminated (SIGTERM)" in err and "run the same command again to resume" in err
    assert "cancelled 1 Ray task(s)" in err and "Traceback" not in err
