"""``python -m robustbench_mix.report``: the command's code is :mod:`robustbench_mix.cli.report`."""

import sys

from robustbench_mix.cli.report import main

if __name__ == "__main__":
    sys.exit(main())
