"""Alert message templates: Jinja2 in a bounded sandbox, names checked when the file is
loaded.

A template may use the rule variables plus `rule`, `symbol` and `now`. An unknown value
renders as `n/a` (never as a crash), and `round` passes unknown through, so a template
written for a complete report still renders when a figure is missing.

Bounded: a template is refused at load when it breaks a limit that can be decided there
(template_check), and a render stops with TemplateLimitError when it builds too large a
value, takes too many steps or too much CPU time (sandbox). A rendered message longer
than MESSAGE_CAP characters is cut, with TRUNCATED at its end.
"""

from __future__ import annotations

from collections.abc import Generator, Mapping
from datetime import date, datetime
from typing import Any, cast

from jinja2 import StrictUndefined
from jinja2.exceptions import TemplateError

from service.figures import format_pct, format_value
from service.market import VARIABLES, Value
from service.rules.filters import METHOD_CHECKS, OWN_FILTERS, bounded_filter
from service.rules.messages import (
    MESSAGE_CAP,
    TRUNCATED,
    amended_message,
    cap_message,
    default_message,
    resolved_message,
)
from service.rules.sandbox import BoundedEnvironment, TemplateLimitError, run_bounded
from service.rules.template_check import (
    EXTRA_NAMES,
    TemplateProblem,
    checked_tree,
    compile_bounded,
)


def _finalize(value: Any) -> Any:
    """What `{{ x }}` prints: a figure as every channel shows it (format_value)."""
    if value is None or isinstance(value, bool | int | float | date):
        return format_value(value)
    return value


def make_environment() -> BoundedEnvironment:
    """The one Jinja environment rule templates run in: Jinja's filters and tests, each
    filter bounded, plus round/pct/money; no globals (`range`, `lipsum`... are unknown
    names, like any name that is not a variable)."""
    env = BoundedEnvironment(
        undefined=StrictUndefined, autoescape=False, finalize=_finalize, keep_trailing_newline=False
    )
    env.globals.clear()
    env.filters.update(OWN_FILTERS)
    env.filters = {name: bounded_filter(name, fn) for name, fn in env.filters.items()}
    env.method_checks = dict(METHOD_CHECKS)
    env.compiled = {}
    return env


class MessageTemplate:
    """A checked, compiled message template."""

    def __init__(self, env: BoundedEnvironment, source: str) -> None:
        compiled = env.compiled.get(source)
        if compiled is None:
            compiled = run_bounded(lambda: compile_bounded(env, checked_tree(env, source)))
            env.compiled[source] = compiled
        self._template = compiled
        self.source = source

    def render(self, values: Mapping[str, Value], *, rule: str, symbol: str, now: datetime) -> str:
        """Render, cut to MESSAGE_CAP. A failure raises: TemplateError (e.g. a filter given
        an unknown value), TemplateLimitError, or any error of the template's own code."""
        context: dict[str, Any] = {name: values.get(name) for name in VARIABLES}
        context.update(rule=rule, symbol=symbol, now=now)

        def stream() -> tuple[str, bool]:
            pieces: list[str] = []
            size = 0
            chunks = cast(Generator[str, None, None], self._template.generate(context))
            try:
                for piece in chunks:
                    pieces.append(piece)
                    size += len(piece)
                    if size > 2 * MESSAGE_CAP:  # enough to fill the cap after .strip()
                        return "".join(pieces), True
            finally:
                chunks.close()
            return "".join(pieces), False

        text, cut = run_bounded(stream)
        return cap_message(text.strip(), cut=cut)


__all__ = [
    "EXTRA_NAMES",
    "MESSAGE_CAP",
    "TRUNCATED",
    "MessageTemplate",
    "TemplateError",
    "TemplateLimitError",
    "TemplateProblem",
    "amended_message",
    "cap_message",
    "default_message",
    "format_pct",
    "format_value",
    "make_environment",
    "resolved_message",
]
