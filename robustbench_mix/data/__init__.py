"""Data sets as uint8 tensors (registry ``DATASETS``), prepared on the device for a run."""

from robustbench_mix.data import sources  # noqa: F401 - registers the data sets
from robustbench_mix.data.base import DATASETS, ImageData, load
from robustbench_mix.data.prepare import Prepared, prepare

__all__ = ["DATASETS", "ImageData", "Prepared", "load", "prepare"]
