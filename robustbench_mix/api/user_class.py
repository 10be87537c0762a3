"""A model class from the user's own code for the checkpoint command: ``--model pkg.module:Class`` or
``--model path/to/file.py:Class``, built with ``--model-kwargs`` (a JSON object) and put behind the normalization
``--normalize`` states (``mean,std`` or ``none``: the model normalizes its inputs itself). Every problem is a
``UsageError`` naming the flag's value and what is allowed, before any data is read."""

from __future__ import annotations

import functools
import importlib
import importlib.util
import inspect
import json
import math
import re
import sys
from pathlib import Path

import torch

from robustbench_mix.core.errors import UsageError, first_line

LIBRARY_PREFIXES = ("tv", "timm", "user")  # model names with a colon that are not a user's class
NORMALIZE_HELP = ("--normalize mean,std (one number each, e.g. 0.5,0.25, or one per channel, means then stds, e.g. "
                  "0.49,0.48,0.45,0.25,0.24,0.26) or --normalize none (the model normalizes its inputs itself)")


def is_class_spec(name: str | None) -> bool:
    """``MODULE:Class`` or ``FILE.py:Class``: a colon whose left part is not a library prefix (tv:, timm:)."""
    if not name or ":" not in name:
        return False
    where, _, _ = name.rpartition(":")
    return where not in LIBRARY_PREFIXES


def _module(where: str, spec: str):
    if where.endswith(".py") or "/" in where or "\\" in where:
        path = Path(where)
        if not path.is_file():
            raise UsageError(f"--model {spec}: {path} is not a file (give path/to/file.py:Class or "
                             "package.module:Class)")
        name = "robustbench_mix_user_" + re.sub(r"\W", "_", path.stem)
        loader = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(loader)

        def run():
            sys.modules[name] = module  # registered first, as an import does (dataclasses in it need it)
            loader.loader.exec_module(module)
    else:
        if not re.fullmatch(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*", where):
            raise UsageError(f"--model {spec}: {where!r} is neither a module name (package.module) nor a .py file")
        module, run = None, lambda: importlib.import_module(where)
    try:
        got = run()
    except ModuleNotFoundError as e:
        raise UsageError(f"--model {spec}: no module named {e.name!r} (run the command from the folder that holds "
                         "it, or add that folder to PYTHONPATH)") from None
    except Exception as e:  # the user's module failed while importing: its own error, named
        raise UsageError(f"--model {spec}: importing {where} raised {e.__class__.__name__}: "
                         f"{first_line(e)[:200]}") from None
    return module if module is not None else got


@functools.cache
def load_class(spec: str) -> tuple[type, str]:
    """(the class, its label in the results' model column: ``user:module.Class``); a file is executed once per
    command, however often its class is asked for."""
    where, _, name = spec.rpartition(":")
    if not where or not name.isidentifier():
        raise UsageError(f"--model {spec}: give MODULE:Class or path/to/file.py:Class (the class name after the "
                         "last colon)")
    module = _module(where, spec)
    cls = getattr(module, name, None)
    if cls is None:
        found = sorted(k for k, v in vars(module).items()
                       if inspect.isclass(v) and issubclass(v, torch.nn.Module) and v.__module__ == module.__name__)
        raise UsageError(f"--model {spec}: {where} has no {name!r}; its torch.nn.Module classes: "
                         f"{', '.join(found) or 'none'}")
    if not (inspect.isclass(cls) and issubclass(cls, torch.nn.Module)):
        raise UsageError(f"--model {spec}: {name} is a {type(cls).__name__}, not a torch.nn.Module class")
    stem = Path(where).stem if where.endswith(".py") else where
    return cls, f"user:{re.sub(r'[^A-Za-z0-9_.-]', '_', stem)}.{name}"


def parse_kwargs(text: str | None) -> dict:
    """``--model-kwargs``: a JSON object of the class's keyword arguments (default: none)."""
    if text is None:
        return {}
    try:
        kwargs = json.loads(text)
    except json.JSONDecodeError as e:
        raise UsageError(f"--model-kwargs {text!r} is not JSON ({e.msg} at character {e.pos}); give an object, "
                         "e.g. '{\"width\": 32, \"num_classes\": 10}'") from None
    if not isinstance(kwargs, dict):
        raise UsageError(f"--model-kwargs {text!r} is a JSON {type(kwargs).__name__}, not an object of keyword "
                         "arguments, e.g. '{\"width\": 32}'")
    return kwargs


def parse_normalize(text: str | None, spec: str, channels: int | None = None) -> tuple | None:
    """``--normalize``: ``(mean, std)`` tuples, or None for ``none``; required for a user's class, since a state_dict
    does not say which normalization its model was trained with. ``channels`` None (the data not read yet):
    any even count of numbers."""
    if text is None:
        raise UsageError(f"--model {spec} needs its input normalization stated: {NORMALIZE_HELP}")
    if text.strip().lower() == "none":
        return None
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        raise UsageError(f"--normalize {text!r} is not numbers; give {NORMALIZE_HELP}") from None
    if channels is None and len(values) % 2 == 0:
        channels = len(values) // 2
    if len(values) not in (2, 2 * (channels or 1)):
        raise UsageError(f"--normalize {text!r} has {len(values)} number(s); the images have {channels or '?'} "
                         f"channel(s): give 2 (mean,std) or {2 * (channels or 1)} (means then stds), or none")
    half = len(values) // 2
    mean, std = tuple(values[:half]), tuple(values[half:])
    if not all(math.isfinite(v) for v in values) or min(std) <= 0:
        raise UsageError(f"--normalize {text!r}: means must be finite and stds finite and positive")
    return mean, std


def check_flags(model: str | None, kwargs: str | None, normalize: str | None) -> None:
    """Before any file is read: the class imports, its arguments parse, its normalization is stated; and neither
    flag is given for one of the suite's models, whose normalization is inside their checkpoints."""
    if is_class_spec(model):
        load_class(model)
        parse_kwargs(kwargs)
        parse_normalize(normalize, model)
        return
    for flag, value in (("--model-kwargs", kwargs), ("--normalize", normalize)):
        if value is not None:
            raise UsageError(f"{flag} is for your own class (--model package.module:Class or path/to/file.py:Class); "
                             f"the suite's models{f' ({model})' if model else ''} carry their normalization and "
                             "arguments in their checkpoints")


def build_user_model(spec: str, kwargs: dict) -> torch.nn.Module:
    """``Class(**kwargs)``, its own error named when the arguments do not fit."""
    cls, _ = load_class(spec)
    try:
        return cls(**kwargs)
    except Exception as e:
        raise UsageError(f"--model {spec} with --model-kwargs {json.dumps(kwargs)}: {cls.__name__}(...) raised "
                         f"{e.__class__.__name__}: {first_line(e)[:200]}") from None
