"""``python -m robustbench_mix.bench``: the speed benchmark. It is a measurement script of the repository
(``experiments/bench/bench.py``), not part of the installed library; this command runs it from a clone."""

import runpy
import sys
from pathlib import Path

from robustbench_mix.cli.common import load_plugin_args

SCRIPT = Path(__file__).resolve().parents[1] / "experiments" / "bench" / "bench.py"


def load():
    """The benchmark script's names (``main``, the timed parts), as a dict."""
    if not SCRIPT.is_file():
        raise FileNotFoundError(SCRIPT)
    return runpy.run_path(str(SCRIPT), run_name="robustbench_mix_bench")


def without_plugins(argv: list[str]) -> list[str]:
    """``argv`` less its --plugin flags, which are loaded here (the script's parser does not know them)."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a == "--plugin":
            skip = True
        elif not a.startswith("--plugin="):
            out.append(a)
    return out


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if load_plugin_args(argv):  # --plugin PATH.py / MODULE, as every command takes
        return 2
    argv = without_plugins(argv)
    try:
        bench = load()
    except FileNotFoundError:
        print(f"error: the benchmark is a script of the repository ({SCRIPT} is missing here: an installed package "
              "has no experiments/); run it from a clone of the repository", file=sys.stderr)
        return 2
    return bench["main"](argv)


if __name__ == "__main__":
    sys.exit(main())
