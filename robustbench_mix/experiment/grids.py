"""Grids of runs: a Variant (a method with its parameters), --methods items, and a Suite (variants x noise x seeds)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, replace

from robustbench_mix.core.errors import UsageError
from robustbench_mix.core.parsing import parse_numbers, split_list, to_float, unique
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
            value = to_float(parts[0])
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
    --methods, the preset's variants at their preset values and dropout, --alpha replacing the alpha of the
    mixing methods and --dropout (a grid axis) their dropout. --alpha that no listed method takes is an error,
    never applied to another parameter (label smoothing's ε)."""
    alphas = parse_numbers(alpha, "--alpha") if alpha else None
    drops = parse_numbers(dropout, "--dropout") if dropout else None
    out, took_alpha = _expand(_specs(methods, alphas, preset), alphas, drops)
    if alphas is not None and not took_alpha:
        _alpha_unused()
    return out


def _specs(methods: str | None, alphas, preset: tuple[Variant, ...]) -> list[tuple]:
    """(method, its own value or None, options, its own dropout or None) per --methods item or preset variant."""
    from robustbench_mix.methods import METHODS

    if methods:
        return [(*parse_method(t), None) for t in split_list(methods, "--methods")]
    return [(v.method, None if alphas is not None and METHODS.get(v.method).takes_alpha_flag else v.alpha,
             v.options, v.dropout) for v in preset]


def _expand(specs: list[tuple], alphas, drops) -> tuple[tuple[Variant, ...], bool]:
    """The variants of ``specs`` (see :func:`_specs`) and whether any took --alpha."""
    from robustbench_mix.methods import METHODS

    out, took_alpha = [], False
    for name, value, options, own_dropout in dict.fromkeys(specs):
        m = METHODS.get(name)
        if value is not None or not m.uses_alpha:
            values = (value if value is not None else 0.0,)
        elif alphas is not None and m.takes_alpha_flag:
            values, took_alpha = alphas, True
        else:
            values = (m.default,)
        rates = drops if drops is not None else (own_dropout or 0.0,)
        out += [Variant(name, a, d, options) for a in values for d in rates]
    return tuple(dict.fromkeys(out)), took_alpha


def _alpha_unused():
    from robustbench_mix.methods import METHODS

    mixing = [n for n in METHODS if METHODS.get(n).takes_alpha_flag]
    raise UsageError(f"--alpha sets the Beta(α, α) parameter of {', '.join(mixing)} where --methods lists them "
                     "without a value of their own; none is listed so. Give each method its parameter in "
                     "--methods, e.g. --methods mixup:8,label_smoothing:0.1")


def narrowed(suite: Suite, methods: str | None, alpha: str | None, dropout: str | None) -> Suite:
    """``suite`` with --methods, --alpha and --dropout applied. --methods names the grid (the same variants at
    every noise rate). Without it, a preset's pairings stay: where it gives each noise rate its own variants
    (``by_noise``, Table 2's), --alpha replaces the mixing methods' alpha at every rate and each variant keeps
    its rate and dropout; --dropout, which would replace every variant's own dropout there, is refused."""
    if methods or not (alpha or dropout):
        return suite if not methods else replace(suite, variants=grid_variants(methods, alpha, dropout, ()),
                                                 by_noise=())
    if not suite.by_noise:
        return replace(suite, variants=grid_variants(None, alpha, dropout, suite.variants))
    if dropout:
        from robustbench_mix.methods import run_label

        pairs = "; ".join(f"{p:g}: " + ", ".join(run_label(v.method, v.alpha, v.dropout, v.options) for v in vs)
                          for p, vs in suite.by_noise)
        raise UsageError(f"--dropout: preset {suite.name!r} pairs each method with a dropout of its own at each noise "
                         f"rate ({pairs}), which --dropout would replace; name the grid with --methods instead, "
                         f"e.g. --methods erm,mixup:8 --dropout {dropout} --noise {suite.by_noise[0][0]:g}")
    alphas = parse_numbers(alpha, "--alpha")
    variants, took = _expand(_specs(None, alphas, suite.variants), alphas, None)
    by_noise = []
    for p, vs in suite.by_noise:
        narrowed_vs, took_here = _expand(_specs(None, alphas, vs), alphas, None)
        by_noise.append((p, narrowed_vs))
        took = took or took_here
    if not took:
        _alpha_unused()
    return replace(suite, variants=variants, by_noise=tuple(by_noise))


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
    given, applied to ``exp``. A name or value listed twice counts once (``--eps 8,8/255`` is ``--eps 8``)."""
    if attacks is not None:  # 'none': clean metrics and curves only (as the Table 2 presets)
        none = str(attacks).strip() == "none"
        exp = replace(exp, attacks=() if none else unique(split_list(attacks, "--attacks")))
    if eps is not None:
        exp = replace(exp, eps=parse_eps(eps))
    if eps_l2 is not None:
        exp = replace(exp, eps_l2=parse_eps_l2(eps_l2))
    if corruptions is not None:
        exp = replace(exp, corruptions=expand(tuple(split_list(corruptions, "--corruptions"))))
    return exp
