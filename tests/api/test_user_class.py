"""The checkpoint command on a user's own class (``--model module:Class`` / ``file.py:Class``, ``--model-kwargs``,
``--normalize``): the same rows as ``evaluate()`` of that model, every test image by default, clear refusals."""

import json
import textwrap

import numpy as np
import pytest
import torch

import robustbench_mix as rbm
from robustbench_mix.cli.checkpoint import main as checkpoint_main
from robustbench_mix.store.load import load_runs

NETS = textwrap.dedent("""
    import torch

    class Net(torch.nn.Module):
        def __init__(self, width=8, classes=10):
            super().__init__()
            self.body = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, width), torch.nn.ReLU(),
                                            torch.nn.Linear(width, classes))

        def forward(self, x):
            return self.body(x)

    class Broken(torch.nn.Module):
        def __init__(self):
            raise ValueError("needs a config file")

    NOT_A_CLASS = 3
""")
FLAGS = ["--dataset", "digits", "--attacks", "fgsm", "--eps", "8", "--no-progress"]


@pytest.fixture
def own(tmp_path):
    (tmp_path / "mynets.py").write_text(NETS)
    ns: dict = {}
    exec(NETS, ns)
    torch.manual_seed(0)
    model = ns["Net"](width=16)
    torch.save(model.state_dict(), tmp_path / "own.pt")
    return tmp_path, model


def test_a_users_class_from_a_file_is_evaluated_as_evaluate_would(own, capsys):
    tmp, model = own
    out = tmp / "o"
    argv = [str(tmp / "own.pt"), "--model", f"{tmp / 'mynets.py'}:Net", "--model-kwargs", '{"width": 16}',
            "--normalize", "0.5,0.25", *FLAGS, "--out", str(out)]
    assert checkpoint_main(argv) == 0, capsys.readouterr().err
    rows = load_runs(out / "runs.csv")
    assert set(rows["model"]) == {"user:mynets.Net"} and set(rows["method"]) == {"external"}
    api = rbm.evaluate(model.eval(), "digits", attacks=("fgsm",), eps=(8 / 255,), normalize=(0.5, 0.25), progress=False)
    keys = ["split", "attack", "eps", "metric"]
    both = api.merge(rows, on=keys, suffixes=("_api", "_cmd"))
    both = both[both["metric"] != "rows_in_run"]
    assert len(both) > 10 and (both["attack"] == "fgsm").any()
    np.testing.assert_allclose(both["value_api"], both["value_cmd"], rtol=1e-5, atol=1e-6)  # CSV: 6 digits
    # the default --attack-samples is the suite's and the API's: every test image (497 digits), not 1,000
    attacked = rows[rows["attack"] == "fgsm"]
    assert set(attacked["n_eval"]) == {497} == set(api[api["attack"] == "fgsm"]["n_eval"])
    assert json.loads(rows["config"].iloc[0])["attack_samples"] == 0
    # the summary shows each kind of sanity check, passed or failed, not only a count of failures
    assert "| check | passed | failed | nothing to compare |" in (out / "summary.md").read_text()
    assert "| in_ball | 1 | 0 | 0 |" in (out / "summary.md").read_text()


def test_a_module_path_and_another_normalization_are_another_run(own, monkeypatch):
    tmp, _ = own
    monkeypatch.syspath_prepend(str(tmp))
    out = tmp / "o"
    for norm in ("0.5,0.25", "none"):
        assert checkpoint_main([str(tmp / "own.pt"), "--model", "mynets:Net", "--model-kwargs", '{"width": 16}',
                                "--normalize", norm, *FLAGS, "--out", str(out)]) == 0
    rows = load_runs(out / "runs.csv")
    assert rows["run_id"].nunique() == 2  # the normalization is part of what was evaluated
    acc = rows[(rows["attack"] == "none") & (rows["metric"] == "acc") & (rows["split"] == "test")]["value"]
    assert acc.nunique() == 2


@pytest.mark.parametrize("model, extra, says", [
    ("nosuchmodule_xyz:Net", ["--normalize", "none"], "no module named 'nosuchmodule_xyz'"),
    ("FILE:Nett", ["--normalize", "none"], "has no 'Nett'; its torch.nn.Module classes: Broken, Net"),
    ("FILE:NOT_A_CLASS", ["--normalize", "none"], "NOT_A_CLASS is a int, not a torch.nn.Module class"),
    ("FILE:Net", ["--normalize", "none", "--model-kwargs", "{width: 16}"], "--model-kwargs '{width: 16}' is not"),
    ("FILE:Net", ["--normalize", "none", "--model-kwargs", "[16]"], "is a JSON list, not an object"),
    ("FILE:Net", ["--normalize", "none", "--model-kwargs", '{"depth": 3}'],
     "Net(...) raised TypeError: Net.__init__() got an unexpected keyword argument 'depth'"),
    ("FILE:Broken", ["--normalize", "none"], "Broken(...) raised ValueError: needs a config file"),
    ("FILE:Net", [], "needs its input normalization stated: --normalize mean,std"),
    ("FILE:Net", ["--normalize", "0.5"], "--normalize '0.5' has 1 number(s)"),
    ("FILE:Net", ["--normalize", "0.5,0"], "stds finite and positive"),
    ("FILE:Net", ["--normalize", "none"],
     "does not fit model user:mynets.Net for digits (3 shape(s) differ, first 'body.1.weight': (16, 64) in the file"),
    ("cnn", ["--normalize", "none"], "--normalize is for your own class"),
    ("missing.py:Net", ["--normalize", "none"], "missing.py is not a file"),
])
def test_a_bad_module_class_kwargs_or_normalization_is_refused(own, capsys, model, extra, says):
    tmp, _ = own
    model = model.replace("FILE", str(tmp / "mynets.py"))
    code = checkpoint_main([str(tmp / "own.pt"), "--model", model, *extra, *FLAGS, "--out", str(tmp / "o")])
    err = capsys.readouterr().err
    assert code == 2 and says in err, err
    assert "Traceback" not in err and err.count("error:") == 1
    assert not (tmp / "o" / "runs.csv").exists()


def test_a_foreign_state_dict_under_a_suite_model_names_the_api_and_the_wrapper(own, capsys):
    tmp, _ = own
    assert checkpoint_main([str(tmp / "own.pt"), "--model", "cnn", *FLAGS, "--out", str(tmp / "o")]) == 2
    err = capsys.readouterr().err
    assert "torch.nn.Sequential(Normalize(mean, std), body)" in err
    assert "--model package.module:Class" in err and "robustbench_mix.evaluate(model, data, normalize=" in err
