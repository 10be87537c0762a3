"""The standard CIFAR-10-C / CIFAR-100-C files (Zenodo), read and checked: ``<corruption>.npy`` of uint8 images
(5 x N, 32, 32, 3), severity 1 first, and ``labels.npy`` (5 x N labels, the test set's five times)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch

from robustbench_mix.core.errors import UsageError
from robustbench_mix.corruptions.base import EXTRA_CORRUPTIONS, SEVERITIES, STANDARD_CORRUPTIONS

# name: (folder and title, where the files come from, the results' prefix)
SOURCES = {"cifar10c": ("CIFAR-10-C", "https://zenodo.org/records/2535967", "c10c"),
           "cifar100c": ("CIFAR-100-C", "https://zenodo.org/records/3555552", "c100c")}
CLASSES = {"cifar10c": 10, "cifar100c": 100}
RELEASE = STANDARD_CORRUPTIONS + EXTRA_CORRUPTIONS


def _load(path: Path, mmap: bool = False) -> np.ndarray:
    """np.load without pickles; whatever it cannot read is a UsageError naming the file."""
    if not path.is_file():
        raise UsageError(f"{path}: not a file (expected a .npy array)")
    try:
        a = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except (OSError, ValueError, EOFError) as e:
        raise UsageError(f"{path}: not a readable .npy array ({e})") from None
    if not isinstance(a, np.ndarray):  # an .npz archive
        raise UsageError(f"{path}: not a .npy array (an .npz archive?)")
    return a


def load_labels(path: Path, classes: int) -> np.ndarray:
    y = _load(path)
    if y.ndim == 2 and y.shape[1] == 1:  # a column: one label per row, never broadcast against another axis
        y = y[:, 0]
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer) or not len(y):
        raise UsageError(f"{path}: expected integer labels of shape (N,), got {y.dtype} {y.shape}")
    if y.min() < 0 or y.max() >= classes:
        raise UsageError(f"{path}: labels must lie in 0..{classes - 1}, got {y.min()}..{y.max()}")
    if len(y) % len(SEVERITIES):
        raise UsageError(f"{path}: {len(y)} labels is not five severities of one test set")
    blocks = y.reshape(len(SEVERITIES), -1)
    if (blocks != blocks[0]).any():
        raise UsageError(f"{path}: the five severities' labels differ (each block of {blocks.shape[1]} must be the "
                         "test set's labels in the same order)")
    return y.astype(np.int64)


def load_standard(name: str, data_dir: str | Path) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """CIFAR-10-C / CIFAR-100-C: {corruption: uint8 (5 * N, 3, 32, 32)} in severity order, and the labels.
    Only files named as the release's 19 corruptions are read; any other ``.npy`` is left out with a warning."""
    (title, source, _), classes = SOURCES[name], CLASSES[name]
    folder = Path(data_dir) / title
    labels = folder / "labels.npy"
    found = sorted(p for p in folder.glob("*.npy") if p.name != "labels.npy") if folder.is_dir() else []
    stray = [p.name for p in found if p.stem not in RELEASE]
    if stray:
        warnings.warn(f"{folder}: ignored {', '.join(stray)} (not one of the release's corruptions: "
                      f"{', '.join(RELEASE)})", stacklevel=2)
    files = [p for p in found if p.stem in RELEASE]
    if not labels.exists() or not files:
        raise UsageError(f"{title} not found: expected {folder}/labels.npy and {folder}/<corruption>.npy (e.g. "
                         f"{', '.join(c + '.npy' for c in STANDARD_CORRUPTIONS[:3])}, ...), the standard files from "
                         f"{source}; unpack the archive into --data-dir ({data_dir})")
    y = load_labels(labels, classes)
    out = {}
    for f in sorted(files, key=lambda p: RELEASE.index(p.stem)):
        x = _load(f, mmap=True)
        if x.dtype != np.uint8 or x.shape != (len(y), 32, 32, 3):
            raise UsageError(f"{f}: expected uint8 images ({len(y)}, 32, 32, 3), one per label in labels.npy "
                             f"(height, width, RGB), got {x.dtype} {x.shape}")
        out[f.stem] = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
    return out, torch.from_numpy(y)
