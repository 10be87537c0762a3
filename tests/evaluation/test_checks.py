"""The robustness sanity checks catch planted failures; black-box examples come from the surrogate."""

from dataclasses import replace

import pandas as pd
import pytest
import torch
from helpers import check_verdicts, linear_model, passing_rows, set_value

from robustbench_mix.attacks.base import ATTACKS, Attack, frozen_eval
from robustbench_mix.attacks.linf import fgsm
from robustbench_mix.data.prepare import prepare, to_float
from robustbench_mix.evaluation.checks import CHECKS, check_kind, check_rows, failed_checks, unchecked
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


# ------------------------------------------------------------- every check can fail, or says it had nothing to compare

ADV_EXP = Experiment(method="pgd_at", attacks=("fgsm", "pgd", "autoattack"), eps=(8.0,), check_eps=64.0,
                     attack_restarts=2)


def _all_pass_rows():
    """Rows of an adversarially trained model's evaluation on which every check in CHECKS passes."""
    r = []

    def add(attack, e, metric, value):
        r.append({"split": "test", "attack": attack, "eps": e / 255, "metric": metric, "value": value})

    add("none", 0, "acc_attacked_subset", 0.9)
    add("none", 0, "input_grad_abs_mean", 0.01)
    for a, accs in (("fgsm", {0: 0.9, 8: 0.5}), ("pgd", {0: 0.9, 8: 0.3, 64: 0.0}), ("autoattack", {0: 0.9, 8: 0.28})):
        for e, v in accs.items():
            add(a, e, "acc", v)
            add(a, e, "max_linf_255", float(e))
            add(a, e, "box_violation", 0.0)
    for e, v in ((0, 0.9), (8, 0.32), (64, 0.0)):
        add("pgd", e, "acc_first_restart", v)
    add("bb:pgd", 8, "acc", 0.6)
    return r


def _edit(rows, attack, e, metric, value=None, drop=False):
    hits = [x for x in rows if x["attack"] == attack and round(x["eps"] * 255) == e and x["metric"] == metric]
    assert len(hits) == 1, (attack, e, metric)
    if drop:
        rows.remove(hits[0])
    else:
        hits[0]["value"] = value
    return rows


def _results(rows, exp=ADV_EXP):
    return {x["metric"]: x["value"] for x in check_rows(rows, exp)}


# for each check: the row it reads, changed so that it must fail (attack, eps /255, metric, value), and its row name
FAILING = {
    "eps0_is_clean": (("pgd", 0, "acc", 0.899), "eps0_is_clean:pgd"),
    "in_ball": (("pgd", 8, "max_linf_255", 8.5), "in_ball:pgd"),
    "monotone_in_eps": (("fgsm", 8, "acc", 0.92), "monotone_in_eps:fgsm"),
    "stronger_than_fgsm": (("pgd", 8, "acc", 0.52), "stronger_than_fgsm:pgd"),
    "blackbox_weaker": (("bb:pgd", 8, "acc", 0.28), "blackbox_weaker:pgd"),
    "large_eps_breaks": (("pgd", 64, "acc", 0.11), "large_eps_breaks:pgd"),
    "input_grad_nonzero": (("none", 0, "input_grad_abs_mean", 0.0), "input_grad_nonzero"),
    "positive:autoattack_le_pgd": (("autoattack", 8, "acc", 0.32), "positive:autoattack_le_pgd:Linf"),
    "positive:restarts_le_single": (("pgd", 8, "acc_first_restart", 0.285), "positive:restarts_le_single:pgd"),
}


def test_the_all_pass_rows_pass_every_check_of_the_registry():
    got = _results(_all_pass_rows())
    assert all(v == 1.0 for v in got.values()) and all(m.startswith("check:") for m in got), got
    assert {check_kind(m) for m in got} == set(CHECKS)  # each registered check ran, and nothing unregistered


@pytest.mark.parametrize("name", CHECKS.names())
def test_every_check_fails_on_an_input_built_for_it(name):
    (attack, e, metric, value), row = FAILING[name]  # a new check needs its failing input here
    got = _results(_edit(_all_pass_rows(), attack, e, metric, value))
    assert got[f"check:{row}"] == 0.0
    assert check_kind(f"check:{row}") == name


@pytest.mark.parametrize("name,attack,e,metric,value", [
    ("positive:autoattack_le_pgd", "autoattack", 8, "acc", 0.309),  # AutoAttack under a point above PGD
    ("positive:restarts_le_single", "pgd", 8, "acc_first_restart", 0.291),  # the restarts under a point above one
])
def test_positive_controls_tolerate_less_than_a_point(name, attack, e, metric, value):
    got = _results(_edit(_all_pass_rows(), attack, e, metric, value))
    assert got[f"check:{FAILING[name][1]}"] == 1.0


def _only_eps(rows, attack, metric, keep):
    return [x for x in rows if not (x["attack"] == attack and x["metric"] == metric
                                    and round(x["eps"] * 255) not in keep)]


# for each check that can lack a comparison: the rows without one, and its row name
NOTHING = {
    "eps0_is_clean": (lambda r: [x for x in r if x["metric"] != "acc_attacked_subset"], "eps0_is_clean:pgd"),
    "in_ball": (lambda r: [x for x in r if not (x["attack"] == "pgd" and x["metric"] == "max_linf_255")],
                "in_ball:pgd"),
    "monotone_in_eps": (lambda r: _only_eps(r, "fgsm", "acc", {8}), "monotone_in_eps:fgsm"),
    "stronger_than_fgsm": (lambda r: _only_eps(r, "fgsm", "acc", {0}), "stronger_than_fgsm:pgd"),
    "blackbox_weaker": (lambda r: [dict(x, eps=4 / 255) if x["attack"] == "bb:pgd" else x for x in r],
                        "blackbox_weaker:pgd"),  # the black-box grid shares no epsilon with the white-box one
    "positive:autoattack_le_pgd": (lambda r: _only_eps(r, "autoattack", "acc", {0}),
                                   "positive:autoattack_le_pgd:Linf"),
    "positive:restarts_le_single": (lambda r: [dict(x, eps=16 / 255) if x["metric"] == "acc_first_restart" else x
                                               for x in r], "positive:restarts_le_single:pgd"),
}


@pytest.mark.parametrize("name", [n for n in CHECKS.names() if CHECKS.get(n).nothing])
def test_a_check_with_nothing_to_compare_says_so_instead_of_passing(name):
    from robustbench_mix.store.schema import to_frame

    make, row = NOTHING[name]
    rows = check_rows(make(_all_pass_rows()), ADV_EXP)
    got = {x["metric"]: x["value"] for x in rows}
    assert f"check:{row}" not in got and got[f"check_na:{row}"] == 0.0
    df = to_frame(ADV_EXP, rows, device="cpu", command="t", rev="r")
    assert (df["run_id"].iloc[0], row, CHECKS.get(name).nothing) in unchecked(df)
    assert row not in [c for _, c in failed_checks(df)]


def test_checks_without_a_missing_comparison_declare_none():
    assert {n for n in CHECKS.names() if not CHECKS.get(n).nothing} == {"large_eps_breaks", "input_grad_nonzero"}


def test_the_black_box_comparison_is_made_once_per_attack():
    got = _results(_edit(_all_pass_rows(), "bb:pgd", 8, "acc", 0.28))
    assert [m for m in got if "blackbox" in m] == ["check:blackbox_weaker:pgd"]  # no positive: repeat of it
    frame = pd.DataFrame({"run_id": "r", "metric": list(got), "value": list(got.values())})
    assert failed_checks(frame) == [("r", "blackbox_weaker:pgd")]


def test_a_check_with_nothing_to_compare_is_counted_neither_passed_nor_failed(tmp_path):
    from robustbench_mix.reports.headline import headline
    from robustbench_mix.store.schema import to_frame
    from robustbench_mix.store.summary import summarize

    exp = replace(ADV_EXP, epochs=0)
    rows = [dict(r, epoch=0) for r in _all_pass_rows()]
    rows = [dict(x, eps=4 / 255) if x["attack"] == "bb:pgd" else x for x in rows]
    rows += [dict(r, epoch=0) for r in check_rows(rows, exp)]
    df = to_frame(exp, rows, device="cpu", command="t", rev="r")
    n_checks = int(df["metric"].str.startswith("check:").sum())
    assert headline(df)["checks failed"].iloc[0] == f"0 of {n_checks} (1 with nothing to compare)"
    assert int(summarize(df)["checks failed"].iloc[0]) == 0


def test_the_restarts_control_fails_where_the_attack_run_once_is_stronger(trained, monkeypatch):
    # an attack that finds nothing in its first two calls at an epsilon and is FGSM from the third on: its two
    # restarts (two calls) leave every image as clean, the single restart measured on its own (the third call)
    # breaks many. Read from the restart loop, the single restart was the loop's first and could never fail.
    model, data = trained
    calls = {}

    def warming(model, x, y, eps, steps=1, step_size=None, loss="ce"):
        calls[eps] = calls.get(eps, 0) + 1
        return x.clone() if calls[eps] <= 2 else fgsm(model, x, y, eps)

    monkeypatch.setitem(ATTACKS._items, "warming", Attack(warming, random_start=True, iterative=True))
    exp = replace(ADV_EXP, attacks=("warming",), eps=(16.0,), check_eps=0.0)
    rows = final_rows(model, data, exp, 500)
    got = {r["metric"]: r["value"] for r in rows if r["attack"] == "check"}
    assert got["check:positive:restarts_le_single:warming"] == 0.0


def test_the_single_restart_measured_on_its_own_is_the_loops_first_restart(trained):
    # the same number as before it was measured separately: committed acc_first_restart rows stay valid
    model, data = trained
    exp = replace(EXP, attacks=("pgd",), eps=(8.0,), attack_restarts=3, check_eps=0.0)
    rows = final_rows(model, data, exp, 500)
    got = next(r["value"] for r in rows if r["metric"] == "acc_first_restart" and r["eps"] > 0)
    from robustbench_mix.evaluation.evaluators import attacked_images

    x, y, _ = attacked_images(data, exp)
    loop = attack_correct(model, model, x, y, "pgd", 8.0, steps=exp.attack_steps, step_size=None, restarts=3,
                          batch_size=500, seed=exp.evaluation_seed)
    assert float(got) == float(loop["first"].float().mean())
    assert float(loop["top1"].float().mean()) <= float(got)
