"""The one reader and writer of torch files: ``torch.load(weights_only=True)`` only (a file that needs pickle is
refused: unpickling can run code), and the checksum that the suite's checkpoints carry."""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import re
from pathlib import Path

import torch

from robustbench_mix.core.atomic import atomic_file
from robustbench_mix.core.errors import RunFailed, UsageError, first_line

CHECKPOINT = "checkpoint.pt"  # a run's checkpoint in its folder, runs/<run id>/


def read_state_dict(path) -> dict:
    """A state_dict file's tensors, never its pickled objects (unpickling can run code); the usual wrappings
    ({'state_dict': ...}, {'model': ...}, DataParallel's 'module.' prefix) are taken off. ``path``: a str or
    os.PathLike; anything else (a state_dict already in memory, a model) is refused with what to do instead."""
    if not isinstance(path, str | os.PathLike):
        held = "a state_dict in memory? " if isinstance(path, dict) else ""
        raise UsageError(f"weights= takes the path of a state_dict file or 'pretrained', got {type(path).__name__} "
                         f"({held}build the model without weights= and call its load_state_dict, or torch.save the "
                         "state_dict and give its path)")
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"weights {str(path)!r}: no such file (weights= takes a state_dict file or 'pretrained')")
    try:
        sd = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if "GLOBAL" not in str(e):  # not a Python object the safe loader refused: not a torch file at all
            raise UsageError(f"weights {path} are not a readable torch file (torch.load: unsupported content)"
                             ) from None
        raise UsageError(f"weights {path} were refused: loading them needs pickle (the file holds Python objects, "
                         "and unpickling can run any code in it); save them with torch.save(model.state_dict(), "
                         "PATH)") from None
    except Exception as e:  # not a torch file: truncated, another format
        raise UsageError(f"weights {path} are not a readable torch file ({e.__class__.__name__})") from None
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(sd, dict) and isinstance(sd.get(key), dict) and not torch.is_tensor(sd[key]):
            sd = sd[key]
            break
    if not isinstance(sd, dict) or not sd or not all(torch.is_tensor(v) for v in sd.values()):
        raise UsageError(f"weights {path} hold no state_dict (a dict of tensors, torch.save(model.state_dict(), "
                         "PATH))")
    if all(k.startswith("module.") for k in sd):
        sd = {k.removeprefix("module."): v for k, v in sd.items()}
    return sd


def read_weights(path: Path) -> dict:
    """The file's tensors, never its pickled objects; a suite checkpoint's checksum verified."""
    if path.is_dir():
        raise UsageError(f"{path} is a directory, not a checkpoint file (a suite's results directory holds them "
                         f"in runs/*/{CHECKPOINT})")
    if not path.is_file():
        raise UsageError(f"{path}: no such file")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        # torch's message goes on to suggest weights_only=False, i.e. running the file's code: not repeated here
        found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(e))
        what = f" (it holds a {found[1]})" if found else ""
        raise UsageError(f"{path} was refused: loading it needs pickle{what}: it holds Python objects, not only "
                         "tensors, and unpickling a file can run any code in it. Save the weights with "
                         "torch.save(model.state_dict(), PATH) and give that file") from None
    except Exception as e:  # not a torch file at all: truncated, another format
        raise UsageError(f"{path} is not a readable torch file ({e.__class__.__name__}: "
                         f"{first_line(e)[:300]})") from None
    if not isinstance(obj, dict):
        raise UsageError(f"{path} holds a {type(obj).__name__}, not a state_dict or a suite checkpoint")
    checksum = obj.pop("checksum", None)  # the suite's checkpoints since 0.2.0
    if checksum is not None and state_digest(obj) != checksum:
        raise UsageError(f"{path} fails its checksum: its content changed after the suite wrote it (a damaged disk "
                         "or copy, or an edit), so its numbers would not be the run's; it was not evaluated. Restore "
                         "the file or retrain the run (the suite with --force)")
    return obj


def state_digest(obj) -> str:
    """sha256 of everything in a checkpoint: tensors by their bytes, the rest by its repr, in a fixed order."""
    h = hashlib.sha256()

    def walk(x):
        if torch.is_tensor(x):
            t = x.detach().cpu().contiguous().reshape(-1)
            h.update(f"T{t.dtype}{tuple(x.shape)}".encode())
            h.update(t.view(torch.uint8).numpy().tobytes())
        elif isinstance(x, dict):
            for k in sorted(x, key=repr):
                h.update(repr(k).encode())
                walk(x[k])
        elif isinstance(x, list | tuple):
            h.update(f"L{len(x)}".encode())
            for v in x:
                walk(v)
        else:
            h.update(repr(x).encode())

    walk(obj)
    return h.hexdigest()


def save_checkpoint(state: dict, path: Path) -> None:
    """Atomically (a reader sees the old file or the new one), with a checksum of the content that
    :func:`load_checkpoint` verifies. A failed write (disk full, file-size limit) removes its temporary
    file and fails the run, naming the cause.

    The checkpoint is serialized in memory and written in one call: torch.save writing into a file turns the
    file's OSError (``ulimit -f``: EFBIG) into a RuntimeError of its zip writer that names no cause."""
    buffer = io.BytesIO()
    torch.save({**state, "checksum": state_digest(state)}, buffer)
    try:
        with atomic_file(path, "wb") as f:
            f.write(buffer.getbuffer())
    except OSError as e:
        raise RunFailed(f"could not write checkpoint {str(path)!r} ({e.strerror or e}); free space or raise the "
                        "file-size limit, then rerun the same command to resume from the last checkpoint") from e


def load_checkpoint(path: Path, device: torch.device) -> dict:
    try:
        ck = torch.load(path, map_location=device, weights_only=True)
    except Exception as e:  # truncated zip, garbage bytes, wrong format: all unreadable
        raise RunFailed(f"checkpoint {str(path)!r} is unreadable ({e.__class__.__name__}: {e}); "
                        f"delete it to restart that run, or rerun with --force") from e
    if not isinstance(ck, dict):
        raise RunFailed(f"checkpoint {str(path)!r} is not a checkpoint of this suite; delete it or rerun with --force")
    checksum = ck.pop("checksum", None)  # checkpoints written before 0.2.0 have none
    if checksum is not None and state_digest(ck) != checksum:
        raise RunFailed(f"checkpoint {str(path)!r} fails its checksum: its content changed after it was written "
                        "(a damaged disk or copy); delete it to restart that run, or rerun with --force")
    return ck
