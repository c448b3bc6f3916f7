"""Earnwatch: an earnings-event alerting daemon."""

from __future__ import annotations

import sys as _sys
from collections.abc import Sequence as _Sequence
from importlib.machinery import ModuleSpec as _ModuleSpec
from types import ModuleType as _ModuleType

__version__ = "0.1.0"


class _NoHttpxCli:
    """Refuses `httpx._main`, httpx's command-line tool, once.

    httpx's `__init__` imports it, and it imports click, rich and pygments when they are
    installed (typer brings them): ~100 ms of CPU and ~6 MiB in every process that imports
    httpx, for a tool earnwatch never runs (encode/httpx#3547, open). httpx catches the
    ImportError and defines a stub `main` instead. The finder leaves `sys.meta_path` at
    its first refusal, so nothing else ever goes through it.
    """

    def find_spec(
        self,
        name: str,
        path: _Sequence[str] | None = None,
        target: _ModuleType | None = None,
    ) -> _ModuleSpec | None:
        if name != "httpx._main":
            return None
        if self in _sys.meta_path:
            _sys.meta_path.remove(self)
        raise ModuleNotFoundError("httpx's command-line tool is not loaded by earnwatch")


if "httpx" not in _sys.modules:
    _sys.meta_path.insert(0, _NoHttpxCli())
