"""python -m robustbench_mix.check: each rule fails on an entry built to break it, naming the entry and the rule;
good entries (the test plugin's, the built-ins') pass."""

import pytest

from robustbench_mix.cli.check import main as check

BROKEN = '''
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

import robustbench_mix as rbm


@rbm.register_attack("moves_at_zero")
def moves_at_zero(model, x, y, eps, steps, step_size):
    return (x + 1e-3).clamp(0, 1)


@rbm.register_attack("leaves_ball")
def leaves_ball(model, x, y, eps, steps, step_size):
    return (x + 2 * eps).clamp(0, 1)


@rbm.register_attack("leaves_box")
def leaves_box(model, x, y, eps, steps, step_size):
    return x + eps


@rbm.register_attack("wrong_norm", norm="Linf")
def wrong_norm(model, x, y, eps, steps, step_size):  # an L2 step of radius eps, declared L-infinity
    return (x + (eps / x[0].numel() ** 0.5) * torch.ones_like(x)).clamp(0, 1) if eps else x


@rbm.register_method("infinite")
def infinite(model, x, y, num_classes, alpha, generator):
    return F.cross_entropy(model(x), y) * float("inf")


@rbm.register_method("global_rng", uses_alpha=True)
def global_rng(model, x, y, num_classes, alpha, generator):
    lam = float(np.random.beta(alpha, alpha))
    return lam * F.cross_entropy(model(x), y)


@rbm.register_method("not_erm_at_zero", uses_alpha=True)
def not_erm_at_zero(model, x, y, num_classes, alpha, generator):
    return F.cross_entropy(model(x), y) + 0.5


@rbm.register_model("wrong_logits")
def wrong_logits(num_classes, in_shape):
    return nn.Sequential(nn.Flatten(), nn.LazyLinear(num_classes + 1))
'''

RULE_OF = {"moves_at_zero": "eps-zero", "leaves_ball": "in-ball", "leaves_box": "in-ball", "wrong_norm": "in-ball",
           "infinite": "finite-loss", "global_rng": "own-generator", "not_erm_at_zero": "alpha-zero-is-erm",
           "wrong_logits": "logits"}


def test_each_rule_fails_on_an_entry_built_to_break_it(write_plugin, capsys):
    assert check(["--plugin", str(write_plugin(BROKEN, name="broken.py"))]) == 1
    out = capsys.readouterr().out
    for name, rule in RULE_OF.items():
        kind = "attack" if rule in ("eps-zero", "in-ball") else "model" if rule == "logits" else "method"
        assert f"FAIL {kind} {name} (plugin broken.py): {rule}: " in out, name
    assert "left [0, 1]" in out and "left its Linf ball" in out and "its declared norm Linf" in out
    assert "0 of 8 entries pass; 8 fail" in out


def test_the_example_and_test_plugins_pass(write_plugin, capsys):
    assert check(["--plugin", str(write_plugin())]) == 0
    out = capsys.readouterr().out
    assert "ok   method my_mix (plugin my_plugin.py)" in out and "3 of 3 entries pass" in out


@pytest.mark.parametrize("kinds", ["model,corruption", "method"])
def test_the_built_ins_pass(kinds, capsys):
    assert check(["--all", "--kinds", kinds]) == 0, capsys.readouterr().out
    assert "FAIL" not in capsys.readouterr().out


def test_a_bad_kind_is_refused(capsys):
    assert check(["--kinds", "metric"]) == 2
    assert "error: --kinds 'metric' is not one of attack, method, model, corruption" in capsys.readouterr().err
