import subprocess
import sys
from dataclasses import replace

import pytest

from robustbench_mix.core.errors import UsageError
from robustbench_mix.core.units import parse_eps
from robustbench_mix.experiment.experiment import Experiment
from robustbench_mix.experiment.grids import Suite, Variant
from robustbench_mix.experiment.presets import PRESETS, get_preset
from robustbench_mix.experiment.validation import validate


def test_run_id_is_stable_across_processes_and_releases():
    # A changed id would orphan every results file: change this literal only with a migration.
    assert Experiment().run_id == "906890eb3d"
    out = subprocess.run([sys.executable, "-c", "from robustbench_mix.experiment.experiment import Experiment;"
                          "print(Experiment(method='mixup', alpha=1.0).run_id)"],
                         capture_output=True, text=True, check=True).stdout.strip()
    assert out == Experiment(method="mixup", alpha=1.0).run_id


def test_fields_added_later_keep_old_run_ids_at_their_default():
    from robustbench_mix.experiment.experiment import ADDED_FIELDS

    assert "attack_precision" in ADDED_FIELDS
    assert Experiment(attack_precision="fp32").run_id == Experiment().run_id == "906890eb3d"
    assert Experiment(attack_precision="bf16").run_id != Experiment().run_id


def test_run_id_changes_with_every_result_affecting_field():
    base = Experiment()
    changed = [replace(base, lr=0.2), replace(base, seed=1), replace(base, noise=0.2),
               replace(base, eps=(8.0,)), replace(base, alpha=1.0), replace(base, dropout=0.5),
               replace(base, attack_steps=20), replace(base, epochs=31)]
    ids = {e.run_id for e in changed} | {base.run_id}
    assert len(ids) == len(changed) + 1
    # where a run happens and under which label is not part of what it computes
    assert replace(base, preset="other", device="cpu").run_id == base.run_id


def test_experiment_round_trips_through_json():
    e = Experiment(method="mixup", alpha=8.0, eps=(2.0, 8.0), attacks=("fgsm",), attack_step_size=1.0)
    assert Experiment.from_json(e.to_json()) == e


@pytest.mark.parametrize("text,expected", [("2/255,8/255", (2.0, 8.0)), ("8", (8.0,)), (" 0, 4/255 ", (0.0, 4.0))])
def test_eps_are_parsed_in_255_units(text, expected):
    assert parse_eps(text) == expected


@pytest.mark.parametrize("text", ["8/256", "eight", ""])
def test_bad_eps_text_is_rejected(text):
    with pytest.raises(UsageError):
        parse_eps(text)


@pytest.mark.parametrize("field,value,message", [
    ("alpha", -1.0, "alpha -1.0 is negative"),
    ("noise", 1.0, r"noise 1.0 is outside \[0, 1\)"),
    ("noise", -0.1, "noise -0.1 is outside"),
    ("eps", (-1.0,), "epsilon -1/255 is outside"),
    ("eps", (300.0,), "epsilon 300/255 is outside"),
    ("attack_steps", 0, "attack steps 0 must be at least 1"),
    ("model", "cnnn", "unknown model 'cnnn'; known: .*(did you mean 'cnn'\\?)"),
    ("method", "mixpu", "unknown method 'mixpu'; known: cutmix, erm, external, label_smoothing, manifold_mixup, mixup, "
                        "mixup_at, pgd_at, trades .did you mean 'mixup'"),
    ("attacks", ("pgdd",), "unknown attack 'pgdd'.*did you mean 'pgd'"),
    ("schedule", "linear", "unknown schedule 'linear'; known: step, cosine, constant"),
    ("device", "tpu", "device 'tpu' is not one of"),
])
def test_validation_names_bad_value_and_what_is_allowed(field, value, message):
    with pytest.raises(UsageError, match=message):
        validate(replace(Experiment(), **{field: value}))


def test_unknown_preset_suggests_the_closest():
    with pytest.raises(UsageError, match="unknown preset 'quik'.*did you mean 'quick'"):
        get_preset("quik")


def test_suite_expands_variants_noise_and_seeds():
    s = Suite("t", "", Experiment(), (Variant("erm", alpha=5.0), Variant("mixup", 1.0)), noise=(0.0, 0.4),
              seeds=(0, 1, 2))
    runs = s.expand()
    assert len(runs) == 12 and len({r.run_id for r in runs}) == 12
    assert {r.alpha for r in runs if r.method == "erm"} == {0.0}  # alpha means nothing to ERM
    assert all(r.preset == "t" for r in runs)
    with pytest.raises(UsageError, match="seed list is empty"):
        replace(s, seeds=()).expand()


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_preset_expands_to_valid_distinct_runs_with_known_tables(name):
    from robustbench_mix.reports.tables import TABLES

    runs = PRESETS[name].expand()
    assert runs and len({r.run_id for r in runs}) == len(runs)
    for r in runs:
        validate(r)
        assert r.preset == name
    assert all(t in TABLES for t in PRESETS[name].tables)


# ----------------------------------------------------------------------- one value, one spelling, one run
def _dry_run_ids(tmp_path, capsys, args) -> list[str]:
    import re

    from robustbench_mix.cli.suite import main

    assert main(["--out", str(tmp_path / "dry"), "--dry-run", "--seeds", "0", "--noise", "0", *args]) == 0
    return re.findall(r"^\s+([0-9a-f]{10})\s", capsys.readouterr().out, re.M)


@pytest.mark.parametrize("zero,minus_zero", [
    (["--methods", "label_smoothing:0"], ["--methods", "label_smoothing:-0"]),
    (["--methods", "mixup:0"], ["--methods", "mixup:-0"]),
    (["--methods", "mixup", "--alpha", "0"], ["--methods", "mixup", "--alpha", "-0"]),
    (["--methods", "cutmix:1:prob=0"], ["--methods", "cutmix:1:prob=-0"]),
    (["--methods", "erm", "--dropout", "0"], ["--methods", "erm", "--dropout", "-0"]),
    (["--methods", "erm", "--noise", "0"], ["--methods", "erm", "--noise", "-0"]),
    (["--attacks", "pgd_l2", "--eps-l2", "0,0.5"], ["--attacks", "pgd_l2", "--eps-l2=-0,0.5"]),
    (["--eps", "0,8"], ["--eps=-0,8"]),
])
def test_minus_zero_is_the_run_at_zero(tmp_path, capsys, zero, minus_zero):
    """-0 equals 0 but hashed as other text: `label_smoothing:-0` after `:0` trained a second identical run."""
    ids = _dry_run_ids(tmp_path, capsys, zero)
    assert ids and _dry_run_ids(tmp_path, capsys, minus_zero) == ids


def test_minus_zero_in_the_python_api_is_zero():
    from robustbench_mix.core.units import eps_from_fraction

    assert str(eps_from_fraction(-0.0)) == "0.0"
    assert Experiment(method="mixup", alpha=-0.0, eps=(-0.0, 8.0), noise=-0.0).run_id == \
        Experiment(method="mixup", alpha=0.0, eps=(0.0, 8.0), noise=0.0).run_id
    assert Experiment(method="cutmix", alpha=1.0, method_options="prob=-0").method_options == "prob=0.0"


@pytest.mark.parametrize("repeated,once", [
    (["--attacks", "pgd_l2,pgd_l2", "--eps-l2", "0.5"], ["--attacks", "pgd_l2", "--eps-l2", "0.5"]),
    (["--attacks", "pgd_l2", "--eps-l2", "0.5,0.5"], ["--attacks", "pgd_l2", "--eps-l2", "0.5"]),
    (["--eps", "8,8/255", "--surrogate-seed", "100"], ["--eps", "8", "--surrogate-seed", "100"]),
    (["--corruptions", "all,contrast"], ["--corruptions", "all"]),
])
def test_a_list_that_names_a_value_twice_means_it_once(tmp_path, capsys, repeated, once):
    """A repeated attack or radius wrote rows under one key twice and made runs.csv unreadable to every command;
    the lists merge repeats (after unit conversion: 8 and 8/255), as --methods and --corruptions do."""
    ids = _dry_run_ids(tmp_path, capsys, once)
    assert ids and _dry_run_ids(tmp_path, capsys, repeated) == ids


@pytest.mark.parametrize("fields,message", [
    ({"attacks": ("pgd", "pgd")}, "attack pgd is listed twice"),
    ({"eps": (8.0, 8.0)}, "epsilon 8/255 is listed twice"),
    ({"eps": (8.0, 8.00001)}, r"epsilons 8/255 and 8.00001/255 are one value in runs.csv, which records both as "
                              r"8/255 \(eps 0.031373\)"),
    ({"attacks": ("pgd_l2",), "eps_l2": (0.5, 0.5)}, "L2 radius 0.5 is listed twice"),
    ({"attacks": ("pgd_l2",), "eps_l2": (1.234568, 1.234571)}, "L2 radii 1.234568 and 1.234571 are one value"),
    ({"corruptions": ("contrast", "contrast")}, "corruption contrast is listed twice"),
])
def test_an_experiment_that_would_write_one_key_twice_is_refused(fields, message):
    with pytest.raises(UsageError, match=message):
        validate(Experiment(**fields))
