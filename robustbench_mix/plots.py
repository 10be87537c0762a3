"""PNG plots from a runs.csv frame: robust accuracy against epsilon, and training curves."""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from .methods import run_label  # noqa: E402
from .results import adversarial, atomic_write_bytes, corrupted, corruption_parts, last_epoch  # noqa: E402


def plain(text: str) -> str:
    """Text as matplotlib should print it: a '$' (in a folder name, say) would start mathtext and fail."""
    return str(text).replace("$", r"\$")


def label(r) -> str:
    return plain(run_label(r["method"], r["alpha"], r["dropout"])) + f", noise {r['noise']:g}"


def save(fig, path: Path) -> Path:
    """PNG bytes written atomically like every other output (a killed writer leaves no half image)."""
    buf = io.BytesIO()
    fig.savefig(buf, dpi=110, format="png")
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
    return path


def robust_accuracy(df: pd.DataFrame, path: Path) -> Path | None:
    """Test accuracy (mean over seeds) against epsilon, one panel per attack (white-box attacks are also
    run at epsilon 0, which must equal clean accuracy)."""
    d = last_epoch(df)
    adv = d[(d["metric"] == "acc") & adversarial(d) & (d["split"] == "test")]
    if adv.empty:
        return None
    attacks = list(dict.fromkeys(adv["attack"]))
    fig, axes = plt.subplots(1, len(attacks), figsize=(4.5 * len(attacks), 3.6), squeeze=False)
    keys = ["dataset", "model", "method", "alpha", "dropout", "noise"]
    for ax, a in zip(axes[0], attacks, strict=True):
        for k, g in adv[adv["attack"] == a].groupby(keys):
            m = g.groupby("eps")["value"].mean().sort_index()
            ax.plot(m.index * 255, m.values * 100, marker="o", label=label(dict(zip(keys, k, strict=True))))
        ax.set_title(plain(f"{a} ({d['dataset'].iloc[0]}, {d['model'].iloc[0]})"))
        ax.set_xlabel("epsilon (/255)")
        ax.set_ylabel("test accuracy (%)")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    return save(fig, path)


def training_curves(df: pd.DataFrame, path: Path) -> Path | None:
    """Test accuracy and memorized fraction of corrupted labels against epoch (needs --eval-every)."""
    clean = df[(df["attack"] == "none")]
    test = clean[(clean["split"] == "test") & (clean["metric"] == "acc")]
    mem = clean[(clean["split"] == "train_corrupted") & (clean["metric"] == "memorized")]
    if test["epoch"].nunique() < 2:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    keys = ["method", "alpha", "dropout", "noise"]
    colors: dict[str, str] = {}  # the same run gets the same colour in both panels
    for ax, d, title in ((axes[0], test, "test accuracy (%)"), (axes[1], mem, "corrupted labels memorized (%)")):
        for k, g in d.groupby(keys):
            name = label(dict(zip(keys, k, strict=True)))
            colors.setdefault(name, f"C{len(colors) % 10}")
            m = g.groupby("epoch")["value"].mean().sort_index()
            ax.plot(m.index, m.values * 100, label=name, color=colors[name])
        ax.set_xlabel("epoch")
        ax.set_ylabel(title)
        ax.grid(alpha=0.3)
        if d.size:
            ax.legend(fontsize=7)
    fig.tight_layout()
    return save(fig, path)


def corruption_accuracy(df: pd.DataFrame, path: Path) -> Path | None:
    """Test accuracy (mean over seeds) against severity, one panel per common corruption."""
    d = last_epoch(df)
    c = d[(d["metric"] == "acc") & corrupted(d) & (d["split"] == "test")]
    if c.empty:
        return None
    c = corruption_parts(c)
    c = c.assign(corruption=c["source"] + ":" + c["corruption"])
    names = sorted(dict.fromkeys(c["corruption"]))
    cols = min(len(names), 5)
    rows = -(-len(names) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.4 * cols, 2.9 * rows), squeeze=False)
    keys = ["dataset", "model", "method", "alpha", "dropout", "noise"]
    for ax, name in zip(axes.flat, names, strict=False):
        for k, g in c[c["corruption"] == name].groupby(keys):
            m = g.groupby("severity")["value"].mean().sort_index()
            ax.plot(m.index, m.values * 100, marker="o", label=label(dict(zip(keys, k, strict=True))))
        ax.set_title(plain(name), fontsize=9)
        ax.set_xlabel("severity")
        ax.set_ylabel("test accuracy (%)")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(names):]:
        ax.axis("off")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    return save(fig, path)

