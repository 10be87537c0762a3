"""``python -m robustbench_mix.check``: the command's code is :mod:`robustbench_mix.cli.check`."""

import sys

from robustbench_mix.cli.check import main

if __name__ == "__main__":
    sys.exit(main())
