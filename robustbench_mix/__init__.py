"""robustbench_mix: a fair benchmark of what mixup (Zhang et al., ICLR 2018) claims about robustness."""

__version__ = "0.1.0"
