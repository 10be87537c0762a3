"""What a reader of the report and the headline sees: titles rather than raw keys, each kind of sanity check passed
or failed, the robust table per threat model with its spread, no L2 text without L2 attacks, no local paths, and a
reproduce command that writes where the report is."""

import re
import shutil
from pathlib import Path

import pandas as pd
import pytest

from robustbench_mix.reports.headline import headline
from robustbench_mix.reports.report import check_kinds, reproduce_command, write_report
from robustbench_mix.store.load import load_runs

REFERENCE = Path(__file__).resolve().parents[2] / "results" / "reference"


def _report(tmp_path, name: str) -> str:
    d = tmp_path / name
    d.mkdir()
    shutil.copy(REFERENCE / name / "runs.csv", d / "runs.csv")
    write_report(d)
    return (d / "report.md").read_text()


@pytest.fixture(scope="module")
def robust(tmp_path_factory):
    return _report(tmp_path_factory.mktemp("r"), "robust-cpu"), load_runs(REFERENCE / "robust-cpu" / "runs.csv")


def test_each_kind_of_check_is_shown_passed_or_failed(robust):
    text, df = robust
    t = check_kinds(df).set_index("check")
    final = df[df["epoch"] == df["epochs"]]
    positive = final[final["metric"].str.startswith("check:positive:autoattack_le_pgd")]
    assert t.loc["positive:autoattack_le_pgd", "passed"] == (positive["value"] >= 0.5).sum() > 0
    assert f"| positive:autoattack_le_pgd | {t.loc['positive:autoattack_le_pgd', 'passed']} | 0 | 0 |" in text
    for kind in ("in_ball", "eps0_is_clean", "positive:blackbox_weaker", "positive:restarts_le_single"):
        assert f"| {kind} | " in text
    # a failed check is counted as failed under its own kind
    broken = df.copy()
    broken.loc[broken.index[broken["metric"] == "check:in_ball:pgd"][0], "value"] = 0.0
    assert check_kinds(broken).set_index("check").loc["in_ball", "failed"] == 1


def test_the_summary_names_methods_and_columns_for_a_reader(robust):
    text, _ = robust
    summary = text.split("## Summary", 1)[1].split("\n\n", 2)[1]
    assert "| TRADES (β=6, eps=32, steps=5, step_size=8) |" in summary and "| ERM |" in summary
    assert "eps=32.0" not in summary and "| trades |" not in summary and "| alpha |" not in summary
    assert "robust 32/255 acc (worst case)" in summary and "worst_l2" not in summary


def test_the_robust_table_is_one_table_per_threat_model_with_the_spread(robust):
    text, _ = robust
    table = text.split("## Robust accuracy (%) against epsilon", 1)[1].split("*Table:", 1)[0]
    assert "### L-infinity" in table and "### L2" in table
    rows = [r for r in table.splitlines() if r.startswith("| ") and not r.startswith("| method")]
    assert len(rows) == 10  # 5 configurations per threat model, not a row per attack
    assert "| ERM | 0 | 9.0 ± 5.6 |" in table  # AutoAttack 32/255 over the 3 seeds, as in the README's table
    assert all(" ± " in r for r in rows)


def test_the_reproduce_command_writes_where_the_report_is(robust, tmp_path):
    text, _ = robust
    line = next(r for r in text.splitlines() if r.startswith("Reproduce with:"))
    # the rows were made with --out /tmp/presets/robust-cpu; the report is in the (temporary) copy's folder
    assert "/tmp/presets" not in line and re.search(r"--out \S*/r\d*/robust-cpu --no-progress", line)
    assert reproduce_command("python -m robustbench_mix.suite --out /tmp/x --seeds 0", tmp_path / "here") == \
        f"python -m robustbench_mix.suite --out {tmp_path / 'here'} --seeds 0"


def test_no_l2_text_without_l2_attacks_and_no_local_paths(tmp_path):
    text = _report(tmp_path, "table3-cpu")
    assert "L2" not in text
    text = _report(tmp_path, "cifar10-jpeg-corruptions-cpu")
    assert "imagefolder:/" not in text and "/tmp/c10" not in text  # the Reproduce line's data paths too:
    assert "--dataset imagefolder:<dir>/sub" in text and "--data-dir <dir>/" in text  # placeholders, name kept
    assert reproduce_command("python -m robustbench_mix.suite --dataset imagefolder:data/c10 --methods 'a b' "
                             "--data-dir /srv/d --out /o", tmp_path / "r") == \
        f"python -m robustbench_mix.suite --dataset imagefolder:data/c10 --methods 'a b' --data-dir <dir>/d --out " \
        f"{tmp_path / 'r'}"
    h = headline(REFERENCE / "cifar10-jpeg-corruptions-cpu")
    assert set(h["dataset"]) == {"imagefolder:sub"} and "/tmp" not in str(h)


def test_the_headline_says_over_how_many_corruptions_its_mean_is(tmp_path):
    df = load_runs(REFERENCE / "cifar10-jpeg-corruptions-cpu" / "runs.csv")
    assert set(headline(df)["corruptions (computed): mean over"]) == {"15 of 15"}  # the extras are not in the mean
    three = ("gaussian_noise", "fog", "contrast")
    some = df[~df["attack"].str.startswith("corrupt:") | (df["attack"] == "corrupt:mean")
              | df["attack"].str.split(":").str[1].isin(three)]  # as a run asked for 3 corruptions
    h = headline(some)
    assert set(h["corruptions (computed): mean over"]) == {"3 of 15"}
    assert "corrupt:mean" in h.columns  # the row name stays for code
    text = str(h)
    assert "corruptions (computed)" in text and "corrupt:mean" not in text
    assert isinstance(h, pd.DataFrame)
