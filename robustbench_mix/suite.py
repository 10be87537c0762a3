"""``python -m robustbench_mix.suite``: the command's code is :mod:`robustbench_mix.cli.suite`."""

import sys

from robustbench_mix.cli.suite import main

if __name__ == "__main__":
    sys.exit(main())
