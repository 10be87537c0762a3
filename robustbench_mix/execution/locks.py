"""One trainer per run: a run directory's lock and the note of who holds it."""

from __future__ import annotations

import contextlib
import json
import os
import socket
from pathlib import Path

from filelock import FileLock

from robustbench_mix.core.atomic import atomic_file, atomic_write_bytes, atomic_write_text, temporary_name  # noqa: F401
from robustbench_mix.store.schema import now

# ------------------------------------------------------------------------------------- one trainer per run
OWNER = "owner.json"


class RunBusy(Exception):
    """Another process (maybe on another machine sharing --out) holds this run's lock: it is training it.
    ``waited``: the lock was waited for, until its timeout; ``run_id``: the run whose lock it is."""

    def __init__(self, holder: str, waited: bool = False, run_id: str = ""):
        super().__init__(holder)
        self.waited, self.run_id = waited, run_id


def run_owner(run_dir: Path) -> str:
    """Who holds a run's lock, from the note the holder leaves: 'pid 123 on host h since <time>'."""
    try:
        o = json.loads((run_dir / OWNER).read_text())
        return f"pid {o['pid']} on host {o['host']} since {o['since']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "another process"


@contextlib.contextmanager
def run_lock(run_dir: Path, wait: bool = False, timeout: float | None = None):
    """Hold ``run_dir``'s lock while training or redoing the run: at most one process works on a run at a time.

    Without ``wait`` a held lock raises :class:`RunBusy` at once; with it the call waits for the holder, for ever
    or at most ``timeout`` seconds (--time-limit's time left; 0 or less: not at all), then raises RunBusy.
    """
    from filelock import Timeout

    run_dir.mkdir(parents=True, exist_ok=True)
    lock = FileLock(run_dir / ".lock")
    try:
        lock.acquire(timeout=0 if not wait else -1 if timeout is None else max(timeout, 0))
    except Timeout:
        raise RunBusy(run_owner(run_dir), waited=wait, run_id=run_dir.name) from None
    try:
        atomic_write_text(run_dir / OWNER, json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                                       "since": now()}))
        yield
    finally:
        with contextlib.suppress(OSError):
            (run_dir / OWNER).unlink()
        lock.release()
