"""The suite's own architectures: mlp, cnn, cifar_cnn, PreAct ResNet-18, WRN-28-10."""

from __future__ import annotations

import torch.nn as nn
import torch.nn.functional as F

from robustbench_mix.models.base import MODELS


@MODELS.register("mlp")
def mlp(in_shape, num_classes, dropout=0.0, width=256):
    d = in_shape[0] * in_shape[1] * in_shape[2]
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(d, width), nn.ReLU(), nn.Dropout(dropout),
        nn.Linear(width, width), nn.ReLU(), nn.Dropout(dropout),
        nn.Linear(width, num_classes),
    )


@MODELS.register("cnn")
def cnn(in_shape, num_classes, dropout=0.0, width=32):
    """A small conv net sized for 8x8 digits, working on any input size (global average pooling)."""
    c = in_shape[0]

    def block(i, o):
        return [nn.Conv2d(i, o, 3, padding=1, bias=False), nn.BatchNorm2d(o), nn.ReLU(inplace=True)]

    return nn.Sequential(
        *block(c, width), *block(width, 2 * width), nn.MaxPool2d(2),
        *block(2 * width, 4 * width), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Dropout(dropout), nn.Linear(4 * width, num_classes),
    )


@MODELS.register("cifar_cnn")
def cifar_cnn(in_shape, num_classes, dropout=0.0, width=32):
    """A small CNN for 32x32 images on the CPU: three conv-BN-ReLU blocks, each followed by 2x2 max-pooling.
    Pooling after every block costs a quarter of ``cnn``'s convolutions at 32x32 and, trained the same way on
    CIFAR-10 (JPEG q75), reaches higher accuracy per minute (experiments/README.md, "A model for the CPU")."""
    c = in_shape[0]

    def block(i, o):
        return [nn.Conv2d(i, o, 3, padding=1, bias=False), nn.BatchNorm2d(o), nn.ReLU(inplace=True), nn.MaxPool2d(2)]

    return nn.Sequential(
        *block(c, width), *block(width, 2 * width), *block(2 * width, 4 * width), nn.AdaptiveAvgPool2d(1),
        nn.Flatten(), nn.Dropout(dropout), nn.Linear(4 * width, num_classes),
    )


class PreActBlock(nn.Module):
    """Pre-activation residual block (He et al., 2016); ``dropout`` between the convolutions is WRN's."""

    def __init__(self, in_planes, planes, stride=1, dropout=0.0):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.drop = nn.Dropout(dropout) if dropout else nn.Identity()
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.shortcut = None
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Conv2d(in_planes, planes, 1, stride, bias=False)

    def forward(self, x):
        out = F.relu(self.bn1(x))
        sc = self.shortcut(out) if self.shortcut is not None else x
        out = self.conv2(self.drop(F.relu(self.bn2(self.conv1(out)))))
        return out + sc


class PreActResNet(nn.Module):
    """PreAct ResNet-18 as in the mixup paper's CIFAR experiments (He et al., 2016), with optional dropout
    before the classifier (the 'ERM + dropout' rows of Table 2)."""

    def __init__(self, num_blocks, in_channels=3, num_classes=10, dropout=0.0):
        super().__init__()
        self.in_planes = 64
        self.conv1 = nn.Conv2d(in_channels, 64, 3, 1, 1, bias=False)
        layers = []
        for planes, n, stride in zip((64, 128, 256, 512), num_blocks, (1, 2, 2, 2), strict=True):
            for s in [stride] + [1] * (n - 1):
                layers.append(PreActBlock(self.in_planes, planes, s))
                self.in_planes = planes
        self.layers = nn.Sequential(*layers)
        self.bn = nn.BatchNorm2d(512)
        self.drop = nn.Dropout(dropout)
        self.linear = nn.Linear(512, num_classes)

    def forward(self, x):
        out = self.layers(self.conv1(x))
        out = F.adaptive_avg_pool2d(F.relu(self.bn(out)), 1).flatten(1)
        return self.linear(self.drop(out))


@MODELS.register("preact_resnet18")
def preact_resnet18(in_shape, num_classes, dropout=0.0):
    return PreActResNet((2, 2, 2, 2), in_shape[0], num_classes, dropout)


class WideResNet(nn.Module):
    """WRN-depth-k (Zagoruyko & Komodakis, 2016); dropout sits between the convolutions of each block."""

    def __init__(self, depth=28, k=10, in_channels=3, num_classes=10, dropout=0.0):
        super().__init__()
        n = (depth - 4) // 6
        widths = [16, 16 * k, 32 * k, 64 * k]
        self.conv1 = nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=False)
        layers, in_planes = [], widths[0]
        for planes, stride in zip(widths[1:], (1, 2, 2), strict=True):
            for s in [stride] + [1] * (n - 1):
                layers.append(PreActBlock(in_planes, planes, s, dropout))
                in_planes = planes
        self.layers = nn.Sequential(*layers)
        self.bn = nn.BatchNorm2d(in_planes)
        self.linear = nn.Linear(in_planes, num_classes)

    def forward(self, x):
        out = F.relu(self.bn(self.layers(self.conv1(x))))
        return self.linear(F.adaptive_avg_pool2d(out, 1).flatten(1))


@MODELS.register("wrn28_10")
def wrn28_10(in_shape, num_classes, dropout=0.0):
    return WideResNet(28, 10, in_shape[0], num_classes, dropout)
