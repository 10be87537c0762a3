"""The L2 threat model: the projection, PGD-L2 against torchattacks' PGDL2, FGM-L2, the --eps-l2 grid in an
evaluation with its rows and per-norm checks, the positive controls, and results files from before the norm column."""

import math
from types import SimpleNamespace

import pandas as pd
import pytest
import torch
from helpers import linear_model

from robustbench_mix.attacks.base import ATTACKS, attack_norm
from robustbench_mix.attacks.l2 import fgm_l2, pgd_l2, project_l2
from robustbench_mix.core.errors import UsageError
from robustbench_mix.core.units import parse_eps_l2
from robustbench_mix.evaluation import checks as checks_mod
from robustbench_mix.evaluation.checks import check_rows
from robustbench_mix.experiment.experiment import Experiment
from robustbench_mix.experiment.validation import validate
from robustbench_mix.store.load import load_runs


def _l2(v):
    return v.flatten(1).norm(dim=1)


@pytest.mark.parametrize("eps", [0.0, 0.01, 0.3, 1.0, 5.0])
def test_project_l2_keeps_every_example_in_the_ball_and_the_box(eps):
    g = torch.Generator().manual_seed(1)
    x = torch.rand(32, 3, 8, 8, generator=g)
    scale = torch.rand(32, 1, 1, 1, generator=g) * 3  # some inside the ball, some far outside
    x_adv = x + scale * torch.randn(32, 3, 8, 8, generator=g)
    out = project_l2(x_adv, x, eps)
    assert (_l2(out - x) <= eps + 1e-5).all()
    assert out.min() >= 0 and out.max() <= 1
    if eps == 0:
        assert torch.equal(out, x)
    inside = torch.clamp(x + 0.5 * (project_l2(x_adv, x, eps) - x), 0, 1)  # already in the ball: left as it is
    assert torch.allclose(project_l2(inside, x, eps), inside, atol=1e-6)


def test_the_l2_attacks_declare_their_norm():
    assert {a: ATTACKS.get(a).norm for a in ("fgm_l2", "pgd_l2", "autoattack_l2")} == dict.fromkeys(
        ("fgm_l2", "pgd_l2", "autoattack_l2"), "L2")
    assert ATTACKS.get("pgd").norm == ATTACKS.get("fgsm").norm == "Linf"
    assert ATTACKS.get("pgd_l2").random_start and ATTACKS.get("pgd_l2").iterative
    assert not ATTACKS.get("fgm_l2").random_start and not ATTACKS.get("fgm_l2").iterative
    assert [attack_norm(a) for a in ("bb:pgd_l2", "worst", "worst_l2", "none", "check", "corrupt:mean",
                                     "ta:PGDL2", "ta:PGD")] == ["L2", "Linf", "L2", "", "", "", "L2", "Linf"]


def test_pgd_l2_equals_torchattacks_pgdl2(rand_images):
    torchattacks = pytest.importorskip("torchattacks")
    x, y = rand_images
    model = linear_model().eval()
    for eps, steps, alpha in ((0.5, 5, 0.1), (2.0, 3, 0.8)):
        torch.manual_seed(7)
        ours = pgd_l2(model, x, y, eps, steps=steps, step_size=alpha)
        torch.manual_seed(7)
        theirs = torchattacks.PGDL2(model, eps=eps, alpha=alpha, steps=steps, random_start=True)(x, y)
        assert torch.equal(ours, theirs)
        assert (_l2(ours - x) <= eps + 1e-5).all()
    margin = pgd_l2(model, x, y, 0.5, steps=3, step_size=0.2, loss="margin")
    assert (_l2(margin - x) <= 0.5 + 1e-5).all() and margin.min() >= 0 and margin.max() <= 1


def test_fgm_l2_moves_each_example_by_exactly_eps(rand_images):
    x, y = rand_images
    x = 0.4 + 0.2 * x  # the middle of the range: the box does not clip a step of this size
    model = linear_model().eval()
    for eps in (0.1, 0.3):
        x_adv = fgm_l2(model, x, y, eps)
        torch.testing.assert_close(_l2(x_adv - x), torch.full((len(x),), eps), atol=1e-5, rtol=0)
    assert torch.equal(fgm_l2(model, x, y, 0.0), x)


def _independent_fgm(model, x, y, eps):
    """The field's L2 FGM as foolbox's L2FastGradientAttack computes it, written here without the suite's helpers:
    the gradient of the summed cross-entropy, each example's divided by max(its L2 norm, 1e-12)."""
    x = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(torch.nn.functional.cross_entropy(model(x), y, reduction="sum"), x)
    norms = g.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1, 1)
    return torch.clamp(x.detach() + eps * g / norms, 0, 1)


def test_fgm_l2_on_a_confident_model_is_the_fields_fgm_and_independent_of_the_batch(rand_images):
    """A confident model's gradients of the batch-mean loss have norms near 1e-10: the earlier +1e-10 shortened
    those steps below eps (12% accuracy at radius 2 where foolbox gives 4% on digits). Every step is eps long."""
    x, y = rand_images
    x = torch.cat([x] * 8)[:100] * 0.2 + 0.4  # the box does not clip
    model = linear_model().eval()
    with torch.no_grad():
        model[1].weight.mul_(50)  # gradient norms down to 1e-9, and 1e-11 for a batch-mean loss
        y = model(x).argmax(1)
    eps = 0.5
    ours = fgm_l2(model, x, y, eps)
    torch.testing.assert_close(ours, _independent_fgm(model, x, y, eps), atol=1e-5, rtol=0)
    torch.testing.assert_close(_l2(ours - x), torch.full((len(x),), eps), atol=1e-4, rtol=0)
    one_by_one = torch.cat([fgm_l2(model, x[i:i + 1], y[i:i + 1], eps) for i in range(len(x))])
    torch.testing.assert_close(ours, one_by_one, atol=1e-5, rtol=0)


def test_fgm_l2s_rule_is_in_the_run_id_of_runs_that_use_it_only():
    from robustbench_mix.experiment.experiment import ATTACK_RULES, config_hash

    with_fgm = Experiment(attacks=("pgd_l2", "fgm_l2"), eps_l2=(1.0,))
    without = Experiment(attacks=("pgd_l2",), eps_l2=(1.0,))
    assert "fgm_l2" in ATTACK_RULES
    saved = ATTACK_RULES.pop("fgm_l2")
    try:
        earlier = (with_fgm.run_id, without.run_id)
    finally:
        ATTACK_RULES["fgm_l2"] = saved
    assert config_hash(with_fgm) != earlier[0] and config_hash(without) == earlier[1]


def test_eps_l2_flag_and_validation_give_clear_errors():
    assert parse_eps_l2("0.25, 0.5") == (0.25, 0.5)
    for bad, says in (("8/255", "never /255"), ("-0.5", ">= 0"), ("nan", ">= 0"), ("big", "not a number"),
                      ("", "empty")):
        with pytest.raises(UsageError, match="--eps-l2"):
            parse_eps_l2(bad)
        with pytest.raises(UsageError, match=says):
            parse_eps_l2(bad)
    with pytest.raises(UsageError, match="--eps-l2") as e:
        validate(Experiment(attacks=("pgd", "pgd_l2")))
    assert "pgd_l2" in str(e.value)
    with pytest.raises(UsageError, match="L2 radius"):
        validate(Experiment(attacks=("pgd_l2",), eps_l2=(-1.0,)))
    validate(Experiment(attacks=("pgd", "pgd_l2"), eps_l2=(0.5,)))


def test_eps_l2_does_not_change_existing_run_ids():
    assert "eps_l2" not in Experiment().to_json() or Experiment().run_id == Experiment(eps_l2=()).run_id
    assert Experiment(eps_l2=(0.5,)).run_id != Experiment().run_id


def test_suite_flag_eps_l2_errors_name_the_flag(tmp_path, capsys):
    from robustbench_mix.cli.suite import main

    base = ["--methods", "erm", "--noise", "0", "--epochs", "1", "--out", str(tmp_path), "--no-progress"]
    assert main([*base, "--attacks", "pgd_l2"]) != 0
    assert "--eps-l2" in capsys.readouterr().err
    assert main([*base, "--attacks", "pgd_l2", "--eps-l2", "2/255"]) != 0
    assert "--eps-l2" in capsys.readouterr().err


@pytest.fixture(scope="module")
def l2_run(tmp_path_factory):
    """A one-epoch digits run attacked with pgd (L-infinity), pgd_l2 and fgm_l2 (L2) by the suite's CLI."""
    from robustbench_mix.cli.suite import main

    out = tmp_path_factory.mktemp("l2run")
    assert main(["--preset", "quick", "--methods", "erm", "--noise", "0", "--epochs", "1", "--attacks",
                 "pgd,pgd_l2,fgm_l2", "--eps", "8", "--eps-l2", "0.25,1.0", "--attack-samples", "60",
                 "--attack-steps", "3", "--attack-restarts", "2", "--out", str(out), "--no-progress"]) == 0
    return out, load_runs(out / "runs.csv")


def test_an_l2_evaluation_writes_its_own_rows_and_passes_its_checks(l2_run):
    _, df = l2_run
    l2 = df[df["attack"].isin(["pgd_l2", "fgm_l2", "worst_l2"])]
    assert (l2["norm"] == "L2").all() and l2["eps_255"].isna().all()
    assert set(l2[l2["metric"] == "acc"]["eps"].round(6)) == {0.0, 0.25, 1.0}
    linf = df[df["attack"].isin(["pgd", "worst"])]
    assert (linf["norm"] == "Linf").all() and linf["eps_255"].notna().all()
    assert (df[~df["attack"].isin(["pgd", "pgd_l2", "fgm_l2", "worst", "worst_l2"])]["norm"] == "").all()
    size = l2[l2["metric"] == "max_l2"]
    assert len(size) == 6 and (size["value"] <= size["eps"] + 1e-4).all() and (size[size["eps"] > 0]["value"] > 0).all()
    assert not len(l2[l2["metric"] == "max_linf_255"])
    assert len(df[(df["attack"] == "worst_l2") & (df["metric"] == "acc")]) == 2
    assert len(df[(df["attack"] == "worst") & (df["metric"] == "acc")]) == 0  # one L-infinity attack: no worst
    # restarts: the first restart alone is recorded for the random-start attacks only
    first = df[df["metric"] == "acc_first_restart"]
    assert set(first["attack"]) == {"pgd", "pgd_l2"}
    # the large-epsilon gradient-masking check stays L-infinity
    assert not len(l2[(l2["eps"] > 1.0)])
    checks = dict(zip(df[df["attack"] == "check"]["metric"].str.removeprefix("check:"),
                      df[df["attack"] == "check"]["value"], strict=True))
    for a in ("pgd_l2", "fgm_l2"):
        for c in ("in_ball", "eps0_is_clean", "monotone_in_eps"):
            assert checks[f"{c}:{a}"] == 1.0, (c, a, checks)
    assert "stronger_than_fgsm:pgd_l2" in checks and "stronger_than_fgsm:fgm_l2" not in checks
    assert not any(c.startswith("positive:") for c in checks)  # ERM is not adversarially trained


def test_l2_rows_are_their_own_columns_in_tables_and_headline(l2_run):
    from robustbench_mix.reports.headline import headline
    from robustbench_mix.reports.tables import robust_table
    from robustbench_mix.store.summary import summarize, summary_markdown

    out, df = l2_run
    md = robust_table(df, out)
    assert "L2=0.25" in md and "L2=1" in md and "8/255" in md
    t = pd.read_csv(out / "robust_accuracy.csv")
    pgd_l2_row = t[t["attack"] == "pgd_l2"].iloc[0]
    assert math.isnan(pgd_l2_row["8/255"]) and not math.isnan(pgd_l2_row["L2=0.25"])
    h = headline(df)
    assert {"robust 8/255", "robust L2=0.25", "robust L2=1"} <= set(h.columns)
    w = df[(df["attack"] == "worst_l2") & (df["metric"] == "acc") & (df["eps"].round(6) == 0.25)]["value"].iloc[0]
    assert h["robust L2=0.25"].iloc[0] == pytest.approx(w)
    summary = summarize(df)
    assert "pgd_l2 L2=0.25 acc mean" in summary.columns
    md = summary_markdown(summary)  # per norm: the L2 worst case; the one L-infinity attack itself
    assert "worst_l2 L2=0.25 acc" in md and "pgd 8/255 acc" in md and "pgd_l2 L2=0.25 acc" not in md


def test_a_runs_csv_from_before_the_norm_column_still_loads(tmp_path):
    old = pd.read_csv("results/reference/quick/runs.csv", dtype=str, keep_default_na=False)
    old = old.drop(columns=["norm"], errors="ignore")
    old.to_csv(tmp_path / "runs.csv", index=False)
    df = load_runs(tmp_path / "runs.csv")
    attacked = df["attack"].isin(["fgsm", "pgd", "bb:fgsm", "bb:pgd", "worst"])
    assert attacked.any() and (df[attacked]["norm"] == "Linf").all() and (df[~attacked]["norm"] == "").all()
    assert df["eps_255"].notna().all()


def _rows(attack, eps, acc, **extra):
    rows = [{"split": "test", "attack": attack, "eps": e, "metric": "acc", "value": v}
            for e, v in zip(eps, acc, strict=True)]
    for metric, values in extra.items():
        rows += [{"split": "test", "attack": attack, "eps": e, "metric": metric, "value": v}
                 for e, v in zip(eps, values, strict=True)]
    return rows


def test_checks_hold_per_norm_and_positive_controls_read_the_adversarial_trait(monkeypatch):
    exp = SimpleNamespace(attacks=("pgd", "fgsm", "pgd_l2", "fgm_l2", "autoattack_l2"), check_eps=0.0,
                          method="erm")
    e2 = (0.0, 0.5)
    rows = [{"split": "test", "attack": "none", "eps": 0.0, "metric": "acc_attacked_subset", "value": 0.9}]
    rows += _rows("fgsm", (0.0, 8 / 255), (0.9, 0.6), max_linf_255=(0, 8), box_violation=(0, 0))
    rows += _rows("pgd", (0.0, 8 / 255), (0.9, 0.2), max_linf_255=(0, 8), box_violation=(0, 0))
    rows += _rows("fgm_l2", e2, (0.9, 0.5), max_l2=(0, 0.5), box_violation=(0, 0))
    # pgd_l2 is weaker than fgm_l2 and its restarts made it weaker: two planted failures, one of each kind
    rows += _rows("pgd_l2", e2, (0.9, 0.7), max_l2=(0, 0.50001), box_violation=(0, 0),
                  acc_first_restart=(0.9, 0.6))
    rows += _rows("autoattack_l2", e2, (0.9, 0.75), max_l2=(0, 0.6), box_violation=(0, 0))
    rows += _rows("bb:pgd_l2", (0.5,), (0.4,))
    got = {r["metric"].removeprefix("check:"): r["value"] for r in check_rows(rows, exp)}
    assert got["in_ball:pgd_l2"] == 1.0 and got["in_ball:autoattack_l2"] == 0.0 and got["in_ball:pgd"] == 1.0
    assert got["stronger_than_fgsm:pgd"] == 1.0 and got["stronger_than_fgsm:pgd_l2"] == 0.0  # against fgm_l2
    assert got["blackbox_weaker:pgd_l2"] == 0.0
    assert not any(k.startswith("positive:") for k in got)
    monkeypatch.setattr(checks_mod, "_adversarial_method", lambda exp: True)
    got = {r["metric"].removeprefix("check:"): r["value"] for r in check_rows(rows, exp)}
    assert got["positive:autoattack_le_pgd:L2"] == 0.0  # AutoAttack above PGD + 1 point
    assert "positive:autoattack_le_pgd:Linf" not in got  # no AutoAttack in L-infinity
    assert got["positive:restarts_le_single:pgd_l2"] == 0.0
    assert "positive:blackbox_weaker:pgd_l2" not in got  # blackbox_weaker:pgd_l2 (above) is the comparison, once


def test_positive_controls_follow_the_method_trait(monkeypatch):
    from robustbench_mix.methods import METHODS

    assert not checks_mod._adversarial_method(SimpleNamespace(method="erm"))
    assert not checks_mod._adversarial_method(SimpleNamespace(method="no_such_method"))
    monkeypatch.setattr(METHODS, "get", lambda name: SimpleNamespace(adversarial=True))
    assert checks_mod._adversarial_method(SimpleNamespace(method="erm"))


def _correct(model, x_u8, y, attack, e, step_size, batch_size=16):
    from robustbench_mix.evaluation.evaluators import attack_correct

    torch.manual_seed(0)
    return attack_correct(model, model, x_u8, y, attack, e, steps=3, step_size=step_size, restarts=1,
                          batch_size=batch_size, seed=0)


def test_the_evaluator_steps_l2_attacks_by_their_own_rule_not_the_linf_step_size(rand_images):
    """--attack-step-size is /255 for the L-infinity attacks; PGD-L2 steps 2.5 * eps / steps whatever it says."""
    x, y = rand_images
    x_u8 = (x * 255).round().to(torch.uint8)
    model = linear_model().eval()
    given = _correct(model, x_u8, y, "pgd_l2", 0.5, step_size=2.0)
    default = _correct(model, x_u8, y, "pgd_l2", 0.5, step_size=None)
    torch.testing.assert_close(given["l2"], default["l2"], rtol=0, atol=0)
    assert torch.equal(given["top1"], default["top1"])


def test_max_l2_is_the_largest_perturbation_of_any_example_not_a_mean(rand_images):
    x, y = rand_images
    x_u8 = torch.full_like(x, 128, dtype=torch.uint8)
    x_u8[::2] = 0  # every other image at the box's corner, where FGM's step is clipped shorter than eps, so that
    # each batch holds both kinds and a batch mean of the norms would lie below the batch's maximum
    model = linear_model().eval()
    res = _correct(model, x_u8, y, "fgm_l2", 0.3, step_size=None, batch_size=4)
    from robustbench_mix.data.prepare import prep

    xs = prep(x_u8)
    torch.manual_seed(0)
    per_example = _l2(fgm_l2(model, xs, y, 0.3) - xs)
    assert per_example.min() < 0.3 - 1e-3  # the clipped ones: a mean would lie below the maximum
    torch.testing.assert_close(res["l2"], per_example.max(), atol=1e-6, rtol=0)
