"""What evaluate() says when stderr is not a terminal (a log file, nohup, Slurm): issue 37 met 50 minutes of
silence. One line per stage, attack and corruption, with counts and elapsed time, and each attack's expected cost
from its first batch before the rest runs; progress=False: none."""

import re
import sys

import pytest
from helpers import linear_model

import robustbench_mix as rbm
from robustbench_mix.evaluation.progress import seconds

PREFIX = "robustbench_mix: "


@pytest.fixture(scope="module")
def xy(digits60):
    return digits60


def linear():
    return linear_model(in_dim=64).eval()


def run(xy, **kw):
    return rbm.evaluate(linear(), xy, **{"attacks": ("fgsm", "pgd"), "eps": (8 / 255,), "attack_steps": 2,
                                         "corruptions": ("contrast",), "batch_size": 25, **kw})


def test_with_stderr_not_a_terminal_each_stage_attack_and_corruption_is_a_line(xy, capfd):
    run(xy)
    err = capfd.readouterr().err
    assert "\r" not in err  # no bars in a log
    lines = err.splitlines()
    assert all(line.startswith(PREFIX) for line in lines), lines
    lines = [line.removeprefix(PREFIX) for line in lines]
    assert re.fullmatch(r"clean: 60 test images in .+ s", lines[0])
    assert lines[1] == "corruptions: 1 at 5 severities on 60 images"
    for s in range(1, 6):
        assert re.fullmatch(rf"corruption {s}/5: contrast severity {s} on 60 images in .+ s \(elapsed .+\)",
                            lines[1 + s])
    assert lines[7] == "attacks: 5 (attack, epsilon) pairs on 60 images (all), 3 batch(es) each"
    # fgsm at 0 and 8/255; pgd at 0, 8/255 and the gradient-masking check's 64/255: each announced, then done
    jobs = ["fgsm eps 0/255", "fgsm eps 8/255", "pgd eps 0/255", "pgd eps 8/255", "pgd eps 64/255"]
    for j, label in enumerate(jobs, 1):
        estimate, done = lines[6 + 2 * j], lines[7 + 2 * j]
        m = re.fullmatch(rf"attack {j}/5: {label} on 60 images: first of 3 batches took (.+) s, expected (.+) s "
                         "for this attack", estimate)
        assert m, estimate
        assert re.fullmatch(rf"attack {j}/5: {label} done in .+ s \(elapsed .+\)", done)
    assert re.fullmatch(r"checks: 0 of \d+ failed; evaluation done in .+", lines[-1])
    assert len(lines) == 8 + 2 * len(jobs) + 1


def test_the_estimate_is_the_first_batch_times_the_batches(xy, capfd):
    run(xy, attacks=("pgd",), corruptions=(), batch_size=10)
    for took, expected in re.findall(r"first of 6 batches took (\S+) s, expected (\S+) s", capfd.readouterr().err):
        assert float(expected) == pytest.approx(6 * float(took), rel=0.1, abs=0.02)


def test_with_restarts_the_estimate_counts_each_restart_and_the_one_restart_control(xy, capfd):
    run(xy, attacks=("pgd",), corruptions=(), attack_restarts=2)
    err = capfd.readouterr().err
    # 3 batches x (2 restarts + the separate one-restart call the positive control compares them with)
    assert "attack 2/3: pgd eps 8/255 x 2 restarts on 60 images: first of 9 batches took" in err
    assert "attack 1/3: pgd eps 0/255 x 2 restarts on 60 images: first of 9 batches" in err


def test_an_attack_in_one_batch_is_estimated_before_it_starts_and_the_probe_changes_no_number(xy, capfd):
    """Issue 37's case: AutoAttack on 200 images in one batch of 1,000 ran 50 minutes without a word."""
    rows = run(xy, attacks=("fgsm", "pgd"), corruptions=(), batch_size=1000)
    err = capfd.readouterr().err
    for j, label, most in ((2, "fgsm eps 8/255", 1), (4, "pgd eps 8/255", 2)):
        m = re.search(rf"attack {j}/5: {label} on 60 images in one batch: up to {most} gradient steps of (\S+) s "
                      r"each, so up to ~(\S+) s of gradient computation \(less where points break early", err)
        assert m, err
        assert float(m[2]) == pytest.approx(most * float(m[1]), rel=0.1, abs=0.02)
        assert err.index(m[0]) < err.index(f"attack {j}/5: {label} done in")
    silent = run(xy, attacks=("fgsm", "pgd"), corruptions=(), batch_size=1000, progress=False)
    assert rows["value"].tolist() == silent["value"].tolist()


def test_autoattacks_estimate_is_its_standard_versions_budget():
    from robustbench_mix.attacks.autoattack import AUTOATTACK_BUDGET
    from robustbench_mix.attacks.base import get_attack

    # APGD-CE 100 + APGD-T 9 x 100 + FAB-T 9 x 100 + Square 5,000 forwards (~1/3 of a forward-backward each)
    assert AUTOATTACK_BUDGET == 3566
    assert get_attack("autoattack").gradient_steps(10) == get_attack("autoattack_l2").gradient_steps(3) == 3566
    assert get_attack("pgd").gradient_steps(7) == 7 and get_attack("fgsm").gradient_steps(7) == 1


def test_a_log_file_gets_the_lines_and_progress_false_silences_them(xy, tmp_path, monkeypatch):
    for progress, path in ((None, tmp_path / "on.log"), (False, tmp_path / "off.log")):
        with path.open("w") as f:
            monkeypatch.setattr(sys, "stderr", f)  # stderr redirected to a file, as under nohup or Slurm
            run(xy, progress=progress)
    assert "attack 5/5: pgd eps 64/255 done in" in (tmp_path / "on.log").read_text()
    assert (tmp_path / "off.log").read_text() == ""


@pytest.mark.parametrize("s, text", [(0.0123, "0.012 s"), (12.34, "12.3 s"), (245, "4 min 05 s"),
                                     (3725, "1 h 02 min")])
def test_durations_read_at_a_glance(s, text):
    assert seconds(s) == text
