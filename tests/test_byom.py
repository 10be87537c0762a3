"""Bring your own model: the Python API, checkpoint evaluation, tv:/timm: models, AutoAttack, corruptions."""

from pathlib import Path

import numpy as np
import pytest
import torch

import robustbench_mix as rbm
from robustbench_mix.checkpoint import main as checkpoint_main
from robustbench_mix.data import load_digits
from robustbench_mix.results import load_runs
from robustbench_mix.suite import main as suite_main

TRAIN = ["--methods", "mixup", "--noise", "0", "--seeds", "3", "--epochs", "2", "--eps", "8", "--attack-steps", "3",
         "--attack-samples", "120", "--no-progress"]


@pytest.fixture(scope="module")
def suite_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("suite")
    assert suite_main([*TRAIN, "--out", str(out)]) == 0
    (ckpt,) = out.glob("runs/*/checkpoint.pt")
    return out, ckpt


def _suite_model(ckpt: Path):
    from robustbench_mix.config import Experiment
    from robustbench_mix.models import build

    ck = torch.load(ckpt, weights_only=True)
    exp = Experiment.from_json(ck["config"])
    d = load_digits(None)
    mean, std = d.channel_stats()
    model = build(exp.model, in_shape=d.shape, num_classes=10, mean=mean, std=std)
    model.load_state_dict(ck["model"])
    return model, exp


def test_the_apis_rows_for_a_suite_trained_model_equal_the_suites_own(suite_run):
    out, ckpt = suite_run
    model, exp = _suite_model(ckpt)
    api = rbm.evaluate(model.eval(), "digits", attacks=exp.attacks, eps=exp.eps, attack_steps=exp.attack_steps,
                       attack_samples=exp.attack_samples, seed=exp.seed)
    ours = load_runs(out / "runs.csv")
    ours = ours[ours["epoch"] == exp.epochs]
    keys = ["split", "attack", "eps", "metric"]
    joined = api.merge(ours, on=keys, suffixes=("_api", "_suite"))
    assert len(joined) == len(api)  # each of the API's rows is one the suite wrote
    joined = joined[joined["metric"] != "rows_in_run"]  # the marker counts each file's own rows
    assert len(joined) > 20 and (joined["attack"] == "check").any()  # the sanity checks too
    np.testing.assert_allclose(joined["value_api"], joined["value_suite"], rtol=1e-5, atol=1e-6)  # CSV: 6 digits
    assert set(api["method"]) == {"external"} and set(api["model"]) == {"user:model"}


class _Payload:
    def __reduce__(self):  # what a malicious checkpoint does: run code while being unpickled
        return (Path.touch, (Path(_Payload.target),))


def test_a_checkpoint_that_needs_pickle_is_refused_and_runs_no_code(tmp_path, capsys):
    _Payload.target = str(tmp_path / "pwned")
    bad = tmp_path / "bad.pt"
    torch.save({"model": {}, "extra": _Payload()}, bad)
    assert checkpoint_main([str(bad), "--model", "cnn", "--dataset", "digits", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "needs pickle" in err and "Traceback" not in err
    assert not (tmp_path / "pwned").exists()


def test_the_checkpoint_command_writes_the_suites_contract(suite_run, tmp_path, capsys):
    out, ckpt = suite_run
    assert checkpoint_main([str(ckpt), "--out", str(tmp_path), "--corruptions", "contrast"]) == 0
    df = load_runs(tmp_path / "runs.csv")  # the contract's checks pass
    assert set(df["method"]) == {"mixup"} and (df["attack"] == "corrupt:mean").any()
    suite = load_runs(out / "runs.csv")
    both = df.merge(suite[(suite["epoch"] == 2) & (suite["metric"] != "rows_in_run")],
                    on=["split", "attack", "eps", "metric"])
    assert len(both) > 10 and np.allclose(both["value_x"], both["value_y"], atol=1e-6)
    # a plain state_dict of a suite model
    sd = tmp_path / "sd.pt"
    torch.save(torch.load(ckpt, weights_only=True)["model"], sd)
    assert checkpoint_main([str(sd), "--model", "cnn", "--dataset", "digits", "--out", str(tmp_path / "p"),
                            "--attacks", "fgsm", "--eps", "8"]) == 0
    assert set(load_runs(tmp_path / "p" / "runs.csv")["method"]) == {"external"}
    assert checkpoint_main([str(sd), "--out", str(tmp_path / "q")]) == 2
    assert "give --model" in capsys.readouterr().err
    assert (tmp_path / "summary.md").exists() and (tmp_path / "report.html").exists()
    # corruptions have their own table and plot; the robust-accuracy ones hold attacks only
    assert "corrupt" not in (tmp_path / "robust_accuracy.md").read_text()
    assert "| contrast | mean |" in (tmp_path / "corruptions.md").read_text()
    assert (tmp_path / "corruptions.png").stat().st_size > 1000 and "corruptions.png" in (
        tmp_path / "report.md").read_text()


def test_tv_resnet18_trains_one_epoch_on_digits(tmp_path):
    argv = ["--model", "tv:resnet18", "--methods", "erm", "--noise", "0", "--epochs", "1", "--attacks", "fgsm",
            "--eps", "8", "--attack-samples", "50", "--check-eps", "0", "--out", str(tmp_path), "--no-progress"]
    assert suite_main(argv) == 0
    df = load_runs(tmp_path / "runs.csv")
    assert set(df["model"]) == {"tv:resnet18"}
    assert df[(df["attack"] == "none") & (df["metric"] == "acc") & (df["split"] == "test")]["value"].item() > 0.1


@pytest.mark.parametrize("model, says", [("tv:resnet1", "did you mean 'resnet18'"),
                                         ("tv:vit_b_16", "cannot take this data's images")])
def test_unknown_or_unfit_library_models_are_refused_before_training(tmp_path, capsys, model, says):
    assert suite_main(["--model", model, "--methods", "erm", "--noise", "0", "--out", str(tmp_path)]) == 2
    assert says in capsys.readouterr().err and not (tmp_path / "runs").exists()


def test_timm_models_need_the_extra_or_train(tmp_path, capsys):
    try:
        import timm  # noqa: F401
    except ImportError:
        assert suite_main(["--model", "timm:resnet18", "--out", str(tmp_path)]) == 2
        assert "robustbench_mix[timm]" in capsys.readouterr().err
        return
    assert suite_main(["--model", "timm:resnet10t", "--methods", "erm", "--noise", "0", "--epochs", "1",
                       "--attacks", "fgsm", "--eps", "8", "--attack-samples", "20", "--check-eps", "0",
                       "--out", str(tmp_path), "--no-progress"]) == 0


def test_autoattack_is_at_most_pgds_accuracy(trained):
    pytest.importorskip("pyautoattack")
    model, p = trained
    df = rbm.evaluate(model, (p.test_x, p.test_y), attacks=("pgd", "autoattack"), eps=(24,), attack_samples=40,
                      check_eps=0)
    acc = df[(df["metric"] == "acc") & (df["eps"] > 0)].set_index("attack")["value"]
    assert acc["autoattack"] <= acc["pgd"] and acc["pgd"] < 0.9  # a real attack at this epsilon




def _stop_after_first_epoch(epoch, model):
    raise KeyboardInterrupt


def test_a_partial_checkpoint_is_evaluated_and_labelled_with_its_epoch(tmp_path, capsys):
    argv = [*TRAIN, "--epochs", "3", "--out", str(tmp_path / "t")]
    assert suite_main(argv, hooks=(_stop_after_first_epoch,)) == 130
    (ckpt,) = (tmp_path / "t").glob("runs/*/checkpoint.pt")
    assert checkpoint_main([str(ckpt), "--out", str(tmp_path / "e")]) == 0
    assert "stopped at epoch 1 of 3" in capsys.readouterr().err
    df = load_runs(tmp_path / "e" / "runs.csv")
    assert set(df["epoch"]) == {1} and set(df["epochs"]) == {1}
    assert "mixup" in (tmp_path / "e" / "summary.md").read_text()
