"""robustbench_mix: a fair benchmark of what mixup (Zhang et al., ICLR 2018) claims about robustness.

Public names: ``evaluate`` (a model's clean, adversarial and corruption rows, as the suite writes them),
``headline`` (their short version: clean, robust and corruption accuracy), ``accuracies`` / ``diagnostics`` (the
accuracy rows / the rows that say whether to trust them), ``save_runs`` (rows into a runs.csv that the commands
read), ``build_model`` (a torchvision / timm model, with its weights), ``load_runs`` (a runs.csv, checked against
the results contract) and ``CORRUPTIONS`` (the computed common corruptions). The commands are
``python -m robustbench_mix.<suite|checkpoint|compare|claims|report|bench>``.
"""

__version__ = "0.3.0"  # 0.3.0: method 'external', model families tv:/timm:, corruption rows; 0.2.0: rows_in_run

from .api import evaluate, save_runs  # noqa: E402 - after __version__, which results.py imports
from .corruptions import CORRUPTIONS  # noqa: E402
from .headline import accuracies, diagnostics, headline  # noqa: E402
from .models import build_model  # noqa: E402
from .results import load_runs  # noqa: E402

__all__ = ["CORRUPTIONS", "__version__", "accuracies", "build_model", "diagnostics", "evaluate", "headline",
           "load_runs", "save_runs"]
