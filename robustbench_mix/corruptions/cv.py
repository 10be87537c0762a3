"""OpenCV, imported when a corruption first needs it (the generator computes these steps with it)."""

from __future__ import annotations

from functools import cache

from robustbench_mix.core.errors import UsageError


@cache
def cv2():
    try:
        import cv2 as module
    except ImportError:
        raise UsageError("corruptions defocus_blur, elastic_transform, frost, snow and spatter use OpenCV, as "
                         "CIFAR-10-C's generator does: pip install opencv-python-headless") from None
    return module
