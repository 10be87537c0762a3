"""Contract tests parametrized over the registries: a new attack, method, corruption, data set or metric is tested
here by being registered, without editing a list (as timm tests every ``list_models()`` entry). The attack,
method, model and corruption rules are robustbench_mix.plugins.contracts', which python -m robustbench_mix.check
runs on a user's plugins."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from robustbench_mix.attacks.base import ATTACKS
from robustbench_mix.corruptions import CORRUPTIONS, corrupt
from robustbench_mix.data.base import DATASETS
from robustbench_mix.data.prepare import to_float
from robustbench_mix.evaluation.metrics import METRICS, is_fraction, percent_scale, summary_metrics
from robustbench_mix.methods import METHODS
from robustbench_mix.models.base import MODELS
from robustbench_mix.plugins import contracts

N = 24


@pytest.fixture(scope="module")
def batch(trained):
    model, data = trained
    return contracts.Batch(model, to_float(data.test_x[:N]), data.test_y[:N])


def _holds(kind: str, rule: str, name: str, batch=None) -> None:
    """One rule of robustbench_mix.plugins.contracts (the rules python -m robustbench_mix.check runs on plugins)."""
    fn = dict(contracts.RULES[kind])[rule]
    problem = fn(name, batch)
    assert problem is None, f"{kind} {name}: {rule}: {problem}"


ATTACK_NAMES = list(ATTACKS)


@pytest.mark.parametrize("name", ATTACK_NAMES)
def test_attack_returns_the_input_at_eps_zero(batch, name):
    if not contracts.available(name):
        pytest.skip(f"{name} needs an optional package")
    _holds("attack", "eps-zero", name, batch)


@pytest.mark.parametrize("name", ATTACK_NAMES)
def test_attack_stays_in_its_ball_and_the_box_and_uses_its_norm(batch, name):
    """In its norm's ball and [0, 1]; and it reaches at least half its radius in that norm, so an attack that
    declared the wrong norm fails one of the two (an L-infinity step of 0.5 leaves an L2 ball of 0.5; an L2 step of
    16/255 spread over the image never reaches half of 16/255 per pixel)."""
    if not contracts.available(name):
        pytest.skip(f"{name} needs an optional package")
    _holds("attack", "in-ball", name, batch)


TRAINABLE = [n for n in METHODS if METHODS.get(n).trainable]
APPLIED = [n for n in TRAINABLE if METHODS.get(n).apply is not None]


@pytest.fixture(scope="module")
def method_batch():
    """A small CNN (with manifold mixup's mixing points) and random 8x8 colour images."""
    from robustbench_mix.models.families import build

    g = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    model = build("cnn", in_shape=(3, 8, 8), num_classes=10, mean=(0.5,) * 3, std=(0.25,) * 3).eval()
    return contracts.Batch(model, torch.rand(16, 3, 8, 8, generator=g), torch.randint(0, 10, (16,), generator=g))


@pytest.mark.parametrize("name", APPLIED)
def test_method_inputs_stay_images_and_its_label_weights_sum_to_one(name, method_batch):
    """Mixed inputs are convex combinations (in [0, 1]); at uniform logits the loss is log(C), which holds exactly
    when the loss is a cross-entropy against labels whose weights sum to one."""
    _holds("method", "label-weights", name, method_batch)


@pytest.mark.parametrize("name", TRAINABLE)
def test_method_draws_only_from_its_generators(name):
    """The same seeds give the same draws: no randomness from anywhere else (the global torch or numpy state)."""
    m = contracts.bound(name, (8, 8))

    def draws(seed):
        return m.draw(16, METHODS.get(name).default or 1.0, np.random.default_rng(seed),
                      torch.Generator().manual_seed(seed), torch.device("cpu"))

    torch.manual_seed(123)
    a = draws(7)
    torch.manual_seed(456)
    np.random.seed(456)
    b = draws(7)
    assert len(a) == len(b)
    for u, v in zip(a, b, strict=True):
        assert (torch.equal(u, v) if torch.is_tensor(u) else u == v), f"method {name}: draws depend on global state"


@pytest.mark.parametrize("rule", ["finite-loss", "own-generator", "alpha-zero-is-erm"])
@pytest.mark.parametrize("name", TRAINABLE)
def test_method_loss_is_finite_reproducible_and_erm_without_mixing(name, rule, method_batch):
    _holds("method", rule, name, method_batch)


@pytest.mark.parametrize("name", list(MODELS))
def test_model_maps_unit_images_to_logits(name):
    _holds("model", "logits", name)


@pytest.mark.parametrize("name", list(CORRUPTIONS))
def test_corruption_has_five_severities_in_range_that_change_the_image(name):
    _holds("corruption", "severities", name)
    with pytest.raises(Exception, match="severity"):
        corrupt(contracts.colour_images(), name, 6)


@pytest.mark.parametrize("name", list(DATASETS))
def test_dataset_declares_its_traits(name):
    src = DATASETS.get(name)
    assert callable(src.load)
    assert src.test_size is None or src.test_size > 0
    assert src.corrupted is None or src.folder is not None, "a corrupted twin is of a downloaded standard set"


@pytest.mark.parametrize("name", list(METRICS))
def test_metric_traits_reach_the_summary_and_compare(name):
    m = METRICS.get(name)
    assert m.label
    assert (name in summary_metrics()) == m.summary
    assert percent_scale(f"test {name}") == (100.0 if m.fraction else 1.0) == (100.0 if is_fraction(name) else 1.0)
    assert not m.reference or m.fraction, "the reference tolerance is in % points"


def test_every_summary_metric_is_a_summary_column_and_compared(tmp_path):
    """Rows of every registered metric through the store: the summary metrics get summary columns (and so reach
    compare), the others stay in runs.csv only."""
    from robustbench_mix.experiment.experiment import Experiment
    from robustbench_mix.reports.compare import compare
    from robustbench_mix.store.schema import to_frame
    from robustbench_mix.store.summary import summarize

    exp = Experiment(epochs=1, attacks=(), eps=())
    rows = [{"split": "test", "attack": "none", "eps": 0.0, "metric": n, "value": 0.5, "epoch": 1}
            for n in METRICS if n != "rows_in_run"]
    frames = [to_frame(Experiment(epochs=1, attacks=(), eps=(), seed=s), rows, device="cpu", command="test",
                       rev="test") for s in (0, 1)]
    import pandas as pd

    df = pd.concat(frames, ignore_index=True)
    summary = summarize(df)
    for n in METRICS:
        assert (f"test {n} mean" in summary) == METRICS.get(n).summary, n
    table, *_ = compare(df, df)
    compared = set(table["metric"]) if "metric" in table else set()
    for n in summary_metrics():
        assert f"test {n}" in compared, n
    assert exp.run_id
