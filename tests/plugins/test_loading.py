"""Loading plugins: a file, a module, the environment variable and entry points on every command; bad plugins
exit 2 with one line naming the plugin and the problem before any data are loaded."""

import importlib.metadata
import os
import sys

import pytest

from robustbench_mix.cli.compare import main as compare
from robustbench_mix.cli.suite import main as suite
from robustbench_mix.core.errors import UsageError
from robustbench_mix.methods import METHODS
from robustbench_mix.models.base import MODELS
from robustbench_mix.plugins import GROUP, load_plugins, loading

DRY = ["--seeds", "0", "--noise", "0", "--epochs", "1", "--dry-run", "--no-progress"]


def test_the_suite_help_lists_the_plugin_entries(write_plugin, capsys):
    with pytest.raises(SystemExit) as e:
        suite(["--plugin", str(write_plugin()), "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "my_net (plugin my_plugin.py)" in out and "my_fgsm (plugin my_plugin.py)" in out
    assert "my_mix[:α]  [α=1]  (plugin my_plugin.py)" in out and "--plugin PATH.py|MODULE" in out


def test_an_unknown_name_lists_the_plugin_entries(write_plugin, tmp_path, capsys):
    assert suite(["--plugin", str(write_plugin()), "--methods", "my_mixx", "--out", str(tmp_path / "o"), *DRY]) == 2
    err = capsys.readouterr().err
    assert "unknown method 'my_mixx'" in err and "did you mean 'my_mix'" in err
    assert "from plugins: my_mix (plugin my_plugin.py)" in err


def test_a_file_a_module_and_the_environment_variable_are_loaded(write_plugin, tmp_path, monkeypatch, capsys):
    mod = tmp_path / "mods" / "other_plugin.py"
    mod.parent.mkdir()
    mod.write_text("import robustbench_mix as rbm\n\n\n@rbm.register_method('other_erm')\n"
                   "def other_erm(model, x, y, num_classes, alpha, generator):\n"
                   "    return __import__('torch').nn.functional.cross_entropy(model(x), y)\n")
    monkeypatch.syspath_prepend(str(mod.parent))
    monkeypatch.setenv("ROBUSTBENCH_MIX_PLUGINS", f"{write_plugin()}{os.pathsep}other_plugin")
    assert suite(["--methods", "my_mix,other_erm", "--model", "my_net", "--out", str(tmp_path / "o"), *DRY]) == 0
    assert "my_mix" in METHODS and "other_erm" in METHODS and METHODS.origin("other_erm").module == "other_plugin"
    sys.modules.pop("other_plugin", None)


def test_an_installed_packages_entry_point_is_loaded(tmp_path, monkeypatch):
    (tmp_path / "ep_plugin.py").write_text("import robustbench_mix as rbm\n\n\n@rbm.register_model('ep_net')\n"
                                           "def ep_net(num_classes, in_shape):\n"
                                           "    return __import__('torch').nn.Flatten()\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    ep = importlib.metadata.EntryPoint(name="mine", value="ep_plugin", group=GROUP)
    monkeypatch.setattr(loading, "_entry_points", lambda: [ep])
    load_plugins([])
    assert MODELS.origin("ep_net").module == "ep_plugin"
    sys.modules.pop("ep_plugin", None)


BAD = {
    "missing": (None, "plugin {path}: no such file"),
    "syntax": ("def f(:\n    pass\n", "plugin bad.py: syntax error at line 1"),
    "import": ("import no_such_module_here\n", "plugin bad.py: import error: No module named 'no_such_module_here' "
               "(at bad.py:1)"),
    "trait": ("import robustbench_mix as rbm\n\n\n@rbm.register_attack('x', norm='L3')\n"
              "def x(model, x, y, eps, steps, step_size):\n    return x\n",
              "plugin bad.py: attack 'x': norm='L3' is not one of Linf, L2"),
    "shadow": ("import robustbench_mix as rbm\n\n\n@rbm.register_method('mixup')\n"
               "def mixup(model, x, y, num_classes, alpha, generator):\n    return 0\n",
               "plugin bad.py: method 'mixup' is already a built-in method"),
    "raises": ("raise RuntimeError('no GPU here')\n", "plugin bad.py: RuntimeError while importing it: no GPU here"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_a_bad_plugin_exits_2_with_one_line_before_any_data(case, tmp_path, monkeypatch, capsys):
    import robustbench_mix.execution.grid as grid

    monkeypatch.setattr(grid, "load", lambda *a, **k: pytest.fail("data loaded"))
    text, says = BAD[case]
    path = tmp_path / "bad.py"
    if text is not None:
        path.write_text(text)
    for command, args in ((suite, ["--out", str(tmp_path / "o"), "--seeds", "0", "--no-progress"]),
                          (compare, [str(tmp_path), str(tmp_path)])):
        assert command(["--plugin", str(path), *args]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("error: "), err
        assert says.format(path=path) in err, err
    assert "mixup" in METHODS and METHODS.origin("mixup") is None and "x" not in METHODS


def test_names_may_not_shadow_another_plugins_and_a_failed_plugin_leaves_nothing(write_plugin):
    load_plugins([str(write_plugin())])
    second = write_plugin("import robustbench_mix as rbm\n\n\n@rbm.register_model('fine_net')\n"
                          "def fine_net(num_classes, in_shape):\n    return None\n\n\n"
                          "@rbm.register_model('my_net')\ndef my_net(num_classes, in_shape):\n    return None\n",
                          name="second.py")
    with pytest.raises(UsageError, match=r"plugin second.py: model 'my_net' is already plugin my_plugin.py's model"):
        load_plugins([str(second)])
    assert "fine_net" not in MODELS and MODELS.origin("my_net").module == "my_plugin.py"


def test_a_module_that_is_not_importable_is_named():
    with pytest.raises(UsageError, match=r"plugin no_such_pkg.mod: no module named 'no_such_pkg' is importable"):
        load_plugins(["no_such_pkg.mod"])
