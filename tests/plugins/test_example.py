"""The RegMixup example: its committed rows are those of the file as it is (a rerun of its command skips all 18),
they load without the plugin, and the plugin passes the contract command."""

import re
import shutil
from pathlib import Path

from robustbench_mix.cli.check import main as check
from robustbench_mix.cli.suite import main as suite
from robustbench_mix.store.load import load_results

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "plugins"


def test_the_committed_rows_are_the_files_and_a_rerun_skips_them(tmp_path, capsys):
    out = tmp_path / "results"
    out.mkdir()
    shutil.copy(EXAMPLE / "results" / "runs.csv", out / "runs.csv")
    assert suite(["--plugin", str(EXAMPLE / "regmixup.py"), "--methods", "erm,mixup,regmixup", "--seeds", "0,1,2",
                  "--out", str(out), "--dry-run"]) == 0
    listed = re.findall(r"^\s+[0-9a-f]{10}\s+(\w+)", capsys.readouterr().out, re.M)
    assert listed == ["finished"] * 18, "regmixup.py changed since its rows were committed: rerun the README's command"


def test_the_committed_rows_load_without_the_plugin_and_say_which_made_them(capsys):
    df = load_results(EXAMPLE / "results")
    assert set(df["method"]) == {"erm", "mixup", "regmixup"} and df["run_id"].nunique() == 18
    assert "the rows of method regmixup were made by plugin regmixup.py@" in capsys.readouterr().err


def test_the_example_passes_the_contract_command(capsys):
    assert check(["--plugin", str(EXAMPLE / "regmixup.py")]) == 0
    assert "ok   method regmixup (plugin regmixup.py)" in capsys.readouterr().out
