"""Weather: make_cifar_c.py's snow, frost, fog and spatter, on batches."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np

from robustbench_mix.corruptions.base import clipped_zoom, corruption, gaussian, motion_blur_u8
from robustbench_mix.corruptions.cv import cv2

FROST_NPZ = Path(__file__).with_name("frost.npz")


def plasma_fractal(n: int, rng, mapsize: int = 32, wibbledecay: float = 3) -> np.ndarray:
    """The generator's diamond-square height map in [0, 1], ``n`` at once (N, mapsize, mapsize); one image
    draws the same numbers, in the same order, as the generator's."""
    maparray = np.empty((n, mapsize, mapsize), dtype=np.float64)
    maparray[:, 0, 0] = 0
    stepsize, wibble = mapsize, 100

    def wibbledmean(array):
        return array / 4 + wibble * rng.uniform(-wibble, wibble, array.shape)

    while stepsize >= 2:
        half = stepsize // 2
        corners = maparray[:, 0:mapsize:stepsize, 0:mapsize:stepsize]
        squares = corners + np.roll(corners, shift=-1, axis=1)
        squares += np.roll(squares, shift=-1, axis=2)
        maparray[:, half:mapsize:stepsize, half:mapsize:stepsize] = wibbledmean(squares)
        dr = maparray[:, half:mapsize:stepsize, half:mapsize:stepsize]
        ul = maparray[:, 0:mapsize:stepsize, 0:mapsize:stepsize]
        lt = (dr + np.roll(dr, 1, axis=1)) + (ul + np.roll(ul, -1, axis=2))
        maparray[:, 0:mapsize:stepsize, half:mapsize:stepsize] = wibbledmean(lt)
        tt = (dr + np.roll(dr, 1, axis=2)) + (ul + np.roll(ul, -1, axis=1))
        maparray[:, half:mapsize:stepsize, 0:mapsize:stepsize] = wibbledmean(tt)
        stepsize //= 2
        wibble /= wibbledecay
    maparray -= maparray.min(axis=(1, 2), keepdims=True)
    return maparray / maparray.max(axis=(1, 2), keepdims=True)


@corruption("fog", ((.2, 3), (.5, 3), (0.75, 2.5), (1, 2), (1.5, 1.75)))
def fog(x, c, rng):
    h, w = x.shape[1:3]
    mapsize = max(32, 1 << int(np.ceil(np.log2(max(h, w)))))  # the generator's 32, or the next power of two
    return fog_from_fractal(x, c, plasma_fractal(len(x), rng, mapsize, c[1]))


def fog_from_fractal(x, c, fractal):
    h, w = x.shape[1:3]
    x = x / 255.
    max_val = x.max(axis=(1, 2, 3), keepdims=True)
    x += c[0] * fractal[:, :h, :w, np.newaxis]
    return np.clip(x * max_val / (max_val + c[0]), 0, 1) * 255


@cache
@cache
def frost_images() -> tuple[np.ndarray, ...]:
    """The generator's six frost photographs (RGB), reduced to a fifth as it reduces them (cv2.resize by 0.2),
    stored in ``frost.npz`` beside this file: made from the photographs of the generator's repository
    (hendrycks/robustness, Apache-2.0) as the ``imagecorruptions`` package (Apache-2.0) ships them, by
    ``cv2.resize(cv2.imread(f), (0, 0), fx=0.2, fy=0.2)[..., ::-1]`` with OpenCV 5.0."""
    with np.load(FROST_NPZ) as z:
        return tuple(z[f"frost{i}"] for i in range(1, 7))


@corruption("frost", ((1, 0.2), (1, 0.3), (0.9, 0.4), (0.85, 0.4), (0.75, 0.45)), colour=True)
def frost(x, c, rng):
    """A random crop of one of the first five frost images (the generator's ``randint(5)`` never picks the
    sixth), blended in. Images larger than a reduced frost image use it enlarged to fit (not in the generator)."""
    n, h, w = x.shape[:3]
    crops = np.empty((n, h, w, 3), dtype=np.uint8)
    for i, idx in enumerate(rng.integers(5, size=n)):
        img = frost_images()[idx]
        if img.shape[0] <= h or img.shape[1] <= w:
            scale = max((h + 1) / img.shape[0], (w + 1) / img.shape[1])
            img = cv2().resize(img, (int(np.ceil(img.shape[1] * scale)) + 1, int(np.ceil(img.shape[0] * scale)) + 1))
        top, left = rng.integers(0, img.shape[0] - h), rng.integers(0, img.shape[1] - w)
        crops[i] = img[top:top + h, left:left + w]
    return frost_from_crops(x, c, crops)


def frost_from_crops(x, c, crops):
    return np.clip(c[0] * np.asarray(x) + c[1] * crops, 0, 255)


@corruption("snow", ((0.1, 0.2, 1, 0.6, 8, 3, 0.95), (0.1, 0.2, 1, 0.5, 10, 4, 0.9),
                     (0.15, 0.3, 1.75, 0.55, 10, 4, 0.9), (0.25, 0.3, 2.25, 0.6, 12, 6, 0.85),
                     (0.3, 0.3, 1.25, 0.65, 14, 12, 0.8)), colour=True)
def snow(x, c, rng):
    n, h, w = x.shape[:3]
    layer = rng.normal(size=(n, h, w), loc=c[0], scale=c[1])
    return snow_from_layer(x, c, layer, rng.uniform(-135, -45, size=n))


def snow_from_layer(x, c, layer, angles):
    """Snow flakes: the zoomed, thresholded noise layer as an 8-bit image, motion-blurred (ImageMagick's, see
    base.motion_blur_u8) at ``angles``, added twice (once turned by 180 degrees) to the whitened image."""
    n, h, w = x.shape[:3]
    x = x.astype(np.float32) / 255.
    layer = clipped_zoom(layer[..., np.newaxis], c[2])
    layer[layer < c[3]] = 0
    layer = (np.clip(layer, 0, 1) * 255).astype(np.uint8)
    layer = motion_blur_u8(layer, c[4], c[5], angles) / 255.
    grey = cv2().cvtColor(x.reshape(n * h, w, 3), cv2().COLOR_RGB2GRAY).reshape(n, h, w, 1)  # per pixel
    x = c[6] * x + (1 - c[6]) * np.maximum(x, grey * 1.5 + 0.5)
    return np.clip(x + layer + np.rot90(layer, k=2, axes=(1, 2)), 0, 1) * 255


@corruption("spatter", ((0.62, 0.1, 0.7, 0.7, 0.5, 0), (0.65, 0.1, 0.8, 0.7, 0.5, 0), (0.65, 0.3, 1, 0.69, 0.5, 0),
                        (0.65, 0.1, 0.7, 0.69, 0.6, 1), (0.65, 0.1, 0.5, 0.68, 0.6, 1)), colour=True)
def spatter(x, c, rng):
    n, h, w = x.shape[:3]
    return spatter_from_layer(x, c, rng.normal(size=(n, h, w), loc=c[0], scale=c[1]))


def _water_edges(liquid_u8: np.ndarray) -> np.ndarray:
    """The generator's OpenCV chain for water drops (Canny edges, distance to them, equalized, embossed and
    blurred), one image at a time as it runs."""
    cv = cv2()
    dist = 255 - cv.Canny(liquid_u8, 50, 150)
    dist = cv.distanceTransform(dist, cv.DIST_L2, 5)
    _, dist = cv.threshold(dist, 20, 20, cv.THRESH_TRUNC)
    dist = cv.blur(dist, (3, 3)).astype(np.uint8)
    dist = cv.equalizeHist(dist)
    dist = cv.filter2D(dist, cv.CV_8U, np.array([[-2, -1, 0], [-1, 1, 1], [0, 1, 2]]))
    return cv.blur(dist, (3, 3)).astype(np.float32)


def spatter_from_layer(x, c, liquid):
    """Severities 1-3: pale turquoise water drops; 4-5: mud (brown). ``liquid``: the normal noise layer."""
    x = x.astype(np.float32) / 255.
    liquid = gaussian(liquid, c[2])
    liquid[liquid < c[3]] = 0
    if c[5] == 0:
        liquid = (liquid * 255).astype(np.uint8)
        m = liquid * np.stack([_water_edges(layer) for layer in liquid])
        with np.errstate(invalid="ignore", divide="ignore"):  # no drop at all: 0/0, as the generator (NaN -> 0)
            m /= np.max(m, axis=(1, 2), keepdims=True)
        m *= c[4]
        colour = np.array([175 / 255., 238 / 255., 238 / 255.], dtype=np.float32)
        return np.clip(x + m[..., np.newaxis] * colour, 0, 1) * 255
    m = np.where(liquid > c[3], 1, 0)
    m = gaussian(m.astype(np.float32), c[4])
    m[m < 0.8] = 0
    colour = np.array([63 / 255., 42 / 255., 20 / 255.], dtype=np.float32) * m[..., np.newaxis]
    x *= (1 - m[..., np.newaxis])
    return np.clip(x + colour, 0, 1) * 255
