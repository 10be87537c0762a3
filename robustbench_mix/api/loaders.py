"""Test images from a torch ``DataLoader``, ``Dataset`` or ``IterableDataset``, read as ``evaluate`` needs them:
every image exactly once, in a fixed order. A loader that shuffles, resamples or drops images would give a number
labelled "all" over other images than the test set, so it is refused by what its sampler really yields (not by its
``shuffle`` / ``drop_last`` arguments alone), and an endless ``IterableDataset`` is read no further than its
``__len__`` says (one item more is a refusal), so it can neither hang nor fill the memory."""

from __future__ import annotations

import itertools

import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset, RandomSampler, WeightedRandomSampler

from robustbench_mix.core.errors import UsageError

LOADER_BATCH = 256  # how a Dataset is read (one image at a time would be slow for 10,000 CIFAR images)
PLAIN = "DataLoader(dataset, batch_size=..., shuffle=False) without a sampler or batch_sampler"


def _labels(y, what: str) -> torch.Tensor:
    """A batch's labels as a 1-d tensor; text labels (class names) are refused with what to give instead."""
    if isinstance(y, str) or (isinstance(y, tuple | list) and any(isinstance(v, str) for v in y)):
        first = y if isinstance(y, str) else next(v for v in y if isinstance(v, str))
        raise UsageError(f"{what} gives labels as text ({first!r}); evaluate needs integer class indices: map each "
                         "class name to its index (e.g. classes.index(name)) in the Dataset")
    try:
        return torch.as_tensor(y).reshape(-1)
    except (TypeError, ValueError, RuntimeError):
        raise UsageError(f"{what} gives labels of type {type(y).__name__}; evaluate needs integer class "
                         "indices") from None


def stack(batches, what: str, batched: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """The (images, labels) of ``batches`` of (image, label) pairs, concatenated; single items when not
    ``batched`` (a DataLoader with batch_size=None)."""
    xs, ys = [], []
    for i, b in enumerate(batches):
        if not isinstance(b, tuple | list) or len(b) < 2:
            raise UsageError(f"{what} item {i} is a {type(b).__name__}; evaluate needs (image, label) pairs")
        x, y = b[0], b[1]
        if not torch.is_tensor(x):
            raise UsageError(f"{what} gives images of type {type(x).__name__}; they must be tensors (C, H, W) "
                             "uint8 or floats in [0, 1] (e.g. transforms.ToTensor() or PILToTensor())")
        xs.append(x if batched else x[None])
        ys.append(_labels(y, what))
    if not xs:
        raise UsageError(f"no images to evaluate ({what} is empty)")
    try:
        return torch.cat(xs), torch.cat(ys)
    except RuntimeError as e:
        raise UsageError(f"{what}'s images differ in size ({str(e).splitlines()[0]}); resize them to one "
                         "size") from None


def _length(ds, what: str) -> int:
    try:
        return len(ds)
    except TypeError:  # no __len__: nothing says where the data end
        raise UsageError(f"{what} has no __len__, so nothing says where it ends (an endless one would never "
                         "finish); give it a __len__, or pass the images and labels as tensors (x, y)") from None


def _index_problem(loader: DataLoader, n: int) -> str | None:
    """Why ``loader`` would not read each of its map-style dataset's ``n`` items once, in order (None when it
    does): judged by the indices its sampler yields, at most n + 1 of them."""
    inner = loader.sampler if loader.batch_sampler is None else getattr(loader.batch_sampler, "sampler", None)
    if isinstance(inner, WeightedRandomSampler):
        return ("the DataLoader draws its images with a WeightedRandomSampler (a weighted resample: some images "
                f"twice, others never); evaluate needs each test image once: pass {PLAIN}")
    if isinstance(inner, RandomSampler):
        return ("the DataLoader shuffles (shuffle=True or a RandomSampler): each evaluation would attack another "
                f"subset of images; pass a loader with shuffle=False ({PLAIN})")
    if loader.drop_last or getattr(loader.batch_sampler, "drop_last", False):
        where = "its batch_sampler has" if getattr(loader.batch_sampler, "drop_last", False) else "it has"
        return (f"the DataLoader drops its last incomplete batch ({where} drop_last=True): its last images would not "
                f"be evaluated; pass a loader with drop_last=False ({PLAIN})")
    source = loader.sampler if loader.batch_sampler is None else loader.batch_sampler
    flat = (i for b in source for i in (b if loader.batch_sampler is not None else (b,)))
    seen = list(itertools.islice(flat, n + 1))
    if seen != list(range(n)):
        first = ", ".join(map(str, seen[:5])) + (", ..." if len(seen) > 5 else "")
        named = (f"sampler ({type(inner).__name__})" if inner is not None
                 else f"batch_sampler ({type(source).__name__})")
        return (f"the DataLoader's {named} reads {len(seen) if len(seen) <= n else f'more than {n}'} "
                f"indices ({first}), not each of the Dataset's {n} images once in order 0, 1, 2, ...: the number "
                f"would be over other images than the test set; pass {PLAIN}")
    return None


def _bounded(loader: DataLoader, n: int):
    """The batches of a loader over an IterableDataset whose __len__ is ``n``: one image beyond ``n`` stops the
    reading with a refusal (an endless or mis-sized dataset, or workers that each yield the whole of it)."""
    count = 0
    for b in loader:
        yield b
        count += len(b[0]) if loader.batch_size is not None and isinstance(b, tuple | list) and b else 1
        if count > n:
            break
    if count != n:
        workers = (f" (with num_workers={loader.num_workers} each worker yields the whole dataset unless it "
                   "splits it with get_worker_info(); use num_workers=0)") if loader.num_workers > 1 else ""
        said = f"more than {n}" if count > n else str(count)
        raise UsageError(f"the IterableDataset yields {said} images but its __len__ says {n}{workers}: evaluate "
                         "needs each test image exactly once; fix its __len__ or its iteration")


def from_loader(loader: DataLoader) -> tuple[torch.Tensor, torch.Tensor]:
    """A DataLoader's (images, labels), in its order, when it reads every image of its dataset exactly once
    in a fixed order; otherwise a UsageError naming the sampler, the drop, or the length that breaks it."""
    batched = loader.batch_size is not None or loader.batch_sampler is not None
    if isinstance(loader.dataset, IterableDataset):
        n = _length(loader.dataset, "the IterableDataset")
        if loader.drop_last:
            raise UsageError("the DataLoader has drop_last=True: its last images would not be evaluated; pass a "
                             "loader with drop_last=False")
        return stack(_bounded(loader, n), "the DataLoader", batched)
    problem = _index_problem(loader, _length(loader.dataset, "the DataLoader's Dataset"))
    if problem:
        raise UsageError(problem)
    return stack(loader, "the DataLoader", batched)


def from_dataset(ds: Dataset) -> tuple[torch.Tensor, torch.Tensor]:
    """A Dataset's (images, labels) read in order; items are (image tensor (C, H, W), label). An IterableDataset
    is read through a plain loader, as far as its __len__."""
    if isinstance(ds, IterableDataset):
        return from_loader(DataLoader(ds, batch_size=LOADER_BATCH))
    _length(ds, "the Dataset")
    try:
        first = ds[0]
    except IndexError:
        raise UsageError("no images to evaluate (the Dataset is empty)") from None
    stack([first], "the Dataset")  # its type, said before the loader's collate error could say it
    x, y = from_loader(DataLoader(ds, batch_size=LOADER_BATCH, shuffle=False))
    if x.dim() == 4 and x.shape[1:] != first[0].shape:  # the Dataset's own shape, not the loader's batch of it
        raise UsageError(f"the Dataset's items have shape {tuple(first[0].shape)}; expected (C, H, W)")
    return x, y
