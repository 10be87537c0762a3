"""``python -m robustbench_mix.claims``: the command's code is :mod:`robustbench_mix.cli.claims`."""

import sys

from robustbench_mix.cli.claims import main

if __name__ == "__main__":
    sys.exit(main())
