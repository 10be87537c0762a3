"""Comma-separated lists and numbers from the command line, with errors that name the flag; the one home of the
rules every number obeys wherever it is read: -0 is 0, and a parameter is a finite number."""

from __future__ import annotations

import math

from robustbench_mix.core.errors import UsageError


def split_list(text: str, flag: str) -> list[str]:
    parts = [p.strip() for p in str(text).split(",") if p.strip()]
    if not parts:
        raise UsageError(f"{flag} is empty; give a comma-separated list")
    return parts


def unique(values) -> tuple:
    """``values`` with repeats merged, first occurrence kept: a list that names a value twice (``--attacks
    pgd,pgd``, ``--eps 8,8/255``) means it once, as ``--methods`` and ``--corruptions`` read their lists."""
    return tuple(dict.fromkeys(values))


def to_float(text) -> float:
    """``float(text)`` with -0 read as 0: the two are equal as numbers but not as text, and a run id hashes the
    text (``label_smoothing:-0`` would otherwise be a second run of ``label_smoothing:0``)."""
    return float(text) + 0.0  # IEEE: -0.0 + 0.0 is +0.0; every other value is unchanged


def exact_text(v: float) -> str:
    """A float as text that tells every two values apart: %g where that is exact (8, 0.1, 0.0001), in full
    otherwise (0.1000001, which %g writes as 0.1): what configurations are grouped and compared by."""
    return f"{v:g}" if float(f"{v:g}") == v else repr(v)


def parse_numbers(text: str, flag: str, kind=float) -> tuple:
    out = []
    for p in split_list(text, flag):
        try:
            out.append(to_float(p) if kind is float else kind(p))
        except ValueError:
            raise UsageError(f"{flag} {p!r} is not {'an integer' if kind is int else 'a number'}") from None
    return unique(out)


def not_finite(name: str, value, allowed: str, kind: str = "a finite number") -> str | None:
    """What is wrong with ``value`` if it is not a finite number (NaN, inf, 1e400 which reads as inf, text),
    naming it and the allowed range ``allowed`` (e.g. '>= 0', 'in [0, 1)'); None if it is one. Every range check
    asks this first, so NaN is never called negative and inf never passes as positive."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"{name} {value!r} is not a number; it must be {kind} {allowed}"
    if not math.isfinite(value):
        return f"{name} {value} is not a finite number; it must be {kind} {allowed}"
    return None


def not_whole(name: str, value, lo: int, hi: int) -> str | None:
    """What is wrong with ``value`` as a count in [lo, hi] (finite, whole, in range); None if nothing."""
    allowed = f"in [{lo}, {hi}]"
    problem = not_finite(name, value, allowed, kind="a whole number")
    if problem:
        return problem
    if value != int(value) or not lo <= value <= hi:
        return f"{name}={value:g} must be a whole number {allowed}"
    return None
