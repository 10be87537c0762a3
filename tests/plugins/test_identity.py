"""A plugin entry's run id holds a fingerprint of its definition: an edited function gets a new id, an unchanged
file keeps it (in another process too), two files defining one name never share an id; built-in ids stay."""

import hashlib
import re
import subprocess
import sys
from pathlib import Path

from plugin_text import PLUGIN

from robustbench_mix.execution.preflight import with_surrogates
from robustbench_mix.experiment.experiment import Experiment
from robustbench_mix.experiment.presets import get_preset
from robustbench_mix.plugins import load_plugins, unload_all

ROOT = Path(__file__).resolve().parents[2]


def run_id(path, **fields) -> str:
    load_plugins([str(path)])
    return Experiment(method="my_mix", alpha=1.0, model="my_net", attacks=("my_fgsm",), **fields).run_id


def test_an_edited_function_changes_the_run_id_and_an_unchanged_file_keeps_it(write_plugin):
    path = write_plugin()
    first = run_id(path)
    unload_all()
    assert run_id(path) == first  # the same file loaded again
    path.write_text(PLUGIN.replace("lam * F.cross_entropy(out, y)", "lam * F.cross_entropy(out, y) * 1.0"))
    edited = run_id(path)  # the changed file replaces its entries in the same process
    assert edited != first
    path.write_text(PLUGIN)
    assert run_id(path) == first


def test_each_entry_a_run_uses_is_fingerprinted(write_plugin):
    path = write_plugin()
    load_plugins([str(path)])
    exp = Experiment(method="my_mix", alpha=1.0, model="my_net", attacks=("fgsm", "my_fgsm"))
    kinds = dict(p.split("=")[0].split(":") for p in exp.plugins.split(";"))
    assert kinds == {"attack": "my_fgsm", "method": "my_mix", "model": "my_net"}
    assert re.fullmatch(r"(\w+:\w+=my_plugin\.py@[0-9a-f]{12};?){3}", exp.plugins)
    assert '"plugins":"attack:my_fgsm=my_plugin.py@' in exp.to_json()  # so a runs.csv row says what ran
    assert Experiment(model="my_net").run_id != Experiment(model="my_net", attacks=("my_fgsm",)).run_id


def test_two_files_defining_the_same_name_never_share_a_run(write_plugin, tmp_path):
    a = run_id(write_plugin())
    unload_all()
    other = tmp_path / "elsewhere"
    other.mkdir()
    b_path = other / "my_plugin.py"
    b_path.write_text(PLUGIN.replace("nn.Linear(c * h * w, 32)", "nn.Linear(c * h * w, 33)"))
    assert run_id(b_path) != a


def test_the_id_is_the_same_in_another_process(write_plugin, tmp_path):
    path = write_plugin()
    load_plugins([str(path)])
    out = subprocess.run([sys.executable, "-m", "robustbench_mix.suite", "--plugin", str(path), "--methods",
                          "my_mix", "--model", "my_net", "--seeds", "0", "--noise", "0", "--epochs", "1", "--dry-run",
                          "--out", str(tmp_path / "o")], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    listed = re.findall(r"^\s+([0-9a-f]{10})\s+new", out, re.M)
    assert len(listed) == 1
    base = get_preset("quick").base.__dict__
    assert listed[0] == Experiment(**{**base, "method": "my_mix", "alpha": 1.0, "model": "my_net", "seed": 0,
                                      "epochs": 1, "noise": 0.0}).run_id


def test_built_in_run_ids_do_not_change():
    """The ids of the committed presets' runs before plugins existed (robust-cpu's 16, quick's 4)."""
    def digest(preset):
        ids = [r.run_id for r in with_surrogates(get_preset(preset).expand())]
        return len(ids), hashlib.sha256(",".join(ids).encode()).hexdigest()[:16]

    assert Experiment().run_id == "906890eb3d" and Experiment().plugins == ""
    assert digest("robust-cpu") == (16, "b5d56fc1f576daf2")
    assert digest("quick") == (4, "ea9316b7a00a9e32")
