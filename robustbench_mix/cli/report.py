"""``python -m robustbench_mix.report``: a results directory's report (Markdown and HTML)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from robustbench_mix.cli.common import add_plugin_flag, handled, load_plugin_args
from robustbench_mix.core.errors import UsageError
from robustbench_mix.reports.claims import parse_relax
from robustbench_mix.reports.report import write_report


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m robustbench_mix.report", description=__doc__.split("\n\n")[0])
    p.add_argument("results", nargs="+", help="results directories (each gets its own report)")
    p.add_argument("--relax", default="", help="as the claims command's: check the claims' directions without "
                   "requiring these fields (dataset, model)")
    add_plugin_flag(p)
    if load_plugin_args(argv):
        return 2
    args = p.parse_args(argv)

    def body() -> int:
        relax = parse_relax(args.relax)
        for r in args.results:
            d = Path(r)
            if not d.is_dir():
                raise UsageError(f"{r} is not a results directory")
            md, page = write_report(d, relax)
            print(f"wrote {md} and {page}")
        return 0

    return handled(body, paths={"results": (args.results, "results directories that can be written (each report "
                                             "is written into its directory)")})


if __name__ == "__main__":
    sys.exit(main())
