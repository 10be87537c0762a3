"""robustbench_mix.evaluate as users call it: bad input refused clearly before anything runs, data and weights as
users have them, the headline, saving rows for compare/report. Epsilons and attack_samples are left at their
defaults here, so the tests hold whichever unit the eps parameter takes."""

import io
import sys
import warnings

import numpy as np
import pandas as pd
import pytest
import torch

import robustbench_mix as rbm
from robustbench_mix.core.errors import UsageError


@pytest.fixture(scope="module")
def xy(small_digits):
    """60 real digits as floats in [0, 1] and their labels."""
    return small_digits.test_x[:60].float() / 255, small_digits.test_y[:60]


def linear(seed=0, classes=10):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, classes)).eval()


class Counting(torch.nn.Module):
    """Counts its forwards and returns ``wrap(logits)``: the shapes of output users' models have."""

    def __init__(self, wrap=lambda t: t, classes=10):
        super().__init__()
        self.body, self.wrap, self.calls = linear(classes=classes), wrap, 0
        self.eval()

    def forward(self, x):
        self.calls += 1
        return self.wrap(self.body(x))


def fast(model, data, **kw):
    return rbm.evaluate(model, data, **{"attacks": ("fgsm",), "progress": False, **kw})


def clean_acc(df):
    return df[(df["attack"] == "none") & (df["metric"] == "acc")]["value"].item()


# --------------------------------------------------------------------------------- silently wrong numbers
def test_nan_pixels_are_refused_not_read_as_black(xy):
    x, y = xy
    x = x.clone()
    x[3, 0, 2, 2] = float("nan")
    with pytest.raises(UsageError, match=r"1 NaN or infinite pixel value\(s\) \(first in image 3\)"):
        fast(linear(), (x, y))


def test_a_model_returning_probabilities_is_refused_before_any_attack(xy):
    model = Counting(lambda t: t.softmax(1))
    with pytest.raises(UsageError, match="returns probabilities.*Remove the final softmax"):
        fast(model, xy)
    assert model.calls == 1  # the probe only: no clean pass, no attack ran
    log_probs = fast(Counting(lambda t: t.log_softmax(1)), xy)  # log-probabilities are logits
    assert clean_acc(log_probs) == pytest.approx(clean_acc(fast(linear(), xy)))


def test_channels_last_images_are_refused_with_the_permute_to_use(xy):
    x, y = xy
    with pytest.raises(UsageError, match=r"look channels-last.*x\.permute\(0, 3, 1, 2\)"):
        fast(linear(), (x.permute(0, 2, 3, 1), y))
    rgb = torch.rand(4, 32, 32, 3)
    with pytest.raises(UsageError, match="channels-last"):
        fast(linear(), (rgb, torch.zeros(4, dtype=torch.long)))


def test_float_labels_must_be_whole_numbers(xy):
    x, y = xy
    with pytest.raises(UsageError, match=r"label 2.5 \(image 1\) is not a whole number"):
        fast(linear(), (x, torch.cat([y[:1].float(), torch.tensor([2.5]), y[2:].float()])))
    whole = fast(linear(), (x, y.float()))  # whole-number floats are class indices
    np.testing.assert_allclose(whole["value"], fast(linear(), (x, y))["value"])


# ------------------------------------------------------------------------ clear refusals, not tracebacks
@pytest.mark.parametrize("labels, says", [
    (lambda y: y - 1, r"label -1 \(image \d+\) is negative"),
    (lambda y: y + 1, r"label 10 \(image \d+\) but the model has 10 outputs"),
    (lambda y: y[:-1], r"one label per image \(60\)"),
    (lambda y: y[:, None], r"y\.squeeze\(1\)"),
    (lambda y: torch.nn.functional.one_hot(y, 10), r"y\.argmax\(1\)"),
])
def test_labels_out_of_range_or_of_the_wrong_count_are_refused(xy, labels, says):
    x, y = xy
    with pytest.raises(UsageError, match=says):
        fast(linear(), (x, labels(y)))


@pytest.mark.parametrize("data, says", [
    (lambda x, y: (x[:0], y[:0]), "0 images"),
    (lambda x, y: torch.utils.data.TensorDataset(x[:0], y[:0]), "Dataset is empty"),
    (lambda x, y: (x[:, 0], y), r"x\.unsqueeze\(1\)"),
    (lambda x, y: (x * 255, y), r"must lie in \[0, 1\]"),
    (lambda x, y: (x.double().mul(255).long(), y), "uint8 tensor or floats"),
    (lambda x, y: "not a data set", "unknown dataset"),
    (lambda x, y: 42, "data must be a data set name"),
])
def test_bad_data_is_refused(xy, data, says):
    with pytest.raises(UsageError, match=says):
        fast(linear(), data(*xy))


@pytest.mark.parametrize("size", [0, -1, 2.5, True])
def test_a_batch_size_below_one_is_refused(xy, size):
    with pytest.raises(UsageError, match=f"batch_size {size!r} must be a positive integer"):
        fast(linear(), xy, batch_size=size)


@pytest.mark.parametrize("wrap, says", [
    (lambda t: (t, t.detach()), r"returns a tuple of 2.*model\(x\)\[0\]"),
    (lambda t: {"logits": t}, r"returns a dict \(keys logits\).*model\(x\)\['logits'\]"),
    (lambda t: t.argmax(1), "returns a torch.int64 tensor"),
    (lambda t: t[:, :, None], r"outputs of shape \(2, 10, 1\)"),
    (lambda t: t * float("nan"), "NaN or infinite outputs"),
    (lambda t: t.sum(1, keepdim=True), r"classes >= 2"),
])
def test_models_that_do_not_return_logits_are_refused_after_one_forward(xy, wrap, says):
    model = Counting(wrap)
    with pytest.raises(UsageError, match=says):
        fast(model, xy)
    assert model.calls == 1


def test_a_model_that_fails_on_the_images_says_what_it_was_given(xy):
    with pytest.raises(UsageError, match=r"failed on 2 images of shape \(1, 8, 8\).*RuntimeError: mat1 and mat2"):
        fast(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 64, 10)).eval(), xy)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float16, torch.bfloat16])
def test_a_model_of_another_float_type_is_evaluated_as_a_float32_copy(xy, dtype):
    model = linear().to(dtype)
    with pytest.warns(UserWarning, match=f"weights are {str(dtype)[6:]}; a float32 copy"):
        df = fast(model, xy)
    assert next(model.parameters()).dtype == dtype  # the user's model is left as it was
    expected = fast(linear().to(dtype).float(), xy)
    np.testing.assert_allclose(df["value"], expected["value"])


def test_attacks_and_corruptions_given_as_one_string_are_one_name(xy):
    df = rbm.evaluate(linear(), xy, attacks="fgsm", corruptions="contrast", progress=False)
    assert set(df["attack"]) - {"none", "check"} == {"fgsm", *(f"corrupt:contrast:{s}" for s in range(1, 6)),
                                                     "corrupt:mean"}
    both = rbm.evaluate(linear(), xy, attacks="fgsm,pgd", progress=False)
    assert {"fgsm", "pgd", "worst"} <= set(both["attack"])


@pytest.mark.parametrize("normalize, says", [
    (((0.1, 0.2, 0.3), (1.0, 1.0, 1.0)), r"mean \(0.1, 0.2, 0.3\) has 3 values; the images have 1 channel"),
    (((0.5,), (0.0,)), "std .* must be finite and positive"),
    ((0.5, 0.2, 0.1), r"must be a pair \(mean, std\)"),
])
def test_a_normalize_that_does_not_fit_the_channels_is_refused(xy, normalize, says):
    with pytest.raises(UsageError, match=says):
        fast(linear(), xy, normalize=normalize)


def test_a_one_number_normalize_is_the_same_for_every_channel(xy):
    a = fast(linear(), xy, normalize=(0.5, 0.25))
    b = fast(linear(), xy, normalize=((0.5,), (0.25,)))
    np.testing.assert_allclose(a["value"], b["value"])


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
def test_cuda_without_a_gpu_is_refused(xy):
    with pytest.raises(UsageError, match="device 'cuda': no CUDA GPU is visible"):
        fast(linear(), xy, device="cuda")


def test_an_unknown_device_is_refused(xy):
    with pytest.raises(UsageError, match="device 'gpu' is not a torch device"):
        fast(linear(), xy, device="gpu")


def test_a_model_with_lazy_modules_that_never_ran_is_refused(xy):
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.LazyLinear(10)).eval()
    with pytest.raises(UsageError, match=r"lazy modules that never ran \(1 \(LazyLinear\)\).*model\(x\[:1\]\)"):
        fast(model, xy)
    model(xy[0][:1])  # once it ran, it has weights and is evaluated
    assert clean_acc(fast(model, xy)) >= 0


def test_a_timm_typo_lists_the_closest_names_not_all_of_them():
    pytest.importorskip("timm")
    from robustbench_mix.models.families import check_model_name

    with pytest.raises(UsageError) as e:
        check_model_name("timm:resnet5O")
    msg = str(e.value)
    assert "closest: resnet50" in msg and "of 1" in msg and len(msg) < 400, msg
    with pytest.raises(UsageError, match="did you mean 'resnet18'"):  # short lists are still listed whole
        check_model_name("tv:resnet1")


# ------------------------------------------------------------------------------------- data as users have it
def test_a_dataloader_or_dataset_gives_the_same_rows_as_the_tensors(xy):
    x, y = xy
    ds = torch.utils.data.TensorDataset(x, y)
    kw = {"attacks": ("fgsm", "pgd"), "corruptions": ("contrast",), "attack_steps": 2}
    tensors = fast(linear(), (x, y), **kw)
    for data in (torch.utils.data.DataLoader(ds, batch_size=7), ds):
        other = fast(linear(), data, **kw)
        keys = ["run_id", "dataset", "split", "attack", "eps", "metric"]
        pd.testing.assert_frame_equal(other[keys], tensors[keys])
        np.testing.assert_array_equal(other["value"], tensors["value"])


def test_uint8_items_and_a_list_dataset_are_taken(xy, small_digits):
    x_u8, y = small_digits.test_x[:60], small_digits.test_y[:60]
    items = [(x_u8[i], int(y[i])) for i in range(60)]  # any indexable of (image, label)
    np.testing.assert_array_equal(fast(linear(), items_dataset(items))["value"], fast(linear(), xy)["value"])


def items_dataset(items):
    class Items(torch.utils.data.Dataset):
        def __len__(self):
            return len(items)

        def __getitem__(self, i):
            return items[i]

    return Items()


def test_a_shuffling_loader_and_pil_images_are_refused(xy):
    from PIL import Image

    ds = torch.utils.data.TensorDataset(*xy)
    with pytest.raises(UsageError, match="shuffle=False"):
        fast(linear(), torch.utils.data.DataLoader(ds, shuffle=True))
    with pytest.raises(UsageError, match="drop_last=False"):
        fast(linear(), torch.utils.data.DataLoader(ds, batch_size=7, drop_last=True))
    pil = items_dataset([(Image.new("L", (8, 8)), 0)])
    with pytest.raises(UsageError, match=r"images of type Image.*ToTensor"):
        fast(linear(), pil)


# ---------------------------------------------------------------------------------------------- progress
class FakeTerminal(io.StringIO):
    def isatty(self):
        return True


@pytest.mark.parametrize("progress", [None, True])
def test_on_a_terminal_progress_is_bars_and_the_attacks_expected_cost(xy, monkeypatch, progress):
    err = FakeTerminal()
    monkeypatch.setattr(sys, "stderr", err)
    rbm.evaluate(linear(), xy, attacks=("fgsm",), corruptions=("contrast",), batch_size=25, progress=progress)
    out = err.getvalue()
    assert "attacks" in out and "corruptions" in out and "\r" in out, out  # tqdm's bars
    assert "fgsm eps 8/255 on 60 images: first of 3 batches took" in out
    assert "done in" not in out  # the per-attack log lines are for logs: on a terminal the bars say it


@pytest.mark.parametrize("terminal", [True, False])
def test_progress_false_says_nothing(xy, monkeypatch, terminal):
    err = FakeTerminal() if terminal else io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    rbm.evaluate(linear(), xy, attacks=("fgsm",), corruptions=("contrast",), batch_size=25, progress=False)
    assert err.getvalue() == ""


# --------------------------------------------------------------------------- headline, filters and saving
@pytest.fixture(scope="module")
def two_attacks(trained):
    model, p = trained
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the shared trained model is in training mode (evaluated in eval mode)
        return rbm.evaluate(model, (p.test_x, p.test_y), attacks=("fgsm", "pgd"), attack_steps=3,
                            attack_samples=100, corruptions=("contrast",), name="user:cnn", progress=False)


def test_the_headline_is_clean_worst_case_and_corruption_accuracy(two_attacks):
    rows = two_attacks
    h = rbm.headline(rows)
    assert len(h) == 1
    acc = rows[rows["metric"] == "acc"].set_index(["attack", "eps"])["value"]
    line = h.iloc[0]
    assert line["clean"] == acc[("none", 0.0)] and line["corrupt:mean"] == acc[("corrupt:mean", 0.0)]
    robust = [c for c in h.columns if c.startswith("robust ")]
    assert robust == ["robust 2/255", "robust 8/255"]  # not the 64/255 of the gradient-masking check
    worst = rows[rows["attack"] == "worst"].sort_values("eps")["value"].tolist()
    assert [line[c] for c in robust] == worst
    assert line["attacks"] == "fgsm, pgd" and line["attacked"].startswith("100 stratified (")
    assert line["checks failed"].startswith("0 of ")
    assert line["clean on attacked"] == rows[rows["metric"] == "acc_attacked_subset"]["value"].item()
    text = str(h)
    assert "robust 8/255" in text and f"{100 * worst[1]:.2f}%" in text


def test_one_attack_gives_its_own_accuracy_and_n_eval_is_read_when_present(two_attacks):
    rows = two_attacks[~two_attacks["attack"].isin(["fgsm", "worst"])]
    line = rbm.headline(rows).iloc[0]
    pgd = rows[(rows["attack"] == "pgd") & (rows["metric"] == "acc")].set_index("eps")["value"]
    assert line["robust 8/255"] == pgd[round(8 / 255, 6)] and line["attacks"] == "pgd"
    counted = two_attacks.assign(n_eval=np.where(two_attacks["attack"] == "none", 150, 100))
    line = rbm.headline(counted).iloc[0]
    assert line["images"] == 150 and line["attacked"].startswith("100 stratified (")


def test_accuracies_and_diagnostics_keep_apart(two_attacks):
    acc, diag = rbm.accuracies(two_attacks), rbm.diagnostics(two_attacks)
    assert not set(acc.index) & set(diag.index)
    assert set(acc["metric"]) == {"acc"} and "check" not in set(acc["attack"])
    assert {"max_linf_255", "box_violation", "input_grad_abs_mean", "acc_attacked_subset"} <= set(diag["metric"])
    assert (diag["attack"] == "check").sum() == (two_attacks["attack"] == "check").sum()


def test_saved_rows_are_read_by_compare_claims_and_report(two_attacks, tmp_path, capsys):
    from robustbench_mix.cli.claims import main as claims_main
    from robustbench_mix.cli.compare import main as compare_main
    from robustbench_mix.cli.report import main as report_main

    path = rbm.save_runs(two_attacks, tmp_path / "a")
    assert path == tmp_path / "a" / "runs.csv"
    back = rbm.load_runs(path)
    np.testing.assert_allclose(back["value"], two_attacks["value"], rtol=1e-5)
    assert str(rbm.headline(tmp_path / "a")) == str(rbm.headline(two_attacks))
    other = two_attacks.assign(model="user:cnn2")  # the same numbers under another name: another run
    other = other.assign(run_id="0123456789")
    rbm.save_runs(other, tmp_path / "b")
    assert compare_main([str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(tmp_path / "c")]) == 0
    assert report_main([str(tmp_path / "a")]) == 0 and (tmp_path / "a" / "report.html").exists()
    assert claims_main([str(tmp_path / "a"), "--out", str(tmp_path / "cl")]) in (0, 1)
    assert "Traceback" not in capsys.readouterr().err


def test_saving_a_run_twice_warns_and_one_name_for_two_models_is_refused(two_attacks, tmp_path):
    rbm.save_runs(two_attacks, tmp_path)
    with pytest.warns(UserWarning, match="already holds run .*user:cnn on .* it is replaced"):
        rbm.save_runs(two_attacks, tmp_path)
    assert len(rbm.load_runs(tmp_path / "runs.csv")) == len(two_attacks)
    with pytest.raises(UsageError, match="twice: two models evaluated under one name"):
        rbm.save_runs(pd.concat([two_attacks, two_attacks]), tmp_path / "x")
    with pytest.raises(UsageError, match="do not follow the results contract"):
        rbm.save_runs(two_attacks.assign(split="nowhere"), tmp_path / "y")
    assert not (tmp_path / "x").exists() and not (tmp_path / "y" / "runs.csv").exists()


# ------------------------------------------------------------------------------------- weights users have
def test_a_torchvision_state_dict_loads_into_tv_models(tmp_path):
    import torchvision

    torch.manual_seed(0)
    ref = torchvision.models.resnet18(num_classes=10).eval()
    torch.save(ref.state_dict(), tmp_path / "r18.pth")
    x = torch.rand(2, 3, 32, 32)
    model = rbm.build_model("tv:resnet18", num_classes=10, in_shape=(3, 32, 32), weights=tmp_path / "r18.pth")
    assert torch.equal(model.eval()(x), ref(x))
    torch.save({"state_dict": {"module." + k: v for k, v in ref.state_dict().items()}}, tmp_path / "dp.pth")
    grey = rbm.build_model("tv:resnet18", num_classes=10, in_shape=(1, 32, 32), weights=tmp_path / "dp.pth")
    assert torch.equal(grey.eval()(x[:, :1]), ref(x[:, :1].expand(-1, 3, -1, -1)))
    norm = rbm.build_model("tv:resnet18", num_classes=10, weights=tmp_path / "r18.pth", normalize=((0.5,), (0.25,)))
    assert torch.equal(norm.eval()(x), ref((x - 0.5) / 0.25))
    with pytest.raises(UsageError, match=r"do not fit tv:resnet18 with 100 classes.*size mismatch for fc.weight"):
        rbm.build_model("tv:resnet18", num_classes=100, weights=tmp_path / "r18.pth")


def test_a_timm_state_dict_loads_into_timm_models(tmp_path):
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    ref = timm.create_model("resnet10t", num_classes=10).eval()
    torch.save(ref.state_dict(), tmp_path / "t.pth")
    x = torch.rand(2, 3, 32, 32)
    model = rbm.build_model("timm:resnet10t", num_classes=10, in_shape=(3, 32, 32), weights=str(tmp_path / "t.pth"))
    assert torch.equal(model.eval()(x), ref(x))


class _Payload:
    def __reduce__(self):
        return (print, ("ran",))


@pytest.mark.parametrize("content, says", [
    (None, "no such file"),
    ({"fc.weight": _Payload()}, "needs pickle"),
    ({"epoch": 3}, "hold no state_dict"),
    (b"not a torch file", "not a readable torch file"),
])
def test_unusable_weight_files_are_refused(tmp_path, content, says):
    path = tmp_path / "w.pth"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        torch.save(content, path)
    with pytest.raises(UsageError, match=says):
        rbm.build_model("tv:resnet18", num_classes=10, weights=path)


@pytest.mark.parametrize("weights, says", [
    (lambda: linear().state_dict(), r"got OrderedDict \(a state_dict in memory\? .*load_state_dict"),
    (lambda: 3, "got int"),
    (lambda: b"r18.pth", "got bytes"),
])
def test_weights_that_are_not_a_path_are_refused_with_what_to_do(weights, says):
    with pytest.raises(UsageError, match=f"weights= takes the path of a state_dict file or 'pretrained', {says}"):
        rbm.build_model("tv:resnet18", num_classes=10, weights=weights())


def test_pretrained_weights_offline_or_of_another_class_count_say_what_to_do(monkeypatch):
    import urllib.error

    import torchvision.models._api as tv_api

    with pytest.raises(UsageError, match="pretrained tv:resnet18 has 1000 classes and the data 10"):
        rbm.build_model("tv:resnet18", num_classes=10, weights="pretrained")

    def offline(*a, **k):
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(tv_api, "load_state_dict_from_url", offline)
    with pytest.raises(UsageError, match="could not get the pretrained weights of tv:resnet18.*offline.*weights=PATH"):
        rbm.build_model("tv:resnet18", weights="pretrained")
    with pytest.raises(UsageError, match="build_model takes tv:NAME or timm:NAME"):
        rbm.build_model("cnn", num_classes=10)


# ----------------------------------------------------------------------- moved from test_byom.py
def test_a_model_in_training_mode_is_warned_about_and_left_as_found(small_digits):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 32), torch.nn.Dropout(0.5),
                                torch.nn.Linear(32, 10)).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    grads = [p.requires_grad for p in model.parameters()]
    with pytest.warns(UserWarning, match="training mode"):
        df = rbm.evaluate(model, (small_digits.test_x, small_digits.test_y), attack_steps=2, progress=False)
    assert model.training and all(m.training for m in model.modules())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert [p.requires_grad for p in model.parameters()] == grads and all(p.grad is None for p in model.parameters())
    assert df["dataset"].iloc[0].startswith("tensors:") and (df["metric"] == "acc").any()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an eval-mode model: no warning
        rbm.evaluate(model.eval(), (small_digits.test_x, small_digits.test_y), attacks=("fgsm",), progress=False)


def test_normalize_wraps_the_model_and_float_images_are_taken(small_digits):
    torch.manual_seed(0)
    body = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10)).eval()
    x = small_digits.test_x.float() / 255
    a = rbm.evaluate(body, (x, small_digits.test_y), normalize=((0.5,), (0.25,)), attacks=("fgsm",))
    logits = body((x - 0.5) / 0.25)
    acc = (logits.argmax(1) == small_digits.test_y).float().mean().item()
    assert a[(a["attack"] == "none") & (a["metric"] == "acc")]["value"].item() == pytest.approx(acc, abs=1e-6)
    with pytest.raises(UsageError, match=r"must lie in \[0, 1\]"):
        rbm.evaluate(body, (x * 255, small_digits.test_y))


def test_api_rows_pass_the_results_contract_and_the_summary_shows_mean_corruption_accuracy(small_digits, tmp_path):
    from robustbench_mix.store.schema import KEY
    from robustbench_mix.store.summary import summarize, summary_markdown
    from robustbench_mix.store.write import merge_run

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))
    df = rbm.evaluate(model.eval(), "digits", attacks=("fgsm",), corruptions=("contrast",), name="user:linear")
    merge_run(tmp_path / "runs.csv", df)
    back = rbm.load_runs(tmp_path / "runs.csv")
    assert not back.duplicated(KEY).any()
    assert "corrupt:mean acc" in summary_markdown(summarize(back))
    assert isinstance(back, pd.DataFrame)


def test_the_public_names_are_the_api_not_modules():
    import types


    assert callable(rbm.evaluate) and not isinstance(rbm.evaluate, types.ModuleType)
    assert set(rbm.__all__) == {"CORRUPTIONS", "__version__", "accuracies", "benchmark", "build_model", "diagnostics",
                                "evaluate", "headline", "load_runs", "save_runs",
                                # the plugins' API (docs/own-method.md)
                                "beta", "register_attack", "register_corruption", "register_dataset", "register_method",
                                "register_model"}
    assert all(callable(getattr(rbm, n)) for n in rbm.__all__ if n not in ("CORRUPTIONS", "__version__"))
    assert rbm.evaluate.__doc__ and "long-form rows" in rbm.evaluate.__doc__
