"""Blur: make_cifar_c.py's defocus_blur, glass_blur, motion_blur, zoom_blur and gaussian_blur, on batches."""

from __future__ import annotations

import numpy as np

from robustbench_mix.corruptions.base import clipped_zoom, corruption, gaussian, motion_blur_u8
from robustbench_mix.corruptions.cv import cv2


@corruption("gaussian_blur", (0.4, 0.6, 0.7, 0.8, 1.0))
def gaussian_blur(x, c, rng):
    return np.clip(gaussian(x / 255., c), 0, 1) * 255


@corruption("glass_blur", ((0.05, 1, 1), (0.25, 1, 1), (0.4, 1, 1), (0.25, 1, 2), (0.4, 1, 2)))
def glass_blur(x, c, rng):
    """Blur, shuffle pixels locally, blur. Offsets drawn as the generator's ``randint(-d, d)`` (high excluded)."""
    sigma, delta, iterations = c
    n, h, w = x.shape[:3]
    positions = [(i, j) for i in range(h - delta, delta, -1) for j in range(w - delta, delta, -1)]
    offsets = rng.integers(-delta, delta, size=(iterations, len(positions), n, 2))
    return glass_from_offsets(x, sigma, positions, offsets)


def glass_from_offsets(x, sigma, positions, offsets):
    """The generator's loop ``x[h, w], x[h', w'] = x[h', w'], x[h, w]`` for every image at once, position after
    position in its order. Its right side holds numpy views, so the second assignment writes back what the first
    wrote: the 'swap' copies pixel (h + dy, w + dx) into (h, w) and leaves the source as it was. CIFAR-10-C was
    made so, and so is this."""
    x = np.uint8(gaussian(x / 255., sigma) * 255)
    batch = np.arange(len(x))
    for it in range(offsets.shape[0]):
        for (i, j), off in zip(positions, offsets[it], strict=True):
            x[batch, i, j] = x[batch, i + off[:, 1], j + off[:, 0]]
    return np.clip(gaussian(x / 255., sigma), 0, 1) * 255


def disk(radius: float, alias_blur: float) -> np.ndarray:
    """The generator's defocus kernel: a normalized float32 disk on a 17 x 17 grid (radius <= 8), antialiased
    by OpenCV's 3 x 3 Gaussian."""
    if radius <= 8:
        span, ksize = np.arange(-8, 8 + 1), (3, 3)
    else:
        span, ksize = np.arange(-radius, radius + 1), (5, 5)
    xx, yy = np.meshgrid(span, span)
    aliased = np.array((xx ** 2 + yy ** 2) <= radius ** 2, dtype=np.float32)
    aliased /= np.sum(aliased)
    return cv2().GaussianBlur(aliased, ksize=ksize, sigmaX=alias_blur)


@corruption("defocus_blur", ((0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1, 0.2), (1.5, 0.1)))
def defocus_blur(x, c, rng):
    """OpenCV's filter2D per image and channel, as the generator (it correlates by DFT for a 17 x 17 kernel on a
    32 x 32 image, so no other summation reproduces its last bits)."""
    kernel = disk(*c)
    x = x / 255.
    filter2d = cv2().filter2D
    out = np.empty_like(x)
    for i in range(x.shape[0]):
        for d in range(x.shape[3]):
            out[i, :, :, d] = filter2d(x[i, :, :, d], -1, kernel)
    return np.clip(out, 0, 1) * 255


@corruption("motion_blur", ((6, 1), (6, 1.5), (6, 2), (8, 2), (9, 2.5)))
def motion_blur(x, c, rng):
    """ImageMagick's motion blur (radius, sigma) at an angle uniform in [-45, 45] degrees per image."""
    return motion_blur_u8(x, c[0], c[1], rng.uniform(-45, 45, size=len(x)))


@corruption("zoom_blur", tuple(np.arange(1, e, 0.01) for e in (1.06, 1.11, 1.16, 1.21, 1.26)))
def zoom_blur(x, c, rng):
    """The mean of the image and its centre zoomed by each factor (float32, as the generator)."""
    x = (x / 255.).astype(np.float32)
    out = np.zeros_like(x)
    for factor in c:
        out += clipped_zoom(x, factor)
    x = (x + out) / (len(c) + 1)
    return np.clip(x, 0, 1) * 255
