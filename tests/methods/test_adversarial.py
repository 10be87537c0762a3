"""Adversarial training (methods/adversarial.py): each loss against a hand-written computation of its paper's
objective, the crafted examples inside the ball, the model's modes restored, option errors, speed flags refused,
and a statistical positive control (adversarially trained digits models keep clearly more PGD accuracy)."""

import copy
import math
from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from robustbench_mix.cli.suite import main
from robustbench_mix.core.errors import UsageError
from robustbench_mix.execution.runner import run_experiment
from robustbench_mix.experiment.experiment import Experiment, RunOptions
from robustbench_mix.experiment.validation import validate
from robustbench_mix.methods import METHODS, method_for
from robustbench_mix.methods.adversarial import (
    mixup_at_step,
    pgd_at_step,
    pgd_examples,
    trades_examples,
    trades_step,
)

EPS, STEP, STEPS = 8.0, 2.0, 3


def tiny_bn_model(seed=0):
    """Conv + batch norm: train and eval mode differ, so a wrong mode shows in the numbers."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(),
                         nn.Linear(4 * 8 * 8, 10))


def batch(seed=1, n=6):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, 8, 8, generator=g), torch.randint(0, 10, (n,), generator=g)


def hand_pgd(model, x, y, eps, step, steps):
    """Madry et al.'s PGD written out: uniform start, signed CE-gradient steps, clip to the ball and the box."""
    e, a = eps / 255, step / 255
    xa = (x + torch.empty_like(x).uniform_(-e, e)).clamp(0, 1)
    for _ in range(steps):
        xa = xa.detach().requires_grad_(True)
        g, = torch.autograd.grad(F.cross_entropy(model(xa), y), xa)
        xa = torch.min(torch.max(xa.detach() + a * g.sign(), x - e), x + e).clamp(0, 1)
    return xa.detach()


def kl(p, logits_q):
    """KL(p || softmax(logits_q)) summed over the batch, from its definition."""
    return (p * (p.log() - logits_q.log_softmax(1))).sum()


def param_grads(model, loss):
    return torch.autograd.grad(loss, [p for p in model.parameters()])


def test_pgd_at_loss_is_the_cross_entropy_on_hand_written_pgd_examples_crafted_in_eval_mode():
    model, (x, y) = tiny_bn_model(), batch()
    ref = copy.deepcopy(model)
    model.train()
    torch.manual_seed(5)
    loss = pgd_at_step(model, x, y, 10, eps=EPS, steps=STEPS, step_size=STEP)
    torch.manual_seed(5)
    ref.eval()
    xa = hand_pgd(ref, x, y, EPS, STEP, STEPS)
    ref.train()
    expected = F.cross_entropy(ref(xa), y)
    torch.testing.assert_close(loss, expected)
    for a, b in zip(param_grads(model, loss), param_grads(ref, expected), strict=True):
        torch.testing.assert_close(a, b)


def test_trades_loss_is_ce_plus_beta_kl_with_the_gradient_through_both_predictions():
    model, (x, y) = tiny_bn_model(), batch()
    ref = copy.deepcopy(model)
    beta, e, a = 6.0, EPS / 255, 1.785 / 255
    model.train()
    torch.manual_seed(7)
    loss = trades_step(model, x, y, 10, beta, eps=EPS, steps=STEPS, step_size=1.785)
    torch.manual_seed(7)
    ref.eval()  # the reference's adversary: model.eval(), start at x + 0.001 N(0, 1), signed steps up the KL
    with torch.no_grad():
        p = ref(x).softmax(1)
    xa = x + 0.001 * torch.randn_like(x)
    for _ in range(STEPS):
        xa = xa.detach().requires_grad_(True)
        g, = torch.autograd.grad(kl(p, ref(xa)), xa)
        xa = torch.min(torch.max(xa.detach() + a * g.sign(), x - e), x + e).clamp(0, 1)
    ref.train()
    logits = ref(x)
    expected = F.cross_entropy(logits, y) + beta * kl(logits.softmax(1), ref(xa.detach())) / len(x)
    torch.testing.assert_close(loss, expected)
    for ga, gb in zip(param_grads(model, loss), param_grads(ref, expected), strict=True):
        torch.testing.assert_close(ga, gb)


def test_trades_with_beta_zero_is_erm():
    model, (x, y) = tiny_bn_model(), batch()
    model.train()
    torch.testing.assert_close(trades_step(model, x, y, 10, 0.0, eps=EPS, steps=1, step_size=STEP),
                               F.cross_entropy(copy.deepcopy(model)(x), y))


def test_mixup_at_loss_is_the_mean_of_mixup_on_clean_and_on_pgd_examples_with_one_lambda():
    model, (x, y) = tiny_bn_model(), batch()
    ref = copy.deepcopy(model)
    lam, perm = 0.3, torch.tensor([2, 0, 1, 5, 3, 4])
    model.train()
    torch.manual_seed(3)
    loss = mixup_at_step(model, x, y, 10, lam, perm, eps=EPS, steps=STEPS, step_size=STEP)
    torch.manual_seed(3)
    ref.eval()
    xa = hand_pgd(ref, x, y, EPS, STEP, STEPS)
    ref.train()

    def mixup_loss(inputs):
        out = ref(lam * inputs + (1 - lam) * inputs[perm])
        return lam * F.cross_entropy(out, y) + (1 - lam) * F.cross_entropy(out, y[perm])

    torch.testing.assert_close(loss, 0.5 * mixup_loss(x) + 0.5 * mixup_loss(xa))


@pytest.mark.parametrize("eps", [0.0, 4.0, 32.0])
def test_crafted_examples_stay_in_the_ball_and_the_box(eps):
    model, (x, y) = tiny_bn_model(), batch(n=32)
    x = torch.cat([x, torch.zeros(4, 1, 8, 8), torch.ones(4, 1, 8, 8)])  # the box's corners
    y = torch.cat([y, y[:8]])
    for xa in (pgd_examples(model, x, y, eps=eps, steps=4, step_size=max(eps / 2, 1.0)),
               trades_examples(model, x, eps=eps, steps=4, step_size=max(eps / 2, 1.0))):
        assert (xa - x).abs().max() <= eps / 255 + 1e-6
        assert xa.min() >= 0 and xa.max() <= 1
    if eps:
        assert (pgd_examples(model, x, y, eps=eps, steps=4, step_size=eps / 2) - x).abs().max() > eps / 255 / 2


def test_the_step_restores_train_mode_and_parameter_gradients_and_leaves_frozen_parts_alone():
    model, (x, y) = tiny_bn_model(), batch()
    model.train()
    model[1].eval()  # a part the user froze stays frozen
    model[0].bias.requires_grad_(False)
    for step in (lambda: pgd_at_step(model, x, y, 10, eps=EPS, steps=2, step_size=STEP),
                 lambda: trades_step(model, x, y, 10, 6.0, eps=EPS, steps=2, step_size=STEP),
                 lambda: mixup_at_step(model, x, y, 10, 0.5, torch.arange(6), eps=EPS, steps=2, step_size=STEP)):
        step().backward()
        assert model.training and model[0].training and not model[1].training
        assert model[0].weight.requires_grad and not model[0].bias.requires_grad
        assert model[0].weight.grad is not None and model[0].weight.grad.abs().sum() > 0


@pytest.mark.parametrize("method,alpha,options,message", [
    ("pgd_at", 0.0, "steps=0", r"method pgd_at: steps=0 must be a whole number in \[1, 10000\]"),
    # not finite or beyond any sane range: refused naming the value and the range (steps=inf raised
    # OverflowError, steps=1e30 and eps=1e9 were accepted)
    ("pgd_at", 0.0, "steps=inf", r"steps inf is not a finite number; it must be a whole number in \[1, 10000\]"),
    ("pgd_at", 0.0, "steps=1e30", r"steps=1e\+30 must be a whole number in \[1, 10000\]"),
    ("pgd_at", 0.0, "eps=1e9", r"eps=1e\+09 is outside \(0, 255\] \(/255 units\)"),
    ("pgd_at", 0.0, "eps=inf", r"eps inf is not a finite number; it must be a finite number in \(0, 255\]"),
    ("mixup_at", 1.0, "step_size=nan", r"step_size nan is not a finite number; it must be a finite number in \(0, 255"),
    ("trades", float("inf"), "", r"method trades: beta inf is not a finite number; it must be a finite number in \["),
    ("trades", float("nan"), "", r"beta nan is not a finite number"),
    ("pgd_at", 0.0, "steps=2.5", "steps=2.5 must be a whole number"),
    ("pgd_at", 0.0, "eps=-1", "method pgd_at: eps=-1 must be positive"),
    ("trades", 0.0, "step_size=0", "method trades: step_size=0 must be positive"),
    ("trades", -1.0, "", "beta -1 is negative"),
    ("mixup_at", 1.0, "beta=2", "unknown option 'beta'"),
    ("pgd_at", 0.0, "eps=lots", "eps 'lots' is not a number"),
])
def test_bad_options_are_refused_before_training_naming_the_value(method, alpha, options, message):
    with pytest.raises(UsageError, match=message):
        validate(Experiment(method=method, alpha=alpha, method_options=options))


def test_options_are_recorded_in_full_and_bound_to_the_step():
    exp = Experiment(method="pgd_at", method_options="eps=4")
    assert exp.method_options == "eps=4.0:steps=10.0:step_size=2.0"
    assert exp.run_id != Experiment(method="pgd_at").run_id
    assert METHODS.get("pgd_at").adversarial and METHODS.get("trades").adversarial
    assert not METHODS.get("mixup").adversarial
    m = method_for(Experiment(method="trades", alpha=6.0, method_options="steps=2"), (8, 8))
    assert m.step.keywords == {"eps": 8.0, "steps": 2.0, "step_size": 1.785}


def test_trades_defaults_are_the_reference_commands_beta_6_and_10_steps_of_0_007():
    """TRADES' CIFAR-10 command: beta 6, 10 steps of 0.007 (= 1.785/255); the radius 8/255 (docstring)."""
    from robustbench_mix.experiment.grids import grid_variants

    (v,) = grid_variants("trades", None, None, ())
    assert v.alpha == 6.0
    m = method_for(Experiment(method="trades", alpha=v.alpha), (8, 8))
    assert m.step.keywords == {"eps": 8.0, "steps": 10.0, "step_size": 1.785}


def test_adversarial_training_is_refused_with_speed_flags_before_training(tmp_path, capsys, monkeypatch):
    import robustbench_mix.execution.executors as executors

    monkeypatch.setattr(executors, "run_experiment", lambda *a, **k: pytest.fail("training started"))
    for flag in (["--compile"], ["--cuda-graphs"]):
        assert main(["--out", str(tmp_path), "--epochs", "1", "--no-progress", "--methods", "erm,pgd_at,trades",
                     *flag]) == 2
        err = capsys.readouterr().err
        assert "pgd_at, trades cannot run inside --compile or --cuda-graphs" in err
        assert "runs an attack" in err and "Traceback" not in err


def welch_lower(a, b, z=2.0):
    """Lower end of mean(a) - mean(b) minus z standard errors (Welch)."""
    a, b = np.asarray(a), np.asarray(b)
    se = math.sqrt(a.var(ddof=1) / len(a) + b.var(ddof=1) / len(b))
    return a.mean() - b.mean() - z * se


@pytest.mark.slow
def test_adversarially_trained_digits_models_keep_clearly_more_pgd_accuracy_than_erm_over_seeds(digits):
    """The positive control: at the training radius (32/255 on 8x8 digits), three seeds of PGD-AT and of TRADES
    against three of ERM; the mean gain minus two Welch standard errors must exceed 20 points."""
    base = Experiment(dataset="digits", model="cnn", epochs=4, batch_size=64, lr=0.05, schedule="cosine",
                      attacks=("pgd",), eps=(32.0,), attack_steps=10, check_eps=0.0, attack_samples=200)
    at = "eps=32:steps=5:step_size=8"

    def robust(method, alpha=0.0, options=""):
        out = []
        for seed in (0, 1, 2):
            exp = replace(base, method=method, alpha=alpha, method_options=options, seed=seed)
            rows = run_experiment(exp, digits, run_dir=None, options=RunOptions(progress=False))
            out += [r["value"] for r in rows if r["attack"] == "pgd" and r["metric"] == "acc" and r["eps"] > 0]
        return out

    erm = robust("erm")
    assert max(erm) < 0.5  # ERM is broken at this radius: the comparison is not between two robust models
    for method, alpha in (("pgd_at", 0.0), ("trades", 6.0)):
        assert welch_lower(robust(method, alpha, at), erm) > 0.20, method


def test_a_trades_step_moves_batch_norms_running_statistics_as_its_docstring_says():
    """Two train-mode forwards (clean, then adversarial) at momentum 0.1: 0.81 of the old mean, 0.09 of the clean
    batch's, 0.10 of the adversarial batch's; the reference's third forward would weigh them 0.181 : 0.090."""
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(32, 3, 8, 8, generator=g), torch.randint(0, 10, (32,), generator=g)
    model = nn.Sequential(nn.BatchNorm2d(3), nn.Flatten(), nn.Linear(3 * 8 * 8, 10)).train()
    model[0].running_mean.fill_(1.0)
    torch.manual_seed(5)
    x_adv = trades_examples(model, x, eps=32.0, steps=2, step_size=8.0)
    assert torch.equal(model[0].running_mean, torch.ones(3))  # the search itself leaves the statistics alone
    torch.manual_seed(5)
    trades_step(model, x, y, 10, 6.0, eps=32.0, steps=2, step_size=8.0)
    expected = 0.81 + 0.09 * x.mean((0, 2, 3)) + 0.1 * x_adv.mean((0, 2, 3))
    torch.testing.assert_close(model[0].running_mean, expected, atol=1e-6, rtol=0)


def test_mixup_at_pairs_two_mixes_the_adversarial_half_with_its_own_lambda_and_partners():
    """Lamb et al.'s Algorithm 1 (the default): a second draw for the adversarial half; pairs=one keeps one."""
    from robustbench_mix.methods.adversarial import mixup_at_draw

    one = mixup_at_draw(6, 1.0, np.random.default_rng(0), torch.Generator().manual_seed(0), "cpu", pairs="one")
    two = mixup_at_draw(6, 1.0, np.random.default_rng(0), torch.Generator().manual_seed(0), "cpu")
    assert len(one) == 2 and len(two) == 4 and two[0] == one[0] and torch.equal(two[1], one[1])
    assert two[2] != two[0]
    model, (x, y) = tiny_bn_model(), batch()
    lam, perm, lam2, perm2 = 0.3, torch.tensor([2, 0, 1, 5, 3, 4]), 0.8, torch.tensor([1, 2, 3, 4, 5, 0])
    ref = copy.deepcopy(model)
    model.train()
    torch.manual_seed(3)
    loss = mixup_at_step(model, x, y, 10, lam, perm, lam2, perm2, eps=EPS, steps=STEPS, step_size=STEP)
    torch.manual_seed(3)
    ref.eval()
    xa = hand_pgd(ref, x, y, EPS, STEP, STEPS)
    ref.train()

    def mixup_loss(inputs, lam, perm):
        out = ref(lam * inputs + (1 - lam) * inputs[perm])
        return lam * F.cross_entropy(out, y) + (1 - lam) * F.cross_entropy(out, y[perm])

    torch.testing.assert_close(loss, 0.5 * mixup_loss(x, lam, perm) + 0.5 * mixup_loss(xa, lam2, perm2))
    assert Experiment(method="mixup_at", alpha=1.0).run_id == Experiment(
        method="mixup_at", alpha=1.0, method_options="pairs=two").run_id != Experiment(
        method="mixup_at", alpha=1.0, method_options="pairs=one").run_id
    assert method_for(Experiment(method="mixup_at", alpha=1.0), (8, 8)).draw.keywords == {"pairs": "two"}


def test_mixup_at_runs_recorded_before_the_option_read_as_the_one_draw_they_computed():
    """robust-cpu's committed mixup_at rows say eps=32.0:steps=5.0:step_size=8.0 (no pairs): read with today's
    default they would claim the paper's two draws; they read as pairs=one, the id of a pairs=one run today."""
    old = Experiment(method="mixup_at", alpha=1.0, method_options="eps=32:steps=5:step_size=8:pairs=one")
    record = old.to_json().replace(":pairs=one", "")
    assert "pairs" not in record
    read = Experiment.from_json(record)
    assert read.method_options == "eps=32.0:steps=5.0:step_size=8.0:pairs=one" and read.run_id == old.run_id
    new = Experiment(method="mixup_at", alpha=1.0, method_options="eps=32:steps=5:step_size=8")
    assert Experiment.from_json(new.to_json()) == new and new.run_id != old.run_id
    from robustbench_mix.experiment.presets import PRESETS

    at = [v for v in PRESETS["robust-cpu"].variants if v.method == "mixup_at"]
    assert at and all("pairs=one" in v.options for v in at)
