"""ImageData (uint8 images and labels) and the data-set registry with its specs (NAME or NAME:ARG)."""

from __future__ import annotations

import functools
import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from robustbench_mix.core.errors import UsageError
from robustbench_mix.core.registry import Registry


@dataclass(frozen=True)
class Source:
    """A data set's loader and its traits, so that no command names data sets: ``folder`` what its download writes
    into --data-dir (None: it needs no download), ``test_size`` its fixed test split's size (None: it depends on
    the folder), ``corrupted`` its common-corruptions twin of the standard files (``cifar10c``), if any."""

    load: Callable[..., ImageData]
    folder: str | None = None
    test_size: int | None = None
    corrupted: str | None = None
    takes_arg: bool = False  # NAME:ARG (imagefolder:PATH)


DATASETS: Registry[Source] = Registry("dataset")


def dataset(name: str, **traits):
    """Register the decorated loader as data set ``name`` with its traits (see :class:`Source`)."""

    def deco(fn):
        DATASETS.register(name)(Source(fn, **traits))
        return fn

    return deco


def needs_download(spec: str, data_dir: str | os.PathLike) -> bool:
    """Whether loading ``spec`` would download it (its folder is not in ``data_dir`` yet)."""
    folder = DATASETS.get(split_spec(spec)[0]).folder
    return folder is not None and not (Path(data_dir) / folder).is_dir()


def downloads(spec: str) -> bool:
    return DATASETS.get(split_spec(spec)[0]).folder is not None


def test_size(spec: str) -> int | None:
    """The test split's size of a data set whose split is fixed (its corrupted twin's too), else None."""
    name = split_spec(spec)[0]
    if name in DATASETS:
        return DATASETS.get(name).test_size
    twin = trained_on(spec)
    return DATASETS.get(twin).test_size if twin != spec else None


def trained_on(spec: str) -> str:
    """The data set a model evaluated on ``spec`` was trained on: ``cifar10`` for its twin ``cifar10c``."""
    return next((n for n in DATASETS if DATASETS.get(n).corrupted == spec), spec)
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".ppm", ".tif", ".tiff", ".webp"}


@dataclass
class ImageData:
    name: str
    train_x: torch.Tensor  # (N, C, H, W) uint8
    train_y: torch.Tensor  # (N,) int64, the true labels
    test_x: torch.Tensor
    test_y: torch.Tensor
    classes: list[str]
    augment: str  # "crop_flip" for 32x32 natural images, "none" for digits

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.train_x.shape[1:])  # type: ignore[return-value]

    @functools.cached_property
    def fingerprint(self) -> str:
        """sha256 (16 hex digits) of the content: images, labels and class names of both splits. Recorded with
        every run, so results measured on other data (a changed image folder) are noticed."""
        h = hashlib.sha256()
        for t in (self.train_x, self.train_y, self.test_x, self.test_y):
            h.update(f"{tuple(t.shape)}{t.dtype}".encode())
            h.update(t.contiguous().numpy().tobytes())
        h.update("\n".join(self.classes).encode())
        return h.hexdigest()[:16]

    def channel_stats(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """Per-channel mean and std of the training images in [0, 1], for the model's normalization layer."""
        x = self.train_x.double() / 255.0
        mean = x.mean(dim=(0, 2, 3))
        std = x.std(dim=(0, 2, 3)).clamp_min(1e-3)
        return tuple(round(v, 4) for v in mean.tolist()), tuple(round(v, 4) for v in std.tolist())


def split_spec(spec: str) -> tuple[str, str | None]:
    """'imagefolder:/data/x' -> ('imagefolder', '/data/x'); 'digits' -> ('digits', None)."""
    name, sep, arg = spec.partition(":")
    return name, (arg if sep else None)


def short_name(spec: str) -> str:
    """A data set as a reader should see it: 'imagefolder:/home/me/data/cifar10-jpeg' -> 'imagefolder:cifar10-jpeg'
    (the folder's name; a local path says nothing to another machine and can expose one's home directory)."""
    name, arg = split_spec(str(spec))
    if arg and ("/" in arg or "\\" in arg):
        return f"{name}:{Path(arg.rstrip('/')).name or arg}"
    return str(spec)


def check_dataset_spec(spec: str) -> None:
    name, arg = split_spec(spec)
    if DATASETS.get(name).takes_arg:
        if not arg:
            raise UsageError(f"dataset {name!r} needs a path: --dataset {name}:PATH")
        from robustbench_mix.data.sources import scan_image_folder  # the sources register into this module

        scan_image_folder(Path(arg))
    elif arg is not None:
        raise UsageError(f"dataset {name!r} takes no ':' argument (got {spec!r})")


def load(spec: str, data_dir: str | os.PathLike) -> ImageData:
    name, arg = split_spec(spec)
    source = DATASETS.get(name)
    return source.load(arg, Path(data_dir)) if source.takes_arg else source.load(Path(data_dir))
