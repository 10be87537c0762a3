"""The robust-cpu preset's table and Welch 95% intervals (results/reference/robust-cpu/README.md):

    python experiments/robust_table.py results/reference/robust-cpu/runs.csv
"""

import sys

import numpy as np
import pandas as pd
from scipy import stats

LABELS = {"erm": "ERM", "mixup": "mixup", "pgd_at": "PGD-AT", "trades": "TRADES", "mixup_at": "mixup + AT"}
COLUMNS = [("none", 0.0, "clean (all test)"), ("pgd", 32 / 255, "PGD 32/255"),
           ("autoattack", 32 / 255, "AutoAttack 32/255"), ("worst", 32 / 255, "worst Linf 32/255"),
           ("bb:pgd", 32 / 255, "black-box PGD 32/255"), ("pgd_l2", 1.0, "PGD-L2 1.0"),
           ("fgm_l2", 1.0, "FGM-L2 1.0"), ("worst_l2", 1.0, "worst L2 1.0"),
           ("bb:pgd_l2", 1.0, "black-box PGD-L2 1.0")]


def welch(a, b):
    """B - A and its Welch 95% interval."""
    diff = b.mean() - a.mean()
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    se = np.sqrt(va + vb)
    if se == 0:
        return diff, diff, diff
    df = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    t = stats.t.ppf(0.975, df)
    return diff, diff - t * se, diff + t * se


def main(path):
    d = pd.read_csv(path)
    d = d[~d.preset.astype(str).str.contains("surrogate")]
    d = d[(d.epoch == d.groupby("run_id").epoch.transform("max")) & (d.split == "test")]
    acc = d[d.metric == "acc"]

    def vals(method, attack, eps):
        g = acc[(acc.method == method) & (acc.attack == attack) & np.isclose(acc.eps, round(eps, 6))]
        return g.sort_values("seed").value.to_numpy() * 100

    print("| accuracy (%) | " + " | ".join(LABELS.values()) + " |")
    print("|---|" + "---|" * len(LABELS))
    for attack, eps, name in COLUMNS:
        cells = [f"{v.mean():.1f} ± {v.std(ddof=1):.1f}" if len(v) else "" for v in
                 (vals(m, attack, eps) for m in LABELS)]
        print(f"| {name} | " + " | ".join(cells) + " |")
    print()
    for base in ("erm", "mixup"):
        for m in ("mixup", "pgd_at", "trades", "mixup_at"):
            if m == base:
                continue
            parts = []
            for attack, eps, name in COLUMNS:
                a, b = vals(base, attack, eps), vals(m, attack, eps)
                if len(a) > 1 and len(b) > 1:
                    x, lo, hi = welch(a, b)
                    parts.append(f"{name} {x:+.1f} [{lo:+.1f}, {hi:+.1f}]")
            print(f"{LABELS[m]} − {LABELS[base]}: " + "; ".join(parts))
    checks = d[d.attack == "check"]
    positive = checks[checks.metric.str.contains("positive")]
    print(f"checks {len(checks)}, failed {(checks.value < 0.5).sum()}; positive controls {len(positive)}, "
          f"failed {(positive.value < 0.5).sum()}")


if __name__ == "__main__":
    main(sys.argv[1])
