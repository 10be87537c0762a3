"""Data sets as uint8 image tensors, label corruption, the validation split and on-device augmentation.

Every loader returns an :class:`ImageData` on the CPU: images ``(N, C, H, W)`` uint8 and labels int64.
:func:`prepare` moves it to the training device once; batches are sliced, augmented and converted to
float there, so no per-image CPU work happens during training.
"""

from __future__ import annotations

import functools
import hashlib
import os
import urllib.error
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .atomic import atomic_file
from .errors import UsageError
from .registry import Registry

DATASETS: Registry = Registry("dataset")
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


def check_dataset_spec(spec: str) -> None:
    name, arg = split_spec(spec)
    DATASETS.get(name)
    if name == "imagefolder":
        if not arg:
            raise UsageError("dataset 'imagefolder' needs a path: --dataset imagefolder:PATH")
        scan_image_folder(Path(arg))
    elif arg is not None:
        raise UsageError(f"dataset {name!r} takes no ':' argument (got {spec!r})")


def load(spec: str, data_dir: str | os.PathLike) -> ImageData:
    name, arg = split_spec(spec)
    loader = DATASETS.get(name)
    return loader(arg, Path(data_dir)) if name == "imagefolder" else loader(Path(data_dir))


# --------------------------------------------------------------------------------------------- loaders
@DATASETS.register("digits")
def load_digits(data_dir: Path) -> ImageData:
    """scikit-learn's embedded handwritten digits: 1,797 real 8x8 images with 17 grey levels.

    A fixed split (seed 0, independent of the run's seed) keeps the test set the same across runs.
    """
    from sklearn.datasets import load_digits as sk_load

    d = sk_load()
    x = np.rint(d.images * (255.0 / 16.0)).astype(np.uint8)[:, None]  # (N, 1, 8, 8)
    y = d.target.astype(np.int64)
    order = np.random.default_rng(0).permutation(len(y))
    n_test = 497  # leaves 1,300 training images
    test, train = order[:n_test], order[n_test:]
    return ImageData(
        "digits",
        torch.from_numpy(x[train]),
        torch.from_numpy(y[train]),
        torch.from_numpy(x[test]),
        torch.from_numpy(y[test]),
        [str(i) for i in range(10)],
        "none",
    )


def _torchvision_cifar(cls_name: str, files: str, data_dir: Path) -> ImageData:
    import torchvision

    cls = getattr(torchvision.datasets, cls_name)
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        train = cls(str(data_dir), train=True, download=True)
        test = cls(str(data_dir), train=False, download=True)
    except (urllib.error.URLError, OSError, RuntimeError) as e:
        raise UsageError(
            f"could not load {cls_name} from --data-dir {str(data_dir)!r}: {e}. "
            f"The files expected there are {files}; they are downloaded when absent, which needs a network. "
            f"Without one, copy them into a folder and pass it as --data-dir, or use --dataset "
            f"imagefolder:PATH or --dataset digits (embedded, no download)."
        ) from e

    def to_t(ds):
        return (torch.from_numpy(np.ascontiguousarray(ds.data.transpose(0, 3, 1, 2))),
                torch.as_tensor(np.asarray(ds.targets), dtype=torch.int64))

    (trx, try_), (tex, tey) = to_t(train), to_t(test)
    return ImageData(cls_name.lower(), trx, try_, tex, tey, list(train.classes), "crop_flip")


@DATASETS.register("cifar10")
def load_cifar10(data_dir: Path) -> ImageData:
    return _torchvision_cifar("CIFAR10", "cifar-10-python.tar.gz or its unpacked cifar-10-batches-py/",
                              data_dir)


@DATASETS.register("cifar100")
def load_cifar100(data_dir: Path) -> ImageData:
    return _torchvision_cifar("CIFAR100", "cifar-100-python.tar.gz or its unpacked cifar-100-python/",
                              data_dir)


def scan_image_folder(root: Path) -> dict[str, list[tuple[Path, int]]]:
    """List (file, class index) per split, checking the layout; errors name what is wrong."""
    if not root.is_dir():
        raise UsageError(f"image folder {str(root)!r} does not exist or is not a folder")
    missing = [s for s in ("train", "test") if not (root / s).is_dir()]
    if missing:
        raise UsageError(f"image folder {str(root)!r} has no {' or '.join(s + '/' for s in missing)}; "
                         f"expected {root}/train/<class>/* and {root}/test/<class>/*")
    classes = {}
    for split in ("train", "test"):
        classes[split] = sorted(p.name for p in (root / split).iterdir() if p.is_dir())
        if not classes[split]:
            raise UsageError(f"image folder {str(root / split)!r} has no class folders")
    if classes["train"] != classes["test"]:
        only_train = sorted(set(classes["train"]) - set(classes["test"]))
        only_test = sorted(set(classes["test"]) - set(classes["train"]))
        raise UsageError(f"image folder {str(root)!r}: classes differ between train/ and test/ "
                         f"(only in train: {only_train or 'none'}; only in test: {only_test or 'none'})")
    files: dict[str, list[tuple[Path, int]]] = {}
    for split in ("train", "test"):
        files[split] = []
        for ci, c in enumerate(classes["train"]):
            found = sorted(p for p in (root / split / c).iterdir() if p.is_file() and not p.name.startswith("."))
            if not found:
                raise UsageError(f"image folder class {str(root / split / c)!r} is empty")
            files[split].extend((p, ci) for p in found)
    files["classes"] = classes["train"]  # type: ignore[assignment]
    return files


MAX_PIXELS = 4096 * 4096  # far above any image this suite trains on; larger ones are refused before decoding
SIXTEEN_BIT = ("I;16", "I;16B", "I;16L", "I;16N", "I")  # PIL's modes for 16-bit greyscale (PNG, TIFF)


def _decode(path: Path, size: tuple[int, int] | None = None) -> np.ndarray:
    """(H, W, 3) uint8. The header is checked before any pixel is decoded: the size (``size``: that of the
    first image, as all must match) and a pixel budget, so a decompression bomb is refused, not decoded.
    16-bit greyscale is scaled to 8 bits (PIL's RGB conversion would clip it to white)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:  # reads the header only
            w, h = im.size
            if w * h > MAX_PIXELS:
                raise UsageError(f"{str(path)!r} is {w}x{h} pixels, more than the {MAX_PIXELS:,} an image of an "
                                 "image folder may have; refused before decoding")
            if size is not None and (w, h) != size:
                raise UsageError(f"images in an image folder must all have one size: {str(path)!r} is {w}x{h} "
                                 f"but the first is {size[0]}x{size[1]}")
            if im.mode in SIXTEEN_BIT:
                a = np.asarray(im).astype(np.int64)
                if a.min() < 0 or a.max() > 65535:
                    raise UsageError(f"{str(path)!r} holds 32-bit values outside 0-65535 (mode {im.mode}); "
                                     "convert it to 8 or 16 bits per channel")
                g = ((a * 255 + 32767) // 65535).astype(np.uint8)
                return np.repeat(g[:, :, None], 3, axis=2)
            if im.mode == "F":
                raise UsageError(f"{str(path)!r} holds floating-point pixels (mode F); convert it to 8 or 16 bits")
            return np.asarray(im.convert("RGB"), dtype=np.uint8)
    except UsageError:
        raise
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError, ValueError) as e:
        raise UsageError(f"{str(path)!r} is not a readable image ({e.__class__.__name__}: {e}); "
                         f"an image folder may hold only images ({', '.join(sorted(IMAGE_SUFFIXES))})") from e



@DATASETS.register("imagefolder")
def load_image_folder(arg: str, data_dir: Path) -> ImageData:
    """Decode ``PATH/{train,test}/<class>/*`` once and cache the uint8 arrays under --data-dir."""
    root = Path(arg).expanduser().resolve()
    listing = scan_image_folder(root)
    classes: list[str] = listing.pop("classes")  # type: ignore[assignment]
    key = hashlib.sha256()
    for split in ("train", "test"):
        for p, c in listing[split]:
            st = p.stat()
            key.update(f"{p.relative_to(root)}|{c}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    key.update("\n".join(classes).encode())
    digest = key.hexdigest()
    cache = data_dir / f"imagefolder-{root.name}-{digest[:12]}.npz"
    sizes = {s: len(listing[s]) for s in ("train", "test")}
    if cache.exists():
        try:
            with np.load(cache) as z:
                # the cache says which listing it was built from: a file copied or renamed into place is not trusted
                if str(z["key"]) == digest and all(len(z[f"{s}_y"]) == n for s, n in sizes.items()):
                    arrays = {k: torch.from_numpy(z[k]) for k in ("train_x", "train_y", "test_x", "test_y")}
                    return ImageData(f"imagefolder:{root.name}", **arrays, classes=classes,
                                     augment=augment_for(arrays["train_x"].shape))
        except Exception:  # noqa: BLE001 - truncated zip, bad pickle, missing array: every damaged cache is rebuilt
            pass
    arrays = {}
    h, w = _decode(listing["train"][0][0]).shape[:2]  # the size every other image must have
    size = (w, h)
    decode = functools.partial(_decode, size=size)
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:  # PIL decodes outside the GIL
        for split in ("train", "test"):
            imgs = list(pool.map(decode, [p for p, _ in listing[split]]))
            arrays[f"{split}_x"] = np.ascontiguousarray(np.stack(imgs).transpose(0, 3, 1, 2))
            arrays[f"{split}_y"] = np.array([c for _, c in listing[split]], dtype=np.int64)
    try:
        with atomic_file(cache, "wb") as f:
            np.savez(f, key=np.array(digest), **arrays)
    except OSError:
        pass  # caching is an optimisation; a read-only --data-dir only costs the decode next time
    tensors = {k: torch.from_numpy(v) for k, v in arrays.items()}
    return ImageData(f"imagefolder:{root.name}", **tensors, classes=classes,
                     augment=augment_for(arrays["train_x"].shape))


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


@dataclass(frozen=True)
class Augmentation:
    """A batched random augmentation split in two: ``draw`` makes the random numbers (from the run's
    generator), ``apply`` is a pure function of the batch and those numbers. The split lets a whole
    training step be captured as one CUDA graph (``fit(cuda_graphs="step")``): the draws are made
    outside the graph and copied into its input buffers. Calling the object does both."""

    draw: Callable[[int, torch.device, torch.Generator], tuple[torch.Tensor, ...]]
    apply: Callable[..., torch.Tensor]

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return self.apply(x, *self.draw(len(x), x.device, generator))


PAD = 4  # the crop's zero padding, as in the paper's CIFAR code


def _crop_flip_draw(n: int, device: torch.device, generator: torch.Generator) -> tuple[torch.Tensor, ...]:
    off = torch.randint(0, 2 * PAD + 1, (2, n), device=device, generator=generator)
    flip = torch.rand(n, device=device, generator=generator) < 0.5
    return off, flip


def _crop_flip_apply(x: torch.Tensor, off: torch.Tensor, flip: torch.Tensor) -> torch.Tensor:
    """The crops are one gather from a strided view of every window of the padded batch (no copy of the
    windows), 2.6x faster on the CPU than indexing pixel by pixel."""
    n, c, h, w = x.shape
    windows = F.pad(x, (PAD, PAD, PAD, PAD)).unfold(2, h, 1).unfold(3, w, 1)  # (n, c, 2p+1, 2p+1, h, w)
    out = windows[torch.arange(n, device=x.device), :, off[0], off[1]]  # (n, c, h, w)
    return torch.where(flip[:, None, None, None], out.flip(3), out)


# Random crop with zero padding and random horizontal flip, batched on x's device (uint8 in and out).
crop_flip = Augmentation(_crop_flip_draw, _crop_flip_apply)
AUGMENTATIONS = {"none": Augmentation(lambda n, device, generator: (), lambda x: x), "crop_flip": crop_flip}
