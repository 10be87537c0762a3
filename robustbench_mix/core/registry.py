"""A tiny name -> object registry, so a new method, model, data set or attack is one decorated entry."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from robustbench_mix.core.errors import UsageError

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def deco(obj: T) -> T:
            if name in self._items:
                raise KeyError(f"{self.kind} {name!r} is registered twice")
            self._items[name] = obj
            return obj

        return deco

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: str) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def get(self, name: str) -> T:
        if name not in self._items:
            raise UsageError(unknown(self.kind, name, self.names()))
        return self._items[name]


LISTED = 100  # longer lists (timm's 1,000+ models) are not printed whole: the closest names are


def unknown(kind: str, name: str, known: list[str]) -> str:
    """'unknown model 'cnnn'; known: cnn, mlp (did you mean 'cnn'?)'; of a long list, the closest few only."""
    if len(known) > LISTED:
        close = difflib.get_close_matches(str(name), known, n=5, cutoff=0.5)
        near = f"closest: {', '.join(close)}" if close else "no close name"
        return f"unknown {kind} {name!r}; {near} (of {len(known)} known)"
    msg = f"unknown {kind} {name!r}; known: {', '.join(known)}"
    close = difflib.get_close_matches(str(name), known, n=1, cutoff=0.5)
    if close:
        msg += f" (did you mean {close[0]!r}?)"
    return msg
