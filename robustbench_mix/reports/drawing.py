"""The drawing helpers of the plots: a configuration's mean and 95% t-interval over seeds, drawn as a line with a
band or as markers with error bars, and the colour, marker and line style each configuration keeps in every panel."""

from __future__ import annotations

import matplotlib
import numpy as np
import pandas as pd
from scipy import stats


def mean_ci(values, level: float = 0.95) -> tuple[float, float, float]:
    """(mean, low, high): the t-interval over seeds; low = high = nan for one seed (no interval)."""
    v = np.asarray(values, dtype=float)
    m = float(v.mean())
    if len(v) < 2:
        return m, np.nan, np.nan
    half = float(stats.t.ppf(0.5 + level / 2, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v)))
    return m, m - half, m + half


def curve(g: pd.DataFrame, x: str) -> pd.DataFrame:
    """Per x: mean, low, high of ``value`` (in %) over the runs (seeds) measured there."""
    rows = [(xv, *mean_ci(100 * s["value"])) for xv, s in g.groupby(x)]
    return pd.DataFrame(rows, columns=[x, "mean", "low", "high"]).sort_values(x)


MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">")
LINESTYLES = ("-", "--", "-.", ":")


def _errorbars(ax, c: pd.DataFrame, xs, color, marker, name=None) -> None:
    """Each measured point with its 95% interval as an error bar (a band over one point would be invisible)."""
    err = np.array([(c["mean"] - c["low"]).to_numpy(), (c["high"] - c["mean"]).to_numpy()])
    ax.errorbar(xs, c["mean"], yerr=None if np.isnan(err).all() else np.nan_to_num(err), fmt=marker, ms=5,
                color=color, capsize=3, lw=1, linestyle="none", label=name, mfc="white", mew=1.2)


def _draw(ax, c: pd.DataFrame, x: str, name: str, color: str, marker: str | None = "o", ls: str = "-",
          points: bool = False, dx: float = 0.0) -> None:
    """A configuration's curve: a line with its band, or (``points``) markers with error bars only, shifted by
    ``dx`` so that equal values of several configurations stay visible side by side."""
    if points or len(c) == 1:
        _errorbars(ax, c, c[x] + dx, color, marker or "o", name)
        return
    ax.plot(c[x], c["mean"], marker=marker, ms=4, label=name, color=color, linestyle=ls, mfc="white")
    if c["low"].notna().any():
        ax.fill_between(c[x], c["low"], c["high"], color=color, alpha=0.18, lw=0)


def _styles(groups) -> dict:
    """Configuration -> (colour, marker, line style): each its own marker and dash too, so a configuration under
    another one (ERM and mixup both at 100%) still shows."""
    colors = _colors(groups)
    return {k: (colors[k], MARKERS[i % len(MARKERS)], LINESTYLES[i % len(LINESTYLES)]) for i, k in enumerate(colors)}


def _legend_outside(fig, axes) -> None:
    """One legend for the figure, to the right of the panels (never over the data)."""
    handles, labels = {}, []
    for ax in np.ravel(axes):
        for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
            if lab not in handles:
                handles[lab] = h
                labels.append(lab)
    if labels:
        fig.legend([handles[lab] for lab in labels], labels, loc="center left", bbox_to_anchor=(1.0, 0.5),
                   fontsize=8, frameon=False)


def _colors(groups) -> dict:
    """The same configuration gets the same colour in every panel, and no two the same (tab20 beyond ten)."""
    keys = list(dict.fromkeys(groups))
    if len(keys) <= 10:
        return {k: f"C{i}" for i, k in enumerate(keys)}
    cmap = matplotlib.colormaps["tab20"]
    return {k: cmap(i % 20) for i, k in enumerate(keys)}
