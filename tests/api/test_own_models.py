"""Bring your own model: the Python API, checkpoint evaluation, tv:/timm: models, AutoAttack, corruptions."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import robustbench_mix as rbm
from robustbench_mix.cli.checkpoint import main as checkpoint_main
from robustbench_mix.cli.suite import main as suite_main
from robustbench_mix.data.sources import load_digits
from robustbench_mix.store.load import load_runs
from robustbench_mix.store.schema import KEY

TRAIN = ["--methods", "mixup", "--noise", "0", "--seeds", "3", "--epochs", "2", "--eps", "8", "--attack-steps", "3",
         "--attack-samples", "120", "--no-progress"]


@pytest.fixture(scope="module")
def suite_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("suite")
    assert suite_main([*TRAIN, "--out", str(out)]) == 0
    (ckpt,) = out.glob("runs/*/checkpoint.pt")
    return out, ckpt


def _suite_model(ckpt: Path):
    from robustbench_mix.experiment.experiment import Experiment
    from robustbench_mix.models.families import build

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
    api = rbm.evaluate(model.eval(), "digits", attacks=exp.attacks, eps=[e / 255 for e in exp.eps],
                       attack_steps=exp.attack_steps,
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
    df = rbm.evaluate(model, (p.test_x, p.test_y), attacks=("pgd", "autoattack"), eps=(24 / 255,), attack_samples=40,
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


# ------------------------------------------------------------------- the checkpoint command: identity, refusals
def _ck(ckpt: Path) -> dict:
    return torch.load(ckpt, weights_only=True)


def _rewrite(ck: dict, path: Path) -> Path:
    """A checkpoint as the suite writes it (its checksum recomputed): what an edit that kept the file valid gives."""
    from robustbench_mix.core.torchfile import save_checkpoint

    state = {k: v for k, v in ck.items() if k != "checksum"}
    save_checkpoint(state, path)
    return path


def test_evaluation_seeds_never_pose_as_training_seeds(suite_run, tmp_path):
    from robustbench_mix.reports.compare import compare

    _, ckpt = suite_run
    out = tmp_path / "e"
    for s in ("0", "1", "3"):  # 3 is the run's training seed
        assert checkpoint_main([str(ckpt), "--out", str(out), "--seed", s, "--attacks", "pgd", "--eps", "8"]) == 0
    df = load_runs(out / "runs.csv")
    assert df["run_id"].nunique() == 3 and set(df["seed"]) == {3}  # the training seed, never the attacks'
    eval_seeds = {json.loads(c).get("eval_seed") for c in df["config"].unique()}
    assert eval_seeds == {0, 1, None}
    table, _, _ = compare(df, df)
    assert set(table["a_seeds"]) == {1}  # one model evaluated three times is not three seeds
    # a plain state_dict: no training seed at all
    sd = tmp_path / "sd.pt"
    torch.save(_ck(ckpt)["model"], sd)
    for s in ("1", "2"):
        assert checkpoint_main([str(sd), "--model", "cnn", "--dataset", "digits", "--out", str(tmp_path / "p"),
                                "--seed", s, "--attacks", "fgsm", "--eps", "8"]) == 0
    plain = load_runs(tmp_path / "p" / "runs.csv")
    assert plain["run_id"].nunique() == 2 and set(plain["seed"]) == {0}
    assert set(compare(plain, plain)[0]["a_seeds"]) == {1}


def test_the_checkpoint_command_refuses_a_checkpoint_that_fails_its_checksum(suite_run, tmp_path, capsys):
    _, ckpt = suite_run
    bad = tmp_path / "flipped.pt"
    raw = bytearray(ckpt.read_bytes())
    w = max(_ck(ckpt)["model"].values(), key=lambda t: t.numel()).contiguous().numpy().tobytes()
    at = raw.find(w[:64])
    assert at > 0
    raw[at + 10] ^= 0x04
    bad.write_bytes(bytes(raw))
    assert checkpoint_main([str(bad), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert f"{bad} fails its checksum" in err and "Traceback" not in err
    assert not (tmp_path / "o" / "runs.csv").exists()


def test_two_state_dicts_of_one_architecture_keep_their_own_rows(suite_run, tmp_path):
    _, ckpt = suite_run
    weights = _ck(ckpt)["model"]
    torch.save(weights, tmp_path / "a.pt")
    torch.save({k: v * 0.5 if k.endswith("weight") and v.dim() == 2 else v for k, v in weights.items()},
               tmp_path / "b.pt")
    argv = ["--model", "cnn", "--dataset", "digits", "--out", str(tmp_path / "o"), "--attacks", "fgsm", "--eps", "8"]
    assert checkpoint_main([str(tmp_path / "a.pt"), *argv]) == 0
    assert checkpoint_main([str(tmp_path / "b.pt"), *argv]) == 0
    df = load_runs(tmp_path / "o" / "runs.csv")
    assert df["run_id"].nunique() == 2  # the second file did not replace the first one's rows
    assert {json.loads(c)["weights"][:7] for c in df["config"].unique()} == {"sha256:"}


def test_evaluating_into_the_suites_own_directory_keeps_the_suites_rows(suite_run, tmp_path, capsys):
    import shutil

    out, _ = suite_run
    own = tmp_path / "suite"
    shutil.copytree(out, own)
    before = load_runs(own / "runs.csv")
    (ckpt,) = own.glob("runs/*/checkpoint.pt")
    assert checkpoint_main([str(ckpt), "--out", str(own), "--attacks", "fgsm", "--eps", "8"]) == 0
    after = load_runs(own / "runs.csv")
    suite_rows = after[after["run_id"].isin(before["run_id"])]
    pd.testing.assert_frame_equal(suite_rows[KEY + ["value", "preset"]].reset_index(drop=True),
                                  before[KEY + ["value", "preset"]].reset_index(drop=True))
    assert after["run_id"].nunique() == 2 and set(after["preset"]) == {"quick", "checkpoint"}
    capsys.readouterr()
    assert suite_main([*TRAIN, "--out", str(own), "--dry-run"]) == 0
    assert "finished" in capsys.readouterr().out


def test_a_noisy_runs_checkpoint_writes_the_runs_realized_noise(tmp_path):
    argv = [*TRAIN, "--noise", "0.4", "--epochs", "1", "--attacks", "fgsm", "--out", str(tmp_path / "s")]
    assert suite_main(argv) == 0
    (ckpt,) = (tmp_path / "s").glob("runs/*/checkpoint.pt")
    assert checkpoint_main([str(ckpt), "--out", str(tmp_path / "e")]) == 0
    suite, ours = (load_runs(tmp_path / d / "runs.csv") for d in ("s", "e"))
    truth = suite[suite["metric"] == "noise_realized"]["value"].item()
    assert 0.3 < truth < 0.4
    assert ours[ours["metric"] == "noise_realized"]["value"].item() == pytest.approx(truth, abs=1e-6)
    # without the training data at hand unchanged the row is left out, and the run stays whole
    from robustbench_mix.api.checkpoints import with_noise_realized
    from robustbench_mix.experiment.experiment import Experiment
    from robustbench_mix.store.write import merge_run

    run = suite[suite["run_id"] == suite["run_id"].iloc[0]]
    left = with_noise_realized(run, Experiment.from_json(run["config"].iloc[0]), None)
    assert len(left) == len(run) - 1 and not (left["metric"] == "noise_realized").any()
    merge_run(tmp_path / "left.csv", left)
    assert load_runs(tmp_path / "left.csv")["run_id"].nunique() == 1  # strict: its marker counts its rows


def _with_config(ck, text):
    return {**ck, "config": text}


def _nan(sd):
    sd = dict(sd)
    k = next(k for k, v in sd.items() if v.is_floating_point() and k.endswith("weight"))
    sd[k] = sd[k].clone()
    sd[k].view(-1)[0] = float("nan")
    return sd


def _huge(sd):
    return {k: v * 3e38 if k.endswith("weight") and v.dim() == 2 else v for k, v in sd.items()}


@pytest.mark.parametrize("make, extra, says", [
    (lambda ck, p: torch.save(_nan(ck["model"]), p), ["--model", "cnn", "--dataset", "digits"],
     "hold NaN or inf, first"),
    (lambda ck, p: torch.save(_huge(ck["model"]), p), ["--model", "cnn", "--dataset", "digits"],
     "outputs are not finite (NaN or inf) on"),
    (lambda ck, p: _rewrite(_with_config(ck, '{"model": "cnn",'), p), [], "the run config inside it is not a valid"),
    (lambda ck, p: _rewrite(_with_config(ck, "[1, 2]"), p), [], "the run config inside it is not a valid"),
    (lambda ck, p: _rewrite(_with_config(ck, 7), p), [], "the run config inside it is not a valid"),
    (None, ["--batch-size", "0"], "--batch-size 0 must be at least 1"),
    (None, ["--device", "tpu"], "--device 'tpu' is not one of auto, cpu, cuda"),
    (None, ["--dropout", "1.5"], "--dropout 1.5 is outside [0, 1)"),
    (None, ["--out", "FILE"], "is a file; give a directory"),
])
def test_bad_checkpoints_and_flags_are_refused_with_a_message_that_fits(suite_run, tmp_path, capsys, make, extra,
                                                                         says):
    _, ckpt = suite_run
    path = ckpt
    if make is not None:
        path = tmp_path / "bad.pt"
        make(_ck(ckpt), path)
    (tmp_path / "FILE").write_text("x")
    extra = [str(tmp_path / "FILE") if a == "FILE" else a for a in extra]
    out = ["--out", str(tmp_path / "o")] if "--out" not in extra else []
    assert checkpoint_main([str(path), *out, *extra, "--attacks", "fgsm", "--eps", "8"]) == 2
    err = capsys.readouterr().err
    assert says in err and "Traceback" not in err and "--lr" not in err
    assert not (tmp_path / "o" / "runs.csv").exists()


def test_a_state_dict_that_does_not_fit_names_the_first_key_and_shape(suite_run, tmp_path, capsys):
    _, ckpt = suite_run
    sd = _ck(ckpt)["model"]
    torch.save(sd, tmp_path / "cnn.pt")
    assert checkpoint_main([str(tmp_path / "cnn.pt"), "--model", "mlp", "--dataset", "digits",
                            "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "1 key(s) missing, first '1.7.bias'; 15 unexpected key(s), first '1.0.weight'; 5 shape(s) differ, " \
        "first '1.1.weight': (32,) in the file, (256, 64) in the model" in err
    wide = dict(sd, **{"1.13.weight": torch.zeros(11, 128), "1.13.bias": torch.zeros(11)})
    torch.save(wide, tmp_path / "wide.pt")
    assert checkpoint_main([str(tmp_path / "wide.pt"), "--model", "cnn", "--dataset", "digits",
                            "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "2 shape(s) differ, first '1.13.weight': (11, 128) in the file, (10, 128) in the model" in err


def test_a_bare_torchvision_state_dict_is_told_the_wrapper_the_suite_expects(tmp_path, capsys):
    import torchvision

    bare = torchvision.models.get_model("resnet18", weights=None, num_classes=10).state_dict()
    torch.save(bare, tmp_path / "r18.pt")
    assert checkpoint_main([str(tmp_path / "r18.pt"), "--model", "tv:resnet18", "--dataset", "digits",
                            "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "torch.nn.Sequential(Normalize(mean, std), torch.nn.Sequential(GreyToRGB(), model))" in err
    assert "'1.1.conv1.weight'" in err and "normalize=(mean, std)" in err
    # wrapped as it says, it is evaluated
    from robustbench_mix.models.families import build

    d = load_digits(None)
    mean, std = d.channel_stats()
    wrapped = build("tv:resnet18", in_shape=d.shape, num_classes=10, mean=mean, std=std)
    wrapped[1][1].load_state_dict(bare)
    torch.save(wrapped.state_dict(), tmp_path / "wrapped.pt")
    assert checkpoint_main([str(tmp_path / "wrapped.pt"), "--model", "tv:resnet18", "--dataset", "digits",
                            "--out", str(tmp_path / "o"), "--attacks", "fgsm", "--eps", "8",
                            "--attack-samples", "20"]) == 0


def test_several_paths_and_a_results_directory_each_its_own_run(suite_run, tmp_path, capsys):
    out, ckpt = suite_run
    (tmp_path / "dir").mkdir()
    assert checkpoint_main([str(tmp_path / "dir"), "--out", str(tmp_path / "o")]) == 2
    assert "is a directory without checkpoints" in capsys.readouterr().err
    torch.save(_nan(_ck(ckpt)["model"]), tmp_path / "nan.pt")
    torch.save(_ck(ckpt)["model"], tmp_path / "good.pt")
    argv = ["--out", str(tmp_path / "o"), "--attacks", "fgsm", "--eps", "8", "--model", "cnn", "--dataset", "digits"]
    # the results directory (its suite checkpoint) and two state_dicts, one of them bad
    assert checkpoint_main([str(out), str(tmp_path / "nan.pt"), str(tmp_path / "good.pt"), *argv]) == 1
    err = capsys.readouterr().err
    assert "1 of 3 checkpoint(s) not evaluated" in err and "nan.pt" in err and "hold NaN" in err
    df = load_runs(tmp_path / "o" / "runs.csv")
    assert df["run_id"].nunique() == 2 and set(df["method"]) == {"mixup", "external"}
    assert (tmp_path / "o" / "summary.md").exists()


def test_the_checkpoint_command_shows_progress_unless_asked_not_to(suite_run, tmp_path, monkeypatch):
    import robustbench_mix.api.checkpoints as checkpoints_

    seen = []
    real = checkpoints_.evaluate_experiment

    def spy(*a, **k):
        seen.append(k.get("progress", "missing"))
        return real(*a, **k)

    monkeypatch.setattr(checkpoints_, "evaluate_experiment", spy)
    _, ckpt = suite_run
    flags = ["--attacks", "fgsm", "--eps", "8", "--out", str(tmp_path / "e")]
    assert checkpoint_main([str(ckpt), *flags]) == 0
    assert checkpoint_main([str(ckpt), *flags, "--no-progress"]) == 0
    assert seen == [None, False]  # None: tqdm's bars where stderr is a terminal
