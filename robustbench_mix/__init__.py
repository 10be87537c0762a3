"""robustbench_mix: a fair benchmark of what mixup (Zhang et al., ICLR 2018) claims about robustness.

Public names: ``evaluate`` (a model's clean, adversarial and corruption rows, as the suite writes them),
``load_runs`` (a runs.csv, checked against the results contract) and ``CORRUPTIONS`` (the computed common
corruptions). The commands are ``python -m robustbench_mix.<suite|checkpoint|compare|claims|report|bench>``.
"""

__version__ = "0.3.0"  # 0.3.0: method 'external', model families tv:/timm:, corruption rows; 0.2.0: rows_in_run

from .api import evaluate  # noqa: E402 - after __version__, which results.py imports
from .corruptions import CORRUPTIONS  # noqa: E402
from .results import load_runs  # noqa: E402

__all__ = ["CORRUPTIONS", "__version__", "evaluate", "load_runs"]
