"""``python -m robustbench_mix.compare``: compare two or more results files with intervals."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from robustbench_mix.cli.common import add_plugin_flag, handled, load_plugin_args
from robustbench_mix.core.atomic import atomic_write_text
from robustbench_mix.reports.compare import INPUT, check_by, compare_sides, to_frame, to_markdown
from robustbench_mix.store.load import load_results
from robustbench_mix.store.write import atomic_write_csv


def input_names(paths: list[str]) -> list[str]:
    """What a side from each input is called: its directory's name (a runs.csv: its folder's), or the path as
    given where two would share a name."""
    short = [Path(p).name if Path(p).is_dir() or Path(p).name != "runs.csv" else Path(p).resolve().parent.name
             for p in paths]
    return short if len(set(short)) == len(short) else list(paths)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m robustbench_mix.compare", description=__doc__.split("\n\n")[0])
    p.add_argument("results", nargs="+", help="runs.csv files or results directories (their runs are pooled)")
    p.add_argument("--by", default="", help=f"the field(s) whose values are the sides (comma-separated): {INPUT} "
                   "(the file or directory a run came from; the default) or a configuration field, e.g. model, "
                   "method, noise, epochs")
    p.add_argument("--strict", action="store_true", help="align runs on every other field, also those that are "
                   "constant on each side (by default these are listed as part of what is compared)")
    p.add_argument("--out", default="results/compare", help="where comparison CSV/Markdown go (default: %(default)s)")
    add_plugin_flag(p)
    if load_plugin_args(argv):
        return 2
    args = p.parse_args(argv)
    by = tuple(f.strip() for f in args.by.split(",") if f.strip()) or (INPUT,)
    if by == (INPUT,) and len(args.results) < 2:
        p.error("give two or more results files or directories, or --by FIELD to compare within one")

    def body() -> int:
        check_by(by)
        frames = [load_results(r) for r in args.results]
        comparisons = compare_sides(frames, input_names(args.results), by, args.strict)
        out = Path(args.out)
        for i, cmp in enumerate(comparisons, 1):
            md = to_markdown(cmp, args.results)
            stem = "comparison" if len(comparisons) == 1 else f"comparison_{i}"
            atomic_write_csv(to_frame(cmp), out / f"{stem}.csv")
            atomic_write_text(out / f"{stem}.md", md)
            print(md)
        return 0

    return handled(body, paths={"--out": (args.out, "a directory that can be written (made if missing)")})


if __name__ == "__main__":
    sys.exit(main())
