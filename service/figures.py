"""How a value reads to a human, once: rule templates, default messages, every channel and
the CLI show the same figure the same way.

- `format_value(value)`: the text of any rule variable. A float has at most 4 decimals,
  trailing zeros stripped (`0.1235`, `7.6`); from a million on it is scaled (`1.234B`,
  `-2.5M`). `true`/`false`, a date in ISO 8601, a string as it is. Unknown (None, NaN,
  an infinity) is UNKNOWN_TEXT, `n/a`.
- `format_pct(value, places=1)`: a signed percentage, `+209.5%`.
- `money(value)`: dollars, scaled from a million on: `$3.041B`, `-$12.50`.
- `shown_values(values)`: what a channel shows of a Message's values, as
  `(name, text)` pairs sorted by name, the text from format_value. A channel renders
  `for name, text in shown_values(message.values): ...` and adds only its own escaping,
  so Slack, email and every other channel show one alert with the same figures.

Machine-readable output (JSON bodies) keeps raw numbers: see `notify.base.jsonable`.
Pure standard library: domain code (`rules/`) uses it too.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import date
from typing import Final

from service.market import Value

UNKNOWN_TEXT: Final = "n/a"

_SCALES: Final = (("T", 1e12), ("B", 1e9), ("M", 1e6))


def format_value(value: Value) -> str:
    """The text of `value` (see the module docstring); never raises for a Value."""
    if value is None:
        return UNKNOWN_TEXT
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return _number(value)
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def format_pct(value: float | None, places: int = 1) -> str:
    """A signed percentage with `places` decimals, `+209.5%`; unknown is `n/a`."""
    if value is None or not math.isfinite(value):
        return UNKNOWN_TEXT
    return f"{value:+.{places}f}%"


def money(value: float | None) -> str:
    """Dollars: `$1,234.50` below a million, scaled above (`$3.041B`); unknown is `n/a`."""
    if value is None or not math.isfinite(value):
        return UNKNOWN_TEXT
    sign = "-" if value < 0 else ""
    return f"{sign}${_scaled(abs(value)) or f'{abs(value):,.2f}'}"


def shown_values(values: Mapping[str, Value]) -> list[tuple[str, str]]:
    """`(name, format_value(value))` for every value, sorted by name, unknown ones as
    `n/a`: the figures a channel shows under an alert, the same on every channel."""
    return [(name, format_value(values[name])) for name in sorted(values)]


def _number(value: float) -> str:
    if not math.isfinite(value):
        return UNKNOWN_TEXT
    scaled = _scaled(abs(value))
    if scaled is not None:
        return f"-{scaled}" if value < 0 else scaled
    text = f"{value:.4f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text  # -0.00001 is no negative figure to a reader


def _scaled(size: float) -> str | None:
    """`size` (>= 0) in millions, billions or trillions to 3 decimals, or None below 1e6."""
    for unit, scale in _SCALES:
        if size >= scale:
            return f"{size / scale:.3f}".rstrip("0").rstrip(".") + unit
    return None


__all__ = ["UNKNOWN_TEXT", "format_pct", "format_value", "money", "shown_values"]
