"""Alert message text without Jinja2: a rule's default message, the resolved and amended
messages and the cap every message is cut to. Kept apart from `templates` so that loading and
evaluating a rule file with no `message:` never imports Jinja2."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final

from service.figures import format_value
from service.market import Value

#: The longest message sent, in characters, the marker included.
MESSAGE_CAP: Final = 4000
TRUNCATED: Final = " … [truncated]"


def cap_message(text: str, *, cut: bool = False) -> str:
    """`text`, cut to MESSAGE_CAP characters with TRUNCATED at the end when longer (or
    when `cut` says the text is already the start of a longer one)."""
    if len(text) <= MESSAGE_CAP and not cut:
        return text
    return text[: MESSAGE_CAP - len(TRUNCATED)].rstrip() + TRUNCATED


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
