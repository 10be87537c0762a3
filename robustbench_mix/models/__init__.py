"""Models that take [0, 1] images (registry ``MODELS``; torchvision and timm families by name)."""

from robustbench_mix.models import zoo  # noqa: F401 - registers the suite's architectures
from robustbench_mix.models.base import MODELS
from robustbench_mix.models.families import build, build_model

__all__ = ["MODELS", "build", "build_model"]
