"""Comma-separated lists and numbers from the command line, with errors that name the flag."""

from __future__ import annotations

from robustbench_mix.core.errors import UsageError


def split_list(text: str, flag: str) -> list[str]:
    parts = [p.strip() for p in str(text).split(",") if p.strip()]
    if not parts:
        raise UsageError(f"{flag} is empty; give a comma-separated list")
    return parts


def parse_numbers(text: str, flag: str, kind=float) -> tuple:
    out = []
    for p in split_list(text, flag):
        try:
            out.append(kind(p))
        except ValueError:
            raise UsageError(f"{flag} {p!r} is not {'an integer' if kind is int else 'a number'}") from None
    return tuple(out)
