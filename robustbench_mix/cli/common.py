"""What every command shares: the one error handler (exit codes) and the executor choice."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

from robustbench_mix.core.errors import UsageError
from robustbench_mix.execution.executors import EXECUTORS, LocalExecutor
from robustbench_mix.execution.ray import RayExecutor
from robustbench_mix.store.schema import ResultsError

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2  # the time limit's 3 is execution.timelimit.EXIT_CODE


def handled(body: Callable[[], int], *, usage_errors: tuple[type[BaseException], ...] = (),
            on_os_error: str = "fix the cause and run the same command again") -> int:
    """Run a command's body; what reaches a user is one ``error:`` line, never a traceback.

    Bad input (``UsageError``, a results file off the contract, and ``usage_errors``) exits 2 with its message;
    a file that cannot be read or written exits 1 naming the cause and ``on_os_error``; a closed pipe
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
        print(f"error: {e.__class__.__name__}: {e}; {on_os_error}", file=sys.stderr)
        return EXIT_FAILED


def get_executor(args) -> LocalExecutor | RayExecutor:
    return EXECUTORS.get(args.executor)(args)
