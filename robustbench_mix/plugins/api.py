"""The public registration API: one decorated function per entry, its internal traits at safe defaults.

Each entry is registered into the suite's own registry (METHODS, MODELS, ATTACKS, CORRUPTIONS) with an
:class:`~robustbench_mix.core.registry.Origin`: the plugin module and a fingerprint of the entry's definition (the
function's source and the sha256 of its module's file), which the run id of every run using it includes, so an
edited plugin never reuses an old run's results and two files defining one name never share a run. A name may not
shadow a built-in entry or another plugin's (refused, naming both). A bad trait is a UsageError naming the plugin,
the entry and the trait, raised while the plugin is imported (before any data are loaded).
"""

from __future__ import annotations

import hashlib
import inspect
import math
import re
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from robustbench_mix.attacks.base import ATTACKS, Attack, default_step_size
from robustbench_mix.core.errors import RunFailed, UsageError
from robustbench_mix.core.registry import Origin, Registry
from robustbench_mix.core.units import Norm
from robustbench_mix.corruptions.base import CORRUPTIONS, SEVERITIES, Corruption
from robustbench_mix.data.base import DATASETS, ImageData, Source
from robustbench_mix.methods import METHODS, Method
from robustbench_mix.models.base import MODELS

NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]*")  # no ':' or ',': the grammar of --methods and --model
# the plugin being imported: (its label, the file's name or the module's; its key, the spec as loaded); set by
# loading.py
LOADING: list[tuple[str, str]] = []
# key -> the (registry, name) entries that plugin registered, so a failed or changed plugin is unloaded whole
REGISTERED: dict[str, list[tuple[Registry, str]]] = {}


def _file_sha(fn) -> str:
    path = getattr(sys.modules.get(getattr(fn, "__module__", ""), None), "__file__", None)
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest() if path else ""
    except OSError:
        return ""


def fingerprint(kind: str, name: str, fn) -> str:
    """12 hex digits of sha256 over the entry's kind and name, its function's source and its module file's hash."""
    try:
        source = inspect.getsource(fn)
    except (OSError, TypeError):  # defined where no source is kept (an interactive session)
        source = getattr(getattr(fn, "__code__", None), "co_code", b"").hex()
    blob = f"{kind}:{name}\n{source}\n{_file_sha(fn)}"
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def _register(registry: Registry, kind: str, name, fn, entry) -> None:
    label, key = LOADING[-1] if LOADING else (getattr(fn, "__module__", "") or "__main__",) * 2
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise UsageError(f"plugin {label}: {kind} name {name!r} is not letters, digits, _ . - (no ':' or ',')")
    origin = Origin(label, fingerprint(kind, name, fn))
    registry.register(name, origin)(entry)
    REGISTERED.setdefault(key, []).append((registry, name))


def _problem(label_kind: str, name: str, text: str) -> UsageError:
    label = LOADING[-1][0] if LOADING else "(not loaded by --plugin)"
    return UsageError(f"plugin {label}: {label_kind} {name!r}: {text}")


def _callable(kind: str, name: str, fn) -> None:
    if not callable(fn):
        raise _problem(kind, name, f"decorates {type(fn).__name__}, not a function")


def beta(alpha: float, generator: torch.Generator) -> float:
    """lambda ~ Beta(alpha, alpha), drawn from ``generator`` only (torch has no Beta draw taking a generator);
    alpha = 0 gives 1 (no mixing), as the suite's mixup does."""
    if alpha <= 0:
        return 1.0
    seed = int(torch.randint(2**62, (1,), generator=generator, device=generator.device))
    return float(np.random.default_rng(seed).beta(alpha, alpha))


# ------------------------------------------------------------------------------------------------- methods
def _nonnegative(alpha: float) -> str | None:
    return None if alpha >= 0 else f"alpha {alpha} is negative"


def register_method(name: str, *, uses_alpha: bool = False, default: float | None = None, title: str = "",
                    check: Callable[[float], str | None] | None = None, adversarial: bool = False,
                    erm_multiple: float = 1.0):
    """Register ``fn(model, x, y, num_classes, alpha, generator) -> loss`` as training method ``name``.

    ``x`` the batch in [0, 1], ``y`` its class indices; the scalar loss is backpropagated by the trainer (under
    its autocast). All randomness comes from ``generator`` (a torch.Generator on the batch's device, whose state
    the checkpoints hold, so a resumed run draws what an uninterrupted one would; :func:`beta` draws a mixing
    weight from it). ``uses_alpha``: alpha is a grid axis of the method (``--methods NAME:VALUE``, ``--alpha``),
    ``default`` its value when none is given (1.0 unless said); without it alpha is 0. ``check(alpha)``: what is
    wrong with a value, or None (default: negative values are refused). ``adversarial``: trained on adversarial
    examples, so its runs get the robust-model checks. ``erm_multiple``: what multiple of ERM's loss the method's
    loss is at alpha 0 (1 for a mixing method, whose mix of weight 0 is ERM; RegMixup's clean CE plus a mixup CE
    that becomes it: 2), which the contract command holds it to. Always eager: never inside --compile or
    --cuda-graphs."""
    def deco(fn):
        _callable("method", name, fn)
        if not isinstance(uses_alpha, bool):
            raise _problem("method", name, f"uses_alpha={uses_alpha!r} is not True or False")
        if default is not None and not uses_alpha:
            raise _problem("method", name, f"default={default!r} without uses_alpha=True: a method without alpha "
                           "has no default alpha")
        d = 1.0 if default is None and uses_alpha else (default or 0.0)
        if isinstance(d, bool) or not isinstance(d, int | float) or not math.isfinite(d) or d < 0:
            raise _problem("method", name, f"default={d!r} is not a finite number >= 0")
        if check is not None and not callable(check):
            raise _problem("method", name, f"check={check!r} is not a function of alpha")
        if not isinstance(erm_multiple, int | float) or isinstance(erm_multiple, bool) or not erm_multiple > 0:
            raise _problem("method", name, f"erm_multiple={erm_multiple!r} is not a positive number")
        if not isinstance(title, str) or not isinstance(adversarial, bool):
            raise _problem("method", name, "title must be text and adversarial True or False")

        def step(model, x, y, num_classes, alpha, generator):
            loss = fn(model, x, y, num_classes, alpha, generator)
            if not torch.is_tensor(loss) or loss.numel() != 1:
                raise RunFailed(f"plugin method {name} returned {type(loss).__name__}"
                                f"{tuple(loss.shape) if torch.is_tensor(loss) else ''}, not a scalar loss tensor")
            return loss.reshape(())

        method = Method(_plugin_draw, uses_alpha=uses_alpha, title=title or name, step=step, graphable=False,
                        graph_reason="a plugin's method runs eagerly", check=check or _nonnegative,
                        default=float(d), adversarial=adversarial, erm_multiple=float(erm_multiple))
        _register(METHODS, "method", name, fn, method)
        return fn

    return deco


def _plugin_draw(n, alpha, rng, generator, device) -> tuple:
    """A plugin method's draws are its alpha and the trainer's generator: it draws what it needs itself."""
    return float(alpha), generator


# -------------------------------------------------------------------------------------------------- models
def register_model(name: str, *, normalize: bool = False):
    """Register ``fn(num_classes, in_shape) -> nn.Module`` as model ``name``: the module maps [0, 1] images
    (N, C, H, W) to (N, num_classes) logits. ``normalize``: put the data's per-channel normalization in front of it
    (as the suite's own models have); by default it gets the [0, 1] images. A ``dropout`` parameter of ``fn``, if
    it has one, gets ``--dropout``; a model without one refuses a dropout above 0."""
    def deco(fn):
        _callable("model", name, fn)
        if not isinstance(normalize, bool):
            raise _problem("model", name, f"normalize={normalize!r} is not True or False")
        takes_dropout = "dropout" in inspect.signature(fn).parameters

        def build(in_shape, num_classes, dropout=0.0):
            if dropout and not takes_dropout:
                raise UsageError(f"plugin model {name} takes no dropout (its function has no dropout parameter); "
                                 "use --dropout 0")
            body = fn(num_classes=num_classes, in_shape=tuple(in_shape), **({"dropout": dropout} if takes_dropout
                                                                             else {}))
            if not isinstance(body, nn.Module):
                raise UsageError(f"plugin model {name} returned {type(body).__name__}, not a torch nn.Module")
            return body

        build.unit_inputs = not normalize  # models.families.build: no normalization in front
        _register(MODELS, "model", name, fn, build)
        return fn

    return deco


# ------------------------------------------------------------------------------------------------- attacks
def register_attack(name: str, *, norm: str = "Linf", random_start: bool = False, iterative: bool = False):
    """Register ``fn(model, x, y, eps, steps, step_size) -> x_adv`` as attack ``name``: adversarial images in the
    ``norm`` ball of radius ``eps`` (a fraction of the pixel range for Linf, an L2 norm in [0, 1] pixel space for
    L2) around ``x`` and in [0, 1]. The model is in eval mode with its parameters frozen. ``random_start``: it
    starts at a random point (restarts make sense, and the gradient-masking check at a large epsilon runs it);
    ``iterative``: it must beat the one-step attack of its norm (the sanity checks hold it to that)."""
    def deco(fn):
        _callable("attack", name, fn)
        try:
            n = Norm(norm)
        except ValueError:
            raise _problem("attack", name, f"norm={norm!r} is not one of {', '.join(map(str, Norm))}") from None
        for trait, v in (("random_start", random_start), ("iterative", iterative)):
            if not isinstance(v, bool):
                raise _problem("attack", name, f"{trait}={v!r} is not True or False")

        def run(model, x, y, eps, steps=10, step_size=None, loss="ce"):
            ss = default_step_size(eps, steps) if step_size is None else step_size
            adv = fn(model, x, y, eps, steps, ss)
            if not torch.is_tensor(adv) or adv.shape != x.shape:
                raise RunFailed(f"plugin attack {name} returned {type(adv).__name__}"
                                f"{tuple(adv.shape) if torch.is_tensor(adv) else ''}, not images shaped as its "
                                f"input {tuple(x.shape)}")
            return adv

        _register(ATTACKS, "attack", name, fn, Attack(run, random_start, iterative, None, n))
        return fn

    return deco


# --------------------------------------------------------------------------------------------- corruptions
def register_corruption(name: str, params, *, colour: bool = False):
    """Register ``fn(x, c, rng)`` as corruption ``name``, as the suite's own (corruptions/base.py): ``x`` uint8
    (N, H, W, C), ``c`` the parameter of the severity (``params`` holds one for each of the five), ``rng`` a
    numpy Generator; it returns the corrupted images on the 0..255 scale. ``colour``: it mixes channels."""
    def deco(fn):
        _callable("corruption", name, fn)
        if not isinstance(params, tuple | list) or len(params) != len(SEVERITIES):
            raise _problem("corruption", name, f"params={params!r} must hold one parameter for each of the "
                           f"{len(SEVERITIES)} severities")
        _register(CORRUPTIONS, "corruption", name, fn, Corruption(fn, tuple(params), bool(colour)))
        return fn

    return deco


# ------------------------------------------------------------------------------------------------ data sets
def _images(name: str, what: str, x) -> torch.Tensor:
    t = torch.as_tensor(x)
    if t.dtype != torch.uint8 or t.dim() != 4 or t.shape[1] not in (1, 3) or len(t) == 0:
        raise UsageError(f"plugin data set {name}: {what} must be uint8 images (N, 1 or 3, H, W), got {t.dtype} "
                         f"{tuple(t.shape)}")
    return t.contiguous()


def _labels(name: str, what: str, y, n: int, classes: int) -> torch.Tensor:
    t = torch.as_tensor(y)
    if t.dim() != 1 or len(t) != n or t.dtype.is_floating_point or t.dtype == torch.bool:
        raise UsageError(f"plugin data set {name}: {what} must be {n} integer class indices, got {t.dtype} "
                         f"{tuple(t.shape)}")
    t = t.long()
    if len(t) and (int(t.min()) < 0 or int(t.max()) >= classes):
        raise UsageError(f"plugin data set {name}: {what} hold classes outside 0..{classes - 1}")
    return t


def register_dataset(name: str, *, augment: str = "none"):
    """Register ``fn(data_dir) -> (train_x, train_y, test_x, test_y, classes)`` as data set ``name``: uint8 images
    (N, 1 or 3, H, W) and integer labels (tensors or numpy arrays), ``classes`` the class names. ``data_dir`` is
    --data-dir (for the plugin's own files). ``augment``: "none" or "crop_flip" (random crops and flips, for
    32x32 natural images). The images' content is fingerprinted with every run, as the built-in data sets'."""
    def deco(fn):
        _callable("dataset", name, fn)
        if augment not in ("none", "crop_flip"):
            raise _problem("dataset", name, f"augment={augment!r} is not 'none' or 'crop_flip'")

        def load(data_dir):
            got = fn(data_dir)
            if not isinstance(got, tuple | list) or len(got) != 5:
                raise UsageError(f"plugin data set {name} returned {type(got).__name__}, not (train_x, train_y, "
                                 "test_x, test_y, classes)")
            train_x, train_y, test_x, test_y, classes = got
            classes = [str(c) for c in classes]
            if len(classes) < 2:
                raise UsageError(f"plugin data set {name}: {len(classes)} class name(s); a classifier needs 2 or more")
            tx, vx = _images(name, "train_x", train_x), _images(name, "test_x", test_x)
            if tx.shape[1:] != vx.shape[1:]:
                raise UsageError(f"plugin data set {name}: train images {tuple(tx.shape[1:])} and test images "
                                 f"{tuple(vx.shape[1:])} differ in shape")
            return ImageData(name, tx, _labels(name, "train_y", train_y, len(tx), len(classes)), vx,
                             _labels(name, "test_y", test_y, len(vx), len(classes)), classes, augment)

        _register(DATASETS, "dataset", name, fn, Source(load))
        return fn

    return deco
