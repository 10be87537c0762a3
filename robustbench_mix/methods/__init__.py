"""Training methods registry: each method owns its training step's loss.

A method is a :class:`Method`: ``draw(n, alpha, rng, generator, device)`` makes the batch's random numbers
(``rng`` a numpy Generator for host-side draws such as mixup's lambda, so no device sync is needed;
``generator`` a torch Generator on the batch's device), and ``loss(model, x, y, num_classes, *draws)``
returns the scalar training loss of the batch (the trainer runs it under autocast and backpropagates it).
Methods that change only the inputs and the loss give ``apply(x, y, num_classes, *draws) -> (inputs,
loss_fn)`` and get the default ``loss`` (the model on ``inputs``); methods that need the model itself (manifold
mixup mixes hidden states) give ``loss``. Draws must work as 0-dim tensors too where a method allows a CUDA
graph of the step (``graphable``): the graph's draws are made outside it and passed in through buffers.

``alpha`` is the method's one main parameter (its ``param`` symbol: mixup's α, label smoothing's ε; ``default``
when none is given, ``check`` what values it allows). Further parameters are named :class:`Option` s (CutMix's
``prob``, manifold mixup's ``loss``): a run holds them as text (``Experiment.method_options``, e.g.
``prob=0.5``), and :meth:`Method.bind` hands their values, and the image size, to the draw, apply and step
functions that take them as keyword arguments. The families live in ``mixing.py``, ``smoothing.py`` and
``adversarial.py``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial

import torch
import torch.nn.functional as F

from robustbench_mix.core.errors import UsageError
from robustbench_mix.core.parsing import to_float
from robustbench_mix.core.registry import Registry, unknown

LossFn = Callable[[torch.Tensor], torch.Tensor]
# Experiment.method_options of a run recorded before its method had options, when that method's computation has
# changed since (CutMix: another box, always on): such rows stay apart from new runs and cannot be trained again.
LEGACY = "legacy"


def _no_problem(value) -> str | None:
    return None


@dataclass(frozen=True)
class Option:
    """A named parameter of a method besides its main one, e.g. ``--methods cutmix:1:prob=0.5``: its default,
    ``choices`` (the allowed words; empty for a number, which ``check`` judges) and a line for --help."""

    name: str
    default: float | str
    doc: str
    choices: tuple[str, ...] = ()
    check: Callable[[float], str | None] = _no_problem

    def read(self, method: str, text: str) -> float | str:
        """The option's value from its text; a UsageError naming the method, the value and what is allowed."""
        if self.choices:
            if text not in self.choices:
                raise UsageError(f"method {method}: {self.name} {text!r} is not one of {', '.join(self.choices)}")
            return text
        try:
            value = to_float(text)  # -0 is 0: one spelling, one run id
        except ValueError:
            raise UsageError(f"method {method}: {self.name} {text!r} is not a number") from None
        problem = self.check(value)
        if problem:
            raise UsageError(f"method {method}: {problem}")
        return value


def format_option(name: str, value: float | str) -> str:
    """The recorded form: floats in full (repr), so two values never share a spelling."""
    return f"{name}={value!r}" if isinstance(value, float) else f"{name}={value}"


def _show(value: float | str) -> str:
    """The displayed form (labels, --help)."""
    return f"{value:g}" if isinstance(value, float) else str(value)


@dataclass(frozen=True)
class Method:
    """``draw`` and ``apply`` (see the module's docstring), and the traits other modules ask about instead
    of naming methods: ``uses_alpha`` (alpha is a grid axis for it and part of its label; recorded as 0
    otherwise) and ``title`` (how tables and plots name it)."""

    draw: Callable[..., tuple]
    apply: Callable[..., tuple[torch.Tensor, LossFn]] | None = None
    uses_alpha: bool = False
    title: str = ""
    param: str = "α"  # how the label names alpha
    step: Callable[..., torch.Tensor] | None = None  # (model, x, y, num_classes, *draws) -> loss, see loss()
    graphable: bool = True  # can run inside --cuda-graphs and --compile
    graph_reason: str = ""  # why not, for the error that refuses it
    mixes_hidden: bool = False  # needs the model's three mixing points (models.MIX_POINTS)
    check: Callable[[float], str | None] = _no_problem  # what is wrong with alpha, if anything
    trainable: bool = True  # False: a label for models trained elsewhere, evaluated by the suite
    default: float = 0.0  # alpha when none is given (--methods mixup): the value of the method's paper
    options: tuple[Option, ...] = ()  # named parameters besides alpha, keyword arguments of draw/apply/step
    # trained on adversarial examples (PGD-AT, TRADES, ...): its runs get the positive-control checks
    # (checks.py), which ask a robust model's evaluation to behave as a robust model's does
    adversarial: bool = False
    # its loss at alpha 0 as a multiple of ERM's (the contract command's rule for mixing methods): 1 where a mix of
    # weight 0 is ERM; a plugin's method may declare another (RegMixup adds a clean CE: 2)
    erm_multiple: float = 1.0

    @property
    def takes_alpha_flag(self) -> bool:
        """Whether --alpha sets its parameter: the Beta(α, α) mixing methods, not label smoothing's ε."""
        return self.uses_alpha and self.param == "α"

    def loss(self, model, x, y, num_classes, *draws) -> torch.Tensor:
        """The batch's training loss: the method's own step, or the model on its inputs and its loss."""
        if self.step is not None:
            return self.step(model, x, y, num_classes, *draws)
        inputs, loss_fn = self.apply(x, y, num_classes, *draws)
        return loss_fn(model(inputs).float())

    def option_values(self, name: str, text: str) -> dict[str, float | str]:
        """Every option's value: those in ``text`` ('prob=0.25' or 'a=1:b=2'), the defaults for the rest."""
        if text == LEGACY:
            raise UsageError(f"method {name}: this configuration was recorded by an earlier version of the suite "
                             "whose computation of the method has changed since; it cannot run again")
        known = {o.name: o for o in self.options}
        values: dict[str, float | str] = {}
        for part in filter(None, text.split(":")):
            key, sep, value = (s.strip() for s in part.partition("="))
            if not sep:
                raise UsageError(f"method {name}: {part!r} is not NAME=VALUE; its options: "
                                 f"{', '.join(known) or 'none'}")
            if key not in known:
                raise UsageError(f"method {name}: " + unknown("option", key, list(known)) if known else
                                 f"method {name} takes no options (got {key!r})")
            if key in values:
                raise UsageError(f"method {name}: option {key} is given twice")
            values[key] = known[key].read(name, value)
        return {o.name: values.get(o.name, o.default) for o in self.options}

    def canonical(self, name: str, text: str) -> str:
        """``text`` with every option spelled out, in the declared order: the one form a run records."""
        return ":".join(format_option(k, v) for k, v in self.option_values(name, text).items())

    def bind(self, values: dict, **context) -> Method:
        """This method with ``values`` (its options) and ``context`` (``image_size``) given to each of draw,
        apply and step that takes them by name (keyword-only there, so a caller cannot forget one)."""
        given = {**values, **context}

        def fill(fn):
            if fn is None:
                return None
            wanted = {k: v for k, v in given.items() if k in inspect.signature(fn).parameters}
            return partial(fn, **wanted) if wanted else fn

        return replace(self, draw=fill(self.draw), apply=fill(self.apply), step=fill(self.step))

    def usage(self, name: str) -> str:
        """How --methods spells it, e.g. 'cutmix[:α][:prob=P]'."""
        main = f"[:{self.param}]" if self.uses_alpha else ""
        return name + main + "".join(f"[:{o.name}={'|'.join(o.choices) or o.name[0].upper()}]" for o in self.options)

    def defaults_text(self) -> str:
        """The defaults for --help: 'α=1, prob=0.5'."""
        parts = [f"{self.param}={self.default:g}"] if self.uses_alpha else []
        return ", ".join(parts + [f"{o.name}={_show(o.default)}" for o in self.options])


METHODS: Registry[Method] = Registry("method")


def canonical_options(method: str, text: str) -> str:
    """``text`` spelled out (see :meth:`Method.canonical`) where the method is known and the text valid; else
    unchanged, for :func:`config.validate` to report."""
    if method not in METHODS or text == LEGACY:
        return text
    try:
        return METHODS.get(method).canonical(method, text)
    except UsageError:
        return text


def method_for(exp, image_size: tuple[int, int]) -> Method:
    """The run's method with its options bound (``exp`` an Experiment; ``image_size`` its images' (h, w))."""
    m = METHODS.get(exp.method)
    return m.bind(m.option_values(exp.method, exp.method_options), image_size=tuple(image_size))


def run_label(method: str, alpha: float, dropout: float, options: str = "") -> str:
    """The one way a run's method is named: 'ERM', 'mixup (α=1)', 'mixup (α=8) + dropout (p=0.3)',
    'CutMix (α=1, prob=0.25)' (options only where they differ from the method's defaults)."""
    if method not in METHODS:  # rows of a plugin that is not loaded: named as recorded (methods.plugin_note)
        s = method + (f" (α={alpha:g})" if alpha else "") + (f" [{options}]" if options else "")
        return s + (f" + dropout (p={dropout:g})" if dropout else "")
    m = METHODS.get(method)
    params = [f"{m.param}={alpha:g}"] if m.uses_alpha else []
    if options and options != LEGACY and method in METHODS:
        values = m.option_values(method, options)
        params += [f"{o.name}={_show(values[o.name])}" for o in m.options if values[o.name] != o.default]
    elif options == LEGACY:
        params.append("earlier version")
    s = (m.title or method) + (f" ({', '.join(params)})" if params else "")
    return s + (f" + dropout (p={dropout:g})" if dropout else "")


def no_draws(n, alpha, rng, generator, device) -> tuple:
    return ()


def erm_apply(x, y, num_classes) -> tuple[torch.Tensor, LossFn]:
    return x, lambda out: F.cross_entropy(out, y)


erm = METHODS.register("erm")(Method(no_draws, erm_apply, title="ERM"))
# the method of rows from robustbench_mix.evaluate() and the checkpoint command: a model trained elsewhere
METHODS.register("external")(Method(no_draws, erm_apply, title="external", trainable=False))

# the families register themselves on import; their names stay importable from here
from robustbench_mix.methods.adversarial import mixup_at, pgd_at, trades  # noqa: E402
from robustbench_mix.methods.mixing import (  # noqa: E402
    beta_check,
    cutmix,
    cutmix_apply,
    cutmix_box,
    cutmix_draw,
    cutmix_mask,
    manifold_draw,
    manifold_mixup,
    manifold_step,
    mix,
    mixed_bce,
    mixup,
    mixup_apply,
    mixup_draw,
    mixup_lambda,
)
from robustbench_mix.methods.smoothing import label_smoothing, smoothing_apply, smoothing_draw  # noqa: E402

__all__ = [
    "LEGACY", "METHODS", "LossFn", "Method", "Option", "beta_check", "canonical_options", "cutmix", "cutmix_apply",
    "cutmix_box", "cutmix_draw", "cutmix_mask", "erm", "erm_apply", "format_option", "label_smoothing",
    "manifold_draw", "manifold_mixup", "manifold_step", "method_for", "mix", "mixed_bce", "mixup", "mixup_apply",
    "mixup_at", "mixup_draw", "mixup_lambda", "no_draws", "pgd_at", "run_label", "smoothing_apply", "smoothing_draw",
    "trades",
]
