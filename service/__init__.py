"""Earnwatch: an earnings-event alerting daemon."""

from __future__ import annotations

import sys as _sys
from collections.abc import Sequence as _Sequence
from importlib.machinery import ModuleSpec as _ModuleSpec
from types import ModuleType as _ModuleType

__version__ = "0.1.0"

#: Modules a library imports eagerly for a feature earnwatch never uses, each of which the
#: library imports in a `try` and replaces with a stub when it raises ImportError:
#: - `httpx._main`, httpx's command-line tool: httpx's `__init__` imports it, and it
#:   imports click, rich and pygments when installed (typer brings them): ~100 ms of CPU
#:   and ~6 MiB in every process that imports httpx (encode/httpx#3547, open);
#: - `mako.ext.pygmentplugin`, the syntax highlighting of Mako's HTML error pages: Alembic
#:   imports Mako, so a daemon that migrated its database kept ~40 pygments modules.
_UNNEEDED = frozenset({"httpx._main", "mako.ext.pygmentplugin"})


class _Unneeded:
    """Refuses each module of `_UNNEEDED` once, then leaves `sys.meta_path`."""

    def __init__(self) -> None:
        self.left = set(_UNNEEDED)

    def find_spec(
        self,
        name: str,
        path: _Sequence[str] | None = None,
        target: _ModuleType | None = None,
    ) -> _ModuleSpec | None:
        if name not in self.left:
            return None
        self.left.discard(name)
        if not self.left and self in _sys.meta_path:
            _sys.meta_path.remove(self)
        raise ModuleNotFoundError(f"{name} is not loaded by earnwatch (unused)", name=name)


if not _UNNEEDED & _sys.modules.keys():
    _sys.meta_path.insert(0, _Unneeded())
