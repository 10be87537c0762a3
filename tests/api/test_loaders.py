"""evaluate() on a DataLoader, Dataset or IterableDataset: every test image read exactly once, in a fixed order,
or a clear refusal; judged by what the sampler yields, not the loader's shuffle / drop_last arguments alone
(issue 34: a batch_sampler with drop_last=True evaluated 400 of 497 images as "all", a WeightedRandomSampler a
bootstrap resample, an endless IterableDataset hung)."""

import itertools

import numpy as np
import pandas as pd
import pytest
import torch
from helpers import linear_model
from torch.utils.data import (
    BatchSampler,
    DataLoader,
    IterableDataset,
    RandomSampler,
    SequentialSampler,
    TensorDataset,
    WeightedRandomSampler,
)

import robustbench_mix as rbm
from robustbench_mix.core.errors import UsageError

KEYS = ["run_id", "dataset", "split", "attack", "eps", "metric", "n_eval"]


@pytest.fixture(scope="module")
def xy(digits60):
    return digits60


def linear():
    return linear_model(in_dim=64).eval()


def fast(data, **kw):
    return rbm.evaluate(linear(), data, **{"attacks": ("fgsm",), "progress": False, **kw})


@pytest.fixture(scope="module")
def tensors(xy):
    return fast(xy)


def same_rows(a, b):
    pd.testing.assert_frame_equal(a[KEYS].reset_index(drop=True), b[KEYS].reset_index(drop=True))
    np.testing.assert_array_equal(a["value"], b["value"])


class Stream(IterableDataset):
    """(image, label) items, ``repeat`` times over (None: forever), with an optional __len__; counts its reads."""

    def __init__(self, x, y, repeat=1, length=None):
        self.x, self.y, self.repeat, self.length, self.read = x, y, repeat, length, 0

    def __iter__(self):
        for _ in itertools.count() if self.repeat is None else range(self.repeat):
            for i in range(len(self.y)):
                self.read += 1
                yield self.x[i], self.y[i]


class Sized(Stream):
    def __len__(self):
        return self.length


# ----------------------------------------------------------------------------- samplers that read other images
@pytest.mark.parametrize("loader, says", [
    (lambda ds: DataLoader(ds, batch_sampler=BatchSampler(SequentialSampler(ds), 7, drop_last=True)),
     r"drops its last incomplete batch \(its batch_sampler has drop_last=True\).*drop_last=False"),
    (lambda ds: DataLoader(ds, batch_size=7, sampler=WeightedRandomSampler(torch.ones(len(ds)), len(ds))),
     r"WeightedRandomSampler \(a weighted resample.*shuffle=False\) without a sampler"),
    (lambda ds: DataLoader(ds, batch_size=7, sampler=RandomSampler(ds)), r"shuffles.*shuffle=False"),
    (lambda ds: DataLoader(ds, batch_sampler=BatchSampler(RandomSampler(ds), 7, drop_last=False)), "shuffles"),
    (lambda ds: DataLoader(ds, batch_size=7, sampler=range(0, len(ds), 2)),
     r"sampler \(range\) reads 30 indices \(0, 2, 4, 6, 8, \.\.\.\), not each of the Dataset's 60 images once"),
    (lambda ds: DataLoader(ds, batch_size=7, sampler=list(range(len(ds)))[::-1]),
     r"sampler \(list\) reads 60 indices \(59, 58"),
    (lambda ds: DataLoader(ds, batch_size=7, sampler=[*range(len(ds)), 0]), "reads more than 60 indices"),
    (lambda ds: DataLoader(ds, batch_size=7, sampler=itertools.count()), "reads more than 60 indices"),
])
def test_loaders_that_would_not_read_each_image_once_in_order_are_refused(xy, loader, says):
    with pytest.raises(UsageError, match=says):
        fast(loader(TensorDataset(*xy)))


def test_a_sequential_batch_sampler_and_unbatched_loader_give_the_tensors_rows(xy, tensors):
    ds = TensorDataset(*xy)
    same_rows(fast(DataLoader(ds, batch_sampler=BatchSampler(SequentialSampler(ds), 7, drop_last=False))), tensors)
    same_rows(fast(DataLoader(ds, batch_size=None)), tensors)  # items one at a time, not batched


# ------------------------------------------------------------------------------------------- IterableDatasets
def test_an_iterable_dataset_with_its_length_is_read_directly_or_in_a_loader(xy, tensors):
    same_rows(fast(Sized(*xy, length=60)), tensors)
    same_rows(fast(DataLoader(Sized(*xy, length=60), batch_size=7)), tensors)


def test_an_endless_iterable_dataset_is_refused_without_reading_it_or_after_its_length(xy):
    endless = Stream(*xy, repeat=None)
    with pytest.raises(UsageError, match="IterableDataset has no __len__, so nothing says where it ends"):
        fast(endless)
    with pytest.raises(UsageError, match="no __len__"):
        fast(DataLoader(endless, batch_size=7))
    assert endless.read == 0
    lying = Sized(*xy, repeat=None, length=60)
    with pytest.raises(UsageError, match=r"yields more than 60 images but its __len__ says 60"):
        fast(DataLoader(lying, batch_size=7))
    assert lying.read <= 60 + 7  # stopped at the first batch past its length: no hang, no growing memory


def test_an_iterable_dataset_of_another_length_than_it_says_is_refused(xy):
    with pytest.raises(UsageError, match=r"yields 60 images but its __len__ says 70"):
        fast(Sized(*xy, length=70))
    with pytest.raises(UsageError, match=r"yields more than 60 images"):
        fast(Sized(*xy, repeat=2, length=60))
    with pytest.raises(UsageError, match="drop_last=False"):
        fast(DataLoader(Sized(*xy, length=60), batch_size=7, drop_last=True))


# ---------------------------------------------------------------------------------------------------- labels
class Named(torch.utils.data.Dataset):
    def __init__(self, x, y):
        self.x, self.y = x, y

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return self.x[i], ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"][self.y[i]]


def test_text_labels_are_refused_with_what_to_give(xy):
    x, y = xy
    with pytest.raises(UsageError, match=r"the Dataset gives labels as text \('\w+'\).*integer class indices"):
        fast(Named(x, y))
    with pytest.raises(UsageError, match=r"DataLoader gives labels as text"):
        fast(DataLoader(Named(x, y), batch_size=7))
    with pytest.raises(UsageError, match=r"labels are text \(class names\?\)"):
        fast((x, [str(int(v)) for v in y]))
    with pytest.raises(UsageError, match="not integer class indices"):
        fast((x, np.array([str(int(v)) for v in y])))


# --------------------------------------------------------------------------------------------------- repeats
def test_a_repeated_attack_or_epsilon_is_evaluated_once(xy):
    once = fast(xy, attacks=("fgsm", "pgd"), eps=(8 / 255,), attack_steps=2)
    twice = fast(xy, attacks=("fgsm", "pgd", "fgsm"), eps=(8 / 255, "8/255"), attack_steps=2)
    assert not twice.duplicated(["run_id", "split", "attack", "eps", "metric"]).any()
    same_rows(twice, once)  # the same run (id included): the repeats changed nothing
    same_rows(fast(xy, attacks="fgm_l2", eps_l2=(0.5, 0.5), corruptions=("contrast", "contrast")),
              fast(xy, attacks="fgm_l2", eps_l2=(0.5,), corruptions=("contrast",)))
