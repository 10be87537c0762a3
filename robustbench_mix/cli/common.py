"""What every command shares: the one error handler (exit codes), the plugins' flag and the executor choice."""

from __future__ import annotations

import errno
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from robustbench_mix.core.errors import UsageError
from robustbench_mix.execution.executors import EXECUTORS, LocalExecutor
from robustbench_mix.execution.ray import RayExecutor
from robustbench_mix.plugins import ENV as PLUGINS_ENV
from robustbench_mix.plugins import load_plugins, plugin_specs
from robustbench_mix.store.schema import ResultsError

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2  # the time limit's 3 is execution.timelimit.EXIT_CODE

# what an OSError says about a path the user named, as opposed to the machine's state (a full disk, EIO)
PATH_ERRNOS = {errno.EISDIR, errno.ENOTDIR, errno.EEXIST, errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOENT,
               errno.ENAMETOOLONG, errno.ELOOP}
Paths = Mapping[str, tuple[str | Path | Sequence[str] | None, str]]  # flag -> (the path(s) given, what it must be)


def _about(e: OSError, paths: Paths) -> tuple[str, str, str] | None:
    """(flag, path given, what it must be) when ``e`` is about a path the user gave: that path, a file under it,
    a folder above it, or its atomic-write temporary beside it."""
    if e.errno not in PATH_ERRNOS:
        return None
    hit = [Path(os.path.abspath(n)) for n in (e.filename, e.filename2) if isinstance(n, str | os.PathLike)]
    for flag, (given, allowed) in paths.items():
        for g in [given] if isinstance(given, str | Path) else list(given or ()):
            p = Path(os.path.abspath(g))
            for n in hit:
                if n == p or p in n.parents or n in p.parents or (
                        n.parent == p.parent and n.name.startswith(f".{p.name}.") and n.name.endswith(".tmp")):
                    return flag, str(g), allowed
    return None


def handled(body: Callable[[], int], *, usage_errors: tuple[type[BaseException], ...] = (),
            on_os_error: str = "fix the cause and run the same command again", paths: Paths | None = None) -> int:
    """Run a command's body; what reaches a user is one ``error:`` line, never a traceback.

    Bad input (``UsageError``, a results file off the contract, and ``usage_errors``) exits 2 with its message,
    and so does a file error about a path the user gave (``paths``: flag -> (the path or paths, what it must
    be), e.g. ``--out`` a directory where a file is written, or a folder that cannot be written); any other file
    that cannot be read or written (disk full) exits 1 naming the cause and ``on_os_error``; a closed pipe
    (``... | head``) exits 0 quietly.
    """
    try:
        return body()
    except (UsageError, ResultsError, *usage_errors) as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:  # the reader left (e.g. --dry-run | head): nothing is wrong
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except OSError as e:  # a results file that cannot be written (disk full, permissions, a directory)
        named = _about(e, paths or {})
        if named is not None:
            flag, given, allowed = named
            names = [str(n) for n in (e.filename, e.filename2) if isinstance(n, str | os.PathLike)]
            plain = [n for n in names if not n.endswith(".tmp")]  # not the atomic write's temporary name
            where = plain[0] if plain else f"writing in {Path(names[0]).parent}"
            print(f"error: {flag} {given!r}: {e.strerror or e}{'' if where == given else f' ({where})'}; {flag} "
                  f"must be {allowed}", file=sys.stderr)
            return EXIT_USAGE
        print(f"error: {e.__class__.__name__}: {e}; {on_os_error}", file=sys.stderr)
        return EXIT_FAILED


def get_executor(args) -> LocalExecutor | RayExecutor:
    return EXECUTORS.get(args.executor)(args)


PLUGIN_HELP = (f"load a plugin's methods, models, attacks and corruptions: a Python file (PATH.py) or a module "
               f"(package.module); repeatable; also ${PLUGINS_ENV} (os.pathsep-separated) and installed packages' "
               "entry points (group robustbench_mix.plugins). See docs/own-method.md")


def given_plugins(argv: Sequence[str]) -> list[str]:
    """The values of --plugin in ``argv`` (``--plugin X`` or ``--plugin=X``), read before the parser is built so
    that its --help and its errors for unknown names list the plugins' entries."""
    out, it = [], iter(argv)
    for a in it:
        if a == "--":
            break
        if a == "--plugin":
            out.append(next(it, ""))
        elif a.startswith("--plugin="):
            out.append(a.split("=", 1)[1])
    return out


def load_plugin_args(argv: Sequence[str] | None) -> int:
    """Load the plugins a command line names (and those of the environment and the entry points): EXIT_OK, or
    EXIT_USAGE after one ``error:`` line naming the plugin and the problem. Called first, before any data."""
    argv = sys.argv[1:] if argv is None else argv

    def body() -> int:
        load_plugins(plugin_specs(given_plugins(argv)))
        return EXIT_OK

    return handled(body)


def add_plugin_flag(parser) -> None:
    """--plugin on a command's parser (its plugins are loaded already, by :func:`load_plugin_args`)."""
    parser.add_argument("--plugin", action="append", default=[], metavar="PATH.py|MODULE", help=PLUGIN_HELP)
