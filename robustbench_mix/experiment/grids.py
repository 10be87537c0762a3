"""Grids of runs: a Variant (a method with its parameters), --methods items, and a Suite (variants x noise x seeds)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, replace

from robustbench_mix.core.errors import UsageError
from robustbench_mix.core.parsing import parse_numbers, split_list
from robustbench_mix.core.units import parse_eps, parse_eps_l2
from robustbench_mix.corruptions import expand
from robustbench_mix.experiment.experiment import Experiment


# ------------------------------------------------------------------------------------ suites/presets
@dataclass(frozen=True)
class Variant:
    """A column of a results table: a method with its parameters (``options`` as Experiment.method_options)."""

    method: str
    alpha: float = 0.0
    dropout: float = 0.0
    options: str = ""


def parse_method(text: str) -> tuple[str, float | None, str]:
    """One --methods item, ``NAME[:VALUE][:OPTION=VALUE]...``: 'mixup:8' -> ('mixup', 8.0, ''),
    'cutmix:1:prob=0.25' -> ('cutmix', 1.0, 'prob=0.25'), 'cutmix:prob=0.25' -> ('cutmix', None, 'prob=0.25');
    None: no value given. Every name and value is checked here, before anything runs."""
    from robustbench_mix.methods import METHODS

    name, *parts = (p.strip() for p in text.split(":"))
    method = METHODS.get(name)
    value = None
    if parts and "=" not in parts[0]:
        if not method.uses_alpha:
            raise UsageError(f"--methods {text!r}: method {name} takes no parameter")
        try:
            value = float(parts[0])
        except ValueError:
            raise UsageError(f"--methods {text!r}: {parts[0]!r} is not a number (method {name}'s "
                             f"{method.param})") from None
        problem = method.check(value)
        if problem:
            raise UsageError(f"--methods {text!r}: method {name}: {problem}")
        parts = parts[1:]
    options = ":".join(parts)
    method.option_values(name, options)
    return name, value, options


def grid_variants(methods: str | None, alpha: str | None, dropout: str | None,
                  preset: tuple[Variant, ...]) -> tuple[Variant, ...]:
    """The variants of --methods, --alpha and --dropout. A method takes its own value ('mixup:8'), else --alpha
    where it is a Beta(α, α) mixing method (a grid axis: '1,8'), else its default (Method.default). Without
    --methods, the preset's methods at their preset values, --alpha replacing those of the mixing methods.
    --alpha that no listed method takes is an error, never applied to another parameter (label smoothing's ε)."""
    from robustbench_mix.methods import METHODS

    alphas = parse_numbers(alpha, "--alpha") if alpha else None
    drops = parse_numbers(dropout, "--dropout") if dropout else (0.0,)
    if methods:
        specs = [parse_method(t) for t in split_list(methods, "--methods")]
    else:
        specs = [(v.method, None if alphas is not None and METHODS.get(v.method).takes_alpha_flag else v.alpha,
                  v.options) for v in preset]
    out, took_alpha = [], False
    for name, value, options in dict.fromkeys(specs):
        m = METHODS.get(name)
        if value is not None or not m.uses_alpha:
            values = (value if value is not None else 0.0,)
        elif alphas is not None and m.takes_alpha_flag:
            values, took_alpha = alphas, True
        else:
            values = (m.default,)
        out += [Variant(name, a, d, options) for a in values for d in drops]
    if alphas is not None and not took_alpha:
        mixing = [n for n in METHODS if METHODS.get(n).takes_alpha_flag]
        raise UsageError(f"--alpha sets the Beta(α, α) parameter of {', '.join(mixing)} where --methods lists them "
                         "without a value of their own; none is listed so. Give each method its parameter in "
                         "--methods, e.g. --methods mixup:8,label_smoothing:0.1")
    return tuple(dict.fromkeys(out))


@dataclass(frozen=True)
class Suite:
    """A named grid: variants x label-noise rates x seeds over a base experiment.

    ``by_noise`` gives other variants for some noise rates (the paper tuned alpha and p per rate);
    ``tables`` names the paper-shaped tables (see :mod:`tables`) written after the runs.
    """

    name: str
    description: str
    base: Experiment
    variants: tuple[Variant, ...]
    noise: tuple[float, ...] = (0.0,)
    seeds: tuple[int, ...] = (0,)
    by_noise: tuple[tuple[float, tuple[Variant, ...]], ...] = ()
    tables: tuple[str, ...] = ("robust",)

    def expand(self) -> list[Experiment]:
        from robustbench_mix.methods import METHODS

        if not self.seeds:
            raise UsageError("the seed list is empty; give at least one seed, e.g. --seeds 0")
        if not self.variants and not self.by_noise:
            raise UsageError("the method list is empty; give at least one, e.g. --methods erm,mixup")
        runs = []
        per_noise = dict(self.by_noise)
        for p in self.noise:
            variants = per_noise.get(p, self.variants)
            if not variants:
                raise UsageError(f"preset {self.name!r} has no methods for noise {p:g} (it defines "
                                 f"{', '.join(f'{q:g}' for q in per_noise)}); name them with --methods")
            for v, s in itertools.product(variants, self.seeds):
                alpha = v.alpha if METHODS.get(v.method).uses_alpha else 0.0
                runs.append(replace(self.base, preset=self.name, method=v.method, alpha=alpha,
                                    method_options=v.options, dropout=v.dropout, noise=p, seed=s))
        unique = list(dict.fromkeys(runs))  # e.g. erm listed with two alphas is one run
        return unique


SURROGATE_SUFFIX = "/surrogate"  # the preset column marks surrogate runs (not part of the run id)


def surrogate_of(exp: Experiment) -> Experiment:
    """The black-box surrogate: an ERM twin of the run (same data, model and recipe) with another seed."""
    return replace(exp, method="erm", alpha=0.0, method_options="", dropout=0.0, seed=exp.surrogate_seed,
                   surrogate_seed=None, preset=f"{exp.preset}{SURROGATE_SUFFIX}")


def with_lists(exp: Experiment, *, attacks: str | None = None, eps: str | None = None, eps_l2: str | None = None,
               corruptions: str | None = None) -> Experiment:
    """The evaluation's lists as the command line writes them (--attacks, --eps, --eps-l2, --corruptions), where
    given, applied to ``exp``."""
    if attacks is not None:  # 'none': clean metrics and curves only (as the Table 2 presets)
        none = str(attacks).strip() == "none"
        exp = replace(exp, attacks=() if none else tuple(split_list(attacks, "--attacks")))
    if eps is not None:
        exp = replace(exp, eps=parse_eps(eps))
    if eps_l2 is not None:
        exp = replace(exp, eps_l2=parse_eps_l2(eps_l2))
    if corruptions is not None:
        exp = replace(exp, corruptions=expand(tuple(split_list(corruptions, "--corruptions"))))
    return exp
