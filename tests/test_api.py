"""robustbench_mix.evaluate as users call it: bad input refused clearly before anything runs, data and weights as
users have them, the headline, saving rows for compare/report. Epsilons and attack_samples are left at their
defaults here, so the tests hold whichever unit the eps parameter takes."""


import numpy as np
import pytest
import torch

import robustbench_mix as rbm
from robustbench_mix.errors import UsageError


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
        fast(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 64, 10)), xy)


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
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.LazyLinear(10))
    with pytest.raises(UsageError, match=r"lazy modules that never ran \(1 \(LazyLinear\)\).*model\(x\[:1\]\)"):
        fast(model, xy)
    model(xy[0][:1])  # once it ran, it has weights and is evaluated
    assert clean_acc(fast(model, xy)) >= 0


def test_a_timm_typo_lists_the_closest_names_not_all_of_them():
    pytest.importorskip("timm")
    from robustbench_mix.models import check_model_name

    with pytest.raises(UsageError) as e:
        check_model_name("timm:resnet5O")
    msg = str(e.value)
    assert "closest: resnet50" in msg and "of 1" in msg and len(msg) < 400, msg
    with pytest.raises(UsageError, match="did you mean 'resnet18'"):  # short lists are still listed whole
        check_model_name("tv:resnet1")
