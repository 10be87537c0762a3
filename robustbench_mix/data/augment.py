"""Augmentation on the device (random crop with zero padding and horizontal flip), drawn from a torch generator."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class Augmentation:
    """A batched random augmentation split in two: ``draw`` makes the random numbers (from the run's
    generator), ``apply`` is a pure function of the batch and those numbers. The split lets a whole
    training step be captured as one CUDA graph (``fit(cuda_graphs="step")``): the draws are made
    outside the graph and copied into its input buffers. Calling the object does both."""

    draw: Callable[[int, torch.device, torch.Generator], tuple[torch.Tensor, ...]]
    apply: Callable[..., torch.Tensor]

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return self.apply(x, *self.draw(len(x), x.device, generator))


PAD = 4  # the crop's zero padding, as in the paper's CIFAR code


def _crop_flip_draw(n: int, device: torch.device, generator: torch.Generator) -> tuple[torch.Tensor, ...]:
    off = torch.randint(0, 2 * PAD + 1, (2, n), device=device, generator=generator)
    flip = torch.rand(n, device=device, generator=generator) < 0.5
    return off, flip


def _crop_flip_apply(x: torch.Tensor, off: torch.Tensor, flip: torch.Tensor) -> torch.Tensor:
    """The crops are one gather from a strided view of every window of the padded batch (no copy of the
    windows), 2.6x faster on the CPU than indexing pixel by pixel."""
    n, c, h, w = x.shape
    windows = F.pad(x, (PAD, PAD, PAD, PAD)).unfold(2, h, 1).unfold(3, w, 1)  # (n, c, 2p+1, 2p+1, h, w)
    out = windows[torch.arange(n, device=x.device), :, off[0], off[1]]  # (n, c, h, w)
    return torch.where(flip[:, None, None, None], out.flip(3), out)


# Random crop with zero padding and random horizontal flip, batched on x's device (uint8 in and out).
crop_flip = Augmentation(_crop_flip_draw, _crop_flip_apply)
AUGMENTATIONS = {"none": Augmentation(lambda n, device, generator: (), lambda x: x), "crop_flip": crop_flip}
