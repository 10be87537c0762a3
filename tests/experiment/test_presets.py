"""The CPU presets on real CIFAR-10 images: a class-stratified training subset (train_samples), the CPU CNN,
``--attacks none`` and the presets' grids."""

import numpy as np
import pytest
import torch

from robustbench_mix.cli.suite import main
from robustbench_mix.data.base import ImageData
from robustbench_mix.data.prepare import prepare
from robustbench_mix.experiment.experiment import Experiment, config_hash
from robustbench_mix.experiment.presets import get_preset
from robustbench_mix.methods import METHODS, method_for
from robustbench_mix.models.families import build
from robustbench_mix.store.load import load_runs


def _class_sorted(small_digits) -> ImageData:
    order = torch.argsort(small_digits.train_y, stable=True)  # as an image folder stores them
    return ImageData("digits", small_digits.train_x[order], small_digits.train_y[order], small_digits.test_x,
                     small_digits.test_y, small_digits.classes, "none")


def test_train_samples_is_a_class_stratified_subset_the_same_for_every_seed(small_digits):
    d = _class_sorted(small_digits)
    counts = np.bincount(d.train_y.numpy(), minlength=10)
    a = prepare(d, 0.0, 0.0, 0, torch.device("cpu"), train_samples=100)
    b = prepare(d, 0.0, 0.0, 5, torch.device("cpu"), train_samples=100)
    assert len(a.train_y) == 100 and torch.equal(a.train_x, b.train_x) and torch.equal(a.train_y, b.train_y)
    got = np.bincount(a.train_y.numpy(), minlength=10)
    assert (np.abs(got - 100 * counts / counts.sum()) < 1).all()  # each class its share, not the first classes
    whole = prepare(d, 0.0, 0.0, 0, torch.device("cpu"))
    assert len(whole.train_y) == len(d.train_y)
    # each subset image is one of the training images with its own label
    flat = {(bytes(x.numpy().tobytes()), int(y)) for x, y in zip(d.train_x, d.train_y, strict=True)}
    assert all((bytes(x.numpy().tobytes()), int(y)) in flat for x, y in zip(a.train_x, a.train_true_y, strict=True))


def test_train_samples_labels_are_corrupted_within_the_subset(small_digits):
    p = prepare(_class_sorted(small_digits), 0.5, 0.2, 1, torch.device("cpu"), train_samples=200)
    assert len(p.train_y) + len(p.val_y) == 200
    assert 0.35 < p.corrupted.float().mean().item() < 0.55  # 50% resampled among 10 classes: ~45% change
    assert torch.equal(p.corrupted, p.train_y != p.train_true_y)
    assert p.corrupted_index.max() < 200  # indexes the subset


def test_train_samples_enters_the_run_id_only_when_set():
    base = Experiment()
    assert config_hash(base) == config_hash(Experiment(train_samples=0))
    assert config_hash(Experiment(train_samples=100)) not in (config_hash(base), config_hash(Experiment(
        train_samples=200)))


@pytest.mark.parametrize("value,message", [("-5", "train samples -5 must be >= 0"),
                                           ("100000", "--train-samples 100000 is larger than the training set")])
def test_bad_train_samples_are_refused_before_training(value, message, tmp_path, capsys):
    assert main(["--train-samples", value, "--epochs", "1", "--out", str(tmp_path / "o"), "--no-progress"]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "o" / "runs.csv").exists()


def test_attacks_none_trains_and_writes_no_attack_rows(tmp_path):
    out = tmp_path / "o"
    assert main(["--methods", "erm", "--noise", "0", "--epochs", "1", "--train-samples", "300", "--attacks", "none",
                 "--out", str(out), "--no-progress"]) == 0
    df = load_runs(out / "runs.csv")
    assert set(df["attack"]) <= {"none", "check"} and (df["metric"] == "acc").any()  # no attack rows
    assert '"train_samples":300' in df["config"].iloc[0]


def test_cifar_cnn_on_both_image_sizes_and_its_mixing_points():
    for shape in ((3, 32, 32), (1, 8, 8)):
        model = build("cifar_cnn", in_shape=shape, num_classes=10, mean=(0.5,) * shape[0], std=(0.25,) * shape[0])
        x = torch.rand(4, *shape)
        assert model(x).shape == (4, 10)
        names = dict(model.named_modules())
        assert all(p is None or isinstance(names[p], torch.nn.MaxPool2d) for p in model.mix_points)
    # manifold mixup mixes at each of its three points and trains
    exp = Experiment(model="cifar_cnn", method="manifold_mixup", alpha=2.0)
    m = method_for(exp, (32, 32))
    rng = np.random.default_rng(0)
    for _ in range(6):
        loss = m.loss(model, x, torch.arange(4), 10, *m.draw(4, 2.0, rng, None, x.device))
        assert torch.isfinite(loss)
    assert METHODS.get("manifold_mixup").mixes_hidden


def test_the_cpu_cifar_presets_grids():
    t2 = get_preset("cifar10-cpu-table2").expand()
    assert len(t2) == 12 and {r.seed for r in t2} == {0, 1, 2}
    assert {(r.noise, r.method, r.alpha) for r in t2} == {(0.2, "erm", 0.0), (0.2, "mixup", 8.0),
                                                          (0.5, "erm", 0.0), (0.5, "mixup", 32.0)}
    assert all(r.train_samples == 4000 and r.model == "cifar_cnn" and r.attacks == () and r.eval_every == 1
               for r in t2)
    t3 = get_preset("cifar10-cpu-table3").expand()
    assert len(t3) == 6 and {(r.method, r.alpha) for r in t3} == {("erm", 0.0), ("mixup", 1.0)}
    assert all(r.surrogate_seed == 100 and r.attack_samples == 500 and r.eps == (2.0, 8.0) for r in t3)


def test_the_robust_presets_train_each_adversarial_method_at_the_largest_radius_evaluated_and_validate():
    from robustbench_mix.attacks.base import attack_norm
    from robustbench_mix.experiment.validation import validate
    from robustbench_mix.methods import METHODS

    for name in ("robust-cpu", "robust-cifar10"):
        runs = get_preset(name).expand()
        assert {r.method for r in runs} == {"erm", "mixup", "pgd_at", "trades", "mixup_at"}
        for r in runs:
            validate(r)
            assert {attack_norm(a) for a in r.attacks} == {"Linf", "L2"} and r.eps_l2 and r.surrogate_seed == 100
            assert "autoattack" in r.attacks and ("autoattack_l2" in r.attacks) == (name == "robust-cifar10")
            if METHODS.get(r.method).adversarial:
                trained = method_for(r, (8, 8)).step.keywords["eps"]
                assert trained == max(r.eps), (name, r.method)
    cpu = get_preset("robust-cpu").expand()
    assert len(cpu) == 15 and {r.seed for r in cpu} == {0, 1, 2} and all(r.dataset == "digits" for r in cpu)
    assert all(r.attack_restarts == 2 and r.check_eps > max(r.eps) for r in cpu)


def _grid(*args):
    from robustbench_mix.cli.suite_args import build_parser, suite_from_args

    return suite_from_args(build_parser().parse_args(list(args))).expand()


def _columns(runs):
    return {(r.noise, r.method, r.alpha, r.dropout) for r in runs}


def test_narrowing_one_axis_of_a_table2_preset_keeps_its_other_columns_and_pairings():
    """--alpha on table2-cpu dropped the dropout columns (12 runs a seed became 6); --noise with --alpha or
    --dropout crossed every rate's values (mixup at alpha 4, 8 and 32 at 50%)."""
    runs = _grid("--preset", "table2-cpu", "--alpha", "4", "--seeds", "0")
    assert _columns(runs) == {(p, m, a, d) for p, drops in ((0.2, (0.7, 0.1)), (0.5, (0.8, 0.3)), (0.8, (0.8, 0.3)))
                              for m, a, d in (("erm", 0.0, 0.0), ("erm", 0.0, drops[0]), ("mixup", 4.0, 0.0),
                                              ("mixup", 4.0, drops[1]))}
    assert len(runs) == 12
    # one rate: that rate's columns, the paper's alpha=32 alone and (8, p=0.3) with dropout, nothing of 20%
    half = {(0.5, "erm", 0.0, 0.0), (0.5, "erm", 0.0, 0.8), (0.5, "mixup", 32.0, 0.0), (0.5, "mixup", 8.0, 0.3)}
    assert _columns(_grid("--preset", "table2-cpu", "--noise", "0.5", "--seeds", "0")) == half
    assert _columns(_grid("--preset", "table2-cpu", "--noise", "0.5", "--alpha", "16", "--seeds", "0")) == {
        (0.5, "erm", 0.0, 0.0), (0.5, "erm", 0.0, 0.8), (0.5, "mixup", 16.0, 0.0), (0.5, "mixup", 16.0, 0.3)}
    # the CPU CIFAR-10 preset (ERM and mixup per rate): --alpha replaces mixup's at each rate
    assert _columns(_grid("--preset", "cifar10-cpu-table2", "--alpha", "2", "--seeds", "0")) == {
        (0.2, "erm", 0.0, 0.0), (0.2, "mixup", 2.0, 0.0), (0.5, "erm", 0.0, 0.0), (0.5, "mixup", 2.0, 0.0)}


def test_dropout_on_a_preset_that_pairs_dropout_per_rate_is_refused_naming_the_flag_to_use(tmp_path, capsys):
    assert main(["--preset", "table2-cpu", "--noise", "0.5", "--dropout", "0.3", "--out", str(tmp_path),
                 "--dry-run"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: --dropout: preset 'table2-cpu' pairs each method with a "
                                               "dropout of its own at each noise rate"), err
    assert "0.5: ERM, ERM + dropout (p=0.8), mixup (α=32), mixup (α=8) + dropout (p=0.3)" in err[0]
    assert "name the grid with --methods instead" in err[0]
    # --methods names the grid: the same columns at every rate, as asked
    runs = _grid("--preset", "table2-cpu", "--methods", "erm,mixup:32", "--dropout", "0,0.3", "--noise", "0.5",
                 "--seeds", "0")
    assert _columns(runs) == {(0.5, m, a, d) for m, a in (("erm", 0.0), ("mixup", 32.0)) for d in (0.0, 0.3)}
