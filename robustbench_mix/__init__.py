"""robustbench_mix: a fair benchmark of what mixup (Zhang et al., ICLR 2018) claims about robustness."""

__version__ = "0.2.0"  # 0.2.0: runs carry a rows_in_run marker, data_sha and resumed_from
