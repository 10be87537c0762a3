"""Exceptions shared by the modules: usage errors exit with status 2 before any training starts."""


class UsageError(ValueError):
    """Bad input from the user (a flag, a preset, a data folder). The CLI prints it and exits 2."""


class RunFailed(RuntimeError):
    """A single run failed (non-finite loss, out of memory, unreadable checkpoint); the suite goes on."""


def first_line(e: BaseException) -> str:
    """An exception's first line of text (its class name when it has none), for one-line error messages."""
    return (str(e).strip().splitlines() or [e.__class__.__name__])[0]
