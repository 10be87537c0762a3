"""``python -m robustbench_mix.bench``: the speed benchmark. It is a measurement script of the repository
(``experiments/bench/bench.py``), not part of the installed library; this command runs it from a clone."""

import runpy
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "experiments" / "bench" / "bench.py"


def load():
    """The benchmark script's names (``main``, the timed parts), as a dict."""
    if not SCRIPT.is_file():
        raise FileNotFoundError(SCRIPT)
    return runpy.run_path(str(SCRIPT), run_name="robustbench_mix_bench")


def main(argv: list[str] | None = None) -> int:
    try:
        bench = load()
    except FileNotFoundError:
        print(f"error: the benchmark is a script of the repository ({SCRIPT} is missing here: an installed package "
              "has no experiments/); run it from a clone of the repository", file=sys.stderr)
        return 2
    return bench["main"](argv)


if __name__ == "__main__":
    sys.exit(main())
