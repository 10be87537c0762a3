"""The one error handler, ``cli.common.handled``: a path, folder or results file that a command cannot use is one
``error:`` line and exit 2 (bad input), never a traceback; a machine's state (a full disk) stays exit 1."""

import errno

import pytest

from robustbench_mix.cli.claims import main as claims_main
from robustbench_mix.cli.common import EXIT_FAILED, EXIT_USAGE, handled
from robustbench_mix.cli.compare import main as compare_main
from robustbench_mix.cli.leaderboard import main as leaderboard_main
from robustbench_mix.cli.report import main as report_main
from robustbench_mix.cli.suite import main as suite_main
from robustbench_mix.experiment.experiment import Experiment
from robustbench_mix.store.schema import to_frame
from robustbench_mix.store.write import atomic_write_csv

E8 = round(8 / 255, 6)
EXP = Experiment(preset="api", dataset="cifar10", model="user:net", method="external", epochs=0, attacks=("pgd",),
                 eps=(8.0,))
ROWS = [{"epoch": 0, "split": "test", "attack": a, "eps": eps, "metric": m, "value": v}
        for a, eps, m, v in (("none", 0.0, "acc", 0.9), ("none", 0.0, "nll", 0.3), ("pgd", E8, "acc", 0.5),
                             ("pgd", E8, "box_violation", 0.0), ("check", E8, "check:in_ball:pgd", 1.0))]


def results(d, exp=EXP, rows=ROWS, header_only=False):
    frame = to_frame(exp, rows, device="cpu", command="t", rev="r")
    atomic_write_csv(frame.iloc[:0] if header_only else frame, d / "runs.csv")
    return str(d)


def one_error(capsys, *needles):
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    for n in needles:
        assert n in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def good(tmp_path):
    (tmp_path / "good").mkdir()
    return results(tmp_path / "good")


def _commands(tmp_path, good):
    return {"report": lambda r: report_main([r]), "leaderboard": lambda r: leaderboard_main([r]),
            "compare": lambda r: compare_main([r, good, "--out", str(tmp_path / "cmp")]),
            "claims": lambda r: claims_main([r])}


@pytest.mark.parametrize("command", ["report", "leaderboard", "compare", "claims"])
def test_a_directory_named_runs_csv_is_refused_by_every_reading_command(tmp_path, good, capsys, command):
    (tmp_path / "bad" / "runs.csv").mkdir(parents=True)
    assert _commands(tmp_path, good)[command](str(tmp_path / "bad")) == EXIT_USAGE
    one_error(capsys, "runs.csv is a directory, not a results file")


@pytest.mark.parametrize("command", ["report", "leaderboard", "compare", "claims"])
def test_a_header_only_runs_csv_is_refused_by_every_reading_command(tmp_path, good, capsys, command):
    (tmp_path / "bad").mkdir()
    results(tmp_path / "bad", header_only=True)
    assert _commands(tmp_path, good)[command](str(tmp_path / "bad")) == EXIT_USAGE
    one_error(capsys, "a header and no rows")


def test_the_suite_refuses_an_out_whose_runs_csv_is_a_directory(tmp_path, capsys):
    (tmp_path / "runs.csv").mkdir()
    assert suite_main(["--out", str(tmp_path), "--methods", "erm", "--noise", "0", "--epochs", "1", "--dry-run"]) == 2
    one_error(capsys, "runs.csv: cannot be read as a results file")


def test_a_header_only_runs_csv_is_an_empty_results_folder_to_the_suite(tmp_path, capsys):
    results(tmp_path, header_only=True)
    assert suite_main(["--out", str(tmp_path), "--methods", "erm", "--noise", "0", "--epochs", "1", "--dry-run"]) == 0
    assert " new " in capsys.readouterr().out


@pytest.mark.parametrize("case", ["diagnostic rows only", "no rows at the last epoch"])
def test_leaderboard_refuses_a_run_without_its_final_accuracies(tmp_path, capsys, case):
    if case == "diagnostic rows only":
        exp, rows = EXP, [r for r in ROWS if r["metric"] != "acc"]
    else:  # a run of 3 epochs whose rows are all at epoch 0
        exp, rows = Experiment(preset="api", model="user:net", method="external", epochs=3, attacks=("pgd",),
                               eps=(8.0,)), ROWS
    assert leaderboard_main([results(tmp_path, exp, rows)]) == EXIT_USAGE
    one_error(capsys, f"run {exp.run_id} has no final evaluation", f"at epoch {exp.epochs}")


def test_leaderboard_refuses_a_run_without_its_robust_accuracy(tmp_path, capsys):
    rows = [r for r in ROWS if not (r["attack"] == "pgd" and r["metric"] == "acc")]
    assert leaderboard_main([results(tmp_path, rows=rows)]) == EXIT_USAGE
    one_error(capsys, "no final test accuracy under pgd at eps 8/255")


def test_a_sound_entry_still_writes(tmp_path, good, capsys):
    assert leaderboard_main([good, "--out", str(tmp_path / "e.json")]) == 0
    assert '"robust_acc": "50.00"' in (tmp_path / "e.json").read_text()


@pytest.mark.parametrize("case", ["a directory", "under a file"])
def test_leaderboard_out_that_cannot_be_a_file_is_refused(tmp_path, good, capsys, case):
    (tmp_path / "d").mkdir()
    (tmp_path / "f").write_text("x")
    out = tmp_path / ("d" if case == "a directory" else "f/e.json")
    assert leaderboard_main([good, "--out", str(out)]) == EXIT_USAGE
    one_error(capsys, f"--out {str(out)!r}", "--out must be a file (not a directory)")
    assert (tmp_path / "f").read_text() == "x" and not list((tmp_path / "d").iterdir())


@pytest.mark.parametrize("command", ["compare", "claims"])
def test_an_out_directory_that_is_a_file_is_refused(tmp_path, good, capsys, command):
    (tmp_path / "f").write_text("x")
    (tmp_path / "other").mkdir()
    argv = [good, results(tmp_path / "other")] if command == "compare" else [good]
    main = compare_main if command == "compare" else claims_main
    assert main([*argv, "--out", str(tmp_path / "f")]) == EXIT_USAGE
    one_error(capsys, f"--out {str(tmp_path / 'f')!r}", "--out must be a directory that can be written")


def _raising(e):
    def body():
        raise e

    return body


@pytest.mark.parametrize("code,name,expected", [
    (errno.EACCES, "/x/out/f.csv", EXIT_USAGE),  # under the --out given
    (errno.EROFS, "/x/out", EXIT_USAGE),
    (errno.ENOTDIR, "/x", EXIT_USAGE),  # a folder above it
    (errno.EACCES, "/x/.e.json.host.12.abcd1234.tmp", EXIT_FAILED),  # a temporary, but not of --out's file
    (errno.ENOSPC, "/x/out/f.csv", EXIT_FAILED),  # the machine's state, not the path given
    (errno.EACCES, "/elsewhere/f.csv", EXIT_FAILED),  # not a path the user gave
])
def test_file_errors_about_a_path_given_are_usage_errors_and_others_are_not(capsys, code, name, expected):
    e = OSError(code, "planted", name)
    assert handled(_raising(e), paths={"--out": ("/x/out", "a directory that can be written")}) == expected
    line = one_error(capsys)
    assert ("--out '/x/out': planted" in line) == (expected == EXIT_USAGE)


def test_the_atomic_temporary_of_a_given_file_is_that_file(capsys):
    e = OSError(errno.EACCES, "Permission denied", "/x/.e.json.host.12.abcd1234.tmp")
    assert handled(_raising(e), paths={"--out": ("/x/e.json", "a file")}) == EXIT_USAGE
    one_error(capsys, "--out '/x/e.json': Permission denied (writing in /x); --out must be a file")
