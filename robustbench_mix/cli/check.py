"""``python -m robustbench_mix.check --plugin my.py``: hold a plugin's entries to the registries' contracts.

Each entry of the plugins given (``--plugin``, ``$ROBUSTBENCH_MIX_PLUGINS``, installed entry points) is checked
with the rules ``tests/contracts`` holds the built-in entries to (robustbench_mix.plugins.contracts); ``--all``
checks the built-ins too (so does a call without any plugin). One line per entry: ``ok`` or, for each rule it
breaks, ``FAIL kind name: rule: problem``. Exit 0 when all pass, 1 when one fails, 2 on a bad plugin."""

from __future__ import annotations

import argparse
import sys

from robustbench_mix.cli.common import EXIT_FAILED, EXIT_OK, add_plugin_flag, handled, load_plugin_args
from robustbench_mix.plugins.contracts import REGISTRIES, RULES, available, check_entry, digits_batch, entries


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(prog="python -m robustbench_mix.check", description=__doc__.split("\n\n")[0])
    p.add_argument("--all", action="store_true", help="check the built-in entries too (the default without plugins)")
    p.add_argument("--kinds", default=",".join(RULES), help="which registries (default: %(default)s)")
    add_plugin_flag(p)
    if load_plugin_args(argv):
        return 2
    args = p.parse_args(argv)

    def body() -> int:
        from robustbench_mix.core.errors import UsageError

        kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
        bad = [k for k in kinds if k not in RULES]
        if bad:
            raise UsageError(f"--kinds {bad[0]!r} is not one of {', '.join(RULES)}")
        plugins_only = not args.all and any(REGISTRIES[k].origin(n) for k in RULES for n in REGISTRIES[k])
        batch = digits_batch()
        failed = checked = 0
        for kind in kinds:
            for name in entries(kind, plugins_only):
                if kind == "attack" and not available(name):
                    print(f"skip {kind} {name}: needs an optional package")
                    continue
                origin = REGISTRIES[kind].origin(name)
                who = f"{kind} {name}" + (f" (plugin {origin.module})" if origin else "")
                problems = check_entry(kind, name, batch)
                checked += 1
                failed += bool(problems)
                if not problems:
                    print(f"ok   {who}")
                for rule, problem in problems:
                    print(f"FAIL {who}: {rule}: {problem}")
        print(f"{checked - failed} of {checked} entries pass" + (f"; {failed} fail" if failed else ""))
        return EXIT_FAILED if failed else EXIT_OK

    return handled(body)


if __name__ == "__main__":
    sys.exit(main())
