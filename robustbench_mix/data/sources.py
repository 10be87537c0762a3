"""The data sets: scikit-learn's digits, CIFAR-10/100 through torchvision, and image folders."""

from __future__ import annotations

import functools
import hashlib
import os
import urllib.error
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from robustbench_mix.core.atomic import atomic_file
from robustbench_mix.core.errors import UsageError
from robustbench_mix.data.base import IMAGE_SUFFIXES, ImageData, dataset
from robustbench_mix.data.prepare import augment_for


# --------------------------------------------------------------------------------------------- loaders
@dataset("digits", test_size=497)  # scikit-learn's 1,797 images, 497 held out
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


@dataset("cifar10", folder="cifar-10-batches-py", test_size=10000, corrupted="cifar10c")
def load_cifar10(data_dir: Path) -> ImageData:
    return _torchvision_cifar("CIFAR10", "cifar-10-python.tar.gz or its unpacked cifar-10-batches-py/",
                              data_dir)


@dataset("cifar100", folder="cifar-100-python", test_size=10000, corrupted="cifar100c")
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



@dataset("imagefolder", takes_arg=True)
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
