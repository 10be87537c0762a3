import numpy as np
import pytest
import torch

from robustbench_mix.data.base import ImageData
from robustbench_mix.data.sources import load_digits
from robustbench_mix.experiment.experiment import Experiment, RunOptions


@pytest.fixture(scope="session")
def digits() -> ImageData:
    return load_digits(None)


@pytest.fixture(scope="session")
def small_digits(digits) -> ImageData:
    """A 400/150 subset of the real digits: enough to learn, small enough for many runs in a test."""
    return ImageData("digits", digits.train_x[:400], digits.train_y[:400], digits.test_x[:150],
                     digits.test_y[:150], digits.classes, "none")


@pytest.fixture
def tiny_exp() -> Experiment:
    return Experiment(dataset="digits", model="cnn", epochs=3, batch_size=50, lr=0.05, schedule="cosine",
                      eps=(8.0,), attacks=("fgsm", "pgd"), attack_steps=3)


@pytest.fixture
def rand_images():
    g = torch.Generator().manual_seed(0)
    return torch.rand(16, 3, 8, 8, generator=g), torch.randint(0, 10, (16,), generator=g)



@pytest.fixture
def np_rng():
    return np.random.default_rng(0)


@pytest.fixture(scope="session")
def trained(small_digits):
    """A small CNN trained for a few epochs on real digits, with its prepared data (CPU)."""
    from robustbench_mix.data.prepare import prepare
    from robustbench_mix.models.families import build
    from robustbench_mix.training.train import fit

    exp = Experiment(dataset="digits", model="cnn", epochs=4, batch_size=50, lr=0.05, schedule="cosine")
    p = prepare(small_digits, 0.0, 0.0, 0, torch.device("cpu"))
    torch.manual_seed(0)
    mean, std = small_digits.channel_stats()
    model = build("cnn", in_shape=small_digits.shape, num_classes=10, mean=mean, std=std)
    fit(exp, p, model, options=RunOptions(progress=False))
    return model, p


@pytest.fixture(scope="module")
def digits60(small_digits):
    """60 real digits test images as floats in [0, 1] and their labels: a pair evaluate() takes."""
    return small_digits.test_x[:60].float() / 255, small_digits.test_y[:60]
