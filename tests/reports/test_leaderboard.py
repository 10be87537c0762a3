"""The leaderboard entry as RobustBench's own code reads it: loaded and sorted beside a real model_info entry with
the logic of their ``robustbench/utils.py`` (``list_available_models``, ``get_key``, ``ACC_FIELDS``) and
``robustbench/leaderboard/template.py`` (``generate_leaderboard``), re-implemented here from their source."""

import json
from pathlib import Path

import pytest

from robustbench_mix.cli.leaderboard import main as leaderboard_main
from robustbench_mix.core.errors import UsageError
from robustbench_mix.experiment.experiment import Experiment
from robustbench_mix.reports.leaderboard import entry
from robustbench_mix.store.schema import to_frame
from robustbench_mix.store.write import atomic_write_csv

# RobustBench's model_info/cifar10/Linf/Carmon2019Unlabeled.json, as in their repository
CARMON = {"link": "https://arxiv.org/abs/1905.13736", "name": "Unlabeled Data Improves Adversarial Robustness",
          "authors": "Yair Carmon, Aditi Raghunathan, Ludwig Schmidt, Percy Liang, John C. Duchi",
          "additional_data": True, "number_forward_passes": 1, "dataset": "cifar10", "venue": "NeurIPS 2019",
          "architecture": "WideResNet-28-10", "eps": "8/255", "clean_acc": "89.69", "reported": "62.5",
          "autoattack_acc": "59.53", "unreliable": False}
# their model_info/cifar10/L2/Augustin2020Adversarial.json
AUGUSTIN = {"link": "https://arxiv.org/abs/2003.09461", "name": "Adversarial Robustness on In- and "
            "Out-Distribution Improves Explainability", "authors": "Maximilian Augustin, Alexander Meinke, "
            "Matthias Hein", "additional_data": True, "number_forward_passes": 1, "dataset": "cifar10",
            "venue": "ECCV 2020", "architecture": "ResNet-50", "eps": "0.5", "clean_acc": "91.08", "reported": "73.27",
            "autoattack_acc": "72.91", "footnote": "Extra data used only as OOD dataset."}
DATASETS = ("cifar10", "cifar100", "imagenet")  # BenchmarkDataset
THREAT_MODELS = ("Linf", "L2", "corruptions", "corruptions_3d")  # ThreatModel
ACC_FIELDS = {"corruptions": "corruptions_acc", "corruptions_3d": "corruptions_acc_3d",
              "L2": ("external", "autoattack_acc"), "Linf": ("external", "autoattack_acc")}
E8 = round(8 / 255, 6)


def _get_key(x, keys):  # utils.get_key
    if isinstance(keys, str):
        return float(x[keys])
    for k in keys:
        if k in x.keys():
            return float(x[k])


def robustbench_reads(model_info: Path, dataset: str, threat_model: str) -> list[dict]:
    """utils.list_available_models' loading and sorting of model_info/<dataset>/<threat model>/*.json, with the
    fields its table prints, and generate_leaderboard's own sort."""
    assert dataset in DATASETS and threat_model in THREAT_MODELS  # BenchmarkDataset(...), ThreatModel(...)
    acc_field = ACC_FIELDS[threat_model]
    dicts = []
    for path in sorted((model_info / dataset / threat_model).glob("*.json")):
        d = json.loads(path.read_text())
        d["model_name"] = path.stem
        d["venue"] = "Unpublished" if d["venue"] == "" else d["venue"]
        if isinstance(acc_field, str):
            d[acc_field] = float(d[acc_field]) / 100
        else:
            for k in acc_field:
                if k in d.keys():
                    d[k] = float(d[k]) / 100
        d["clean_acc"] = float(d["clean_acc"]) / 100
        dicts.append(d)
    dicts = sorted(dicts, key=lambda d: -_get_key(d, acc_field))
    for d in dicts:  # the row each model gets in their README table
        "| {} | {} | [{}]({}) | {:.2%} | {:.2%} | {} | {} |".format(
            d["model_name"], d["model_name"], d["name"], d["link"], d["clean_acc"], _get_key(d, acc_field),
            d["architecture"], d["venue"])
    raw = [json.loads(p.read_text()) for p in (model_info / dataset / threat_model).glob("*.json")]
    raw.sort(key=lambda x: _get_key(x, acc_field), reverse=True)  # template.generate_leaderboard
    for m in raw:
        (m["link"], m["name"], m["clean_acc"], m.get("footnote"), m["architecture"], m["venue"])
    return dicts


def _write(model_info: Path, e: dict, name: str, threat: str) -> None:
    folder = model_info / e["dataset"] / threat
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.json").write_text(json.dumps(e))


def _rows(dataset="cifar10", attacks=("pgd",), l2=False, aa=False):
    exp = Experiment(preset="api", dataset=dataset, model="user:net", method="external", epochs=0, attacks=attacks,
                     eps=() if l2 else (8.0,), eps_l2=(0.5,) if l2 else (), attack_samples=0)
    worst, e = ("worst_l2", 0.5) if l2 else ("worst", E8)
    rows = [{"epoch": 0, "split": "test", "attack": "none", "eps": 0.0, "metric": "acc", "value": 0.9}]
    rows += [{"epoch": 0, "split": "test", "attack": a, "eps": e, "metric": "acc", "value": v}
             for a, v in zip(attacks, (0.5, 0.45), strict=False)]
    if len(attacks) > 1:
        rows.append({"epoch": 0, "split": "test", "attack": worst, "eps": e, "metric": "acc", "value": 0.44})
    return to_frame(exp, rows, device="cpu", command="t", rev="r")


@pytest.mark.parametrize("case", ["pgd only", "autoattack", "L2 pgd only"])
def test_an_entry_is_read_and_sorted_by_robustbenchs_code_beside_a_real_one(tmp_path, case):
    df = {"pgd only": lambda: _rows(), "autoattack": lambda: _rows(attacks=("pgd", "autoattack")),
          "L2 pgd only": lambda: _rows(attacks=("pgd_l2",), l2=True)}[case]()
    e = entry(df)
    for key in ("link", "name", "authors", "venue", "reported", "dataset", "eps", "clean_acc", "architecture",
                "additional_data", "number_forward_passes", "footnote"):
        assert key in e, key  # the fields every one of their files carries
    threat = "L2" if case.startswith("L2") else "Linf"
    assert e["threat_model"] == threat and e["eps"] == ("0.5" if threat == "L2" else "8/255")
    real = AUGUSTIN if threat == "L2" else CARMON
    _write(tmp_path, real, "Real", threat)
    _write(tmp_path, e, "Ours", e["threat_model"])
    got = robustbench_reads(tmp_path, "cifar10", threat)
    assert [d["model_name"] for d in got] == ["Real", "Ours"]  # ours (at most 50%) below the real entry
    ours = got[1]
    assert ours["venue"] == "Unpublished" and ours["clean_acc"] == pytest.approx(0.9)
    if case == "autoattack":
        assert ours["autoattack_acc"] == pytest.approx(0.45) and "external" not in ours
    else:  # not passed off as AutoAttack: their fallback field, and the footnote says which attack
        assert "autoattack_acc" not in ours and ours["external"] == pytest.approx(0.5)
        assert "not AutoAttack" in ours["footnote"]


def test_an_image_folder_is_cifar10_only_when_stated_and_never_a_local_path(tmp_path, capsys):
    df = _rows(dataset="imagefolder:/home/someone/data/c10-jpeg")
    with pytest.raises(UsageError, match="imagefolder:c10-jpeg is not one of RobustBench's") as why:
        entry(df)
    assert "/home/someone" not in str(why.value) and "--dataset NAME" in str(why.value)
    e = entry(df, dataset="cifar10")
    assert e["dataset"] == "cifar10" and "imagefolder:c10-jpeg" in e["footnote"] and "stated" in e["footnote"]
    assert "/home/someone" not in json.dumps(e)
    with pytest.raises(UsageError, match="'mnist' is not one of RobustBench's"):
        entry(df, dataset="mnist")
    with pytest.raises(UsageError, match="digits is not one of RobustBench's"):
        entry(_rows(dataset="digits"))
    with pytest.raises(UsageError, match="the run was evaluated on cifar10"):
        entry(_rows(), dataset="cifar100")
    # the command: exit 2 and one error line; with --dataset the entry is written
    (tmp_path / "r").mkdir()
    atomic_write_csv(df, tmp_path / "r" / "runs.csv")
    assert leaderboard_main([str(tmp_path / "r")]) == 2
    assert "say which with --dataset NAME" in capsys.readouterr().err
    assert leaderboard_main([str(tmp_path / "r"), "--dataset", "cifar10", "--out", str(tmp_path / "e.json")]) == 0
    assert json.loads((tmp_path / "e.json").read_text())["dataset"] == "cifar10"


def test_an_l2_entry_needs_a_measured_radius(tmp_path, capsys):
    df = _rows(attacks=("pgd", "pgd_l2"))
    with pytest.raises(UsageError, match="L2 radius 0.25 was not measured"):
        entry(df.assign(config=df["config"].str.replace('"eps_l2":[]', '"eps_l2":[0.5]')), eps_l2=0.25)
    (tmp_path / "r").mkdir()
    atomic_write_csv(df, tmp_path / "r" / "runs.csv")
    assert leaderboard_main([str(tmp_path / "r"), "--eps-l2", "half"]) == 2
    assert "--eps-l2 'half' is not a number" in capsys.readouterr().err
