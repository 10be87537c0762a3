"""robustbench_mix.benchmark: RobustBench's call and return value, ``clean_acc, robust_acc = benchmark(model,
dataset=..., threat_model="Linf", eps=8/255, n_examples=...)``, whose two numbers are evaluate()'s rows (kept in
``.rows``): the whole test set in order, or the suite's stratified subset when n_examples is smaller."""

import enum

import numpy as np
import pandas as pd
import pytest
import torch

import robustbench_mix as rbm
from robustbench_mix.core.errors import UsageError
from robustbench_mix.core.units import Norm

KEYS = ["run_id", "model", "dataset", "split", "attack", "eps", "metric", "n_eval", "eval_subset"]


def linear():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10)).eval()


def value(rows, attack, metric="acc", eps=None):
    r = rows[(rows["attack"] == attack) & (rows["metric"] == metric) & (rows["split"] == "test")]
    if eps is not None:
        r = r[np.isclose(r["eps"], eps, atol=2e-6)]
    return r["value"].item()


def test_a_subset_is_the_suites_stratified_one_and_both_numbers_are_evaluates_rows(tmp_path):
    """The default attack (the standard AutoAttack) on 40 of the 497 test digits."""
    result = rbm.benchmark(linear(), dataset="digits", threat_model="Linf", eps=8 / 255, n_examples=40,
                           progress=False)
    clean, robust = result  # RobustBench's return value
    rows = rbm.evaluate(linear(), "digits", attacks=("autoattack",), eps=(8 / 255,), attack_samples=40,
                        progress=False)
    pd.testing.assert_frame_equal(result.rows[KEYS], rows[KEYS])
    np.testing.assert_array_equal(result.rows["value"], rows["value"])
    assert (clean, robust) == (result.clean_acc, result.robust_acc)
    assert clean == value(rows, "none", "acc_attacked_subset")  # clean accuracy on the same 40 images
    assert robust == value(rows, "autoattack", eps=8 / 255)
    assert clean != value(rows, "none")  # not the whole test set's clean accuracy
    attacked = rows[rows["attack"] == "autoattack"]
    assert set(attacked["n_eval"]) == {40} and attacked["eval_subset"].str.startswith("stratified:").all()
    assert isinstance(clean, float) and 0 <= robust <= clean <= 1
    assert len(rbm.load_runs(rbm.save_runs(result.rows, tmp_path))) == len(rows)  # saved for compare / report


def test_n_examples_of_the_test_set_or_more_is_the_whole_test_set_in_order():
    result = rbm.benchmark(linear(), 10_000, "digits", "Linf", eps="8/255", attacks="fgsm", model_name="lin",
                           progress=False)
    rows = result.rows
    assert result.clean_acc == value(rows, "none") and set(rows[rows["attack"] == "fgsm"]["n_eval"]) == {497}
    assert result.robust_acc == value(rows, "fgsm", eps=8 / 255)
    assert set(rows[rows["metric"] == "acc"]["eval_subset"]) == {"all"} and set(rows["model"]) == {"user:lin"}


class ThreatModel(enum.Enum):  # RobustBench's own enum, as robustbench.model_zoo.enums defines it
    Linf = "Linf"
    L2 = "L2"
    corruptions = "corruptions"


@pytest.mark.parametrize("threat_model", ["L2", "l2", Norm.L2, ThreatModel.L2])
def test_the_l2_threat_model_by_name_or_enum_with_robustbenchs_radius(threat_model):
    result = rbm.benchmark(linear(), 60, "digits", threat_model, attacks="fgm_l2", progress=False)
    assert result.robust_acc == value(result.rows, "fgm_l2", eps=0.5)  # the default radius: RobustBench's 0.5
    assert rbm.benchmark(linear(), 60, "digits", ThreatModel.Linf, attacks="fgsm", progress=False).robust_acc \
        == value(rbm.evaluate(linear(), "digits", attacks="fgsm", eps=(8 / 255,), attack_samples=60,
                              progress=False), "fgsm", eps=8 / 255)  # Linf's default: 8/255


@pytest.mark.parametrize("kw, says", [
    ({"threat_model": "Linf2"}, r"threat_model 'Linf2': give 'Linf', 'L2' or 'corruptions'"),
    ({"threat_model": "Linf", "eps": 8 / 255, "attacks": "pgd", "n_examples": -1}, "n_examples -1"),
    ({"n_examples": 0}, "n_examples 0 must be a positive integer"),
    ({"n_examples": 100.0}, "n_examples 100.0 must be a positive integer"),
    ({"to_disk": True}, r"save_runs\(result\.rows, DIR\)"),
    ({"attacks": "pgd_l2"}, r"attack 'pgd_l2' is of the L2 threat model, not Linf.*threat_model='L2'"),
    ({"attacks": "fgsm", "threat_model": "L2"}, r"attack 'fgsm' is of the Linf threat model, not L2"),
    ({"eps": 8}, "outside"),
])
def test_bad_arguments_are_refused_before_anything_runs(kw, says):
    with pytest.raises(UsageError, match=says):
        rbm.benchmark(linear(), **{"dataset": "digits", "n_examples": 60, "attacks": "fgsm", "progress": False, **kw})


# --------------------------------------------------------------------------------- the corruptions threat model
@pytest.fixture
def cifar_files(tmp_path, monkeypatch):
    """A 20-image stand-in for the CIFAR-10 test set (no download here) and CIFAR-10-C files of all 15 benchmark
    corruptions, 4 images per severity, in ``tmp_path``."""
    from robustbench_mix.corruptions import STANDARD_CORRUPTIONS
    from robustbench_mix.data.base import ImageData

    g = torch.Generator().manual_seed(0)
    x, y = torch.randint(0, 256, (20, 3, 32, 32), dtype=torch.uint8, generator=g), torch.arange(20) % 10
    clean = ImageData("cifar10", x[:0], y[:0], x, y, [str(i) for i in range(10)], "none")
    real = rbm.api.evaluate.load
    monkeypatch.setattr("robustbench_mix.api.evaluate.load",
                        lambda spec, d: clean if spec == "cifar10" else real(spec, d))
    folder = tmp_path / "CIFAR-10-C"
    folder.mkdir()
    rng = np.random.default_rng(0)
    np.save(folder / "labels.npy", np.tile(np.arange(4) % 10, 5).astype(np.uint8))
    for name in STANDARD_CORRUPTIONS:
        np.save(folder / f"{name}.npy", rng.integers(0, 256, (20, 32, 32, 3), dtype=np.uint8))
    return tmp_path, clean


class Brightness(torch.nn.Module):
    """Class 0 for dark images, 1 for bright ones (differentiably): accuracies that differ by file."""

    def __init__(self):
        super().__init__()
        self.eval()

    def forward(self, x):
        bright = x.mean(dim=(1, 2, 3)) - 0.5
        return 10 * torch.stack([-bright, bright] + [torch.zeros_like(bright) - 1] * 8, 1)


def test_corruptions_are_the_clean_test_set_and_the_mean_over_the_15_files(cifar_files):
    data_dir, clean = cifar_files
    result = rbm.benchmark(Brightness(), dataset="cifar10", threat_model=ThreatModel.corruptions,
                           data_dir=str(data_dir), progress=False)
    corrupt = rbm.evaluate(Brightness(), "cifar10c", data_dir=str(data_dir), progress=False)
    whole = rbm.evaluate(Brightness(), (clean.test_x, clean.test_y), attacks=(), progress=False)
    assert result.robust_acc == value(corrupt, "c10c:mean")
    per_file = corrupt[corrupt["attack"].str.count(":") == 2]
    assert len(per_file) == 75 and result.robust_acc == pytest.approx(per_file["value"].mean())
    assert result.clean_acc == value(whole, "none")
    assert set(result.rows["dataset"]) == {"cifar10", "cifar10c"}  # two runs, both kept for save_runs


def test_corruptions_refuse_a_partial_folder_an_eps_a_subset_and_data_without_files(cifar_files):
    data_dir, _ = cifar_files
    kw = {"dataset": "cifar10", "threat_model": "corruptions", "data_dir": str(data_dir), "progress": False}
    (data_dir / "CIFAR-10-C" / "fog.npy").unlink()
    with pytest.raises(UsageError, match=r"lacks 1 of the 15 benchmark corruptions \(fog\)"):
        rbm.benchmark(Brightness(), **kw)
    with pytest.raises(UsageError, match="takes no eps or attacks"):
        rbm.benchmark(Brightness(), **kw, eps=8 / 255)
    with pytest.raises(UsageError, match="evaluates the CIFAR-10-C files whole: give n_examples=10000"):
        rbm.benchmark(Brightness(), 1000, **kw)
    with pytest.raises(UsageError, match="needs a data set with the standard corruption files"):
        rbm.benchmark(Brightness(), **{**kw, "dataset": "digits"})
