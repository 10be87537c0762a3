"""Comparable numbers: the attacked subset is class-stratified, fixed and said; epsilons have one convention per
entry point and no value is silently misread."""

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

import robustbench_mix as rbm
from robustbench_mix.cli.suite import main
from robustbench_mix.core.errors import UsageError
from robustbench_mix.core.units import eps_from_fraction, parse_eps
from robustbench_mix.data.prepare import attack_subset, prepare
from robustbench_mix.evaluation.evaluators import attacked_images
from robustbench_mix.experiment.experiment import Experiment, config_hash
from robustbench_mix.store.load import load_runs


def test_attack_subset_is_class_stratified_on_a_class_sorted_test_set():
    y = np.repeat(np.arange(10), 1000)  # an image folder's test set: sorted by class
    idx = attack_subset(y, 1000)
    assert np.bincount(y[idx], minlength=10).tolist() == [100] * 10  # the first 1000 would be class 0 alone
    assert len(np.unique(idx)) == 1000 and np.all(np.diff(idx) > 0)


def test_attack_subset_shares_follow_class_frequencies_and_sum_to_n():
    y = np.array([0] * 70 + [1] * 20 + [2] * 10)
    for n in (1, 7, 33, 99):
        idx = attack_subset(y, n)
        counts = np.bincount(y[idx], minlength=3)
        assert counts.sum() == n
        assert np.all(np.abs(counts - n * np.array([0.7, 0.2, 0.1])) < 1)  # largest remainder: within one
    assert attack_subset(y, 0).tolist() == list(range(100)) == attack_subset(y, 500).tolist()


def test_attack_subset_is_the_same_for_every_run_and_not_storage_order():
    y = np.tile(np.arange(10), 100)
    a, b = attack_subset(y, 100), attack_subset(y.copy(), 100)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, np.arange(100))  # a random draw, not the first 100


def test_the_evaluators_attack_the_stratified_subset(small_digits):
    order = torch.argsort(small_digits.test_y, stable=True)  # sorted by class, as an image folder is
    d = type(small_digits)("digits", small_digits.train_x, small_digits.train_y, small_digits.test_x[order],
                           small_digits.test_y[order], small_digits.classes, "none")
    p = prepare(d, 0.0, 0.0, 0, torch.device("cpu"))
    exp = Experiment(attack_samples=30)
    x, y, label = attacked_images(p, exp)
    assert len(y) == 30 and len(torch.unique(y)) == 10 and label.startswith("stratified:")
    x0, y0, label0 = attacked_images(p, Experiment(attack_samples=0))
    assert len(y0) == len(p.test_y) and label0 == "all"
    assert attacked_images(p, Experiment(attack_samples=30, seed=7))[2] == label  # the run's seed does not move it


def test_run_ids_change_only_for_runs_that_attack_a_subset():
    # ids of runs that attack every image are unchanged by the new rule (this one is in results/reference/quick)
    quick = load_runs("results/reference/quick/runs.csv")
    cfg = quick.drop_duplicates("run_id")[["run_id", "config"]]
    for rid, text in cfg.itertuples(index=False):
        exp = Experiment.from_json(text)
        assert exp.attack_samples == 0 and config_hash(exp) == rid
    base = Experiment(attack_samples=100)
    assert config_hash(base) != config_hash(Experiment(attack_samples=200))
    # a first-N run of 0.3 (its id without the rule) is never taken for a stratified one
    import hashlib
    import json
    d = {k: (list(v) if isinstance(v, tuple) else v) for k, v in base.to_dict().items()
         if k not in ("preset", "device", "attack_precision", "corruptions")}
    old = hashlib.sha256(json.dumps(d, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:10]
    assert config_hash(base) != old


@pytest.mark.parametrize("text,value", [("8/255", 8.0), ("8", 8.0), ("0.5/255", 0.5), ("0", 0.0), ("16", 16.0)])
def test_cli_epsilons_in_255_units(text, value):
    assert parse_eps(text) == (value,)


@pytest.mark.parametrize("text,message", [
    ("0.03", "ambiguous.*7.65/255"),
    ("8/256", "only /255"),
    ("eight", "not a number"),
    ("-2", ">= 0"),
])
def test_cli_epsilons_that_could_be_misread_are_refused(text, message):
    with pytest.raises(UsageError, match=message):
        parse_eps(text)


def test_suite_refuses_an_ambiguous_epsilon_before_training(tmp_path, capsys):
    for flag in ("--eps", "--check-eps", "--attack-step-size"):
        assert main([flag, "0.03", "--out", str(tmp_path), "--epochs", "1"]) == 2
        assert "ambiguous" in capsys.readouterr().err
    assert not (tmp_path / "runs.csv").exists()


@pytest.mark.parametrize("value,e255", [(8 / 255, 8.0), ("8/255", 8.0), (0, 0.0), (0.5 / 255, 0.5)])
def test_api_epsilons_are_fractions(value, e255):
    assert eps_from_fraction(value) == pytest.approx(e255)


@pytest.mark.parametrize("value,message", [(8, "outside \\[0, 1\\).*8/255"), (1.0, "outside"), ("8", "not a fraction"),
                                           (float("nan"), "not a number"), (None, "not a number")])
def test_api_epsilons_that_could_be_misread_are_refused(value, message):
    with pytest.raises(UsageError, match=message):
        eps_from_fraction(value)


@pytest.fixture(scope="module")
def linear_model(digits):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    x, y = digits.train_x.float() / 255, digits.train_y
    for _ in range(100):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    return model.eval()


def test_api_reads_8_over_255_as_the_anchors_do(linear_model, small_digits):
    data = (small_digits.test_x, small_digits.test_y)
    a = rbm.evaluate(linear_model, data, attacks=("pgd",), eps=(8 / 255,), attack_steps=5, check_eps=0)
    b = rbm.evaluate(linear_model, data, attacks="pgd", eps="8/255", attack_steps=5, check_eps=0)
    pgd = a[(a["attack"] == "pgd") & (a["metric"] == "acc") & (a["eps"] > 0)]
    assert pgd["eps"].tolist() == [pytest.approx(8 / 255, abs=1e-6)] and pgd["eps_255"].tolist() == [8.0]
    linf = a[(a["metric"] == "max_linf_255") & (a["eps"] > 0)]["value"].item()
    assert 7.9 < linf <= 8.001  # the perturbation reaches 8 pixel levels (8/255 read as 8/255**2: 0.03 levels)
    cols = ["attack", "eps", "metric", "value"]
    pd.testing.assert_frame_equal(a[cols].reset_index(drop=True), b[cols].reset_index(drop=True))
    with pytest.raises(UsageError, match="8/255"):
        rbm.evaluate(linear_model, data, eps=(8,))


def test_api_default_attacks_the_whole_test_set(linear_model, small_digits):
    df = rbm.evaluate(linear_model, (small_digits.test_x, small_digits.test_y), attacks=("fgsm",),
                      eps=(8 / 255,), check_eps=0)
    adv = df[df["attack"] == "fgsm"]
    assert (adv["n_eval"] == len(small_digits.test_y)).all() and set(adv["eval_subset"]) == {"all"}


def _sorted_folder(root, classes=4, per_class=12, size=8):
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for c in range(classes):
            d = root / split / f"class{c}"
            d.mkdir(parents=True)
            for i in range(per_class):
                img = np.clip(rng.normal(60 * c, 20, (size, size, 3)), 0, 255).astype(np.uint8)
                Image.fromarray(img).save(d / f"{i}.png")


def test_suite_on_an_image_folder_attacks_every_class_and_says_so(tmp_path, capsys):
    _sorted_folder(tmp_path / "imgs")
    out = tmp_path / "out"
    assert main(["--dataset", f"imagefolder:{tmp_path / 'imgs'}", "--data-dir", str(tmp_path / "cache"),
                 "--methods", "erm", "--noise", "0", "--epochs", "1", "--batch-size", "16", "--eps", "8/255",
                 "--attacks", "fgsm", "--attack-samples", "8", "--out", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    df = load_runs(out / "runs.csv")
    adv = df[(df["attack"] == "fgsm") & (df["metric"] == "acc")]
    assert (adv["n_eval"] == 8).all() and adv["eval_subset"].str.startswith("stratified:").all()
    clean = df[(df["attack"] == "none") & (df["metric"] == "acc") & (df["split"] == "test")]
    assert (clean["n_eval"] == 48).all() and set(clean["eval_subset"]) == {"all"}
    note = "a class-stratified 8 of the 48 test images"
    assert note in printed and note in (out / "summary.md").read_text()


def test_results_without_the_new_columns_still_load(tmp_path):
    old = pd.read_csv("results/reference/quick/runs.csv", dtype=str, keep_default_na=False)
    old = old.drop(columns=[c for c in ("n_eval", "eval_subset", "eps_255") if c in old.columns])
    old.to_csv(tmp_path / "runs.csv", index=False)
    df = load_runs(tmp_path / "runs.csv")
    assert df["n_eval"].isna().all() and (df["eval_subset"] == "").all()
    e = df[df["eps"] > 0]
    np.testing.assert_allclose(e["eps_255"], (e["eps"] * 255).round(3))


def test_a_single_external_model_is_named_in_the_summary(linear_model, small_digits):
    from robustbench_mix.store.summary import summarize, summary_markdown

    df = rbm.evaluate(linear_model, (small_digits.test_x, small_digits.test_y), attacks=("fgsm",), eps=(8 / 255,),
                      check_eps=0, name="user:linear64")
    md = summary_markdown(summarize(df))
    assert "| model |" in md and "user:linear64" in md  # not 'method external' alone


def test_an_api_evaluation_seed_never_poses_as_a_training_seed(linear_model, small_digits):
    import json

    data = (small_digits.test_x, small_digits.test_y)
    runs = [rbm.evaluate(linear_model, data, attacks=("pgd",), eps=(8 / 255,), check_eps=0, seed=s) for s in (1, 2)]
    df = pd.concat(runs)
    assert set(df["seed"]) == {0} and df["run_id"].nunique() == 2
    assert {json.loads(c)["eval_seed"] for c in df["config"].unique()} == {1, 2}
    from robustbench_mix.store.summary import summarize

    assert set(summarize(df)["n_seeds"]) == {1}  # two evaluations of one model, not two seeds
