"""PNG plots from a runs.csv frame, a registry of ``name -> fn(df, out_dir) -> [(path, what it shows)]``.

Every plot draws the mean over seeds with its 95% t-interval over seeds (a band, or error bars where points are not
joined or a curve has one point); a configuration with one seed gets its mean alone. Each configuration has its own
colour, marker and line style. Curves over epochs and severities join their measured points; robust accuracy
against epsilon shows markers only (a line between two epsilons would read as a measured linear trend). Panels that
are compared share their y-axis (accuracy on 0-100), and legends sit outside the data.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from robustbench_mix.attacks.base import WORST, attack_norm  # noqa: E402
from robustbench_mix.core.atomic import atomic_write_bytes  # noqa: E402
from robustbench_mix.core.registry import Registry  # noqa: E402
from robustbench_mix.core.units import Norm  # noqa: E402
from robustbench_mix.experiment.grids import SURROGATE_SUFFIX  # noqa: E402
from robustbench_mix.methods import run_label  # noqa: E402

# the drawing helpers, kept apart to keep this module to the figures (mean_ci is imported from here too)
from robustbench_mix.reports.drawing import _colors, _draw, _legend_outside, _styles, curve, mean_ci  # noqa: E402,F401
from robustbench_mix.store.schema import adversarial, corrupted, corruption_parts
from robustbench_mix.store.summary import last_epoch, method_options  # noqa: E402

FIGURES: Registry = Registry("figure")
KEYS = ["dataset", "model", "method", "alpha", "dropout", "method_options", "noise"]
INTERVAL = ("lines, markers and bars: mean over seeds; shading and error bars: 95% t-interval over seeds (none for a "
            "configuration with one seed)")


def plain(text: str) -> str:
    """Text as matplotlib should print it: a '$' (in a folder name, say) would start mathtext and fail."""
    return str(text).replace("$", r"\$")


def label(r) -> str:
    """'mixup (α=1), noise 0.4' (and the model where it is not one of the suite's: your own model's name)."""
    own = str(r.get("model", "")) if r.get("method") == "external" else ""
    method = run_label(r["method"], r["alpha"], r["dropout"], r.get("method_options", ""))
    return plain((own + " " if own else "") + method + f", noise {r['noise']:g}")


def save(fig, path: Path) -> Path:
    """PNG bytes written atomically like every other output (a killed writer leaves no half image)."""
    buf = io.BytesIO()
    fig.savefig(buf, dpi=110, format="png", bbox_inches="tight")
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
    return path


def _targets(df: pd.DataFrame) -> pd.DataFrame:
    df = df[~df["preset"].str.endswith(SURROGATE_SUFFIX)]
    return df.assign(method_options=method_options(df))


def _asked_eps(df: pd.DataFrame) -> dict[str, set[float]]:
    """run_id -> the epsilons (/255) and L2 radii the run asked for, and 0: not the gradient-masking check
    epsilon. Keyed ("Linf", e) and ("L2", radius), so neither is taken for the other."""
    out = {}
    for rid, t in df.drop_duplicates("run_id")[["run_id", "config"]].itertuples(index=False):
        cfg = json.loads(t)
        out[rid] = {(Norm.LINF, 0.0), (Norm.L2, 0.0), *((Norm.LINF, round(float(e), 3)) for e in cfg["eps"]),
                    *((Norm.L2, round(float(e), 6)) for e in cfg.get("eps_l2", ()))}
    return out


# --------------------------------------------------------------------------------- robust accuracy
def robust_accuracy(df: pd.DataFrame, path: Path) -> Path | None:
    """Test accuracy against epsilon, one panel per attack (white-box, worst case, then black-box), all on the
    same 0-100 axis; only the epsilons the runs asked for (and 0, where white-box attacks are also run: it must
    equal clean accuracy), not the large check epsilon, which is no point of the curve."""
    d = _targets(last_epoch(df))
    d = d[(d["metric"] == "acc") & adversarial(d) & (d["split"] == "test")]
    asked = _asked_eps(d)
    # x: /255 units for L-infinity, the radius for L2 (whose panels get their own x-axis)
    norm = d["attack"].map(attack_norm)
    d = d.assign(x=d["eps_255"].where(norm != Norm.L2, d["eps"].round(6)), norm=norm)
    d = d[[(n, x) in asked[r] for r, n, x in zip(d["run_id"], d["norm"], d["x"], strict=True)]]
    if d.empty:
        return None
    l2 = set(d.loc[d["norm"] == Norm.L2, "attack"])
    # white-box attacks and their worst case on the first row, each black-box attack under its white-box twin
    white = sorted({a for a in d["attack"] if not a.startswith("bb:")},
                   key=lambda a: (a.removeprefix("bb:") in l2, a in WORST, a))
    black = sorted({a for a in d["attack"] if a.startswith("bb:")})
    cols = white + [a for a in black if a.removeprefix("bb:") not in white]  # a black-box attack without a twin
    grid = [[a if not a.startswith("bb:") else "" for a in cols]]
    if black:
        grid.append([a if a.startswith("bb:") else f"bb:{a}" if f"bb:{a}" in black else "" for a in cols])
    fig, axes = plt.subplots(len(grid), len(cols), figsize=(3.3 * len(cols), 2.9 * len(grid)), squeeze=False,
                             sharey=True, sharex=not l2)
    styles = _styles(d.groupby(KEYS, sort=True).groups)
    keys = list(styles)
    not_shared = bool(l2)  # panels get their own x-axis where an L2 norm is among them (see plt.subplots)
    for ax, a in zip(axes.flat, [a for row in grid for a in row], strict=True):
        if not a:
            ax.axis("off")
            continue
        here = d[d["attack"] == a]
        same_norm = d[d["norm"] == here["norm"].iloc[0]]
        # one spacing for every panel of a norm (they may share the x-axis), from all of its epsilons
        xs = np.sort((here if not_shared else same_norm)["x"].unique())
        single = len(xs) == 1
        # the configurations side by side within 40% of the closest two epsilons' gap, so that no point strays
        # towards another epsilon; one epsilon: a narrow axis around it
        gap = 0.25 * max(abs(float(xs[0])), 1.0) if single else float(np.diff(xs).min())
        step = 0.4 * gap / max(len(keys) - 1, 1)
        for k, g in here.groupby(KEYS, sort=True):
            color, marker, _ = styles[k]
            shift = (keys.index(k) - (len(keys) - 1) / 2) * step
            _draw(ax, curve(g, "x"), "x", label(dict(zip(KEYS, k, strict=True))), color, marker, points=True,
                  dx=shift)
        ax.set_xticks(xs)  # ticks at the measured epsilons only
        ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
        if single:
            ax.set_xlim(xs[0] - gap / 2, xs[0] + gap / 2)
        threat = "black-box" if a.startswith("bb:") else "per-example worst case" if a in WORST else "white-box"
        ax.set_title(plain(f"{a.removeprefix('bb:')} ({threat})"), fontsize=9)
        ax.set_ylim(-2, 102)
        ax.grid(alpha=0.3)
    for j in range(len(cols)):  # the lowest panel of each column carries the x-axis (a blank one may be below)
        ax = axes[max(i for i in range(len(grid)) if grid[i][j]), j]
        ax.set_xlabel("L2 radius" if cols[j].removeprefix("bb:") in l2 else "epsilon (/255)")
        ax.xaxis.set_tick_params(labelbottom=True)
    for ax in axes[:, 0]:
        ax.set_ylabel("test accuracy (%)")
    _legend_outside(fig, axes)
    fig.tight_layout()
    return save(fig, path)


@FIGURES.register("robust_accuracy")
def _robust_figure(df: pd.DataFrame, out: Path) -> list[tuple[Path, str]]:
    p = robust_accuracy(df, out / "robust_accuracy.png")
    l2 = df["attack"].map(attack_norm).eq(Norm.L2).any()
    return [(p, "Test accuracy (%) under attack against epsilon (/255" + ("; L2 attacks: their L2 radius" if l2 else "")
                + "), one panel per attack on one 0-100 axis; only the epsilons the runs asked for (the "
                "gradient-masking check epsilon is in the table, not in the plot); markers are the measured epsilons, "
                "not joined (accuracy between them was not measured), each configuration shifted a little sideways "
                "so that equal values stay visible")] if p else []


# ------------------------------------------------------------------------------------ training curves
def training_curves(df: pd.DataFrame, path: Path) -> Path | None:
    """Test accuracy and memorized fraction of corrupted labels against epoch (needs --eval-every)."""
    clean = _targets(df[df["attack"] == "none"])
    test = clean[(clean["split"] == "test") & (clean["metric"] == "acc")]
    mem = clean[(clean["split"] == "train_corrupted") & (clean["metric"] == "memorized")]
    if test["epoch"].nunique() < 2:
        return None
    panels = [(test, "test accuracy (%)")] + ([(mem, "corrupted labels memorized (%)")] if len(mem) else [])
    fig, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels), 3.3), squeeze=False, sharey=True)
    styles = _styles(test.groupby(KEYS, sort=True).groups)
    for ax, (d, title) in zip(axes[0], panels, strict=True):
        for k, g in d.groupby(KEYS, sort=True):
            color, marker, ls = styles.get(k, ("C9", "o", "-"))
            _draw(ax, curve(g, "epoch"), "epoch", label(dict(zip(KEYS, k, strict=True))),
                  color, marker=marker if g["epoch"].nunique() < 40 else None, ls=ls)
        ax.set_xlabel("epoch")
        ax.set_title(title, fontsize=9)
        ax.set_ylim(-2, 102)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("%")
    _legend_outside(fig, axes)
    fig.tight_layout()
    return save(fig, path)


@FIGURES.register("curves")
def _curves_figure(df: pd.DataFrame, out: Path) -> list[tuple[Path, str]]:
    p = training_curves(df, out / "curves.png")
    return [(p, "Clean test accuracy (%) and the fraction (%) of corrupted training labels the model predicts "
                "(memorized), against epoch")] if p else []


@FIGURES.register("table2_curves")
def _table2_curves(df: pd.DataFrame, out: Path) -> list[tuple[Path, str]]:
    """Table 2's curves, one figure per corruption rate (only for runs with corrupted labels and curves)."""
    from robustbench_mix.reports.tables import tables_for

    noisy = _targets(df[df["noise"] > 0])
    if not len(noisy) or "table2" not in tables_for(df):
        return []
    figs = []
    for p in sorted(noisy["noise"].unique()):
        path = training_curves(noisy[noisy["noise"] == p], out / f"table2_curves_noise{p:g}.png")
        if path:
            figs.append((path, f"Table 2's runs at {100 * p:g}% corrupted labels: clean test accuracy (%) and "
                               "corrupted labels memorized (%) against epoch"))
    return figs


# --------------------------------------------------------------------------------- common corruptions
def corruption_accuracy(df: pd.DataFrame, path: Path) -> Path | None:
    """Test accuracy against severity, one panel per common corruption, all on the same 0-100 axis."""
    d = _targets(last_epoch(df))
    c = d[(d["metric"] == "acc") & corrupted(d) & (d["split"] == "test")]
    if c.empty:
        return None
    c = corruption_parts(c)
    c = c.assign(corruption=c["source"] + ":" + c["corruption"])
    names = sorted(dict.fromkeys(c["corruption"]))
    cols = min(len(names), 4)
    rows = -(-len(names) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.9 * cols, 2.5 * rows), squeeze=False, sharey=True,
                             sharex=True)
    styles = _styles(c.groupby(KEYS, sort=True).groups)
    for ax, name in zip(axes.flat, names, strict=False):
        for k, g in c[c["corruption"] == name].groupby(KEYS, sort=True):
            color, marker, ls = styles[k]
            _draw(ax, curve(g, "severity"), "severity", label(dict(zip(KEYS, k, strict=True))), color, marker, ls)
        ax.set_title(plain(name), fontsize=9)
        ax.set_ylim(-2, 102)
        ax.set_xticks(range(1, 6))
        ax.grid(alpha=0.3)
    for ax in axes[:, 0]:
        ax.set_ylabel("test accuracy (%)")
    for ax in axes[-1, :]:
        ax.set_xlabel("severity")
    for ax in list(axes.flat)[len(names):]:
        ax.axis("off")
    _legend_outside(fig, axes)
    fig.tight_layout()
    return save(fig, path)


@FIGURES.register("corruptions")
def _corruption_figure(df: pd.DataFrame, out: Path) -> list[tuple[Path, str]]:
    p = corruption_accuracy(df, out / "corruptions.png")
    return [(p, "Test accuracy (%) under each common corruption against its severity (1-5), one panel per "
                "corruption on one 0-100 axis; `corrupt:` computed by the suite, `c10c:` / `c100c:` the standard "
                "CIFAR-10-C / CIFAR-100-C files")] if p else []


# ------------------------------------------------------------------------------------------ calibration
def calibration_plot(df: pd.DataFrame, path: Path) -> Path | None:
    """ECE (%) and NLL on the clean test set per configuration, as horizontal bars (labels never overlap)."""
    d = _targets(last_epoch(df))
    d = d[(d["split"] == "test") & (d["attack"] == "none") & d["metric"].isin(["ece", "nll"])]
    if not (d["metric"] == "ece").any():
        return None
    groups = list(dict.fromkeys(k for k, _ in d.groupby(KEYS, sort=True)))
    names = [label(dict(zip(KEYS, k, strict=True))) for k in groups]
    colors = _colors(groups)
    fig, axes = plt.subplots(1, 2, figsize=(9, 0.9 + 0.38 * len(groups)), sharey=True, squeeze=False)
    for ax, metric, title, sc in ((axes[0][0], "ece", "expected calibration error (%)", 100),
                                  (axes[0][1], "nll", "negative log-likelihood", 1)):
        stats_ = [mean_ci(sc * d[(d["metric"] == metric) & (d[KEYS].apply(tuple, axis=1) == k)]["value"])
                  if ((d["metric"] == metric) & (d[KEYS].apply(tuple, axis=1) == k)).any() else (np.nan,) * 3
                  for k in groups]
        m = np.array([s[0] for s in stats_])
        err = np.array([[s[0] - s[1], s[2] - s[0]] for s in stats_]).T
        ax.barh(range(len(groups)), m, xerr=None if np.isnan(err).all() else np.nan_to_num(err),
                color=[colors[k] for k in groups], capsize=3)
        ax.set_yticks(range(len(groups)), names, fontsize=8)
        ax.set_title(title, fontsize=9)
        ax.grid(axis="x", alpha=0.3)
    axes[0][0].invert_yaxis()  # the first configuration on top (the axis is shared: invert it once)
    fig.tight_layout()
    return save(fig, path)


@FIGURES.register("calibration")
def _calibration_figure(df: pd.DataFrame, out: Path) -> list[tuple[Path, str]]:
    p = calibration_plot(df, out / "calibration.png")
    return [(p, "Calibration on the clean test set: expected calibration error (%, 15 bins) and negative "
                "log-likelihood per configuration (lower is better)")] if p else []
