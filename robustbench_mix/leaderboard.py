"""``python -m robustbench_mix.leaderboard``: the command's code is :mod:`robustbench_mix.cli.leaderboard`."""

import sys

from robustbench_mix.cli.leaderboard import main

if __name__ == "__main__":
    sys.exit(main())
