"""Plug-ins known by name and imported with their first use: the registries of channel
types (`service.notify.CHANNEL_TYPES`) and providers (`service.providers.PROVIDERS`).

A registry is one table, its single source: each plug-in's name and where its declaration
is, as `module:ATTRIBUTE` (`"email": "service.notify.email:CHANNEL"`). What needs only the
names reads the table (the `known providers` list, the channel types a rule file may name,
their order); the first lookup of a name imports its module, checks the declaration
(`check` raises TypeError for an unsound one) and keeps it. So `earnwatch check` loads the
channel modules its file names, a daemon the providers EARNWATCH_PROVIDERS lists, and a
broken declaration still fails: where it is first used, and in the contract tests, which
look up every name.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, Mapping
from typing import Generic, TypeVar

T = TypeVar("T")
V = TypeVar("V")


class Plugins(Mapping[str, T]):
    """The declarations of a name -> `module:ATTRIBUTE` table, each imported, checked and
    kept at its first lookup. Iterating and `in` read the table alone (no import);
    `values()` and `items()` import every plug-in."""

    def __init__(
        self, table: Mapping[str, str], kind: type[T], check: Callable[[str, T], None]
    ) -> None:
        for name, where in table.items():
            module, _, attribute = where.partition(":")
            if not module or not attribute.isidentifier():
                raise ValueError(f"plug-in {name!r}: {where!r} is not module:ATTRIBUTE")
        self._table = dict(table)
        self._kind = kind
        self._check = check
        self._loaded: dict[str, T] = {}

    def __getitem__(self, name: str) -> T:
        declared = self._loaded.get(name)
        if declared is None:
            where = self._table[name]  # KeyError: no such plug-in
            try:
                declared = self._load(name, where)
            except KeyError as exc:  # from inside the module: not "no such plug-in" to .get()
                raise ImportError(f"plug-in {name!r}: importing {where} raised {exc!r}") from exc
            self._loaded[name] = declared
        return declared

    def __iter__(self) -> Iterator[str]:
        return iter(self._table)

    def __len__(self) -> int:
        return len(self._table)

    def __contains__(self, name: object) -> bool:
        return name in self._table

    def where(self, name: str) -> str:
        """Where `name`'s declaration is (`module:ATTRIBUTE`), without importing it."""
        return self._table[name]

    def view(self, read: Callable[[T], V]) -> Mapping[str, V]:
        """A mapping of the same names to `read(declaration)`, as lazy as this one."""
        return _View(self, read)

    def _load(self, name: str, where: str) -> T:
        module, _, attribute = where.partition(":")
        declared = getattr(importlib.import_module(module), attribute, None)
        if not isinstance(declared, self._kind):
            raise TypeError(f"plug-in {name!r}: {where} is not a {self._kind.__name__}")
        self._check(name, declared)
        return declared


class _View(Mapping[str, V], Generic[T, V]):
    def __init__(self, plugins: Plugins[T], read: Callable[[T], V]) -> None:
        self._plugins = plugins
        self._read = read

    def __getitem__(self, name: str) -> V:
        return self._read(self._plugins[name])

    def __iter__(self) -> Iterator[str]:
        return iter(self._plugins)

    def __len__(self) -> int:
        return len(self._plugins)

    def __contains__(self, name: object) -> bool:
        return name in self._plugins
