"""The Python entry point for a model the suite did not train: ``robustbench_mix.evaluate(model, data)``
returns the same long-form rows as the suite (so ``compare``, ``claims`` and ``report`` read them too)."""

from __future__ import annotations

import shlex
import warnings
from dataclasses import replace

import pandas as pd
import torch

from .config import Experiment, eps_from_fraction, validate
from .corruptions import SOURCES, expand, load_standard
from .data import ImageData, load, prepare
from .errors import UsageError
from .evaluators import corruption_rows, final_rows, finish
from .models import Normalize
from .results import device_name, git_rev, to_frame


def as_uint8(x: torch.Tensor) -> torch.Tensor:
    """uint8 images as they are; float images in [0, 1] rounded to the 1/255 grid the suite works on."""
    if x.dtype == torch.uint8:
        return x
    if not x.is_floating_point() or x.dim() != 4:
        raise UsageError(f"images must be a (N, C, H, W) uint8 tensor or floats in [0, 1], got {x.dtype} "
                         f"{tuple(x.shape)}")
    if x.numel() and (float(x.min()) < 0 or float(x.max()) > 1):
        raise UsageError(f"float images must lie in [0, 1] (the model takes pixels, normalization is inside it), "
                         f"got values in [{float(x.min()):.3g}, {float(x.max()):.3g}]")
    u8 = (x.float() * 255).round().to(torch.uint8)
    if x.numel() and float((u8.float() / 255 - x.float()).abs().max()) > 1e-6:
        warnings.warn("float images are not on the 1/255 grid; they were rounded to uint8 (what the attacks and "
                      "the suite's data use)", stacklevel=3)
    return u8


def _data(data, data_dir) -> tuple[str, ImageData | None]:
    """(the data set's label in the results, its test images) from a name, an ImageData or (x, y) tensors."""
    if isinstance(data, str):
        if data in SOURCES:
            return data, None
        return data, load(data, data_dir)
    if isinstance(data, ImageData):
        return data.name, data
    if isinstance(data, tuple | list) and len(data) == 2:
        x, y = (torch.as_tensor(t) for t in data)
        x = as_uint8(x.cpu())
        if y.dim() != 1 or len(y) != len(x):
            raise UsageError(f"labels must be a 1-d tensor with one label per image ({len(x)}), got {tuple(y.shape)}")
        y = y.long().cpu()
        k = int(y.max()) + 1 if len(y) else 0
        d = ImageData("tensors", x[:0], y[:0], x, y, [str(i) for i in range(k)], "none")
        return f"tensors:{d.fingerprint}", d
    raise UsageError("data must be a data set name (digits, cifar10, cifar100, imagefolder:PATH, cifar10c, "
                     f"cifar100c), an ImageData or a pair (images, labels); got {type(data).__name__}")


def evaluate(model: torch.nn.Module, data, *, attacks=("fgsm", "pgd"), eps=(2 / 255, 8 / 255), attack_steps: int = 10,
             attack_step_size: float | None = None, attack_samples: int = 0, attack_restarts: int = 1,
             check_eps: float = 64 / 255, attack_precision: str = "fp32", corruptions=(),
             normalize: tuple | None = None, name: str = "user:model", seed: int = 0, batch_size: int = 1000,
             device: str | torch.device | None = None, data_dir: str = "data", progress: bool = False,
             ) -> pd.DataFrame:
    """Clean accuracy, NLL and ECE, each attack at each epsilon with the sanity checks, and common corruptions,
    of ``model`` on ``data``'s test images, as the suite's long-form rows.

    Epsilons (``eps``, ``check_eps``, ``attack_step_size``) are fractions of the [0, 1] pixel range, as in
    torchattacks, AutoAttack and RobustBench: ``eps=(8/255,)``, or the string ``"8/255"``; a number >= 1 (``8``)
    is refused rather than read as 8/255. (The command line and ``Experiment`` take /255 units instead.) Rows
    write ``eps`` as that fraction and ``eps_255`` in /255 units.

    ``model`` takes images in [0, 1] (or give ``normalize=(mean, std)`` to put normalization in front of it);
    it is evaluated in eval mode, and its mode and parameters are left as found (a warning says when it was in
    training mode). ``data``: a data set name the suite knows (``digits``, ``cifar10``, ``imagefolder:PATH``;
    ``cifar10c`` / ``cifar100c`` evaluate the standard CIFAR-10-C / CIFAR-100-C files in ``data_dir``,
    corruptions only), an ``ImageData``, or a pair ``(images, labels)``. ``corruptions``: computed common
    corruptions (names, or ``("all",)``) at severities 1-5. ``attack_samples`` 0 (the default, as RobustBench's
    ``benchmark``) attacks every test image; N attacks a class-stratified sample of N that is the same for every
    model on that test set (rows say so in ``n_eval`` and ``eval_subset``).
    ``name`` labels the model in the ``model`` column (``user:...``, ``tv:...`` or ``timm:...``).
    """
    if not isinstance(model, torch.nn.Module):
        raise UsageError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    label, d = _data(data, data_dir)
    exp = Experiment(preset="api", dataset=label, model=name, method="external", epochs=0,
                     attacks=_listed(attacks, "attacks"), eps=tuple(eps_from_fraction(e) for e in _listed(eps, "eps")),
                     attack_steps=attack_steps, attack_samples=attack_samples,
                     attack_step_size=None if attack_step_size is None
                     else eps_from_fraction(attack_step_size, "attack_step_size"),
                     attack_restarts=attack_restarts, check_eps=eps_from_fraction(check_eps, "check_eps"),
                     attack_precision=attack_precision,
                     corruptions=expand(tuple(corruptions)), seed=seed)
    return evaluate_experiment(model, exp, d, normalize=normalize, batch_size=batch_size, device=device,
                               data_dir=data_dir, progress=progress)


def _listed(value, name: str) -> tuple:
    """One value or a sequence of them: ``eps=8/255`` and ``eps="8/255"`` are one epsilon, not a list of
    characters."""
    if isinstance(value, str | int | float):
        return (value,)
    try:
        return tuple(value)
    except TypeError:
        raise UsageError(f"{name}={value!r} is neither a number nor a sequence of them, e.g. {name}=(2/255, 8/255)") \
            from None


def evaluate_experiment(model: torch.nn.Module, exp: Experiment, d: ImageData | None, *, normalize=None,
                        batch_size: int = 1000, device=None, data_dir: str = "data", progress: bool = False,
                        epoch: int | None = None, command: str = "") -> pd.DataFrame:
    """``evaluate`` for a given experiment (the checkpoint command passes a suite run's own, so its rows keep the
    run's method and recipe); ``d`` None evaluates the standard corruption files of ``exp.dataset``."""
    label = exp.dataset
    if d is None:
        exp = replace(exp, attacks=(), attack_samples=0)
    elif exp.attack_samples > len(d.test_y):  # more than there are: all of them
        exp = replace(exp, attack_samples=0)
    validate(exp)
    if model.training:
        warnings.warn("the model is in training mode; it is evaluated in eval mode (batch-norm statistics fixed, "
                      "dropout off) and left in training mode afterwards", stacklevel=3)  # the caller of evaluate
    dev = torch.device(device) if device is not None else next(
        (p.device for p in model.parameters()), torch.device("cpu"))
    net = torch.nn.Sequential(Normalize(*normalize).to(dev), model) if normalize is not None else model
    if d is None:  # the standard corruption files: no clean test set, no attacks
        stored, y = load_standard(label, data_dir)
        rows = finish(corruption_rows(net, None, y.to(dev), (), batch_size, prefix=SOURCES[label][2],
                                      stored=stored))
    else:
        prepared = prepare(d, 0.0, 0.0, exp.seed, dev)  # the test split is the same for every noise and seed
        rows = final_rows(net, prepared, exp, batch_size, progress=progress)
    command = command or "robustbench_mix.evaluate(model, " + shlex.quote(label) + ", ...)"
    at = exp.epochs if epoch is None else epoch
    return to_frame(exp, [dict(r, epoch=at) for r in rows], device=device_name(dev), command=command, rev=git_rev(),
                    data_sha=d.fingerprint if d is not None else "")
