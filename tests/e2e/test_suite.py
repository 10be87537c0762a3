"""The CLI end to end on reduced budgets: outputs, schema, skipping, bad input, failures."""

import pandas as pd
import pytest
import torch

from robustbench_mix.cli.suite import main
from robustbench_mix.methods import METHODS, Method, erm, erm_apply, no_draws
from robustbench_mix.store.load import load_runs
from robustbench_mix.store.schema import COLUMNS

pytestmark = pytest.mark.e2e  # a whole command run: python -m pytest -m 'not e2e' skips these

FAST = ["--epochs", "2", "--no-progress", "--eps", "8/255", "--attack-steps", "2"]


@pytest.fixture(scope="module")
def quick_out(tmp_path_factory):
    out = tmp_path_factory.mktemp("quick")
    assert main(["--out", str(out), *FAST, "--eval-every", "1"]) == 0
    return out


def test_default_suite_writes_runs_summary_and_plots(quick_out, capsys):
    df = load_runs(quick_out / "runs.csv")
    assert list(df.columns) == COLUMNS
    assert set(df["method"]) == {"erm", "mixup"} and set(df["noise"]) == {0.0, 0.4}
    assert df["run_id"].nunique() == 4
    final = df[df["epoch"] == 2]
    for metric in ("acc", "nll", "ece"):
        assert ((final["split"] == "test") & (final["attack"] == "none") & (final["metric"] == metric)).sum() == 4
    assert "top5_acc" not in set(df["metric"])  # 10 classes: top-5 says nothing
    realized = final[final["metric"] == "noise_realized"]
    assert len(realized) == 2 and realized["value"].between(0.3, 0.4).all()  # 40% picked, ~9/10 of them changed
    adv = final[final["attack"].isin(["fgsm", "pgd"]) & (final["metric"] == "acc")]
    # every attack at eps 0 (must equal clean) and 8/255; PGD also at the 64/255 gradient-masking check
    assert len(adv) == 20 and set(adv["eps"]) == {0.0, round(8 / 255, 6), round(64 / 255, 6)}
    assert len(final[(final["attack"] == "worst") & (final["metric"] == "acc")]) == 4
    checks = final[final["attack"] == "check"]
    assert len(checks) > 0 and (checks["value"] == 1).all()
    assert (final["metric"] == "memorized").sum() == 2  # the two noisy runs
    assert set(df["epoch"]) == {1, 2}  # curves at epoch 1, final evaluation at epoch 2
    assert (df["torch"] == torch.__version__).all() and df["device"].str.startswith("cpu").all()
    assert (df["preset"] == "quick").all()
    summary = pd.read_csv(quick_out / "summary.csv")
    assert len(summary) == 4 and "test acc mean" in summary and "fgsm 8/255 acc mean" in summary
    assert (quick_out / "summary.md").read_text().count("\n| erm") == 2
    assert (quick_out / "robust_accuracy.png").stat().st_size > 1000
    assert (quick_out / "curves.png").stat().st_size > 1000
    assert len(list((quick_out / "runs").glob("*/corrupted_index.npy"))) == 2


def test_rerunning_a_finished_suite_trains_nothing(quick_out, capsys, monkeypatch):
    import robustbench_mix.execution.executors as executors

    def boom(*a, **k):
        raise AssertionError("trained again")

    monkeypatch.setattr(executors, "run_experiment", boom)
    before = (quick_out / "runs.csv").read_bytes()
    assert main(["--out", str(quick_out), *FAST, "--eval-every", "1"]) == 0
    assert "skipped" in capsys.readouterr().err
    assert (quick_out / "runs.csv").read_bytes() == before


def test_each_row_says_how_to_rerun_it(quick_out):
    from robustbench_mix.experiment.experiment import Experiment

    df = load_runs(quick_out / "runs.csv")
    for _, r in df.drop_duplicates("run_id").iterrows():
        assert Experiment.from_json(r["config"]).run_id == r["run_id"]
        assert r["command"].startswith("python -m robustbench_mix.suite")


def test_dry_run_lists_runs_without_training(tmp_path, capsys):
    assert main(["--out", str(tmp_path), "--dry-run", "--seeds", "0,1"]) == 0
    out = capsys.readouterr().out
    assert "8 runs" in out and out.count(" new ") == 8
    assert not (tmp_path / "runs.csv").exists()


@pytest.mark.parametrize("args,message", [
    (["--preset", "quik"], "unknown preset 'quik'"),
    (["--dataset", "cifar11"], "unknown dataset 'cifar11'.*did you mean 'cifar10'"),
    (["--model", "resnet"], "unknown model 'resnet'"),
    (["--methods", "erm,cutout"], "unknown method 'cutout'"),
    (["--attacks", "fgsm,cw"], "unknown attack 'cw'"),
    (["--alpha", "-1"], "alpha -1.0 is negative"),
    (["--noise", "0,1"], r"noise 1.0 is outside \[0, 1\)"),
    (["--eps=-2/255"], "--eps '-2/255' must be a finite number >= 0"),
    (["--eps", "300/255"], "epsilon 300/255 is outside"),
    (["--attack-steps", "0"], "attack steps 0 must be at least 1"),
    (["--seeds", ","], "--seeds is empty"),
    (["--batch-size", "5000"], "batch size 5000 is larger than the training set"),
    (["--dataset", "imagefolder:/nonexistent/x"], "does not exist"),
    (["--dataset", "cifar10", "--data-dir", "/dev/null/sub"], "--data-dir '/dev/null/sub' is not writable"),
    (["--lr", "0"], "learning rate 0.0 must be positive"),
    # not finite: refused naming the value and the range; NaN is not "negative", inf not "positive"
    (["--alpha", "inf"], r"method mixup: alpha inf is not a finite number; it must be a finite number in \[0, "),
    (["--alpha", "nan"], r"alpha nan is not a finite number"),
    (["--lr", "1e400"], "learning rate inf is not a finite number; it must be a finite number > 0"),
    (["--dropout", "nan"], r"dropout nan is not a finite number; it must be a finite number in \[0, 1\)"),
    (["--noise", "inf"], r"noise inf is not a finite number; it must be a finite number in \[0, 1\)"),
    (["--weight-decay", "nan"], "weight decay nan is not a finite number; it must be a finite number >= 0"),
    (["--eps-l2", "0.5,0.5000001", "--attacks", "pgd_l2"], "L2 radii 0.5 and 0.5000001 are one value in runs.csv"),
    (["--eps", "8,8.0000001"], "epsilons 8/255 and 8.0000001/255 are one value in runs.csv"),
    (["--attacks", "pgd_l2", "--eps-l2", "9"], "--eps-l2 9 is larger than 8, the L2 distance between an all-black"),
    (["--compile", "--cuda-graphs"], "--compile and --cuda-graphs model exclude each other.*--cuda-graphs step"),
    (["--compile", "--cuda-graphs", "model"], "--compile and --cuda-graphs model exclude each other"),
])
def test_bad_input_exits_2_with_a_message_before_training(tmp_path, capsys, monkeypatch, args, message):
    import re

    import robustbench_mix.execution.executors as executors

    monkeypatch.setattr(executors, "run_experiment", lambda *a, **k: pytest.fail("training started"))
    assert main(["--out", str(tmp_path / "o"), "--no-progress", *args]) == 2
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]  # after at most the line that says which data are being loaded
    assert last.startswith("error: ") and re.search(message, err) and "Traceback" not in err, err


def test_cuda_graphs_takes_an_optional_mode_and_rejects_others(capsys):
    from robustbench_mix.cli.suite_args import build_parser

    p = build_parser()
    assert [p.parse_args(a).cuda_graphs for a in ([], ["--cuda-graphs"], ["--cuda-graphs", "step"],
                                                   ["--cuda-graphs", "--force"])] == [None, "model", "step", "model"]
    with pytest.raises(SystemExit) as e:
        p.parse_args(["--cuda-graphs", "whole"])
    assert e.value.code == 2 and "invalid choice: 'whole'" in capsys.readouterr().err


def test_compile_combines_with_the_step_graph_only_in_a_mode_without_graphs_of_its_own():
    from robustbench_mix.core.errors import UsageError
    from robustbench_mix.training.speed import check_speed_options

    for compile, graphs in ((True, "step"), ("max-autotune-no-cudagraphs", "step"), ("reduce-overhead", False),
                            (True, False), (False, "model")):
        check_speed_options(compile, graphs)  # allowed
    for compile, graphs, message in ((True, True, "model exclude each other"),
                                     ("reduce-overhead", "step", "'reduce-overhead' makes CUDA graphs of its own"),
                                     ("max-autotune", "step", "'max-autotune' makes CUDA graphs"),
                                     (False, "whole", "--cuda-graphs 'whole': expected one of model, step")):
        with pytest.raises(UsageError, match=message):
            check_speed_options(compile, graphs)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
def test_cuda_without_gpu_is_a_usage_error(tmp_path, capsys):
    assert main(["--out", str(tmp_path), "--device", "cuda"]) == 2
    assert "no CUDA GPU is visible" in capsys.readouterr().err


def test_unknown_flag_exits_2(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--epoch", "3", "--frobnicate"])
    assert e.value.code == 2


def test_out_of_memory_fails_that_run_only(tmp_path, capsys, monkeypatch):
    def oom(x, y, num_classes):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    monkeypatch.setitem(METHODS._items, "oom", Method(no_draws, oom))
    assert main(["--out", str(tmp_path), *FAST, "--methods", "oom,erm", "--noise", "0"]) == 1
    assert "out of memory" in capsys.readouterr().err
    assert "OutOfMemoryError" in pd.read_csv(tmp_path / "failures.csv")["reason"][0]
    assert set(load_runs(tmp_path / "runs.csv")["method"]) == {"erm"}
    # once it works, the failure record goes away
    monkeypatch.setitem(METHODS._items, "oom", erm)
    assert main(["--out", str(tmp_path), *FAST, "--methods", "oom,erm", "--noise", "0"]) == 0
    assert not (tmp_path / "failures.csv").exists()


def test_a_nan_run_is_reported_and_the_others_finish(tmp_path, capsys, monkeypatch):
    def nan_loss(x, y, num_classes):
        inputs, loss = erm_apply(x, y, num_classes)
        return inputs, lambda out: loss(out) * float("nan")

    monkeypatch.setitem(METHODS._items, "nanloss", Method(no_draws, nan_loss))
    code = main(["--out", str(tmp_path), *FAST, "--methods", "erm,nanloss", "--noise", "0"])
    assert code == 1
    err = capsys.readouterr().err
    assert "1 run(s) failed" in err and "non-finite training loss" in err
    fails = pd.read_csv(tmp_path / "failures.csv")
    assert list(fails["method"]) == ["nanloss"] and "non-finite" in fails["reason"][0]
    df = load_runs(tmp_path / "runs.csv")
    assert set(df["method"]) == {"erm"}


def test_speed_hint_only_for_small_batches_on_a_gpu_without_graphs_or_compile():
    from robustbench_mix.execution.preflight import speed_hint
    from robustbench_mix.experiment.experiment import Experiment

    runs = [Experiment(batch_size=128), Experiment(batch_size=512)]
    assert "batch size 128" in speed_hint(runs, True, False, False)
    assert speed_hint(runs, False, False, False) is None  # the CPU
    assert speed_hint(runs, True, True, False) is None and speed_hint(runs, True, False, True) is None
    assert speed_hint([Experiment(batch_size=512)], True, False, False) is None


def test_a_run_is_compared_with_the_committed_reference_of_its_preset(tmp_path, capsys, monkeypatch):
    import shutil

    import robustbench_mix.reports.reference as reference

    args = ["--epochs", "2", "--eps", "8", "--attack-steps", "2", "--no-progress", "--methods", "mixup"]
    assert main([*args, "--out", str(tmp_path / "a")]) == 0
    monkeypatch.setattr(reference, "REFERENCE_DIR", tmp_path / "ref")
    (tmp_path / "ref" / "quick").mkdir(parents=True)
    shutil.copy(tmp_path / "a" / "runs.csv", tmp_path / "ref" / "quick" / "runs.csv")
    capsys.readouterr()
    assert main([*args, "--out", str(tmp_path / "b")]) == 0  # the same command on the same machine
    out = capsys.readouterr().out
    check = pd.read_csv(tmp_path / "b" / "reference_check.csv")
    assert len(check) > 0 and (check["diff"] == 0).all() and check["within"].all()
    assert f"{len(check)} of {len(check)} numbers (accuracies, memorized, ECE) within tolerance" in out
    assert "| test acc |" in out and "train_corrupted memorized" in out
    # a reference that differs by more than the tolerance on one number is flagged
    ref = pd.read_csv(tmp_path / "ref" / "quick" / "runs.csv")
    hit = (ref["metric"] == "acc") & (ref["attack"] == "none") & (ref["split"] == "test") & (ref["epoch"] == 2)
    ref.loc[hit & (ref["noise"] == 0.4), "value"] -= (reference.TOLERANCE + 1) / 100
    ref.to_csv(tmp_path / "ref" / "quick" / "runs.csv", index=False)
    assert main([*args, "--out", str(tmp_path / "b")]) == 0  # nothing to train: the check still runs
    check = pd.read_csv(tmp_path / "b" / "reference_check.csv")
    assert list(check.loc[~check["within"], "metric"]) == ["test acc"]
    assert "1 outside" in capsys.readouterr().out
    monkeypatch.setattr(reference, "REFERENCE_DIR", tmp_path / "nowhere")
    assert main([*args, "--out", str(tmp_path / "b")]) == 0
    assert "no committed reference for preset 'quick'" in capsys.readouterr().out


def test_a_method_added_in_a_test_file_runs_through_the_suite_tables_and_report(tmp_path, capsys, monkeypatch):
    """A new method is one registry entry: draw, apply (or its own step) and its traits; nothing else changes."""
    import torch.nn.functional as F

    def flip_draw(n, alpha, rng, generator, device):
        return (torch.rand(n, device=device, generator=generator) < alpha,)

    def flip_apply(x, y, num_classes, mask):  # horizontal flips with probability alpha, plain CE
        return torch.where(mask[:, None, None, None], x.flip(3), x), lambda out: F.cross_entropy(out, y)

    monkeypatch.setitem(METHODS._items, "hflip", Method(flip_draw, flip_apply, uses_alpha=True, title="h-flip",
                                                        param="p"))
    out = tmp_path / "new"
    assert main(["--out", str(out), *FAST, "--methods", "erm,hflip:0.5", "--noise", "0"]) == 0
    df = load_runs(out / "runs.csv")
    assert set(df["method"]) == {"erm", "hflip"} and set(df[df["method"] == "hflip"]["alpha"]) == {0.5}
    assert "| hflip | 0.5 |" in (out / "summary.md").read_text()
    assert "| h-flip (p=0.5) | 0 | fgsm |" in (out / "robust_accuracy.md").read_text()
    assert "h-flip (p=0.5)" in (out / "report.md").read_text()


def test_a_method_that_hooks_a_random_layer_is_refused_with_speed_flags(tmp_path, capsys, monkeypatch):
    import robustbench_mix.execution.executors as executors

    monkeypatch.setattr(executors, "run_experiment", lambda *a, **k: pytest.fail("training started"))
    for flag in (["--cuda-graphs"], ["--cuda-graphs", "step"], ["--compile"]):
        assert main(["--out", str(tmp_path), *FAST, "--methods", "erm,manifold_mixup", *flag]) == 2
        err = capsys.readouterr().err
        assert "manifold_mixup cannot run inside --compile or --cuda-graphs" in err and "without those flags" in err
