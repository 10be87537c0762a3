"""The model registry, the normalization wrapper (models take [0, 1] images) and ``build``."""

from __future__ import annotations

import torch
import torch.nn as nn

from robustbench_mix.core.registry import Registry

MODELS: Registry = Registry("model")


class Normalize(nn.Module):
    def __init__(self, mean, std):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x):
        return (x - self.mean) / self.std


# Each model's mixing points for manifold mixup (Verma et al., 2019: for PreAct ResNet the input, after the
# first stage and after the second), as module names in the built model (None: the input itself). A method
# hooks the named module's output, so no model needs a second copy of its forward.
MIX_POINTS = {
    "mlp": (None, "1.3", "1.6"),  # after each hidden layer (its dropout)
    "cnn": (None, "1.2", "1.6"),  # after the first block, after the second block and its pooling
    "cifar_cnn": (None, "1.3", "1.7"),  # after the first and the second stage (each block and its pooling)
    "preact_resnet18": (None, "1.layers.1", "1.layers.3"),  # after stages 1 and 2 (two blocks each)
    "wrn28_10": (None, "1.layers.3", "1.layers.7"),  # after stages 1 and 2 (four blocks each)
}
