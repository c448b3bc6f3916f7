"""Alert message templates: Jinja2 in a sandbox, names checked when the file is loaded.

A template may use the rule variables plus `rule`, `symbol` and `now`. An unknown value
renders as `n/a` (never as a crash), and `round` passes unknown through, so a template
written for a complete report still renders when a figure is missing.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any, Final

from jinja2 import StrictUndefined, TemplateSyntaxError, meta, nodes
from jinja2.exceptions import TemplateAssertionError, TemplateError
from jinja2.sandbox import SandboxedEnvironment

from service.market import VARIABLES, Value

EXTRA_NAMES: Final = frozenset({"rule", "symbol", "now"})
UNKNOWN_TEXT: Final = "n/a"


class TemplateProblem(Exception):
    """A mistake in a template at a 1-based line of its text."""

    def __init__(self, message: str, line: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.line = line


def _finalize(value: Any) -> Any:
    if value is None:
        return UNKNOWN_TEXT
    if isinstance(value, float):
        return f"{value:.4f}".rstrip("0").rstrip(".") if value == value else UNKNOWN_TEXT
    return value


def _round(value: Any, precision: int = 0, method: str = "common") -> Any:
    if value is None or not isinstance(value, int | float):
        return value
    rounded = round(float(value), precision)
    return rounded if precision else int(rounded)


def make_environment() -> SandboxedEnvironment:
    """The one Jinja environment rule templates run in."""
    env = SandboxedEnvironment(
        undefined=StrictUndefined, autoescape=False, finalize=_finalize, keep_trailing_newline=False
    )
    env.filters["round"] = _round
    env.filters["pct"] = lambda v, p=1: UNKNOWN_TEXT if v is None else format_pct(v, p)
    env.filters["money"] = lambda v: UNKNOWN_TEXT if v is None else _money(v)
    return env


def format_pct(value: float, places: int = 1) -> str:
    """A signed percentage: `+209.5%`."""
    return f"{value:+.{places}f}%"


def _money(value: float) -> str:
    sign = "-" if value < 0 else ""
    size = abs(value)
    for unit, scale in (("T", 1e12), ("B", 1e9), ("M", 1e6)):
        if size >= scale:
            return f"{sign}${size / scale:.3f}".rstrip("0").rstrip(".") + unit
    return f"{sign}${size:,.2f}"


class MessageTemplate:
    """A checked, compiled message template."""

    def __init__(self, env: SandboxedEnvironment, source: str) -> None:
        try:
            parsed = env.parse(source)
        except TemplateSyntaxError as exc:
            raise TemplateProblem(f"template syntax error: {exc.message}", exc.lineno) from None
        unknown = sorted(meta.find_undeclared_variables(parsed) - VARIABLES - EXTRA_NAMES)
        if unknown:
            name = unknown[0]
            hint = difflib.get_close_matches(name, sorted(VARIABLES | EXTRA_NAMES), n=1)
            suffix = f" (did you mean {hint[0]!r}?)" if hint else ""
            raise TemplateProblem(
                f"unknown name {name!r} in message{suffix}", _line_of(parsed, name)
            )
        try:
            self._template = env.from_string(source)
        except (TemplateAssertionError, TemplateSyntaxError) as exc:
            raise TemplateProblem(f"template error: {exc.message}", exc.lineno or 1) from None
        self.source = source

    def render(self, values: Mapping[str, Value], *, rule: str, symbol: str, now: datetime) -> str:
        """Render; a failure (e.g. a filter given an unknown value) raises TemplateError."""
        context: dict[str, Any] = {name: values.get(name) for name in VARIABLES}
        context.update(rule=rule, symbol=symbol, now=now)
        return self._template.render(context).strip()


def _line_of(parsed: nodes.Template, name: str) -> int:
    for node in parsed.find_all(nodes.Name):
        if node.name == name:
            return node.lineno
    return 1


def default_message(
    rule: str, symbol: str, condition: str, values: Mapping[str, Value], names: frozenset[str]
) -> str:
    """The message of a rule without `message:`: what fired and the figures behind it."""
    shown = [f"{name} {format_value(values.get(name))}" for name in sorted(names)]
    text = f"{symbol}: {rule} ({condition})"
    if shown:
        text += ": " + ", ".join(shown)
    eps, eps_est = values.get("eps_actual"), values.get("eps_estimate")
    if eps is not None and "eps_actual" not in names:
        text += f"; EPS {format_value(eps)} vs {format_value(eps_est)} est."
    return text


def format_value(value: Value) -> str:
    if value is None:
        return UNKNOWN_TEXT
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if abs(value) >= 1e6:
            return _money(value).lstrip("$").replace("-$", "-")
        return f"{value:.4f}".rstrip("0").rstrip(".")
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


__all__ = [
    "MessageTemplate",
    "TemplateError",
    "TemplateProblem",
    "default_message",
    "format_pct",
    "format_value",
    "make_environment",
]
