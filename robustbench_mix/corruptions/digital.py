"""Digital: make_cifar_c.py's contrast, brightness, saturate, elastic_transform, pixelate and jpeg_compression,
on batches (Pillow's resampling and JPEG codec take one image at a time, as in the generator)."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image
from scipy.ndimage import map_coordinates

from robustbench_mix.corruptions.base import corruption, gaussian
from robustbench_mix.corruptions.cv import cv2


@corruption("contrast", (.75, .5, .4, .3, 0.15))
def contrast(x, c, rng):
    """Towards each channel's mean (the generator's ``np.mean(x, axis=(0, 1), keepdims=True)`` per image)."""
    x = x / 255.
    means = np.mean(x, axis=(1, 2), keepdims=True)
    return np.clip((x - means) * c + means, 0, 1) * 255


def rgb2hsv(arr: np.ndarray) -> np.ndarray:
    """skimage.color.rgb2hsv's arithmetic on float (..., 3) arrays."""
    out = np.empty_like(arr)
    v = arr.max(-1)
    delta = np.ptp(arr, axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        s = delta / v
        s[delta == 0.] = 0.
        for channel, base, a, b in ((0, 0., 1, 2), (1, 2., 2, 0), (2, 4., 0, 1)):  # red, green, blue is max
            idx = arr[..., channel] == v
            out[idx, 0] = base + (arr[idx, a] - arr[idx, b]) / delta[idx]  # 0. + y is y
        h = (out[..., 0] / 6.) % 1.
    h[delta == 0.] = 0.
    out[..., 0], out[..., 1], out[..., 2] = h, s, v
    out[np.isnan(out)] = 0
    return out


def hsv2rgb(arr: np.ndarray) -> np.ndarray:
    """skimage.color.hsv2rgb's arithmetic on float (..., 3) arrays."""
    hi = np.floor(arr[..., 0] * 6)
    f = arr[..., 0] * 6 - hi
    v = arr[..., 2]
    p = v * (1 - arr[..., 1])
    q = v * (1 - f * arr[..., 1])
    t = v * (1 - (1 - f) * arr[..., 1])
    sector = hi.astype(np.uint8) % 6
    table = np.stack([np.stack(rgb, axis=-1) for rgb in ((v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v),
                                                          (v, p, q))])
    return np.take_along_axis(table, sector[np.newaxis, ..., np.newaxis].astype(np.intp), axis=0)[0]


@corruption("brightness", (.05, .1, .15, .2, .3), colour=True)
def brightness(x, c, rng):
    x = rgb2hsv(x / 255.)
    x[..., 2] = np.clip(x[..., 2] + c, 0, 1)
    return np.clip(hsv2rgb(x), 0, 1) * 255


@corruption("saturate", ((0.3, 0), (0.1, 0), (1.5, 0), (2, 0.1), (2.5, 0.2)), colour=True)
def saturate(x, c, rng):
    x = rgb2hsv(x / 255.)
    x[..., 1] = np.clip(x[..., 1] * c[0] + c[1], 0, 1)
    return np.clip(hsv2rgb(x), 0, 1) * 255


def _pil(img: np.ndarray) -> Image.Image:
    return Image.fromarray(img[..., 0] if img.shape[-1] == 1 else img)


@corruption("jpeg_compression", (80, 65, 58, 50, 40))
def jpeg_compression(x, c, rng):
    """Pillow's JPEG at quality c (a grey image as a greyscale JPEG)."""
    out = np.empty_like(x)
    for i, img in enumerate(x):
        buf = io.BytesIO()
        _pil(img).save(buf, "JPEG", quality=c)
        out[i] = np.asarray(Image.open(buf)).reshape(img.shape)
    return out


@corruption("pixelate", (0.95, 0.9, 0.85, 0.75, 0.65))
def pixelate(x, c, rng):
    """Pillow's box filter down to int(size * c) and back up."""
    h, w = x.shape[1:3]
    out = np.empty_like(x)
    for i, img in enumerate(x):
        small = _pil(img).resize((max(1, int(w * c)), max(1, int(h * c))), Image.BOX)
        out[i] = np.asarray(small.resize((w, h), Image.BOX)).reshape(img.shape)
    return out


ELASTIC = ((0, 0, 0.08), (0.05, 0.2, 0.07), (0.08, 0.06, 0.06), (0.1, 0.04, 0.05), (0.1, 0.03, 0.03))


@corruption("elastic_transform", ELASTIC)
def elastic_transform(x, c, rng):
    """A random affine warp (OpenCV), then a smooth random displacement field (scipy), both linear. The
    generator's parameters are fractions of IMSIZE = 32; here of the image's size (the same at 32 x 32)."""
    n, h, w = x.shape[:3]
    c = tuple(min(h, w) * f for f in c)
    shifts = rng.uniform(-c[2], c[2], size=(n, 3, 2))
    return elastic_from_noise(x, c, shifts, rng.uniform(-1, 1, size=(n, h, w)), rng.uniform(-1, 1, size=(n, h, w)))


def elastic_from_noise(x, c, shifts, ux, uy):
    """``c``: the generator's (alpha, sigma, affine) in pixels; ``shifts``: the affine points' offsets (N, 3, 2);
    ``ux``, ``uy``: the uniform noise the displacement fields are smoothed from (N, H, W)."""
    cv = cv2()
    n, h, w, ch = x.shape
    image = x.astype(np.float32) / 255.
    center = np.float32((h, w)) // 2
    square = min(h, w) // 3
    pts1 = np.float32([center + square, [center[0] + square, center[1] - square], center - square])
    warped = np.empty_like(image)
    for i in range(n):
        m = cv.getAffineTransform(pts1, pts1 + shifts[i].astype(np.float32))
        warped[i] = cv.warpAffine(image[i], m, (w, h), borderMode=cv.BORDER_REFLECT_101).reshape(h, w, ch)
    dx = (gaussian(ux, c[1], mode="reflect", truncate=3) * c[0]).astype(np.float32)[..., np.newaxis]
    dy = (gaussian(uy, c[1], mode="reflect", truncate=3) * c[0]).astype(np.float32)[..., np.newaxis]
    b, yy, xx, zz = np.meshgrid(np.arange(n), np.arange(h), np.arange(w), np.arange(ch), indexing="ij")
    coords = np.stack([b.ravel(), (yy + dy).ravel(), (xx + dx).ravel(), zz.ravel()])
    out = map_coordinates(warped, coords, order=1, mode="reflect").reshape(x.shape)
    return np.clip(out, 0, 1) * 255
