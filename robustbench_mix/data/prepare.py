"""A run's data on the device: corrupted labels, validation split, the attacked subset, uint8 -> float."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import torch

from robustbench_mix.core.device import channels_last
from robustbench_mix.data.base import ImageData


def augment_for(shape) -> str:
    """Crop and flip for CIFAR-sized images; nothing for small ones (digits' 8x8)."""
    return "crop_flip" if shape[-1] >= 24 else "none"


# ----------------------------------------------------------------------------------- label corruption
def corrupt_labels(y: np.ndarray, num_classes: int, rate: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The paper's protocol: a seeded fraction ``rate`` of examples gets a label drawn uniformly from all
    classes, so about 1/num_classes of the picked labels are redrawn to their own class and about
    rate * (1 - 1/num_classes) of all labels change. Returns (noisy labels, mask of the labels that changed):
    a label redrawn to its true class is not corrupted, and counting it would put memorization's floor
    near 1/num_classes instead of 0.
    """
    rng = np.random.default_rng([seed, 2018])
    n = len(y)
    k = int(round(rate * n))
    idx = rng.choice(n, size=k, replace=False)
    noisy = y.copy()
    noisy[idx] = rng.integers(0, num_classes, size=k)
    return noisy, noisy != y


def validation_split(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded (train indices, validation indices) of the (noisy) training set; never touches the test set."""
    if fraction <= 0:
        return np.arange(n), np.arange(0)
    order = np.random.default_rng([seed, 7]).permutation(n)
    k = int(round(fraction * n))
    return np.sort(order[k:]), np.sort(order[:k])


SUBSET_SEED = 0  # one attacked subset per test set: the same images for every run, method and seed


def attack_subset(y: np.ndarray, n: int, seed: int = SUBSET_SEED) -> np.ndarray:
    """Sorted indices of a class-stratified sample of ``n`` of the labels ``y`` (all of them when ``n`` is 0 or
    at least ``len(y)``): each class gets its share of ``n`` by the largest-remainder rule (ties to the lower
    class), drawn without replacement by a generator seeded with ``seed`` alone, so every run attacks the same
    images. Storage order would not do: an image folder is sorted by class, its first 1000 are one class."""
    y = np.asarray(y)
    if n <= 0 or n >= len(y):
        return np.arange(len(y))
    classes, counts = np.unique(y, return_counts=True)
    quota = n * counts / len(y)
    take = np.floor(quota).astype(np.int64)
    short = n - int(take.sum())
    order = np.lexsort((np.arange(len(classes)), -(quota - take)))  # largest remainder first
    take[order[:short]] += 1
    rng = np.random.default_rng(seed)
    picked = [rng.choice(np.flatnonzero(y == c), size=k, replace=False) for c, k in zip(classes, take, strict=True)]
    return np.sort(np.concatenate(picked))


def subset_sha(index: np.ndarray) -> str:
    """A short fingerprint of an index set: two runs attacked the same images iff it is equal."""
    return hashlib.sha256(np.asarray(index, dtype="<i8").tobytes()).hexdigest()[:10]


@dataclass
class Prepared:
    """What the trainer and evaluators see: tensors on the device, noisy labels and bookkeeping."""

    train_x: torch.Tensor
    train_y: torch.Tensor  # noisy labels used for training
    train_true_y: torch.Tensor
    corrupted: torch.Tensor  # bool mask over the training subset: the labels that differ from the true ones
    val_x: torch.Tensor
    val_y: torch.Tensor  # noisy, like the data it was held out from
    test_x: torch.Tensor
    test_y: torch.Tensor
    num_classes: int
    augment: str
    corrupted_index: np.ndarray  # indices into the original training set of the labels that changed
    data_sha: str = ""  # the data set's fingerprint (ImageData.fingerprint), kept in checkpoints


def prepare(data: ImageData, noise: float, val_fraction: float, seed: int, device: torch.device,
            train_samples: int = 0) -> Prepared:
    """The run's tensors on ``device``: with ``train_samples`` > 0 a class-stratified subset of the training set
    (the same images for every seed and method, drawn as :func:`attack_subset` draws), then its labels corrupted
    and its validation part held out; ``corrupted_index`` indexes that subset."""
    keep = attack_subset(data.train_y.numpy(), train_samples)
    train_x = data.train_x if len(keep) == len(data.train_y) else data.train_x[torch.as_tensor(keep)]
    y = data.train_y.numpy()[keep]
    noisy, mask = corrupt_labels(y, data.num_classes, noise, seed)
    tr, va = validation_split(len(y), val_fraction, seed)

    def dev(a):
        return torch.as_tensor(a).to(device)

    return Prepared(
        train_x=dev(train_x[tr]),
        train_y=dev(noisy[tr]),
        train_true_y=dev(y[tr]),
        corrupted=dev(mask[tr]),
        val_x=dev(train_x[va]),
        val_y=dev(noisy[va]),
        test_x=dev(data.test_x),
        test_y=dev(data.test_y),
        num_classes=data.num_classes,
        augment=data.augment,
        corrupted_index=np.flatnonzero(mask),
        data_sha=data.fingerprint,
    )


# ------------------------------------------------------------------------------- on-device augmentation
def to_float(x: torch.Tensor) -> torch.Tensor:
    """uint8 (N, C, H, W) -> float32 in [0, 1] on the same device."""
    return x.float().div_(255.0)


def prep(x: torch.Tensor) -> torch.Tensor:
    x = to_float(x)
    return x.contiguous(memory_format=torch.channels_last) if x.dim() == 4 and channels_last(x.device) else x
