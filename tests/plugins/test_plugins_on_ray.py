"""Ray workers load the driver's plugins and give the local rows; a worker whose plugin differs refuses the run."""

from dataclasses import replace

import pandas as pd
import pytest
import torch

from robustbench_mix.cli.suite import main as suite
from robustbench_mix.execution.executors import Job
from robustbench_mix.execution.ray import worker_plugins
from robustbench_mix.experiment.experiment import DEFAULT_OPTIONS, Experiment
from robustbench_mix.plugins import load_plugins, loaded_specs
from robustbench_mix.store.load import load_runs
from robustbench_mix.store.schema import KEY

GRID = ["--methods", "my_mix", "--model", "my_net", "--attacks", "my_fgsm", "--eps", "8", "--seeds", "0",
        "--noise", "0", "--epochs", "2", "--no-progress"]


def test_a_plugin_grid_on_ray_workers_gives_the_local_rows(write_plugin, tmp_path):
    ray = pytest.importorskip("ray")
    plugin = ["--plugin", str(write_plugin())]
    assert suite([*plugin, *GRID, "--out", str(tmp_path / "local")]) == 0
    started = not ray.is_initialized()
    threads = torch.get_num_threads()  # a worker computes with as many threads as the local run (equal numbers)
    if started:
        ray.init(num_cpus=threads, include_dashboard=False, log_to_driver=False)
    try:
        assert suite([*plugin, *GRID, "--out", str(tmp_path / "ray"), "--executor", "ray",
                      "--cpus-per-run", str(threads)]) == 0
    finally:
        if started:
            ray.shutdown()
    local, on_ray = (load_runs(tmp_path / d / "runs.csv")[[*KEY, "value"]].sort_values(KEY)
                     .reset_index(drop=True) for d in ("local", "ray"))
    pd.testing.assert_frame_equal(local, on_ray)  # the same run ids (fingerprints included) and numbers


def test_a_worker_whose_plugin_differs_from_the_drivers_refuses_the_run(write_plugin, tmp_path):
    path = write_plugin()
    load_plugins([str(path)])
    exp = Experiment(method="my_mix", alpha=1.0, model="my_net")
    job = Job(tmp_path, DEFAULT_OPTIONS, False, frozenset(), "test", "rev", plugins=loaded_specs())
    assert worker_plugins(exp, job) == ""  # the same file: the worker runs it
    path.write_text(path.read_text() + "\n# edited on the worker's file system\n")
    refused = worker_plugins(exp, job)
    assert "the plugin entries differ from the driver's" in refused and "method:my_mix=my_plugin.py@" in refused
    missing = replace(job, plugins=(str(tmp_path / "gone.py"),))
    assert "plugin " in worker_plugins(exp, missing) and "no such file" in worker_plugins(exp, missing)
