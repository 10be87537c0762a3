"""Common corruptions as CIFAR-10-C's generator makes them (``make_cifar_c.py`` of Hendrycks & Dietterich,
ICLR 2019, its CIFAR severity parameters), computed for any data set at five severities, and the standard
CIFAR-10-C / CIFAR-100-C files read from ``--data-dir`` (cifar_c.py).

Each corruption is one registry entry named as its file in the release (families: noise.py, blur.py,
weather.py, digital.py). ``corrupt`` takes uint8 images and returns uint8 images truncated as the generator's
``np.uint8(...)`` truncates. Computed corruptions are labelled ``corrupt:<name>:<severity>`` in results, never
as CIFAR-10-C (``c10c:`` / ``c100c:``): the same recipe, but not the stored images (other random draws, other
library versions, ImageMagick's motion blur reimplemented). ``:mean`` rows average the 15 benchmark corruptions
only; the 4 extras get ``:extras:mean``.
"""

from __future__ import annotations

import zlib

import numpy as np
import torch

from robustbench_mix.core.errors import UsageError
from robustbench_mix.corruptions import blur, digital, noise, weather  # noqa: F401 - each registers its corruptions
from robustbench_mix.corruptions.base import (
    CORRUPTIONS,
    EXTRA_CORRUPTIONS,
    SEVERITIES,
    STANDARD_CORRUPTIONS,
    Corruption,
)
from robustbench_mix.corruptions.cifar_c import SOURCES, load_standard

__all__ = ["CORRUPTIONS", "EXTRA_CORRUPTIONS", "GROUPS", "SEVERITIES", "SOURCES", "STANDARD_CORRUPTIONS",
           "Corruption", "check_corruptions", "corrupt", "expand", "load_standard"]

GROUPS = {"all": STANDARD_CORRUPTIONS, "extras": EXTRA_CORRUPTIONS}
LUMA = np.array([0.299, 0.587, 0.114])  # ITU-R 601, as Pillow's convert("L") and OpenCV's RGB2GRAY


def corrupt(x_u8: torch.Tensor, name: str, severity: int, seed: int = 0) -> torch.Tensor:
    """uint8 images (N, C, H, W), C = 1 or 3, corrupted at ``severity`` (0: unchanged), reproducible per seed.

    Computed on the CPU with numpy (the generator's float64 / float32 arithmetic) and returned on the input's
    device. Grey images (C = 1): corruptions that treat channels alike run on the one channel; those that mix
    channels (brightness, saturate, snow, frost, spatter) see three equal channels and return the luma of their
    result, before the truncation."""
    if severity == 0:
        return x_u8
    if severity not in SEVERITIES:
        raise UsageError(f"corruption severity {severity} is not one of 0, 1, 2, 3, 4, 5")
    entry = CORRUPTIONS.get(name)
    if x_u8.dtype != torch.uint8 or x_u8.dim() != 4 or x_u8.shape[1] not in (1, 3):
        raise UsageError(f"corrupt takes uint8 images (N, 1 or 3, H, W), got {x_u8.dtype} {tuple(x_u8.shape)}")
    if x_u8.numel() == 0:
        return x_u8
    x = np.ascontiguousarray(x_u8.detach().cpu().permute(0, 2, 3, 1).numpy())
    grey = x.shape[-1] == 1 and entry.colour
    if grey:
        x = np.repeat(x, 3, axis=-1)
    rng = np.random.default_rng((seed % 2 ** 64, severity, zlib.crc32(name.encode())))
    out = entry.fn(x, entry.params[severity - 1], rng)
    if grey:
        out = (out.astype(np.float64) @ LUMA)[..., np.newaxis]
    if out.dtype != np.uint8:  # np.uint8(...) of the clipped floats; NaN (spatter without a drop) becomes 0
        out = np.nan_to_num(out, nan=0.0).astype(np.uint8)
    return torch.from_numpy(np.ascontiguousarray(out.transpose(0, 3, 1, 2))).to(x_u8.device)


def check_corruptions(names: tuple[str, ...]) -> None:
    for n in names:
        if n not in SOURCES:
            CORRUPTIONS.get(n)


def expand(names: tuple[str, ...]) -> tuple[str, ...]:
    """'all' is the 15 benchmark corruptions, 'extras' the release's 4 extra ones; other names as given."""
    return tuple(dict.fromkeys(c for n in names for c in GROUPS.get(n, (n,))))
