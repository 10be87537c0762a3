"""Atomic file writes: a reader sees the old file or the new one, never half of one.

Its own module so that every layer (data cache, checkpoints, results, plots) can use it without importing
another layer: the data layer never imports the results store.
"""

from __future__ import annotations

import contextlib
import os
import socket
import tempfile
import uuid
from pathlib import Path


def temporary_name(path: Path) -> Path:
    """Unique per writer, also across machines sharing a filesystem: host, process and a random part."""
    return path.with_name(f".{path.name}.{socket.gethostname()}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")


@contextlib.contextmanager
def atomic_file(path: Path, mode: str = "w"):
    """A file object whose content replaces ``path`` only when the block succeeds (fsync, then rename): a reader
    sees the old file or the new one, never half of one. A failed write (disk full, file-size limit, an
    exception in the block) removes its temporary file and leaves ``path`` as it was."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_name(path)
    try:
        with open(tmp, mode, **({} if "b" in mode else {"newline": "", "encoding": "utf-8"})) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def atomic_write_text(path: Path, text: str) -> None:
    with atomic_file(path) as f:
        f.write(text)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    with atomic_file(path, "wb") as f:
        f.write(data)


def check_writable(path: Path, flag: str) -> None:
    """A results directory given by ``flag`` that can be written: made if missing; a file there, or a directory
    that cannot be written, is a UsageError naming the flag (before any data are loaded)."""
    from robustbench_mix.core.errors import UsageError

    if path.exists() and not path.is_dir():
        raise UsageError(f"{flag} {str(path)!r} is a file; give a directory")
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path):
            pass
    except OSError as e:
        raise UsageError(f"{flag} {str(path)!r} is not writable ({e.strerror or e})") from None
