"""Noise: make_cifar_c.py's gaussian_noise, shot_noise, impulse_noise and speckle_noise, on the whole batch at
once (each value drawn independently, as the generator draws per image)."""

from __future__ import annotations

import numpy as np

from robustbench_mix.corruptions.base import corruption


@corruption("gaussian_noise", (0.04, 0.06, 0.08, 0.09, 0.10))
def gaussian_noise(x, c, rng):
    x = x / 255.
    return np.clip(x + rng.normal(size=x.shape, scale=c), 0, 1) * 255


@corruption("shot_noise", (500, 250, 100, 75, 50))
def shot_noise(x, c, rng):
    x = x / 255.
    return np.clip(rng.poisson(x * c) / c, 0, 1) * 255


@corruption("impulse_noise", (0.01, 0.02, 0.03, 0.05, 0.07))
def impulse_noise(x, c, rng):
    """skimage's ``random_noise(mode='s&p', amount=c)``: each value is flipped with probability c, to 1 or 0 with
    equal odds (salt_vs_pepper 0.5)."""
    x = x / 255.
    flipped = rng.random(x.shape) < c
    salted = rng.random(x.shape) < 0.5
    x[flipped & salted] = 1
    x[flipped & ~salted] = 0
    return np.clip(x, 0, 1) * 255


@corruption("speckle_noise", (0.06, 0.1, 0.12, 0.16, 0.2))
def speckle_noise(x, c, rng):
    x = x / 255.
    return np.clip(x + x * rng.normal(size=x.shape, scale=c), 0, 1) * 255
