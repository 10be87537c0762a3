"""The robustness sanity checks catch planted failures; black-box examples come from the surrogate."""

from dataclasses import replace

import torch
from helpers import check_verdicts, linear_model, passing_rows, set_value

from robustbench_mix.attacks.base import ATTACKS, Attack, frozen_eval
from robustbench_mix.attacks.linf import fgsm
from robustbench_mix.data.prepare import prepare, to_float
from robustbench_mix.evaluation.checks import check_rows
from robustbench_mix.evaluation.evaluators import attack_correct, final_rows, finish
from robustbench_mix.experiment.experiment import Experiment

EXP = Experiment(attacks=("fgsm", "pgd"), eps=(8.0, 16.0), attack_steps=5, check_eps=64.0)


def _checks(model, data, exp=EXP, surrogate=None):
    rows = final_rows(model, data, exp, 500, surrogate=surrogate)
    return {r["metric"].removeprefix("check:"): r["value"] for r in rows if r["attack"] == "check"}


def test_all_checks_pass_on_a_normally_trained_model(trained):
    model, data = trained
    checks = _checks(model, data)
    assert set(checks) >= {"eps0_is_clean:fgsm", "in_ball:pgd", "monotone_in_eps:pgd", "stronger_than_fgsm:pgd",
                           "large_eps_breaks:pgd", "input_grad_nonzero"}
    assert all(v == 1.0 for v in checks.values()), checks


class Quantized(torch.nn.Module):
    """Rounds its input to 4 levels: the gradient is zero almost everywhere (masked), accuracy stays high."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        return self.inner(torch.round(x * 3) / 3)


def test_checks_flag_a_masked_gradient(trained):
    model, data = trained
    checks = _checks(Quantized(model), data)
    assert checks["input_grad_nonzero"] == 0.0
    assert checks["large_eps_breaks:pgd"] == 0.0  # the attack cannot find its way: a masked gradient


def test_checks_flag_an_attack_that_leaves_the_epsilon_ball(trained, monkeypatch):
    model, data = trained

    def sloppy(model, x, y, eps, steps=1, step_size=None, loss="ce"):
        return torch.clamp(x + 2 * eps * fgsm(model, x, y, eps).sub(x).sign(), 0, 1)

    monkeypatch.setitem(ATTACKS._items, "sloppy", Attack(sloppy, random_start=False, iterative=False))
    checks = _checks(model, data, replace(EXP, attacks=("sloppy",)))
    assert checks["in_ball:sloppy"] == 0.0


def test_a_new_attack_is_checked_by_the_traits_it_declares(trained, monkeypatch):
    model, data = trained

    def lazy(model, x, y, eps, steps=1, step_size=None, loss="ce"):  # an 'iterative' attack that does nothing
        return x.clone()

    monkeypatch.setitem(ATTACKS._items, "lazy", Attack(lazy, random_start=True, iterative=True))
    checks = _checks(model, data, replace(EXP, attacks=("fgsm", "lazy")))
    assert checks["stronger_than_fgsm:lazy"] == 0.0  # iterative: must beat FGSM, and it does not
    assert checks["large_eps_breaks:lazy"] == 0.0  # random start: run at the check epsilon, where it fails


def test_checks_flag_accuracy_rising_with_epsilon_and_blackbox_stronger_than_whitebox():
    rows = [{"split": "test", "attack": "fgsm", "eps": e / 255, "metric": "acc", "value": v}
            for e, v in ((0, 0.9), (8, 0.5), (16, 0.7))]
    rows += [{"split": "test", "attack": "bb:fgsm", "eps": e / 255, "metric": "acc", "value": v}
             for e, v in ((8, 0.3), (16, 0.8))]
    checks = {r["metric"]: r["value"] for r in check_rows(rows, replace(EXP, attacks=("fgsm",)))}
    assert checks["check:monotone_in_eps:fgsm"] == 0.0
    assert checks["check:blackbox_weaker:fgsm"] == 0.0


def test_blackbox_examples_are_crafted_on_the_surrogate_not_the_target(small_digits):
    data = prepare(small_digits, 0.0, 0.0, 0, torch.device("cpu"))
    target, surrogate = linear_model(64, 10, seed=1), linear_model(64, 10, seed=2)
    x, y = data.test_x[:40], data.test_y[:40]
    calls = {"target_grad": 0}

    def spy(module, args):
        calls["target_grad"] += int(args[0].requires_grad)

    target.register_forward_pre_hook(spy)
    res = attack_correct(target, surrogate, x, y, "fgsm", 16.0, steps=1, step_size=None, restarts=3,
                         batch_size=40, seed=0)
    assert calls["target_grad"] == 0  # no gradient was ever taken through the target
    with frozen_eval(surrogate), torch.no_grad():
        with torch.enable_grad():
            adv = fgsm(surrogate, to_float(x), y, 16 / 255)
        expected = target(adv).argmax(1) == y
    assert torch.equal(res["top1"], expected)


def test_eps0_check_compares_clean_and_attacked_accuracy_at_the_same_precision():
    # The top two logits differ by less than bf16 resolves: fp32 predicts class 1 (the label), bf16 ties and
    # argmax picks class 0. On CUDA clean evaluation is bf16 and attacks fp32 by default, so comparing
    # across precisions failed the exact eps-0 check on every GPU run; the subset's clean accuracy must be
    # measured at the attacks' precision.
    from robustbench_mix.data.prepare import Prepared
    from robustbench_mix.evaluation.evaluators import robustness_rows

    lin = torch.nn.Linear(64, 10, bias=False)
    with torch.no_grad():
        lin.weight.zero_()
        lin.weight[0] = 1.0
        lin.weight[1] = 1.001
    model = torch.nn.Sequential(torch.nn.Flatten(), lin)
    x = torch.full((20, 1, 8, 8), 128, dtype=torch.uint8)
    y = torch.ones(20, dtype=torch.long)
    data = Prepared(train_x=x, train_y=y, train_true_y=y, corrupted=torch.zeros(20, dtype=torch.bool),
                    val_x=x[:0], val_y=y[:0], test_x=x, test_y=y, num_classes=10, augment="none",
                    corrupted_index=None)
    for prec, acc in (("fp32", 1.0), ("bf16", 0.0)):
        exp = replace(EXP, attacks=("fgsm",), eps=(8.0,), check_eps=0.0, attack_precision=prec)
        rows = robustness_rows(model, data, exp, 500, progress=False)
        subset = next(r["value"] for r in rows if r["metric"] == "acc_attacked_subset")
        assert float(subset) == acc
        checks = {r["metric"]: r["value"] for r in check_rows(finish(rows), exp)}
        assert checks["check:eps0_is_clean:fgsm"] == 1.0, prec


# ---------------------------------------------------- definitions checked against planted bugs (experiments/mutation)


# ------------------------------------------------------------------------------------ the checks' tolerances
def test_check_eps0_is_exact_while_the_comparisons_tolerate_a_point():
    """check_eps0_tolerant, check_monotone_strict, check_blackbox_sign: eps 0 must give the clean accuracy
    exactly; accuracy may rise by under a point with eps, and black-box may be under a point stronger."""
    assert check_verdicts(set_value(passing_rows(), "pgd", 0, "acc", 0.8999))["eps0_is_clean:pgd"] == 0.0
    rows = set_value(set_value(passing_rows(), "fgsm", 8, "acc", 0.905), "bb:fgsm", 8, "acc", 0.905)
    assert check_verdicts(rows)["monotone_in_eps:fgsm"] == 1.0
    assert check_verdicts(set_value(passing_rows(), "bb:pgd", 8, "acc", 0.295))["blackbox_weaker:pgd"] == 1.0
