"""--cpu-channels-last: the CPU's memory layout is a speed option, not another computation. The run id, the
numbers up to rounding and a resume are those of the default layout, and every row says which layout ran."""

import os

import pandas as pd
import pytest
import torch

from robustbench_mix.cli.suite import main
from robustbench_mix.core.device import channels_last
from robustbench_mix.store.load import load_runs

ARGS = ["--methods", "erm", "--noise", "0", "--epochs", "2", "--eps", "8", "--attack-steps", "2", "--no-progress"]
CPU = torch.device("cpu")


def layouts(seen):
    """An epoch hook recording whether every 4-d weight of the model is in channels_last."""
    def hook(epoch, model):
        # weights whose two layouts differ in memory (a grey image's first convolution, 1 input channel, does not)
        weights = [p for p in model.parameters() if p.dim() == 4 and p.shape[1] > 1 and p.shape[2] * p.shape[3] > 1]
        assert weights, "the model has no such convolution: the test would not test the layout"
        seen.append(all(p.is_contiguous(memory_format=torch.channels_last) for p in weights))
    return hook


@pytest.fixture(scope="module")
def both(tmp_path_factory):
    """The same grid trained in the default layout and with --cpu-channels-last."""
    out = tmp_path_factory.mktemp("layout")
    seen = {"default": [], "channels_last": []}
    assert main([*ARGS, "--out", str(out / "default")], hooks=(layouts(seen["default"]),)) == 0
    assert main([*ARGS, "--cpu-channels-last", "--out", str(out / "cl")], hooks=(layouts(seen["channels_last"]),)) == 0
    return load_runs(out / "default" / "runs.csv"), load_runs(out / "cl" / "runs.csv"), seen


def test_the_flag_trains_in_channels_last_and_the_default_does_not(both):
    _, _, seen = both
    assert seen == {"default": [False, False], "channels_last": [True, True]}
    assert not channels_last(CPU)  # main leaves the process in the default layout


def test_rows_say_the_layout_and_keep_the_run_id(both):
    default, cl, _ = both
    assert not default["device"].str.contains("channels_last").any()
    assert cl["device"].str.endswith("threads, channels_last)").all()
    assert set(default["run_id"]) == set(cl["run_id"])


def test_the_numbers_are_the_default_layouts_up_to_rounding(both):
    default, cl, _ = both
    key = ["run_id", "epoch", "split", "attack", "eps", "metric"]
    m = pd.merge(default, cl, on=key, suffixes=("_a", "_b"))
    assert len(m) == len(default) == len(cl)
    loss = m[m["metric"] == "loss"]
    assert len(loss) == 2 and ((loss["value_a"] - loss["value_b"]).abs() < 1e-3 * loss["value_a"]).all()
    acc = m[(m["metric"] == "acc") & (m["attack"] == "none")]
    assert len(acc) and ((acc["value_a"] - acc["value_b"]).abs() <= 0.01).all()  # at most 1 point of accuracy


def test_a_run_resumed_in_the_other_layout_says_so(tmp_path):
    out = tmp_path / "r"

    def stop(epoch, model):  # as Ctrl-C after epoch 1 (checkpointed)
        if epoch == 1:
            raise KeyboardInterrupt

    assert main([*ARGS, "--out", str(out)], hooks=(stop,)) == 130
    assert main([*ARGS, "--cpu-channels-last", "--out", str(out)]) == 0
    note, = set(load_runs(out / "runs.csv")["resumed_from"])
    machine = os.uname().machine
    assert note.startswith(f"epochs 1-1 under cpu ({machine}, ") and "threads), torch" in note.split(";")[0]
    assert "epochs 2-2 under cpu (" in note and "threads, channels_last), torch" in note.split(";")[1]
