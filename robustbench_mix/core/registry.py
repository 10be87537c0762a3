"""A tiny name -> object registry, so a new method, model, data set or attack is one decorated entry.

An entry registered by a plugin (a user's file loaded with ``--plugin``, robustbench_mix.plugins) carries its
:class:`Origin`: which plugin module defined it and a fingerprint of its definition, which enters the run id of
every run that uses it. Built-in entries have none."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar

from robustbench_mix.core.errors import UsageError

T = TypeVar("T")


@dataclass(frozen=True)
class Origin:
    """Where a plugin's entry comes from: the plugin module (a file's stem or a dotted module name) and a
    fingerprint of the entry's definition (its function's source and its module file's hash)."""

    module: str
    fingerprint: str

    def __str__(self) -> str:
        return f"{self.module}@{self.fingerprint}"


class Registry(Generic[T]):
    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, T] = {}
        self._origins: dict[str, Origin] = {}

    def register(self, name: str, origin: Origin | None = None) -> Callable[[T], T]:
        def deco(obj: T) -> T:
            if name in self._items:
                if origin is None:
                    raise KeyError(f"{self.kind} {name!r} is registered twice")
                other = self._origins.get(name)
                by = f"plugin {other.module}'s" if other else "a built-in"
                raise UsageError(f"plugin {origin.module}: {self.kind} {name!r} is already {by} {self.kind}; "
                                 f"a plugin's names may not shadow {'another plugin' if other else 'the suite'}'s: "
                                 "pick another name")
            self._items[name] = obj
            if origin is not None:
                self._origins[name] = origin
            return obj

        return deco

    def origin(self, name: str) -> Origin | None:
        """The plugin that registered ``name``; None for a built-in entry (or an unknown name)."""
        return self._origins.get(name)

    def unregister(self, name: str) -> None:
        """Remove a plugin's entry (a plugin reloaded after its file changed; tests); built-ins stay."""
        if name in self._origins:
            del self._origins[name], self._items[name]

    def label(self, name: str) -> str:
        """``name``, or for a plugin's entry 'name (plugin MODULE)', for --help."""
        o = self._origins.get(name)
        return f"{name} (plugin {o.module})" if o else name

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: str) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def get(self, name: str) -> T:
        if name not in self._items:
            msg = unknown(self.kind, name, self.names())
            if self._origins:
                msg += "; from plugins: " + ", ".join(self.label(n) for n in sorted(self._origins))
            raise UsageError(msg)
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
