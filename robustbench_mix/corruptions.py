"""Common corruptions: a documented set computed on the device at five severities (for any data set), and the
standard CIFAR-10-C / CIFAR-100-C files (Hendrycks & Dietterich, ICLR 2019) read from ``--data-dir``.

Computed corruptions follow the CIFAR-10-C recipe's definitions and severity parameters for 32x32 images, on
uint8 images in, uint8 images out (as the stored CIFAR-10-C images are); severity 0 is the image itself.
They are labelled ``corrupt:<name>:<severity>`` in results, never as CIFAR-10-C, whose rows are
``c10c:<name>:<severity>`` (``c100c:`` for CIFAR-100-C): computed and stored corruptions differ (the
originals were made with other libraries, e.g. Wand's motion blur, and saved as PNG after rounding).
"""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from .errors import UsageError
from .registry import Registry

SEVERITIES = (1, 2, 3, 4, 5)
Corruption = Callable[[torch.Tensor, int, torch.Generator], torch.Tensor]  # float [0,1] -> float, severity 1..5
CORRUPTIONS: Registry[Corruption] = Registry("corruption")
# where the standard files come from, for the error that names them
SOURCES = {"cifar10c": ("CIFAR-10-C", "https://zenodo.org/records/2535967", "c10c"),
           "cifar100c": ("CIFAR-100-C", "https://zenodo.org/records/3555552", "c100c")}
STANDARD_CORRUPTIONS = (  # the 15 of the benchmark (the 4 extra ones of the release are read when present)
    "gaussian_noise", "shot_noise", "impulse_noise", "defocus_blur", "glass_blur", "motion_blur", "zoom_blur",
    "snow", "frost", "fog", "brightness", "contrast", "elastic_transform", "pixelate", "jpeg_compression")


def _param(values: tuple, severity: int):
    return values[severity - 1]


@CORRUPTIONS.register("gaussian_noise")
def gaussian_noise(x, severity, gen):
    return x + torch.randn(x.shape, generator=gen, device=x.device) * _param((0.04, 0.06, 0.08, 0.09, 0.10), severity)


@CORRUPTIONS.register("shot_noise")
def shot_noise(x, severity, gen):
    c = _param((500, 250, 100, 75, 50), severity)
    return torch.poisson(x * c, generator=gen) / c


@CORRUPTIONS.register("impulse_noise")
def impulse_noise(x, severity, gen):
    """Salt and pepper on each value independently (skimage's 's&p' with amount c, salt half of it)."""
    amount = _param((0.01, 0.02, 0.03, 0.05, 0.07), severity)
    u = torch.rand(x.shape, generator=gen, device=x.device)
    return torch.where(u < amount / 2, 0.0, torch.where(u < amount, 1.0, x))


@CORRUPTIONS.register("gaussian_blur")
def gaussian_blur(x, severity, gen):
    sigma = _param((0.4, 0.6, 0.7, 0.8, 1.0), severity)
    r = int(np.ceil(4 * sigma))  # scipy's truncate=4
    t = torch.arange(-r, r + 1, device=x.device, dtype=x.dtype)
    k = torch.exp(-t ** 2 / (2 * sigma ** 2))
    k = k / k.sum()
    c = x.shape[1]
    x = F.pad(x, (r, r, r, r), mode="reflect") if min(x.shape[-2:]) > r else F.pad(x, (r, r, r, r), mode="replicate")
    x = F.conv2d(x, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(x, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


@CORRUPTIONS.register("contrast")
def contrast(x, severity, gen):
    c = _param((0.75, 0.5, 0.4, 0.3, 0.15), severity)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * c + mean


@CORRUPTIONS.register("brightness")
def brightness(x, severity, gen):
    """HSV value + c: RGB = V * f(hue, saturation), so scaling each pixel by V'/V changes V alone."""
    c = _param((0.05, 0.1, 0.15, 0.2, 0.3), severity)
    v = x.amax(dim=1, keepdim=True)
    v2 = (v + c).clamp(max=1.0)
    return torch.where(v > 0, x * v2 / v.clamp_min(1e-12), v2.expand_as(x))


@CORRUPTIONS.register("jpeg_compression")
def jpeg_compression(x, severity, gen):
    """JPEG at quality 80..40 by Pillow's codec, as CIFAR-10-C (on the CPU: the one step not done on the device)."""
    q = _param((80, 65, 58, 50, 40), severity)
    u8 = (x * 255).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    out = []
    for img in u8:
        buf = io.BytesIO()
        Image.fromarray(img[..., 0] if img.shape[-1] == 1 else img).save(buf, format="JPEG", quality=q)
        out.append(np.asarray(Image.open(buf)).reshape(img.shape))
    return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).to(x.device).float() / 255


def corrupt(x_u8: torch.Tensor, name: str, severity: int, seed: int = 0) -> torch.Tensor:
    """uint8 images, corrupted at ``severity`` (0: unchanged) and rounded back to uint8 (reproducible per seed)."""
    if severity == 0:
        return x_u8
    if severity not in SEVERITIES:
        raise UsageError(f"corruption severity {severity} is not one of 0, 1, 2, 3, 4, 5")
    fn = CORRUPTIONS.get(name)
    gen = torch.Generator(device=x_u8.device).manual_seed(seed * 100 + severity)
    out = fn(x_u8.float() / 255, severity, gen)
    return (out.clamp(0, 1) * 255).round().to(torch.uint8)


def check_corruptions(names: tuple[str, ...]) -> None:
    for n in names:
        if n not in SOURCES:
            CORRUPTIONS.get(n)


def expand(names: tuple[str, ...]) -> tuple[str, ...]:
    """'all' is every computed corruption."""
    return tuple(dict.fromkeys(c for n in names for c in (CORRUPTIONS.names() if n == "all" else [n])))


def load_standard(name: str, data_dir: str | Path) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """CIFAR-10-C / CIFAR-100-C: {corruption: uint8 (5 * 10000, 3, 32, 32)} in severity order, and the labels."""
    title, source, _ = SOURCES[name]
    folder = Path(data_dir) / title
    labels = folder / "labels.npy"
    files = sorted(p for p in folder.glob("*.npy") if p.name != "labels.npy") if folder.is_dir() else []
    if not labels.exists() or not files:
        raise UsageError(f"{title} not found: expected {folder}/labels.npy and {folder}/<corruption>.npy (e.g. "
                         f"{', '.join(c + '.npy' for c in STANDARD_CORRUPTIONS[:3])}, ...), the standard files from "
                         f"{source}; unpack the archive into --data-dir ({data_dir})")
    y = torch.from_numpy(np.load(labels).astype(np.int64))
    if len(y) % len(SEVERITIES):
        raise UsageError(f"{labels}: {len(y)} labels is not five severities of one test set")
    out = {}
    for f in files:
        x = np.load(f, mmap_mode="r")
        if x.ndim != 4 or x.shape[-1] not in (1, 3) or len(x) != len(y) or x.dtype != np.uint8:
            raise UsageError(f"{f}: expected uint8 images (N, H, W, 3) with one per label in labels.npy "
                             f"({len(y)}), got {x.dtype} {x.shape}")
        out[f.stem] = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
    return out, y
