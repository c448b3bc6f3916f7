"""Durations as users write them: `30s`, `10m`, `4h`, `2d` (and plain seconds in settings).

Every text either gives a timedelta or raises ValueError with a message fit for a user:
a duration too long for a timedelta (`99999999999999999999d`), infinite or not a number
is refused, never an OverflowError.
"""

from __future__ import annotations

import math
import re
from datetime import timedelta
from typing import Final

_UNITS: Final = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION: Final = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd])\s*$")
#: Longer than anything Earnwatch waits for, and well inside timedelta's range.
MAX_DAYS: Final = 36_500


def parse_duration(text: str, *, bare_seconds: bool = False) -> timedelta:
    """Parse `30s`, `10m`, `4h`, `2d`; with `bare_seconds`, a plain number is seconds.

    Raises ValueError with a message fit for a user.
    """
    match = _DURATION.match(text)
    if match:
        return _bounded(text, float(match.group(1)) * _UNITS[match.group(2)])
    if bare_seconds:
        try:
            seconds = float(text)
        except ValueError:
            pass
        else:
            if seconds >= 0:
                return _bounded(text, seconds)
    raise ValueError(
        f"invalid duration {_shown(text)}: use a number and a unit, like 30s, 10m, 4h or 2d"
    )


def _bounded(text: str, seconds: float) -> timedelta:
    if not math.isfinite(seconds) or seconds > MAX_DAYS * 86400:
        raise ValueError(f"duration {_shown(text)} is too long (at most {MAX_DAYS}d)")
    return timedelta(seconds=seconds)


def _shown(text: str) -> str:
    return repr(text if len(text) <= 40 else text[:40] + "...")
