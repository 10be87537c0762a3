"""The corruption registry and the helpers several families share (the generator's ``clipped_zoom``, skimage's
``gaussian`` and ImageMagick's motion blur), all on batches: ``(N, H, W, C)`` numpy arrays, one image per row.

A corruption is ``fn(x, c, rng)``: ``x`` uint8 ``(N, H, W, C)``, ``c`` the generator's parameter for the severity,
``rng`` a numpy Generator; it returns what the generator's function returns for each image (floats on the 0..255
scale, or uint8), which ``corrupt`` truncates to uint8 as the generator's ``np.uint8(...)`` does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter, zoom

from robustbench_mix.core.registry import Registry


@dataclass(frozen=True)
class Corruption:
    fn: Callable[[np.ndarray, object, np.random.Generator], np.ndarray]
    params: tuple  # the generator's parameter at severities 1..5 (its CIFAR version)
    colour: bool = False  # mixes channels: a grey image goes through as three equal channels, back as luma


CORRUPTIONS: Registry[Corruption] = Registry("corruption")
SEVERITIES = (1, 2, 3, 4, 5)
STANDARD_CORRUPTIONS = (  # the 15 of the benchmark, in the generator's order
    "gaussian_noise", "shot_noise", "impulse_noise", "defocus_blur", "glass_blur", "motion_blur", "zoom_blur",
    "snow", "frost", "fog", "brightness", "contrast", "elastic_transform", "pixelate", "jpeg_compression")
EXTRA_CORRUPTIONS = ("speckle_noise", "gaussian_blur", "spatter", "saturate")  # the release's 4 extra files


def corruption(name: str, params: tuple, colour: bool = False):
    """Register ``fn`` as corruption ``name`` (the name of its file in the CIFAR-10-C release)."""
    def deco(fn):
        CORRUPTIONS.register(name)(Corruption(fn, params, colour))
        return fn
    return deco


def gaussian(x: np.ndarray, sigma: float, mode: str = "nearest", truncate: float = 4.0) -> np.ndarray:
    """skimage.filters.gaussian on each image of a batch (N, H, W[, C]): no smoothing across images or channels;
    skimage's defaults (border ``nearest``, truncate 4), which it passes to scipy as here."""
    sig = (0, sigma, sigma) + (0,) * (x.ndim - 3)
    return gaussian_filter(x, sig, mode=mode, truncate=truncate)


def clipped_zoom(x: np.ndarray, factor: float) -> np.ndarray:
    """The generator's ``clipped_zoom`` on a batch (N, H, W, C): the centre crop of ceil(H / factor) rows and
    columns, zoomed by ``factor`` (linear, scipy) and trimmed to the centre H x W: one call on (H, W, N * C),
    the generator's call on (H, W, C) with more channels (zoom 1 along them), so each image is what it gives."""
    h, w = x.shape[1:3]
    ch, cw = int(np.ceil(h / factor)), int(np.ceil(w / factor))
    top, left = (h - ch) // 2, (w - cw) // 2
    n, c = x.shape[0], x.shape[3]
    crop = x[:, top:top + ch, left:left + cw].transpose(1, 2, 0, 3).reshape(ch, cw, n * c)
    out = zoom(crop, (factor, factor, 1), order=1)
    trim_top, trim_left = (out.shape[0] - h) // 2, (out.shape[1] - w) // 2
    return out[trim_top:trim_top + h, trim_left:trim_left + w].reshape(h, w, n, c).transpose(2, 0, 1, 3)


def motion_blur_u8(x: np.ndarray, radius: float, sigma: float, angles: np.ndarray) -> np.ndarray:
    """ImageMagick 6's MotionBlurImage (Q16), which the generator calls through Wand, on uint8 (N, H, W, C)
    images, one angle (degrees) per image: a one-sided Gaussian of 2 ceil(radius) + 1 taps along the angle,
    pixels past the border repeat the edge (ImageMagick's default virtual pixels), each sum rounded to a 16-bit
    quantum and scaled back to 8 bits as ImageMagick writes an 8-bit PNG."""
    n, h, w, _ = x.shape
    width = int(2 * np.ceil(radius) + 1)
    i = np.arange(width, dtype=np.float64)
    k = np.exp(-(i * i) / (2 * sigma * sigma)) / (np.sqrt(2 * np.pi) * sigma)
    k /= k.sum()
    rad = np.deg2rad(np.asarray(angles, dtype=np.float64))
    px, py = width * np.sin(rad), width * np.cos(rad)  # ImageMagick's point.x, point.y
    hyp = np.hypot(px, py)
    off_x = np.ceil(i[None] * py[:, None] / hyp[:, None] - 0.5).astype(np.int64)  # (N, width)
    off_y = np.ceil(i[None] * px[:, None] / hyp[:, None] - 0.5).astype(np.int64)
    q = x.astype(np.float64) * 257.0  # 8-bit PNG samples as Q16 quanta
    rows, cols, batch = np.arange(h)[None, :, None], np.arange(w)[None, None, :], np.arange(n)[:, None, None]
    acc = np.zeros(x.shape, dtype=np.float64)
    for t in range(width):  # in ImageMagick's order of the taps
        r = np.clip(rows + off_y[:, t, None, None], 0, h - 1)
        c = np.clip(cols + off_x[:, t, None, None], 0, w - 1)
        acc += k[t] * q[batch, r, c]
    quantum = np.clip(np.floor(acc + 0.5), 0, 65535).astype(np.int64)  # ClampToQuantum
    return (((quantum + 128) - ((quantum + 128) >> 8)) >> 8).astype(np.uint8)  # ScaleQuantumToChar
