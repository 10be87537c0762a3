"""Plots people can read: mean with a 95% t-interval over seeds, robust accuracy as markers with error bars (never
joined), configurations that stay visible when equal, shared axes, legends outside the data, calibration labels
that do not overlap."""

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pytest
from scipy import stats

import robustbench_mix.reports.plots as plots
from robustbench_mix.store.load import load_results

REFERENCE = Path(__file__).resolve().parents[2] / "results" / "reference"


@pytest.fixture
def figures(monkeypatch):
    """The figures the plot functions would save, kept open for inspection instead."""
    kept = []
    monkeypatch.setattr(plots, "save", lambda fig, path: kept.append(fig) or path)
    yield kept
    for f in kept:
        plt.close(f)


def _runs(name):
    if not (REFERENCE / name / "runs.csv").exists():
        pytest.skip(f"results/reference/{name} is not committed")
    return load_results(REFERENCE / name)


def test_mean_ci_is_the_t_interval_over_seeds_and_none_for_one_seed():
    v = np.array([97.0, 98.5, 96.0])
    m, lo, hi = plots.mean_ci(v)
    half = stats.t.ppf(0.975, 2) * v.std(ddof=1) / np.sqrt(3)  # 4.303 * 1.258 / 1.732
    assert m == pytest.approx(97.1667, abs=1e-4) and (hi - lo) / 2 == pytest.approx(half) == pytest.approx(3.125,
                                                                                                           abs=1e-3)
    m, lo, hi = plots.mean_ci([97.0])
    assert m == 97.0 and np.isnan(lo) and np.isnan(hi)


def _panels(fig):
    return {ax.get_title(): ax for ax in fig.axes if ax.get_title()}


def _points(ax) -> dict:
    """label -> (x, y, has an interval, joined) of each configuration's error-bar markers."""
    out = {}
    for c in ax.containers:
        line, _, bars = c.lines
        out[c.get_label()] = (np.asarray(line.get_xdata(), float), np.asarray(line.get_ydata(), float), bool(bars),
                              line.get_linestyle() not in ("None", "none", ""))
    return out


def test_robust_plot_shows_only_measured_points_with_intervals_on_one_axis(figures, tmp_path):
    df = _runs("quick-3seeds")  # eps 2, 8, 16 asked; PGD also at the 64/255 check epsilon
    plots.robust_accuracy(df, tmp_path / "r.png")
    (fig,) = figures
    panels = _panels(fig)
    assert set(panels) == {"fgsm (white-box)", "pgd (white-box)", "worst (per-example worst case)"}
    for ax in panels.values():
        assert ax.get_ylim() == (-2, 102)  # one 0-100 axis for every panel
        assert ax.get_legend() is None  # the legend is the figure's, outside the panels
        points = _points(ax)
        assert len(points) == 4  # a configuration each, each with its 95% error bars (3 seeds each)
        for x, _, interval, joined in points.values():
            assert interval and not joined  # markers only: no line reads as a trend between two epsilons
            # at a measured epsilon, shifted sideways by a few % of the axis; never the 64/255 check epsilon
            assert all(min(abs(v - e) for e in (0.0, 2.0, 8.0, 16.0)) <= 0.04 * 16 for v in x)
    pgd = _points(panels["pgd (white-box)"])
    x, y, _, _ = pgd["ERM, noise 0"]
    assert np.allclose(x - x[0], [0.0, 2.0, 8.0, 16.0]) and abs(x[0]) < 1  # one shift for all its points
    final = df[(df["epoch"] == df["epochs"]) & (df["attack"] == "pgd") & (df["method"] == "erm")
               & (df["noise"] == 0) & (df["metric"] == "acc") & np.isclose(df["eps"] * 255, 8, atol=1e-3)]
    assert y[2] == pytest.approx(100 * final["value"].mean())
    assert len(fig.legends) == 1 and fig.legends[0].get_bbox_to_anchor().x0 >= fig.axes[-1].get_position().x1 - 1e-6


def test_configurations_with_equal_values_stay_visible_side_by_side(figures, tmp_path):
    plots.robust_accuracy(_runs("quick"), tmp_path / "r.png")  # ERM and mixup at 100% without noise
    (fig,) = figures
    ax = _panels(fig)["fgsm (white-box)"]
    markers = {c.get_label(): c.lines[0].get_marker() for c in ax.containers}
    erm, mix = _points(ax)["ERM, noise 0"], _points(ax)["mixup (α=1), noise 0"]
    assert erm[0][0] != mix[0][0] and markers["ERM, noise 0"] != markers["mixup (α=1), noise 0"]


def test_a_single_epsilon_panel_draws_its_interval(figures, tmp_path):
    plots.robust_accuracy(_runs("robust-cpu"), tmp_path / "r.png")  # one epsilon per norm, 3 seeds
    (fig,) = figures
    for title in ("worst (per-example worst case)", "pgd (black-box)"):
        points = _points(_panels(fig)[title])
        assert len(points) == 5 and all(interval for _, _, interval, _ in points.values())


def test_black_box_panels_sit_under_their_white_box_twins_on_the_same_axis(figures, tmp_path):
    plots.robust_accuracy(_runs("table3-cpu"), tmp_path / "r.png")
    (fig,) = figures
    panels = _panels(fig)
    white, black = panels["fgsm (white-box)"], panels["fgsm (black-box)"]
    assert white.get_position().x0 == pytest.approx(black.get_position().x0)  # one column
    assert white.get_position().y0 > black.get_position().y0
    assert white.get_ylim() == black.get_ylim() == (-2, 102)


def test_one_seed_draws_no_interval(figures, tmp_path):
    plots.robust_accuracy(_runs("quick"), tmp_path / "r.png")
    (fig,) = figures
    assert all(len(ax.collections) == 0 for ax in fig.axes)


def test_calibration_labels_are_one_per_bar_on_their_own_line(figures, tmp_path):
    plots.calibration_plot(_runs("methods-cpu"), tmp_path / "c.png")
    (fig,) = figures
    ece = fig.axes[0]
    labels = [t.get_text() for t in ece.get_yticklabels()]
    assert len(labels) == 10 == len(set(labels)) and labels[0].startswith("CutMix")
    assert ece.get_ylim()[0] > ece.get_ylim()[1]  # the first configuration on top
    colours = {tuple(p.get_facecolor()) for p in ece.patches}
    assert len(colours) == 10  # no two configurations share a colour


def test_corruption_panels_share_the_accuracy_axis(figures, tmp_path):
    plots.corruption_accuracy(_runs("cifar10-jpeg-corruptions-cpu"), tmp_path / "c.png")
    (fig,) = figures
    shown = [ax for ax in fig.axes if ax.get_title()]
    assert len(shown) == 19 and all(ax.get_ylim() == (-2, 102) for ax in shown)
