"""compare aligns by configuration; claims give the right verdicts; the report renders with its plots."""

import numpy as np
import pandas as pd
import pytest

from robustbench_mix.claims import check_all, load_claims
from robustbench_mix.claims import main as claims_main
from robustbench_mix.compare import compare, paired_ci, welch_ci
from robustbench_mix.compare import main as compare_main
from robustbench_mix.config import Experiment
from robustbench_mix.report import write_report
from robustbench_mix.results import atomic_write_csv, to_frame


def runs(specs, epochs=200):
    """Synthetic runs.csv frame: specs = [(exp fields, {quantity: value})]. The default recipe (batch 128, lr
    0.1, weight decay 1e-4, step schedule) with 200 epochs is the paper's CIFAR-10 setting."""
    frames = []
    for fields, vals in specs:
        exp = Experiment(dataset=fields.pop("dataset", "cifar10"), model="preact_resnet18", epochs=epochs, **fields)
        rows = [{"epoch": epochs, "split": "test", "attack": "none", "eps": 0.0, "metric": "acc",
                 "value": vals["acc"]},
                {"epoch": 1, "split": "test", "attack": "none", "eps": 0.0, "metric": "acc",
                 "value": vals.get("best", vals["acc"])}]
        if "attacked_subset" in vals:
            rows.append({"epoch": epochs, "split": "test", "attack": "none", "eps": 0.0,
                         "metric": "acc_attacked_subset", "value": vals["attacked_subset"]})
        for a, v in vals.get("attacks", {}).items():
            rows.append({"epoch": epochs, "split": "test", "attack": a, "eps": round(8 / 255, 6), "metric": "acc",
                         "value": v})
        frames.append(to_frame(exp, rows, device="cpu", command="t", rev="r"))
    return pd.concat(frames, ignore_index=True)


def seeds(fields, accs, **extra):
    """One spec per seed: the same configuration with the given test accuracies."""
    return [({**fields, "seed": s}, {"acc": a, **extra}) for s, a in enumerate(accs)]


def test_compare_aligns_shuffled_rows_and_reports_missing_configurations():
    a = runs([({"method": "erm", "seed": s}, {"acc": 0.90 + 0.01 * s}) for s in range(3)]
             + [({"method": "mixup", "alpha": 1.0}, {"acc": 0.95})])
    b = runs([({"method": "erm", "seed": s}, {"acc": 0.80 + 0.01 * s}) for s in range(3)]
             + [({"method": "erm", "noise": 0.2}, {"acc": 0.5})])
    b = b.sample(frac=1.0, random_state=0).reset_index(drop=True)  # row order must not matter
    table, only_a, only_b = compare(a, b)
    row = table[(table["metric"] == "test acc")].iloc[0]
    assert row["a_mean"] == pytest.approx(0.91) and row["b_mean"] == pytest.approx(0.81)
    assert row["diff"] == pytest.approx(-0.10) and row["ci95_low"] < -0.10 < row["ci95_high"]
    assert only_a == ["cifar10 preact_resnet18 mixup (α=1) noise=0 ep=200"]
    assert only_b == ["cifar10 preact_resnet18 ERM noise=0.2 ep=200"]


def test_welch_interval_matches_a_hand_computation():
    a, b = np.array([1.0, 2.0, 3.0]), np.array([2.0, 4.0, 6.0, 8.0])
    lo, hi = welch_ci(a, b)
    # se^2 = 1/3 + (20/3)/4 = 2; Welch-Satterthwaite dof = 4 / ((1/3)^2/2 + (5/3)^2/3) = 4.0755;
    # t(0.975, 4.0755) = 2.75627, so the half-width is 2.75627 * sqrt(2) = 3.89798 (3 dof: 4.50, 60 dof: 2.83)
    assert (lo + hi) / 2 == pytest.approx(3.0)
    assert (hi - lo) / 2 == pytest.approx(3.89798, abs=2e-4)


def test_paired_interval_is_the_one_sample_t_interval_of_the_differences():
    a, b = np.array([10.0, 12.0, 11.0]), np.array([13.0, 16.0, 13.5])
    lo, hi = paired_ci(a, b)
    d = b - a  # 3, 4, 2.5: mean 3.1667, sd 0.7638, se 0.44096; t(0.975, 2) = 4.30265
    assert (lo + hi) / 2 == pytest.approx(d.mean())
    assert (hi - lo) / 2 == pytest.approx(4.30265 * 0.763763 / np.sqrt(3), abs=1e-4)


def test_compare_cli_writes_csv_and_markdown(tmp_path, capsys):
    for name, acc in (("a", 0.9), ("b", 0.8)):
        atomic_write_csv(runs([({"method": "erm"}, {"acc": acc})]), tmp_path / name / "runs.csv")
    assert compare_main([str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(tmp_path / "cmp")]) == 0
    assert "-0.1000" in (tmp_path / "cmp" / "comparison.md").read_text()
    assert compare_main([str(tmp_path / "a"), str(tmp_path / "nope")]) == 2


def _verdicts(df, relax=()):
    t = check_all(df, relax)
    return dict(zip(t["claim"], t["verdict"], strict=True))


def _claim(df, claim, relax=()):
    t = check_all(df, relax)
    return t[t["claim"] == claim].iloc[0]


GEN = "cifar10-generalization"  # paper: ERM 5.53%, mixup 4.24% test error, tolerance 1 point
ERM, MIXUP = {"method": "erm"}, {"method": "mixup", "alpha": 1.0}


def test_claim_in_the_papers_setting_with_an_interval_clear_of_zero_and_close_numbers_is_reproduced():
    df = runs(seeds(ERM, [0.945, 0.944, 0.946]) + seeds(MIXUP, [0.957, 0.958, 0.956]))
    r = _claim(df, GEN)
    assert r["verdict"] == "reproduced" and r["setting"] == "the paper's" and r["test"] == "Welch"
    assert r["ci95_high"] < 0 and r["diff"] == pytest.approx(-1.2)


def test_a_one_seed_claim_is_never_reproduced():
    df = runs(seeds(ERM, [0.945]) + seeds(MIXUP, [0.957, 0.958, 0.956]))
    r = _claim(df, GEN)
    assert r["verdict"] == "1 seed" and np.isnan(r["ci95_low"]) and "follow" in r["note"]
    worse = runs(seeds(ERM, [0.95]) + seeds(MIXUP, [0.90]))
    r = _claim(worse, GEN)
    assert r["verdict"] == "1 seed" and "go against" in r["note"]


def test_another_setting_gives_at_most_direction_only_and_names_what_differs():
    short = runs(seeds(ERM, [0.945, 0.944, 0.946]) + seeds(MIXUP, [0.957, 0.958, 0.956]), epochs=60)
    r = _claim(short, GEN)
    assert r["verdict"] == "direction only" and "epochs 60 (paper: 200)" in r["setting"]
    jpeg = runs(seeds({**ERM, "dataset": "imagefolder:cifar10-jpeg"}, [0.945, 0.944, 0.946])
                + seeds({**MIXUP, "dataset": "imagefolder:cifar10-jpeg"}, [0.957, 0.958, 0.956]))
    r = _claim(jpeg, GEN, relax=("dataset",))
    assert r["verdict"] == "direction only" and "dataset imagefolder:cifar10-jpeg (paper: cifar10)" in r["setting"]
    far = runs(seeds(ERM, [0.90, 0.91, 0.92]) + seeds(MIXUP, [0.93, 0.94, 0.95]))
    assert _verdicts(far)[GEN] == "direction only"  # the paper's setting, numbers too far from the paper's


def test_an_interval_straddling_zero_is_inconclusive_and_one_on_the_other_side_is_not_reproduced():
    overlap = runs(seeds(ERM, [0.945, 0.935, 0.955]) + seeds(MIXUP, [0.957, 0.937, 0.947]))
    r = _claim(overlap, GEN)
    assert r["diff"] < 0 < r["ci95_high"] and r["verdict"] == "inconclusive"
    worse = runs(seeds(ERM, [0.95, 0.951, 0.949]) + seeds(MIXUP, [0.90, 0.901, 0.899]))
    assert _verdicts(worse)[GEN] == "not reproduced"
    t = check_all(worse)
    not_run = t[t["claim"] == "table2-erm-memorizes-50"].iloc[0]
    assert not_run["verdict"] == "not run" and "paper-table2" in not_run["note"]


def test_two_quantities_of_the_same_runs_are_compared_in_pairs():
    noisy = {"method": "erm", "noise": 0.5}
    df = runs([({**noisy, "seed": s}, {"acc": acc, "best": best})
               for s, (acc, best) in enumerate([(0.55, 0.80), (0.50, 0.78), (0.60, 0.82)])])
    r = _claim(df, "table2-erm-memorizes-50")  # best error 20, 22, 18 against last error 45, 50, 40
    assert r["test"] == "paired t" and r["diff"] == pytest.approx(25.0)
    # mean best 20 / last 45 against the paper's 18.8 / 44.6 (tolerance 5), by the paired interval
    assert r["verdict"] == "reproduced" and r["ci95_low"] > 5.0


def test_planted_table3_results_where_mixup_is_worse_are_not_reproduced():
    erm = {"acc": 0.95, "attacked_subset": 0.95, "attacks": {"fgsm": 0.60, "bb:ifgsm": 0.8}}
    mix = {"acc": 0.96, "attacked_subset": 0.96, "attacks": {"fgsm": 0.40, "bb:ifgsm": 0.85}}
    df = runs([({**ERM, "seed": s}, {**erm, "attacks": {k: v + 0.01 * s for k, v in erm["attacks"].items()}})
               for s in range(3)]
              + [({**MIXUP, "seed": s}, {**mix, "attacks": {k: v + 0.01 * s for k, v in mix["attacks"].items()}})
                 for s in range(3)])
    v = _verdicts(df)
    assert v["table3-whitebox-fgsm"] == "not reproduced"  # mixup's attack-added error is larger
    r = _claim(df, "table3-blackbox-ifgsm")  # black-box error 15% < 20%, but Table 3 is ImageNet
    assert r["verdict"] == "direction only" and "imagenet-2012" in r["setting"] and "resnet101" in r["setting"]


def test_attack_added_error_takes_the_clean_side_at_the_attacks_precision():
    # the clean accuracy of the whole test set (bf16 on a GPU) differs from that of the attacked images at
    # the attacks' precision; the added error must be measured against the latter
    df = runs([({**ERM, "seed": s}, {"acc": 0.95, "attacked_subset": 0.90, "attacks": {"fgsm": 0.60}})
               for s in range(2)])
    t = check_all(df, claims=[c for c in load_claims() if c["id"] == "table3-whitebox-fgsm"])
    assert t["ours_a"].iloc[0] == pytest.approx(30.0)  # 40 - 10, not 40 - 5


def test_claims_file_is_well_formed():
    claims = load_claims()
    assert len({c["id"] for c in claims}) == len(claims) >= 12
    for c in claims:
        assert {"statement", "source", "preset", "select", "a", "b", "direction"} <= set(c)


def test_claims_cli_exit_codes(tmp_path, capsys):
    atomic_write_csv(runs([({"method": "erm"}, {"acc": 0.95})]), tmp_path / "r" / "runs.csv")
    assert claims_main([str(tmp_path / "r")]) == 0  # verdicts, even 'not run', are not errors
    assert "not run" in capsys.readouterr().out and (tmp_path / "r" / "claims.md").exists()
    assert claims_main([str(tmp_path / "r"), "--relax", "seed"]) == 2
    assert claims_main([str(tmp_path / "missing")]) == 2


def _assert_report_shows(d):
    """The report holds this directory's summary, its claims verdicts and every plot's own bytes."""
    import base64

    from robustbench_mix.results import load_results, summarize, summary_markdown

    md, page = write_report(d)
    text, html = md.read_text(), page.read_text()
    df = load_results(d)
    assert summary_markdown(summarize(df)) in text
    relax = () if "cifar10" in set(df["dataset"]) else ("dataset", "model")
    ran = check_all(df, relax)
    ran = ran[ran["verdict"] != "not run"]
    assert len(ran) and all(f"| {c} | **{v}** |" in text for c, v in zip(ran["claim"], ran["verdict"], strict=True))
    pngs = sorted(d.glob("*.png"))
    assert len(pngs) >= 2
    for p in pngs:
        assert f"]({p.name})" in text
        assert base64.b64encode(p.read_bytes()).decode() in html
    assert html.count("data:image/png;base64,") == len(pngs)
    return text, html


@pytest.mark.parametrize("name", ["quick", "table2-cpu", "table3-cpu"])
def test_report_renders_from_the_committed_results(tmp_path, name):
    import shutil
    from pathlib import Path

    src = Path(__file__).resolve().parents[1] / "results" / "reference" / name
    if not (src / "runs.csv").exists():
        pytest.skip(f"{src} is not committed")
    d = tmp_path / name
    shutil.copytree(src, d, ignore=shutil.ignore_patterns("report.*", "runs"))
    _assert_report_shows(d)


def test_report_renders_every_plot_of_a_real_run(tmp_path):
    from robustbench_mix.suite import main

    out = tmp_path / "q"
    assert main(["--out", str(out), "--epochs", "2", "--eval-every", "1", "--eps", "8", "--attack-steps", "2",
                 "--no-progress"]) == 0
    text, html = _assert_report_shows(out)
    assert {"robust_accuracy.png", "curves.png", "calibration.png"} <= {p.name for p in out.glob("*.png")}
    assert "<table>" in html and "The paper's claims" in html
