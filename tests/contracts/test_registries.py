"""Contract tests parametrized over the registries: a new attack, method, corruption, data set or metric is tested
here by being registered, without editing a list (as timm tests every ``list_models()`` entry)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from robustbench_mix.attacks.base import ATTACKS, default_step_size, frozen_eval
from robustbench_mix.core.units import Norm
from robustbench_mix.corruptions import CORRUPTIONS, corrupt
from robustbench_mix.data.base import DATASETS
from robustbench_mix.data.prepare import to_float
from robustbench_mix.evaluation.metrics import METRICS, is_fraction, percent_scale, summary_metrics
from robustbench_mix.methods import METHODS

RADIUS = {Norm.LINF: 16 / 255, Norm.L2: 0.5}  # a ball each attack can reach on the small CNN's digits
N = 24


def _available(name: str) -> bool:
    try:
        ATTACKS.get(name).needs and ATTACKS.get(name).needs()
        return True
    except Exception:  # an optional package that is not installed
        return False


def _size(delta: torch.Tensor, norm: Norm) -> torch.Tensor:
    """Each example's perturbation in ``norm``."""
    flat = delta.flatten(1)
    return flat.norm(dim=1) if norm == Norm.L2 else flat.abs().amax(dim=1)


@pytest.fixture(scope="module")
def batch(trained):
    model, data = trained
    return model, to_float(data.test_x[:N]), data.test_y[:N]


@pytest.mark.parametrize("name", list(ATTACKS))
def test_attack_returns_the_input_at_eps_zero(batch, name):
    if not _available(name):
        pytest.skip(f"{name} needs an optional package")
    model, x, y = batch
    with frozen_eval(model):
        adv = ATTACKS.get(name)(model, x, y, 0.0, steps=3, step_size=default_step_size(0.0, 3))
    assert torch.equal(adv, x), f"attack {name}: eps 0 changed the images"


@pytest.mark.parametrize("name", list(ATTACKS))
def test_attack_stays_in_its_ball_and_the_box_and_uses_its_norm(batch, name):
    """In its norm's ball and [0, 1]; and it reaches at least half its radius in that norm, so an attack that
    declared the wrong norm fails one of the two (an L-infinity step of 0.5 leaves an L2 ball of 0.5; an L2 step of
    16/255 spread over the image never reaches half of 16/255 per pixel)."""
    if not _available(name):
        pytest.skip(f"{name} needs an optional package")
    model, x, y = batch
    fn = ATTACKS.get(name)
    eps = RADIUS[fn.norm]
    with frozen_eval(model):
        adv = fn(model, x, y, eps, steps=3, step_size=default_step_size(eps, 3))
    assert adv.shape == x.shape and adv.dtype == x.dtype
    assert adv.min() >= 0 and adv.max() <= 1, f"attack {name} left [0, 1]"
    size = _size(adv - x, fn.norm)
    tol = 1e-4 if fn.norm == Norm.L2 else 1e-6
    assert size.max() <= eps + tol, f"attack {name} left its {fn.norm} ball ({size.max():.4g} > {eps:.4g})"
    assert size.max() >= eps / 2, f"attack {name} ({fn.norm}) never reached half its radius in its norm"


TRAINABLE = [n for n in METHODS if METHODS.get(n).trainable]
APPLIED = [n for n in TRAINABLE if METHODS.get(n).apply is not None]


def _bound(name: str, size=(8, 8)):
    m = METHODS.get(name)
    return m.bind(m.option_values(name, ""), image_size=size)


def _draws(name: str, n: int, alpha: float, seed: int):
    m = _bound(name)
    return m.draw(n, alpha, np.random.default_rng(seed), torch.Generator().manual_seed(seed), torch.device("cpu"))


@pytest.mark.parametrize("name", APPLIED)
def test_method_inputs_stay_images_and_its_label_weights_sum_to_one(name, rand_images):
    """Mixed inputs are convex combinations (in [0, 1]); at uniform logits the loss is log(C), which holds exactly
    when the loss is a cross-entropy against labels whose weights sum to one."""
    x, y = rand_images
    m = METHODS.get(name)
    for seed in range(5):
        inputs, loss_fn = _bound(name).apply(x, y, 10, *_draws(name, len(x), m.default or 1.0, seed))
        assert inputs.shape == x.shape and inputs.min() >= 0 and inputs.max() <= 1
        loss = loss_fn(torch.zeros(len(x), 10))
        assert math.isclose(float(loss), math.log(10), rel_tol=1e-5), f"method {name}: weights do not sum to one"


@pytest.mark.parametrize("name", TRAINABLE)
def test_method_draws_only_from_its_generators(name):
    """The same seeds give the same draws: no randomness from anywhere else (the global torch or numpy state)."""
    m = METHODS.get(name)
    torch.manual_seed(123)
    a = _draws(name, 16, m.default or 1.0, 7)
    torch.manual_seed(456)
    np.random.seed(456)
    b = _draws(name, 16, m.default or 1.0, 7)
    assert len(a) == len(b)
    for u, v in zip(a, b, strict=True):
        assert (torch.equal(u, v) if torch.is_tensor(u) else u == v), f"method {name}: draws depend on global state"


@pytest.fixture(scope="module")
def colour_images():
    """Two smooth 32x32 colour images (every corruption, saturation included, has something to change)."""
    g = torch.Generator().manual_seed(0)
    low = torch.rand(2, 3, 4, 4, generator=g)
    return (torch.nn.functional.interpolate(low, size=32, mode="bilinear", align_corners=False) * 255).round().to(
        torch.uint8)


@pytest.mark.parametrize("name", list(CORRUPTIONS))
def test_corruption_has_five_severities_in_range_that_change_the_image(name, colour_images):
    x = colour_images
    outs = [corrupt(x, name, s, seed=0) for s in range(1, 6)]
    for s, out in enumerate(outs, 1):
        assert out.dtype == torch.uint8 and out.shape == x.shape, f"{name} severity {s}"
    assert not torch.equal(outs[0], x), f"corruption {name} does not change the image"
    assert not torch.equal(outs[0], outs[4]), f"corruption {name}: severity 1 equals severity 5"
    with pytest.raises(Exception, match="severity"):
        corrupt(x, name, 6)


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
