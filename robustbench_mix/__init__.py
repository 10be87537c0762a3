"""robustbench_mix: a fair benchmark of what mixup (Zhang et al., ICLR 2018) claims about robustness.

Public names: ``evaluate`` (a model's clean, adversarial and corruption rows, as the suite writes them),
``benchmark`` (RobustBench's call: ``clean_acc, robust_acc = benchmark(model, dataset=..., threat_model=...,
eps=..., n_examples=...)``, standard AutoAttack, with the rows behind both numbers in ``.rows``),
``headline`` (their short version: clean, robust and corruption accuracy), ``accuracies`` / ``diagnostics`` (the
accuracy rows / the rows that say whether to trust them), ``save_runs`` (rows into a runs.csv that the commands
read), ``build_model`` (a torchvision / timm model, with its weights), ``load_runs`` (a runs.csv, checked against
the results contract) and ``CORRUPTIONS`` (the computed common corruptions). Plugins (docs/own-method.md):
``register_method``, ``register_model``, ``register_attack``, ``register_corruption``, ``register_dataset`` add a
user's own entries (in a file loaded with ``--plugin``), ``beta`` draws a mixing weight from a method's generator.
The commands are ``python -m robustbench_mix.<suite|checkpoint|compare|claims|report|leaderboard|bench|check>``;
the layers are described in docs/design.md.
"""

from robustbench_mix.api.benchmark import benchmark
from robustbench_mix.api.evaluate import evaluate, save_runs
from robustbench_mix.core.version import __version__
from robustbench_mix.corruptions import CORRUPTIONS
from robustbench_mix.models.families import build_model
from robustbench_mix.plugins import (
    beta,
    register_attack,
    register_corruption,
    register_dataset,
    register_method,
    register_model,
)
from robustbench_mix.reports.headline import accuracies, diagnostics, headline
from robustbench_mix.store.load import load_runs

__all__ = ["CORRUPTIONS", "__version__", "accuracies", "benchmark", "beta", "build_model", "diagnostics", "evaluate",
           "headline", "load_runs", "register_attack", "register_corruption", "register_dataset", "register_method",
           "register_model", "save_runs"]
