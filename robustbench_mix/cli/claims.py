"""``python -m robustbench_mix.claims``: check results against the paper's claims (claims.toml)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from robustbench_mix.cli.common import add_plugin_flag, handled, load_plugin_args
from robustbench_mix.core.atomic import atomic_write_text
from robustbench_mix.core.errors import UsageError
from robustbench_mix.reports.claims import CLAIMS_FILE, RELAXABLE, check_all, load_claims, parse_relax, section
from robustbench_mix.store.load import load_results
from robustbench_mix.store.write import atomic_write_csv


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m robustbench_mix.claims", description=__doc__.split("\n\n")[0])
    p.add_argument("results", nargs="+", help="runs.csv files or results directories (pooled)")
    p.add_argument("--relax", default="", help=f"ignore these selection fields ({', '.join(RELAXABLE)}), e.g. to "
                   "check the directions on digits; verdicts are then at most 'direction only'")
    p.add_argument("--claims", default=str(CLAIMS_FILE), help="claims file (default: the package's)")
    p.add_argument("--out", help="also write claims.csv and claims.md into this directory (default: print only; "
                   "nothing is written beside the results unless asked)")
    add_plugin_flag(p)
    if load_plugin_args(argv):
        return 2
    args = p.parse_args(argv)

    def body() -> int:
        relax = parse_relax(args.relax)
        df = pd.concat([load_results(r) for r in args.results], ignore_index=True)
        try:
            claims = load_claims(Path(args.claims))
        except (OSError, KeyError) as e:  # an unreadable or malformed claims file is bad input, as a bad results file
            raise UsageError(f"--claims {args.claims}: {e.__class__.__name__}: {e}") from None
        table = check_all(df, relax, claims)
        md = section(table, relax)
        if args.out:
            out = Path(args.out)
            atomic_write_csv(table, out / "claims.csv")
            atomic_write_text(out / "claims.md", "# The paper's claims against these results\n\n" + md)
        print(md)
        return 0

    return handled(body, paths={"--out": (args.out, "a directory that can be written (made if missing)")})


if __name__ == "__main__":
    sys.exit(main())
