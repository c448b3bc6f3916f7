"""Handing the heap that a rule load freed back to the system (glibc's `malloc_trim`).

Loading and compiling a rule file allocates far more than the rule set it leaves (the YAML
events, position tables, syntax trees); freed, that memory stays in the process for the
next allocation unless the allocator is asked to return it. `trim()` asks, after the start,
after each calendar cycle (every report window's calendar parsed) and after each rule
reload that read a new file: the idle daemon's resident memory is then closer to what it
uses. Where the C library is not glibc (musl, macOS) there is no such call, and `trim()`
does nothing.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable
from functools import cache


@cache
def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's `malloc_trim(size_t pad)`, or None where the C library has none (looked up
    among the symbols the process already has: no search for the library's file)."""
    try:
        function = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_size_t]
    function.restype = ctypes.c_int
    return function


def trim() -> bool:
    """Return the free memory at the top and in the middle of the heap to the system.
    Returns whether the C library could be asked (False where it is not glibc). Safe to
    call from any thread; takes a few milliseconds on a large heap."""
    function = _malloc_trim()
    if function is None:
        return False
    function(0)
    return True
