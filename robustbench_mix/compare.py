"""``python -m robustbench_mix.compare``: the command's code is :mod:`robustbench_mix.cli.compare`."""

import sys

from robustbench_mix.cli.compare import main

if __name__ == "__main__":
    sys.exit(main())
