"""``python -m robustbench_mix.leaderboard``: a run as a RobustBench-style leaderboard entry."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from robustbench_mix.cli.common import add_plugin_flag, handled, load_plugin_args
from robustbench_mix.core.atomic import atomic_write_text
from robustbench_mix.core.errors import UsageError
from robustbench_mix.core.units import parse_eps
from robustbench_mix.reports.leaderboard import entry
from robustbench_mix.store.load import load_results


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m robustbench_mix.leaderboard", description=__doc__.split("\n\n")[0])
    p.add_argument("results", help="a runs.csv file or a results directory")
    p.add_argument("--run", help="the run's id (runs.csv column run_id)")
    p.add_argument("--model", help="the model's name (e.g. user:mlp), where it has one run")
    p.add_argument("--eps", default="8/255", help="the L-infinity epsilon of the entry (default: %(default)s)")
    p.add_argument("--eps-l2", help="an L2 entry (threat model L2) at this radius of the run's L2 attacks, e.g. 0.5 "
                   "(default for a run with L2 attacks only: its one radius)")
    p.add_argument("--dataset", help="RobustBench's name (cifar10, cifar100, imagenet) of the test set an image "
                   "folder holds; needed for a run on an image folder, said in the footnote")
    p.add_argument("--name", help="the entry's name (default: model, method and seed)")
    p.add_argument("--out", help="write the JSON here (default: print it)")
    add_plugin_flag(p)
    if load_plugin_args(argv):
        return 2
    args = p.parse_args(argv)

    def body() -> int:
        eps = parse_eps(args.eps)
        if len(eps) != 1:
            raise UsageError(f"--eps takes one epsilon (an entry is at one), got {args.eps!r}")
        eps_l2 = None
        if args.eps_l2 is not None:
            try:
                eps_l2 = float(args.eps_l2)
            except ValueError:
                raise UsageError(f"--eps-l2 {args.eps_l2!r} is not a number; give one L2 radius, e.g. 0.5") from None
        info = entry(load_results(args.results), args.run, args.model, eps[0], args.name, eps_l2, args.dataset)
        text = json.dumps(info, indent=2, ensure_ascii=False) + "\n"
        if args.out:
            atomic_write_text(Path(args.out), text)
        print(text, end="")
        return 0

    return handled(body, paths={"--out": (args.out, "a file (not a directory) in a folder that can be written")})


if __name__ == "__main__":
    sys.exit(main())
