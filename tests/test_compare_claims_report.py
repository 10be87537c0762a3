"""compare aligns by configuration; claims give the right verdicts; the report renders with its plots."""

import numpy as np
import pandas as pd
import pytest

from robustbench_mix.claims import check_all, load_claims
from robustbench_mix.claims import main as claims_main
from robustbench_mix.compare import compare, welch_ci
from robustbench_mix.compare import main as compare_main
from robustbench_mix.config import Experiment
from robustbench_mix.report import write_report
from robustbench_mix.results import atomic_write_csv, to_frame


def runs(specs, epochs=10):
    """Synthetic runs.csv frame: specs = [(exp fields, {quantity: value})]."""
    frames = []
    for fields, vals in specs:
        exp = Experiment(dataset="cifar10", model="preact_resnet18", epochs=epochs, **fields)
        rows = [{"epoch": epochs, "split": "test", "attack": "none", "eps": 0.0, "metric": "acc",
                 "value": vals["acc"]},
                {"epoch": 1, "split": "test", "attack": "none", "eps": 0.0, "metric": "acc",
                 "value": vals.get("best", vals["acc"])}]
        for a, v in vals.get("attacks", {}).items():
            rows.append({"epoch": epochs, "split": "test", "attack": a, "eps": round(8 / 255, 6), "metric": "acc",
                         "value": v})
        frames.append(to_frame(exp, rows, device="cpu", command="t", rev="r"))
    return pd.concat(frames, ignore_index=True)


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
    assert only_a == ["cifar10 preact_resnet18 mixup α=1 noise=0 ep=10"]
    assert only_b == ["cifar10 preact_resnet18 erm noise=0.2 ep=10"]


def test_welch_interval_matches_a_hand_computation():
    a, b = np.array([1.0, 2.0, 3.0]), np.array([2.0, 4.0, 6.0, 8.0])
    lo, hi = welch_ci(a, b)
    # se^2 = 1/3 + 6.667/4; dof ~ 4.25; t(0.975, 4.25) ~ 2.73
    assert (lo + hi) / 2 == pytest.approx(3.0) and 2.0 < (hi - lo) / 2 / np.sqrt(1 / 3 + 20 / 3 / 4) < 3.0


def test_compare_cli_writes_csv_and_markdown(tmp_path, capsys):
    for name, acc in (("a", 0.9), ("b", 0.8)):
        atomic_write_csv(runs([({"method": "erm"}, {"acc": acc})]), tmp_path / name / "runs.csv")
    assert compare_main([str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(tmp_path / "cmp")]) == 0
    assert "-0.1000" in (tmp_path / "cmp" / "comparison.md").read_text()
    assert compare_main([str(tmp_path / "a"), str(tmp_path / "nope")]) == 2


def _verdicts(df, relax=()):
    t = check_all(df, relax)
    return dict(zip(t["claim"], t["verdict"], strict=True))


def test_claims_reproduced_direction_only_not_reproduced_and_not_run():
    close = runs([({"method": "erm"}, {"acc": 0.945}), ({"method": "mixup", "alpha": 1.0}, {"acc": 0.957})])
    far = runs([({"method": "erm"}, {"acc": 0.90}), ({"method": "mixup", "alpha": 1.0}, {"acc": 0.93})])
    worse = runs([({"method": "erm"}, {"acc": 0.95}), ({"method": "mixup", "alpha": 1.0}, {"acc": 0.90})])
    assert _verdicts(close)["cifar10-generalization"] == "reproduced"
    assert _verdicts(far)["cifar10-generalization"] == "direction only"
    assert _verdicts(worse)["cifar10-generalization"] == "not reproduced"
    t = check_all(worse)
    not_run = t[t["claim"] == "table2-erm-memorizes-50"].iloc[0]
    assert not_run["verdict"] == "not run" and "paper-table2" in not_run["note"]


def test_planted_table3_results_where_mixup_is_worse_are_not_reproduced():
    df = runs([({"method": "erm"}, {"acc": 0.95, "attacks": {"fgsm": 0.60, "bb:ifgsm": 0.8}}),
               ({"method": "mixup", "alpha": 1.0}, {"acc": 0.96, "attacks": {"fgsm": 0.40, "bb:ifgsm": 0.85}})])
    v = _verdicts(df)
    assert v["table3-whitebox-fgsm"] == "not reproduced"  # mixup's attack-added error is larger
    assert v["table3-blackbox-ifgsm"] == "reproduced"  # black-box error: 15% < 20%


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


@pytest.mark.parametrize("name", ["quick", "table2-cpu", "table3-cpu"])
def test_report_renders_from_the_committed_results(tmp_path, name):
    import shutil
    from pathlib import Path

    src = Path(__file__).resolve().parents[1] / "results" / name
    if not (src / "runs.csv").exists():
        pytest.skip(f"{src} is not committed")
    d = tmp_path / name
    shutil.copytree(src, d, ignore=shutil.ignore_patterns("report.*", "runs"))
    md, page = write_report(d)
    pngs = sorted(p.name for p in d.glob("*.png"))
    assert len(pngs) >= 2 and all(f"]({p})" in md.read_text() for p in pngs)
    assert page.read_text().count("data:image/png;base64,") == len(pngs)


def test_report_renders_every_plot_of_a_real_run(tmp_path):
    from robustbench_mix.suite import main

    out = tmp_path / "q"
    assert main(["--out", str(out), "--epochs", "2", "--eval-every", "1", "--eps", "8", "--attack-steps", "2",
                 "--no-progress"]) == 0
    md, page = write_report(out)
    text, html = md.read_text(), page.read_text()
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert {"robust_accuracy.png", "curves.png", "calibration.png"} <= set(pngs)
    for p in pngs:
        assert f"]({p})" in text
    assert html.count("data:image/png;base64,") == len(pngs)
    assert "<table>" in html and "The paper's claims" in html
