"""The series notation of rule tests (`"7.80 7.60 _ 7.5x3"`) and offsets as tests write
them (`5m`). Pure."""

from __future__ import annotations

import math
import re
from datetime import timedelta
from typing import Final

#: Steps of one test at most (a typo like `7.5x9999999` must not run for minutes).
MAX_STEPS: Final = 100_000

_NUMBER: Final = re.compile(r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?")
_TOKEN: Final = re.compile(rf"(?P<value>_|{_NUMBER.pattern})(?:x(?P<times>\d+))?")


class SeriesError(ValueError):
    """A series that cannot be read; `line` (1-based) and `col` (0-based) are in its
    stripped text."""

    def __init__(self, message: str, line: int, col: int) -> None:
        super().__init__(message)
        self.message = message
        self.line = line
        self.col = col


def parse_series(text: str, *, limit: int = MAX_STEPS) -> tuple[float | None, ...]:
    """`"7.80 7.60 _ 7.5x3"` -> (7.8, 7.6, None, 7.5, 7.5, 7.5): one value per step, `_`
    unknown, `VALUExN` the value N times. Raises SeriesError at the bad token."""
    values: list[float | None] = []
    stripped = text.strip()
    for match in re.finditer(r"\S+", stripped):
        token = match.group(0)
        before = stripped[: match.start()]
        line, col = before.count("\n") + 1, match.start() - (before.rfind("\n") + 1)
        found = _TOKEN.fullmatch(token)
        if found is None:
            raise SeriesError(
                f"{token[:40]!r} is not a value: write a number, _ (unknown) or VALUExN "
                "(the value N times, e.g. 7.5x3)",
                line,
                col,
            )
        value = None if found["value"] == "_" else float(found["value"])
        if value is not None and not math.isfinite(value):
            raise SeriesError(f"{token[:40]!r} is not a finite number", line, col)
        times = int(found["times"]) if found["times"] else 1
        if times < 1:
            raise SeriesError(f"{token!r}: repeat a value at least once (x1)", line, col)
        if len(values) + times > limit:
            raise SeriesError(f"a series has at most {limit:,} values", line, col)
        values.extend([value] * times)
    if not values:
        raise SeriesError('the series is empty: one value per step, e.g. "7.5 7.6 _"', 1, 0)
    return tuple(values)


def format_offset(delta: timedelta) -> str:
    """A duration as written in a test: `5m`, `90s`, `2h`, `-1m`."""
    seconds = delta.total_seconds()
    if not seconds:
        return "0m"
    sign, seconds = ("-", -seconds) if seconds < 0 else ("", seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{sign}{int(seconds // size)}{unit}"
    return f"{sign}{seconds:g}s"
