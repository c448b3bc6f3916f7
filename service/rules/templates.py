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

from collections.abc import Generator, Mapping, Sequence
from datetime import date, datetime
from typing import Any, Final, cast

from jinja2 import StrictUndefined
from jinja2.exceptions import TemplateError

from service.figures import format_pct, format_value
from service.market import VARIABLES, Value
from service.rules.filters import METHOD_CHECKS, OWN_FILTERS, bounded_filter
from service.rules.sandbox import BoundedEnvironment, TemplateLimitError, run_bounded
from service.rules.template_check import (
    EXTRA_NAMES,
    TemplateProblem,
    checked_tree,
    compile_bounded,
)

#: The longest message sent, in characters, the marker included.
MESSAGE_CAP: Final = 4000
TRUNCATED: Final = " … [truncated]"


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


def cap_message(text: str, *, cut: bool = False) -> str:
    """`text`, cut to MESSAGE_CAP characters with TRUNCATED at the end when longer (or
    when `cut` says the text is already the start of a longer one)."""
    if len(text) <= MESSAGE_CAP and not cut:
        return text
    return text[: MESSAGE_CAP - len(TRUNCATED)].rstrip() + TRUNCATED


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


def resolved_message(
    rule: str, symbol: str, values: Mapping[str, Value], names: frozenset[str]
) -> str:
    """The message of a rule's resolved alert (Earnwatch's own: a rule's `message:` is for
    the firing): `RESOLVED: LUMN: lumn-above-target no longer holds (price 7.38)`."""
    shown = ", ".join(f"{name} {format_value(values.get(name))}" for name in sorted(names))
    text = f"RESOLVED: {symbol}: {rule} no longer holds"
    return cap_message(f"{text} ({shown})" if shown else text)


def amended_message(
    rule: str, symbol: str, figures: Sequence[tuple[str, float | None, float | None]]
) -> str:
    """The message of a rule's amended alert (`notify_amended`): each figure as
    (label, before, after); a changed one shows both, one unchanged or first known its value:
    `AMENDED: LUMN: lumn-beat: EPS 0.23 -> 0.25, revenue 3.041B`."""
    parts = [
        f"{label} {format_value(before)} -> {format_value(after)}"
        if before is not None and before != after
        else f"{label} {format_value(after)}"
        for label, before, after in figures
        if after is not None
    ]
    return cap_message(f"AMENDED: {symbol}: {rule}: " + ", ".join(parts))


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
