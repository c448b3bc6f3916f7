"""Durations as users write them: `30s`, `10m`, `4h`, `2d` (and plain seconds in settings)."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Final

_UNITS: Final = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION: Final = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd])\s*$")


def parse_duration(text: str, *, bare_seconds: bool = False) -> timedelta:
    """Parse `30s`, `10m`, `4h`, `2d`; with `bare_seconds`, a plain number is seconds.

    Raises ValueError with a message fit for a user.
    """
    match = _DURATION.match(text)
    if match:
        return timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2)])
    if bare_seconds:
        try:
            seconds = float(text)
        except ValueError:
            pass
        else:
            if seconds >= 0:
                return timedelta(seconds=seconds)
    raise ValueError(f"invalid duration {text!r}: use a number and a unit, like 30s, 10m, 4h or 2d")
