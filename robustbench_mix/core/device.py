"""Device policy, decided once at the edge: which device, the memory layout, bf16 autocast, the device's name."""

from __future__ import annotations

import contextlib
import platform

import torch

from robustbench_mix.core.atomic import atomic_file, atomic_write_bytes, atomic_write_text, temporary_name  # noqa: F401
from robustbench_mix.core.errors import UsageError

# The memory layout of models and images on the CPU, process-wide as the thread count (torch.set_num_threads):
# the executor sets it from the suite's --cpu-channels-last before each run, and the device column records it.
_cpu_channels_last = False


def set_cpu_channels_last(on: bool) -> None:
    global _cpu_channels_last
    _cpu_channels_last = bool(on)


def channels_last(device: torch.device) -> bool:
    """Whether models and images use the channels_last layout: always on CUDA (with bf16 autocast there), on the CPU
    when asked (``--cpu-channels-last``). The same arithmetic in another layout: 1.55-2.2x faster per training step
    on the three CPUs measured (experiments/README.md), numbers equal up to rounding, so not part of the run id."""
    return device.type == "cuda" or (device.type == "cpu" and _cpu_channels_last)


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    layout = ", channels_last" if channels_last(device) else ""
    return f"cpu ({platform.machine()}, {torch.get_num_threads()} threads{layout})"


def autocast_for(device: torch.device, precision: str | None = None, cache: bool = True):
    """bf16 autocast on CUDA (clean evaluation and training); ``precision`` ('fp32' or 'bf16') overrides
    that on any device, so that a comparison with the attacks runs at the attacks' precision. ``cache``
    False for code captured as a CUDA graph, which cannot hold autocast's cached weight casts."""
    if precision == "bf16" or (precision is None and device.type == "cuda"):
        return torch.autocast(device.type, dtype=torch.bfloat16, cache_enabled=cache)
    return contextlib.nullcontext()


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError(f"--device {name}: no CUDA GPU is visible (torch.cuda.is_available() is False); "
                         "use --device cpu or --device auto")
    return torch.device(name)
