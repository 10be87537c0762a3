"""``python -m robustbench_mix.checkpoint``: the command's code is :mod:`robustbench_mix.cli.checkpoint`."""

import sys

from robustbench_mix.cli.checkpoint import main

if __name__ == "__main__":
    sys.exit(main())
