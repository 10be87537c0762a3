"""The one home of the epsilon rule: /255 units on the command line, fractions in the Python API, L2 radii as
they are (never /255); parsing, formatting and conversion between them."""

from __future__ import annotations

import math
from enum import Enum

from robustbench_mix.core.errors import UsageError
from robustbench_mix.core.parsing import split_list, to_float, unique


class Norm(str, Enum):
    """A threat model, named as RobustBench's ``ThreatModel`` names it. A str, so rows and files keep the text."""

    LINF = "Linf"
    L2 = "L2"

    def __str__(self) -> str:
        return self.value

    __format__ = str.__format__


LEVELS = 255.0  # the pixel levels of a uint8 image: an epsilon of 8 in /255 units is 8/LEVELS of the [0, 1] range


def fraction(eps_255: float) -> float:
    """An L-infinity epsilon in /255 units -> the fraction of the [0, 1] pixel range that attacks take."""
    return eps_255 / LEVELS


def row_eps(norm: str, e: float) -> float:
    """The ``eps`` a results row records for an epsilon of the experiment's grid: the fraction of the pixel range
    for L-infinity (``e`` in /255 units), the radius itself for L2; 6 decimals."""
    return round(e if norm == Norm.L2 else e / LEVELS, 6)


# how runs.csv writes its numbers (store.write): 6 significant digits, so a row's eps key is compared at those
FLOAT_FORMAT = "%.6g"


def stored_eps(norm: str, e: float) -> float:
    """The ``eps`` that runs.csv holds for an epsilon of the grid: :func:`row_eps` as the file writes it."""
    return float(FLOAT_FORMAT % row_eps(norm, e))


def to_255(eps: float) -> float:
    """A fraction of the pixel range -> /255 units, 3 decimals (0.031373 -> 8.0)."""
    return round(eps * LEVELS, 3)


def grid_key(norm: str, eps: float) -> float:
    """A row's ``eps`` as its grid names it: /255 units for L-infinity, the radius (6 decimals) for L2, so that
    the two norms' values are never taken for each other."""
    return round(eps, 6) if norm == Norm.L2 else to_255(eps)


def fmt_row_eps(norm: str, eps: float) -> str:
    """A row's epsilon as tables name it: '8/255' for L-infinity, 'L2=0.5' for an L2 radius."""
    return f"L2={eps:g}" if norm == Norm.L2 else fmt_eps(to_255(eps))


def eps_255_column(eps):
    """A column of fractions -> /255 units (3 decimals), as the ``eps_255`` column of runs.csv holds them."""
    import pandas as pd

    return (pd.to_numeric(eps) * LEVELS).round(3)

# ----------------------------------------------------------------------------------------- parsing
EPS_UNITS = ("epsilons on the command line are in /255 units: 8/255 and 8 both mean 8/255 of the [0, 1] pixel "
             "range")


def parse_eps_value(part: str, flag: str = "--eps") -> float:
    """'8/255' or '8' -> 8.0 (/255 units). A bare number in (0, 1), such as 0.03, is refused: it is a fraction of
    the pixel range written without its unit (as torchattacks takes it), which here would mean 0.03/255."""
    part = part.strip()
    num, sep, den = part.partition("/")
    try:
        v, d = to_float(num), float(den) if sep else None
    except ValueError:
        raise UsageError(f"{flag} {part!r} is not a number; {EPS_UNITS}, e.g. {flag} 2/255,8/255") from None
    if d is not None and d != 255:
        raise UsageError(f"{flag} {part!r}: only /255 is accepted as a denominator; {EPS_UNITS} (e.g. {v * 255 / d:.4g}"
                         f"/255 for {part})")
    if not math.isfinite(v) or v < 0:
        raise UsageError(f"{flag} {part!r} must be a finite number >= 0; {EPS_UNITS}")
    if d is None and 0 < v < 1:
        raise UsageError(f"{flag} {part!r} is ambiguous: {EPS_UNITS}, so {part} would be {part}/255. For a fraction "
                         f"of the pixel range write {v * 255:.4g}/255; write {part}/255 if you mean {part}/255")
    return v


def parse_eps(text: str, flag: str = "--eps") -> tuple[float, ...]:
    """'2/255,8/255' or '2,8' -> (2.0, 8.0), in /255 units (see :func:`parse_eps_value`); a value given twice
    (8 and 8/255 are one epsilon) counts once."""
    return unique(parse_eps_value(p, flag) for p in split_list(text, flag))


def eps_from_fraction(value, name: str = "eps") -> float:
    """The Python API's convention, the anchors' (torchattacks, AutoAttack, RobustBench): a fraction of the [0, 1]
    pixel range, as a number (8/255) or a string ('8/255'); -> /255 units. A number >= 1 is refused: 8 is not 8/255
    there, and an epsilon of the whole range means nothing."""
    if isinstance(value, str):  # '8/255': a fraction written as text
        num, sep, den = value.strip().partition("/")
        try:
            frac = float(num) / float(den) if sep else None
        except (ValueError, ZeroDivisionError):
            frac = None
        if frac is None:
            raise UsageError(f"{name}={value!r} is not a fraction such as '8/255'; give a number (8/255) or such "
                             "a string")
        value = frac
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(float(value)):
        raise UsageError(f"{name}={value!r} is not a number; give fractions of the pixel range, e.g. {name}=8/255")
    v = float(value)
    if v < 0 or v >= 1:
        raise UsageError(f"{name}={value!r} is outside [0, 1): the API takes fractions of the [0, 1] pixel range, "
                         f"like torchattacks and AutoAttack; write {name}={value}/255 for {value:g}/255")
    return round(v * 255, 6) + 0.0  # never -0.0


L2_UNITS = ("L2 radii are plain numbers, the L2 norm of the whole perturbation in [0, 1] pixel space (RobustBench's "
            "0.5 on CIFAR-10), never /255")


def parse_eps_l2(text: str, flag: str = "--eps-l2") -> tuple[float, ...]:
    """'0.25,0.5' -> (0.25, 0.5): the L2 attacks' radii as they are (no /255 form, see L2_UNITS); a radius given
    twice counts once."""
    out = []
    for part in split_list(text, flag):
        if "/" in part:
            raise UsageError(f"{flag} {part!r}: {L2_UNITS}; e.g. {flag} 0.25,0.5")
        try:
            v = to_float(part)
        except ValueError:
            raise UsageError(f"{flag} {part!r} is not a number; {L2_UNITS}, e.g. {flag} 0.25,0.5") from None
        if not math.isfinite(v) or v < 0:
            raise UsageError(f"{flag} {part!r} must be a finite number >= 0; {L2_UNITS}")
        out.append(v)
    return unique(out)


def fmt_eps(e: float) -> str:
    """8.0 -> '8/255'."""
    return f"{e:g}/255"
