"""compare aligns by configuration; claims give the right verdicts; the report renders with its plots."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import ERM, GEN, MIXUP, runs, seeds

from robustbench_mix.cli.claims import main as claims_main
from robustbench_mix.cli.compare import main as compare_main
from robustbench_mix.experiment.experiment import Experiment
from robustbench_mix.reports.claims import check_all, load_claims
from robustbench_mix.reports.compare import compare, compare_sides, paired_ci, to_markdown, welch_ci
from robustbench_mix.reports.report import write_report
from robustbench_mix.store.load import load_runs
from robustbench_mix.store.schema import to_frame
from robustbench_mix.store.write import atomic_write_csv


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
    assert only_a == ["mixup (α=1), noise 0"]
    assert only_b == ["ERM, noise 0.2"]


def test_compare_never_pools_runs_whose_configurations_differ_beyond_six_digits():
    """Fields were compared as text at 6 significant digits: runs at L2 radius 0.1 and 0.1000001 pooled as the
    n=2 seeds of one configuration."""
    a = runs([({"method": "erm", "eps_l2": (0.1,), "seed": 0}, {"acc": 0.90}),
              ({"method": "erm", "eps_l2": (0.1000001,), "seed": 1}, {"acc": 0.70})])
    b = runs([({"method": "erm", "eps_l2": (0.1,), "seed": s}, {"acc": 0.80 + 0.02 * s}) for s in range(2)])
    (cmp,) = compare_sides([a, b], ["a", "b"])
    row = cmp.table[cmp.table["metric"] == "test acc"].iloc[0]
    assert row["base_seeds"] == 1 and row["base_mean"] == pytest.approx(0.90) and row["other_seeds"] == 2
    assert "eps_l2" in cmp.keys and json.loads(row["config_key"])["eps_l2"] == "0.1"
    assert cmp.only_base == ["eps_l2 0.1000001"] and not cmp.only_other
    # values that %g writes exactly read as before (8, 0.1, 1e-04), so descriptions and keys keep their text
    (same,) = compare_sides([runs([({"method": "erm", "lr": 0.05}, {"acc": 0.9})]),
                             runs([({"method": "mixup", "alpha": 1.0, "lr": 0.05}, {"acc": 0.8})])], ["a", "b"])
    assert same.differs["method"] == ("erm", "mixup") and same.differs["alpha"] == ("0", "1")


def test_welch_interval_matches_a_hand_computation():
    a, b = np.array([1.0, 2.0, 3.0]), np.array([2.0, 4.0, 6.0, 8.0])
    lo, hi = welch_ci(a, b)
    # se^2 = 1/3 + (20/3)/4 = 2; Welch-Satterthwaite dof = 4 / ((1/3)^2/2 + (5/3)^2/3) = 4.0755;
    # t(0.975, 4.0755) = 2.75627, so the half-width is 2.75627 * sqrt(2) = 3.89798 (3 dof: 4.50, 60 dof: 2.83)
    assert (lo + hi) / 2 == pytest.approx(3.0)
    assert (hi - lo) / 2 == pytest.approx(3.89798, abs=2e-4)


def test_welch_interval_with_one_side_without_spread_is_the_other_sides_t_interval():
    # a = 5 on every seed (no spread), b = 1, 2, 3: se^2 = 0 + 1/3, dof = (1/3)^2 / ((1/3)^2 / 2) = 2, t(0.975, 2)
    # = 4.302653, half-width 4.302653 * sqrt(1/3) = 2.48414 around -3: not the zero-width interval of two flat sides
    lo, hi = welch_ci(np.array([5.0, 5.0, 5.0]), np.array([1.0, 2.0, 3.0]))
    assert (lo + hi) / 2 == pytest.approx(-3.0)
    assert (hi - lo) / 2 == pytest.approx(2.48414, abs=1e-4)


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
    md = (tmp_path / "cmp" / "comparison.md").read_text()
    assert "| test acc | 90.00 (n=1) | 80.00 (n=1) | -10.00 | one run each: no interval |" in md  # in %, a first
    assert compare_main([str(tmp_path / "a"), str(tmp_path / "nope")]) == 2


def claim_verdicts(df, relax=()):
    t = check_all(df, relax)
    return dict(zip(t["claim"], t["verdict"], strict=True))


def _claim(df, claim, relax=()):
    t = check_all(df, relax)
    return t[t["claim"] == claim].iloc[0]


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
    assert claim_verdicts(far)[GEN] == "direction only"  # the paper's setting, numbers too far from the paper's


def test_an_interval_straddling_zero_is_inconclusive_and_one_on_the_other_side_is_not_reproduced():
    overlap = runs(seeds(ERM, [0.945, 0.935, 0.955]) + seeds(MIXUP, [0.957, 0.937, 0.947]))
    r = _claim(overlap, GEN)
    assert r["diff"] < 0 < r["ci95_high"] and r["verdict"] == "inconclusive"
    worse = runs(seeds(ERM, [0.95, 0.951, 0.949]) + seeds(MIXUP, [0.90, 0.901, 0.899]))
    assert claim_verdicts(worse)[GEN] == "not reproduced"
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
    v = claim_verdicts(df)
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


def test_claims_cli_exit_codes_and_it_writes_only_where_asked(tmp_path, capsys):
    atomic_write_csv(runs([({"method": "erm"}, {"acc": 0.95})]), tmp_path / "r" / "runs.csv")
    assert claims_main([str(tmp_path / "r")]) == 0  # verdicts, even 'not run', are not errors
    assert "Not run here: " in capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "r").iterdir()) == ["runs.csv"]  # nothing beside the results
    assert claims_main([str(tmp_path / "r"), "--out", str(tmp_path / "c")]) == 0
    assert (tmp_path / "c" / "claims.md").exists() and (tmp_path / "c" / "claims.csv").exists()
    assert claims_main([str(tmp_path / "r"), "--relax", "seed"]) == 2
    assert claims_main([str(tmp_path / "missing")]) == 2


def _assert_report_shows(d, relax=()):
    """The report holds this directory's summary, its claims as the claims command gives them, and every plot
    it made (each PNG's own bytes in the page), each figure and table with a caption."""
    import base64

    from robustbench_mix.reports.claims import section
    from robustbench_mix.store.load import load_results
    from robustbench_mix.store.summary import summarize, summary_markdown

    md, page = write_report(d, relax)
    text, html = md.read_text(), page.read_text()
    df = load_results(d)
    assert summary_markdown(summarize(df)) in text
    assert section(check_all(df, relax), relax) in text
    pngs = [p for p in sorted(d.glob("*.png")) if f"]({p.name})" in text]
    assert len(pngs) >= 2
    for i, p in enumerate(sorted(pngs, key=lambda p: text.index(f"]({p.name})")), 1):
        assert base64.b64encode(p.read_bytes()).decode() in html
        after = text.split(f"]({p.name})", 1)[1].lstrip("\n")
        assert after.startswith(f"*Figure {i}: ") and "seeds" in after.split("\n")[0]
    assert html.count("data:image/png;base64,") == len(pngs)
    return text, html


@pytest.mark.parametrize(("name", "made"), [
    ("quick-3seeds", {"robust_accuracy.md", "robust_accuracy.png", "calibration.png", "curves.png"}),
    ("table3-cpu", {"table3.md", "robust_accuracy.md", "robust_accuracy.png", "calibration.png"}),
    ("cifar10-jpeg-corruptions-cpu", {"corruptions.md", "corruptions.png", "robust_accuracy.png"}),
])
def test_report_from_a_lone_runs_csv_makes_every_table_and_plot_with_captions(tmp_path, name, made):
    import shutil

    src = REFERENCE / name
    if not (src / "runs.csv").exists():
        pytest.skip(f"{src} is not committed")
    d = tmp_path / name
    d.mkdir()
    shutil.copy(src / "runs.csv", d / "runs.csv")  # nothing else: every table and plot comes from the rows
    text, _ = _assert_report_shows(d)
    assert made <= {p.name for p in d.iterdir()}
    for table in (m for m in made if m.endswith(".md")):
        body = (d / table).read_text()
        assert body in text and text.split(body, 1)[1].lstrip("\n").startswith("*Table: ")
    assert "Data set " in text and "; attacks on " in text and "epsilons in /255" in text
    if name == "quick-3seeds":
        assert "(3 per configuration)" in text and "95% t-interval over seeds" in text


def test_report_of_the_apis_rows_names_the_model_and_one_seed(tmp_path):
    df = relabel(_reference("quick"), model="user:mlp", method="external", alpha=0.0, preset="api")
    atomic_write_csv(df[df["noise"] == 0], tmp_path / "api" / "runs.csv")
    text, _ = _assert_report_shows(tmp_path / "api")
    assert "model user:mlp" in text and "one seed per configuration, so no interval is drawn" in text
    assert (tmp_path / "api" / "robust_accuracy.md").exists()


@pytest.mark.parametrize("relax", [(), ("dataset", "model")])
def test_claims_command_and_report_give_the_same_verdicts(tmp_path, capsys, relax):
    import shutil

    d = tmp_path / "q"
    d.mkdir()
    shutil.copy(REFERENCE / "quick-3seeds" / "runs.csv", d / "runs.csv")
    flags = ["--relax", ",".join(relax)] if relax else []
    capsys.readouterr()
    assert claims_main([str(d), *flags]) == 0
    printed = capsys.readouterr().out
    text, _ = _assert_report_shows(d, relax)
    assert printed.strip() in text  # the same section, word for word
    rows = [line for line in text.splitlines() if line.startswith("| cifar10-generalization |")]
    if relax:  # a digits run checks the CIFAR-10 claim's direction only when relaxed, and says so
        assert len(rows) == 1 and "Relaxed (dataset, model)" in text and "relaxed dataset=cifar10" in rows[0]
    else:
        assert rows == [] and "None of the claims has its runs here" in text
        assert "Not run here: cifar10-generalization (preset cifar10)" in text


def test_report_renders_every_plot_of_a_real_run(tmp_path):
    from robustbench_mix.cli.suite import main

    out = tmp_path / "q"
    assert main(["--out", str(out), "--epochs", "2", "--eval-every", "1", "--eps", "8", "--attack-steps", "2",
                 "--no-progress"]) == 0
    text, html = _assert_report_shows(out)
    assert {"robust_accuracy.png", "curves.png", "calibration.png"} <= {p.name for p in out.glob("*.png")}
    assert "<table>" in html and "The paper's claims" in html


# ------------------------------------------------------------------------------ compare by what differs
REFERENCE = Path(__file__).resolve().parents[2] / "results" / "reference"


def _reference(name: str) -> pd.DataFrame:
    from robustbench_mix.store.load import load_results

    if not (REFERENCE / name / "runs.csv").exists():
        pytest.skip(f"results/reference/{name} is not committed")
    return load_results(REFERENCE / name)


def relabel(df: pd.DataFrame, **fields) -> pd.DataFrame:
    """The rows as if their runs had other config fields (in the columns and in the config JSON)."""
    cfg = df["config"].map(lambda t: json.dumps({**json.loads(t), **fields}, sort_keys=True, separators=(",", ":")))
    return df.assign(config=cfg, **{k: v for k, v in fields.items() if k in df.columns})


def own_models(tmp_path) -> tuple[Path, Path, pd.DataFrame]:
    """Two 'own' models evaluated on 3 seeds each (method external, as the API writes them): the committed
    ERM and mixup runs on clean digits, relabelled user:mlp16 and user:mlp128, one runs.csv each."""
    df = _reference("quick-3seeds")
    clean = df[df["noise"] == 0]
    a = relabel(clean[clean["method"] == "erm"], model="user:mlp16", method="external", alpha=0.0, preset="api")
    b = relabel(clean[clean["method"] == "mixup"], model="user:mlp128", method="external", alpha=0.0, preset="api")
    for name, frame in (("a", a), ("b", b)):
        atomic_write_csv(frame, tmp_path / name / "runs.csv")
    return tmp_path / "a", tmp_path / "b", clean


def _per_seed(df, metric="acc", attack="none", eps=0.0):
    d = df[(df["epoch"] == df["epochs"]) & (df["split"] == "test") & (df["attack"] == attack)
           & (df["metric"] == metric) & np.isclose(df["eps"], eps)]
    return d.sort_values("seed")["value"].to_numpy()


def test_compare_two_own_models_by_model_with_a_welch_interval_in_percent(tmp_path, capsys):
    a, b, clean = own_models(tmp_path)
    assert compare_main([str(a), str(b), "--by", "model", "--out", str(tmp_path / "cmp")]) == 0
    md = (tmp_path / "cmp" / "comparison.md").read_text()
    assert md.startswith("# user:mlp128 against user:mlp16 (by model)")
    t = pd.read_csv(tmp_path / "cmp" / "comparison.csv")
    assert list(t.columns[3:10]) == ["user:mlp16 mean", "user:mlp16 std", "user:mlp16 seeds", "user:mlp128 mean",
                                     "user:mlp128 std", "user:mlp128 seeds", "user:mlp128 − user:mlp16"]
    va = 100 * _per_seed(clean[clean["method"] == "erm"], "acc", "pgd", round(8 / 255, 6))
    vb = 100 * _per_seed(clean[clean["method"] == "mixup"], "acc", "pgd", round(8 / 255, 6))
    r = t[t["metric"] == "pgd 8/255 acc"].iloc[0]
    assert r["user:mlp16 seeds"] == r["user:mlp128 seeds"] == 3
    assert r["user:mlp16 mean"] == pytest.approx(va.mean(), abs=1e-3)  # in %, not a fraction
    assert r["user:mlp128 − user:mlp16"] == pytest.approx(vb.mean() - va.mean(), abs=1e-3)
    lo, hi = welch_ci(va, vb)
    assert (r["ci95_low"], r["ci95_high"]) == (pytest.approx(lo, abs=1e-3), pytest.approx(hi, abs=1e-3))
    assert lo < hi and f"[{lo:+.2f}, {hi:+.2f}]" in md
    # the sides follow the command line
    assert compare_main([str(b), str(a), "--by", "model", "--out", str(tmp_path / "rev")]) == 0
    assert (tmp_path / "rev" / "comparison.md").read_text().startswith("# user:mlp16 against user:mlp128")


def test_compare_one_run_a_side_gives_the_difference_without_an_interval_and_says_so(tmp_path):
    a, b, _ = own_models(tmp_path)
    frames = [load_runs(p / "runs.csv") for p in (a, b)]
    frames = [f[f["seed"] == 0] for f in frames]
    (cmp,) = compare_sides(frames, ["a", "b"], ("model",))
    r = cmp.table[cmp.table["metric"] == "test acc"].iloc[0]
    assert np.isnan(r["ci95_low"]) and not np.isnan(r["diff"])
    assert "one run each: no interval" in to_markdown(cmp, ["a", "b"])


def test_compare_your_model_against_a_suite_trained_erm_and_explain_when_nothing_matches(tmp_path):
    a, _, _ = own_models(tmp_path)
    quick, own = _reference("quick-3seeds"), load_runs(a / "runs.csv")
    # by model alone: the suite's side holds ERM and mixup, the other 'external': nothing matches, and why
    (cmp,) = compare_sides([quick, own], ["quick-3seeds", "mine"], ("model",))
    assert cmp.table.empty
    md = to_markdown(cmp, ["quick-3seeds", "mine"])
    assert "they differ in method: erm / mixup in cnn, external in user:mlp16" in md and "--by model,method" in md
    # by model and method: my model against the suite's ERM, at the noise both have, recipe differences listed
    cmps = compare_sides([quick, own], ["quick-3seeds", "mine"], ("model", "method"))
    mine = next(c for c in cmps if c.other == "user:mlp16, external")
    assert mine.base == "cnn, erm" and mine.keys == ["noise"] and mine.only_base == ["noise 0.4"]
    assert set(mine.table["metric"]) >= {"test acc", "pgd 8/255 acc"}


def test_compare_names_the_hidden_fields_that_differ(tmp_path):
    quick, methods = _reference("quick-3seeds"), _reference("methods-cpu")
    (strict,) = compare_sides([quick, methods], ["quick-3seeds", "methods-cpu"], strict=True)
    assert strict.table.empty
    assert "eval_every: 5 in quick-3seeds, 0 in methods-cpu" in strict.why_none
    assert "surrogate_seed: none in quick-3seeds, 100 in methods-cpu" in strict.why_none
    assert "ERM, noise 0, eval_every 5, surrogate_seed none" in strict.only_base
    # by default those fields are listed as what differs, and the same configurations are compared
    (cmp,) = compare_sides([quick, methods], ["quick-3seeds", "methods-cpu"])
    assert cmp.differs == {"eval_every": ("5", "0"), "surrogate_seed": ("none", "100")}
    assert "eval_every 5 (quick-3seeds) against 0 (methods-cpu)" in to_markdown(cmp, ["q", "m"])
    erm = cmp.table[(cmp.table["config"] == "ERM, noise 0") & (cmp.table["metric"] == "test acc")].iloc[0]
    assert erm["diff"] == pytest.approx(0.0, abs=1e-9)  # same recipe and seeds: the same runs
    assert "ERM, noise 0" not in cmp.only_other and "CutMix (α=1), noise 0" in cmp.only_other
    assert compare_main([str(REFERENCE / "quick"), "--by", "model", "--out", str(tmp_path)]) == 2


# ------------------------------------------------------------------------------------- leaderboard export
# the keys of RobustBench's model_info/<dataset>/<threat model>/*.json files (e.g. cifar10/Linf/Standard.json,
# cifar10/corruptions/Hendrycks2020AugMixWRN.json) that an entry here shares, spelled as there
ROBUSTBENCH_KEYS = {"name", "dataset", "architecture", "eps", "clean_acc", "autoattack_acc", "corruptions_acc",
                    "additional_data", "number_forward_passes", "footnote"}


def test_leaderboard_entry_of_a_suite_run_names_its_attack_and_test_examples(tmp_path, capsys):
    from robustbench_mix.cli.leaderboard import main as leaderboard_main
    from robustbench_mix.data.sources import load_digits

    df = _reference("quick")
    erm = df[(df["method"] == "erm") & (df["noise"] == 0)]
    rid = erm["run_id"].iloc[0]
    assert leaderboard_main([str(REFERENCE / "quick"), "--run", rid, "--out", str(tmp_path / "e.json")]) == 0
    e = json.loads((tmp_path / "e.json").read_text())
    assert set(e) & ROBUSTBENCH_KEYS == {"name", "dataset", "architecture", "eps", "clean_acc", "additional_data",
                                         "number_forward_passes", "footnote"}
    final = erm[erm["epoch"] == erm["epochs"]]
    assert e["dataset"] == "digits" and e["threat_model"] == "Linf" and e["eps"] == "8/255"
    assert e["clean_acc"] == f"{100 * _per_seed(final)[0]:.2f}"
    assert e["robust_acc"] == f"{100 * _per_seed(final, 'acc', 'worst', round(8 / 255, 6))[0]:.2f}"
    assert "autoattack_acc" not in e and "not AutoAttack" in e["footnote"]
    assert e["robust_attack"].startswith("per-example worst case over fgsm, pgd (10 steps")
    assert e["n_examples"] == len(load_digits(None).test_y) == 497
    assert "corruptions_acc" not in e and e["run_id"] == rid
    # several runs and no choice: refused, naming them; an epsilon not measured: refused
    assert leaderboard_main([str(REFERENCE / "quick")]) == 2
    assert "choose one with --run" in capsys.readouterr().err
    assert leaderboard_main([str(REFERENCE / "quick"), "--run", rid, "--eps", "4/255"]) == 2
    assert "eps 4/255 was not measured" in capsys.readouterr().err


def test_leaderboard_entry_with_autoattack_and_corruptions_uses_robustbenchs_fields():
    from robustbench_mix.reports.leaderboard import entry

    exp = Experiment(preset="api", model="user:net", method="external", epochs=0, attacks=("pgd", "autoattack"),
                     eps=(8.0,), attack_samples=100, corruptions=("gaussian_noise",))
    e8 = round(8 / 255, 6)
    rows = [{"epoch": 0, "split": "test", "attack": a, "eps": eps, "metric": "acc", "value": v}
            for a, eps, v in (("none", 0.0, 0.9), ("pgd", e8, 0.5), ("autoattack", e8, 0.4), ("worst", e8, 0.4),
                              ("corrupt:mean", 0.0, 0.7))]
    e = entry(to_frame(exp, rows, device="cpu", command="t", rev="r"), model="user:net")
    assert {"autoattack_acc", "corruptions_acc"} <= set(e) and "robust_acc" not in e
    assert (e["clean_acc"], e["autoattack_acc"], e["corruptions_acc"]) == ("90.00", "40.00", "70.00")
    assert e["n_examples"] == 100 and "first 100 test images" in e["footnote"]
    assert "not the CIFAR-10-C files" in e["footnote"] and e["architecture"] == "user:net"


# ---------------------------------------------------- definitions checked against planted bugs (experiments/mutation)


# ------------------------------------------------------------------------------------------------ claims
def test_a_claim_with_several_recipes_uses_the_longest():
    """claims_shortest_recipe: runs of 60 and 200 epochs on a side are two recipes, never pooled as seeds; the
    longest is taken (here it holds the claim, the short one would go against it)."""
    df = pd.concat([runs(seeds(ERM, [0.945, 0.944, 0.946]) + seeds(MIXUP, [0.957, 0.958, 0.956])),
                    runs(seeds(ERM, [0.96, 0.961, 0.959]) + seeds(MIXUP, [0.90, 0.901, 0.899]), epochs=60)],
                   ignore_index=True)
    t = check_all(df)
    r = t[t["claim"] == GEN].iloc[0]
    assert r["ours_a"] == pytest.approx(5.5) and r["ours_b"] == pytest.approx(4.3)
    assert r["verdict"] == "reproduced" and "used the longest (200 epochs)" in r["note"]


# ---------------------------------------------------------------------------------------------- compare
def test_compare_std_is_the_sample_std_over_seeds():
    """compare_std_ddof0: the std beside each mean is over seeds with Bessel's correction (as claims' and the
    tables')."""
    from robustbench_mix.reports.compare import compare

    a = runs(seeds(ERM, [0.90, 0.91, 0.95]))
    b = runs(seeds(ERM, [0.80, 0.86]))
    table, _, _ = compare(a, b)
    row = table[table["metric"] == "test acc"].iloc[0]
    assert row["a_std"] == pytest.approx(np.std([0.90, 0.91, 0.95], ddof=1))
    assert row["b_std"] == pytest.approx(np.std([0.80, 0.86], ddof=1))


# ------------------------------------------------------------------------------------------------ claims
def test_reproduced_needs_both_numbers_within_the_tolerance():
    """claims_tolerance_or: ERM's error within a point of the paper's 5.53 but mixup's 3.0 against 4.24 is not
    the paper's result, only its direction."""
    df = runs(seeds(ERM, [0.945, 0.944, 0.946]) + seeds(MIXUP, [0.97, 0.971, 0.969]))
    t = check_all(df)
    r = t[t["claim"] == GEN].iloc[0]
    assert r["ours_a"] == pytest.approx(5.5) and r["ours_b"] == pytest.approx(3.0)
    assert r["verdict"] == "direction only" and "further than 1 points" in r["note"]
