"""``robustbench_mix.benchmark``: RobustBench's one call, ``clean_acc, robust_acc = benchmark(model,
dataset="cifar10", threat_model="Linf", eps=8/255, n_examples=10000)``, on the suite's evaluation, so the same
call also gives the suite's rows (``.rows``) for ``save_runs``, ``compare`` and ``report``."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import torch

from robustbench_mix.api.evaluate import evaluate
from robustbench_mix.api.inputs import names_list
from robustbench_mix.attacks.base import attack_norm
from robustbench_mix.core.errors import UsageError
from robustbench_mix.core.units import Norm, eps_from_fraction, fmt_eps
from robustbench_mix.corruptions import SOURCES, STANDARD_CORRUPTIONS
from robustbench_mix.data.base import DATASETS
from robustbench_mix.reports.headline import headline

# RobustBench's leaderboard radii on CIFAR-10 / CIFAR-100, used when ``eps`` is not given
DEFAULT_EPS = {Norm.LINF: 8 / 255, Norm.L2: 0.5}
DEFAULT_ATTACK = {Norm.LINF: "autoattack", Norm.L2: "autoattack_l2"}
CORRUPTIONS = "corruptions"  # RobustBench's third threat model: the mean over the 15 corruptions x 5 severities


class BenchmarkResult(tuple):
    """``(clean_acc, robust_acc)`` as RobustBench's ``benchmark`` returns it (fractions in [0, 1]), so ``clean,
    robust = benchmark(...)`` unpacks it; ``.rows`` holds the suite's rows behind both numbers (what ``evaluate``
    returns: the sanity checks, ``n_eval``, the attacked subset), ``.clean_acc`` / ``.robust_acc`` the two."""

    rows: pd.DataFrame

    def __new__(cls, clean_acc: float, robust_acc: float, rows: pd.DataFrame):
        result = super().__new__(cls, (clean_acc, robust_acc))
        result.rows = rows
        return result

    @property
    def clean_acc(self) -> float:
        return self[0]

    @property
    def robust_acc(self) -> float:
        return self[1]


def _threat_model(value) -> Norm | str:
    """'Linf' / 'L2' / 'corruptions' (any case), the suite's ``Norm`` or RobustBench's own ``ThreatModel``."""
    text = str(getattr(value, "value", value))
    for norm in (*Norm, CORRUPTIONS):
        if text.lower() == str(norm).lower():
            return norm
    raise UsageError(f"threat_model {value!r}: give 'Linf', 'L2' or 'corruptions' (RobustBench's names; a "
                     "robustbench_mix Norm works too)")


def _corruptions(model, n_examples: int, dataset: str, eps, attacks, common: dict) -> BenchmarkResult:
    """RobustBench's corruptions threat model: clean accuracy on the clean test set, and the mean accuracy over
    the standard files' 15 corruptions at 5 severities (CIFAR-10-C / CIFAR-100-C in ``data_dir``), each file
    whole. Rows: both evaluations' (two runs: the test set, and its corrupted twin)."""
    if eps is not None or attacks is not None:
        raise UsageError("threat_model='corruptions' takes no eps or attacks (it runs no attack), as RobustBench's")
    source = DATASETS.get(dataset) if dataset in DATASETS else None
    twin = source.corrupted if source is not None else None
    if twin is None:
        raise UsageError(f"threat_model='corruptions' needs a data set with the standard corruption files "
                         f"(cifar10: CIFAR-10-C, cifar100: CIFAR-100-C), got dataset={dataset!r}")
    if source.test_size and n_examples < source.test_size:
        raise UsageError(f"threat_model='corruptions' evaluates the {SOURCES[twin][0]} files whole: give "
                         f"n_examples={source.test_size} (got {n_examples})")
    title, _, prefix = SOURCES[twin]
    missing = [c for c in STANDARD_CORRUPTIONS if not (Path(common["data_dir"]) / title / f"{c}.npy").is_file()]
    if 0 < len(missing) < len(STANDARD_CORRUPTIONS):  # none at all: evaluate says where the files go
        raise UsageError(f"{Path(common['data_dir']) / title} lacks {len(missing)} of the 15 benchmark corruptions "
                         f"({', '.join(missing[:3])}{', ...' if len(missing) > 3 else ''}): RobustBench's number is "
                         "the mean over all 15; unpack the whole archive")
    corrupt_rows = evaluate(model, twin, **common)  # first: a missing folder is refused before the clean pass
    clean_rows = evaluate(model, dataset, attacks=(), eps=(), **common)
    rows = pd.concat([clean_rows, corrupt_rows], ignore_index=True)
    return BenchmarkResult(float(headline(clean_rows).iloc[0]["clean"]),
                           float(headline(corrupt_rows).iloc[0][f"{prefix}:mean"]), rows)


def benchmark(model: torch.nn.Module, n_examples: int = 10_000, dataset: str = "cifar10",
              threat_model="Linf", *, eps: float | str | None = None, model_name: str | None = None,
              data_dir: str = "./data", device=None, batch_size: int = 1000, attacks=None,
              normalize: tuple | None = None, seed: int = 0, to_disk: bool = False,
              progress: bool | None = None) -> BenchmarkResult:
    """Clean and robust accuracy of ``model``, as RobustBench's ``benchmark`` returns them: ``(clean_acc,
    robust_acc)``, fractions in [0, 1], with the suite's rows behind them in ``result.rows``.

    ``threat_model``: ``"Linf"``, ``"L2"`` (or ``robustbench_mix``'s ``Norm``) or ``"corruptions"``; ``eps`` a
    fraction of the [0, 1] pixel range for Linf (8/255, the default) or an L2 radius (0.5, the default).
    ``"corruptions"``: ``robust_acc`` is the mean accuracy over the 15 corruptions x 5 severities of the standard
    CIFAR-10-C / CIFAR-100-C files in ``data_dir`` (each file whole), ``clean_acc`` the clean test set's. The
    attack is the standard AutoAttack (``autoattack`` / ``autoattack_l2``: the official implementation,
    pyautoattack) unless ``attacks`` names others; with several, robust accuracy is the per-example worst case
    over them.
    ``n_examples``: at least the test set's size (CIFAR-10's 10,000, the default) evaluates the whole test set
    in its order, as RobustBench does. Fewer is **not** RobustBench's first ``n_examples`` images: both numbers
    are then over the suite's class-stratified subset of that size (the same images for every model, rows say
    ``stratified:<sha>``), and ``clean_acc`` is the clean accuracy on those images. ``dataset``: ``cifar10``,
    ``cifar100`` or any data set ``evaluate`` takes by name (``digits``, ``imagefolder:PATH``), read from
    ``data_dir``. ``model_name`` labels the rows (``user:<model_name>``); ``batch_size`` is the suite's (1,000
    images per forward, not RobustBench's 32). ``to_disk``: the rows are saved with
    ``robustbench_mix.save_runs(result.rows, DIR)``, not as RobustBench's JSON. Everything else is
    ``evaluate``'s, whose checks and ``progress`` lines apply.
    """
    if to_disk:
        raise UsageError("to_disk: benchmark() writes no RobustBench JSON; save its rows where compare and report "
                         "read them: robustbench_mix.save_runs(result.rows, DIR)")
    if isinstance(n_examples, bool) or not isinstance(n_examples, int) or n_examples < 1:
        raise UsageError(f"n_examples {n_examples!r} must be a positive integer (10000: the whole CIFAR-10 test set)")
    norm = _threat_model(threat_model)
    name = f"user:{model_name}" if model_name else "user:model"
    common = dict(normalize=normalize, name=name, seed=seed, batch_size=batch_size, device=device,
                  data_dir=data_dir, progress=progress)
    if norm == CORRUPTIONS:
        return _corruptions(model, n_examples, dataset, eps, attacks, common)
    eps = DEFAULT_EPS[norm] if eps is None else eps
    attacks = (DEFAULT_ATTACK[norm],) if attacks is None else names_list(attacks, "attacks")
    other = [a for a in attacks if attack_norm(a) not in ("", norm)]  # unknown names: evaluate says which
    if other:
        raise UsageError(f"attack {other[0]!r} is of the {attack_norm(other[0])} threat model, not {norm}: give "
                         f"attacks of {norm} (the default: {DEFAULT_ATTACK[norm]}) or threat_model="
                         f"{attack_norm(other[0])!r}")
    radius = {"eps": (eps,), "eps_l2": ()} if norm == Norm.LINF else {"eps": (), "eps_l2": (eps,)}
    rows = evaluate(model, dataset, attacks=attacks, **radius, attack_samples=n_examples, **common)
    line = headline(rows).iloc[0]  # the headline's rule: the worst case over the attacks where several ran
    column = f"robust {fmt_eps(eps_from_fraction(eps))}" if norm == Norm.LINF else f"robust L2={float(eps):g}"
    clean = line.get("clean on attacked", line["clean"])
    return BenchmarkResult(float(clean), float(line[column]), rows)
