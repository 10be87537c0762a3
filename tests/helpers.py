"""Helpers the tests share: synthetic runs for compare and claims, the checks' passing rows, tiny models."""

import pandas as pd
import torch

from robustbench_mix.evaluation.checks import check_rows
from robustbench_mix.experiment.experiment import Experiment
from robustbench_mix.store.schema import to_frame


def runs(specs, epochs=200):
    """Synthetic runs.csv frame: specs = [(exp fields, {quantity: value})]. The default recipe (batch 128, lr
    0.1, weight decay 1e-4, step schedule) with 200 epochs is the paper's CIFAR-10 setting."""
    frames = []
    for fields, vals in specs:
        exp = Experiment(dataset=fields.pop("dataset", "cifar10"), model="preact_resnet18", epochs=epochs, **fields)
        rows = [{"epoch": epochs, "split": "test", "attack": "none", "eps": 0.0, "metric": "acc",
                 "value": vals["acc"]},
                {"epoch": 1, "split": "test", "attack": "none", "eps": 0.0, "metric": "acc",
                 "value": vals.get("best", vals["acc"])}]
        if "attacked_subset" in vals:
            rows.append({"epoch": epochs, "split": "test", "attack": "none", "eps": 0.0,
                         "metric": "acc_attacked_subset", "value": vals["attacked_subset"]})
        for a, v in vals.get("attacks", {}).items():
            rows.append({"epoch": epochs, "split": "test", "attack": a, "eps": round(8 / 255, 6), "metric": "acc",
                         "value": v})
        frames.append(to_frame(exp, rows, device="cpu", command="t", rev="r"))
    return pd.concat(frames, ignore_index=True)


def seeds(fields, accs, **extra):
    """One spec per seed: the same configuration with the given test accuracies."""
    return [({**fields, "seed": s}, {"acc": a, **extra}) for s, a in enumerate(accs)]


GEN = "cifar10-generalization"  # paper: ERM 5.53%, mixup 4.24% test error, tolerance 1 point


ERM, MIXUP = {"method": "erm"}, {"method": "mixup", "alpha": 1.0}


# ------------------------------------------------------------------------------- per-example worst case


class Threshold(torch.nn.Module):
    """Predicts class 1 as soon as pixel 0 or pixel 1 rises above 0: every image of zeros is class 0."""

    def forward(self, x):
        s = x[:, 0, 0, 0] + x[:, 0, 0, 1]
        return torch.stack([torch.zeros_like(s), 1000 * s - 1], 1)


# ----------------------------------------------------------------------------------- sanity checks fail
CHECK_EXP = Experiment(attacks=("fgsm", "pgd"), eps=(8.0,), check_eps=64.0)


def passing_rows():
    r = []

    def add(attack, e, metric, value):
        r.append({"split": "test", "attack": attack, "eps": e / 255, "metric": metric, "value": value})

    add("none", 0, "acc_attacked_subset", 0.9)
    for a, accs in (("fgsm", {0: 0.9, 8: 0.5}), ("pgd", {0: 0.9, 8: 0.3, 64: 0.0})):
        for e, v in accs.items():
            add(a, e, "acc", v)
            add(a, e, "max_linf_255", float(e))
            add(a, e, "box_violation", 0.0)
    add("bb:fgsm", 8, "acc", 0.7)
    add("bb:pgd", 8, "acc", 0.6)
    add("none", 0, "input_grad_abs_mean", 0.01)
    return r


def set_value(rows, attack, e, metric, value):
    hits = [x for x in rows if x["attack"] == attack and round(x["eps"] * 255) == e and x["metric"] == metric]
    assert len(hits) == 1
    hits[0]["value"] = value
    return rows


def check_verdicts(rows, exp=CHECK_EXP):
    return {x["metric"].removeprefix("check:"): x["value"] for x in check_rows(rows, exp)}


def linear_model(in_dim=3 * 8 * 8, classes=10, seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(in_dim, classes))


def sigkill_once_checkpointed(out, args) -> None:
    """Start the suite on ``out`` in a child process (this process's environment and thread count: epochs with
    another count differ in the last float digits), SIGKILL it once a checkpoint exists, and check it had not
    finished: what the resume tests then rerun."""
    import os
    import signal
    import subprocess
    import sys
    import time

    env = dict(os.environ, PYTHONUNBUFFERED="1")
    p = subprocess.Popen([sys.executable, "-m", "robustbench_mix.suite", "--out", str(out), *args], env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not list(out.glob("runs/*/checkpoint.pt")) and time.time() < deadline and p.poll() is None:
        time.sleep(0.05)
    time.sleep(0.4)
    p.send_signal(signal.SIGKILL)
    p.wait()
    assert not (out / "runs.csv").exists(), "the run finished before it could be killed"
