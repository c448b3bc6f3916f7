"""Turns an engine Alert into the Message stored in the outbox and sent on every channel.

Deterministic: the same alert and id always give the same Message, so the bytes a channel
sends on a retry (or after a restart) are the bytes it sent the first time.
"""

from __future__ import annotations

from service.engine import Alert
from service.notify.base import Message


def title_of(symbol: str, rule: str) -> str:
    """The one-line title every channel shows: `LUMN · lumn-q4-miss`."""
    return f"{symbol} · {rule}"


def render(alert: Alert, alert_id: str) -> Message:
    """The Message for `alert`, identified by `alert_id` (the stored alert's stable id).
    A resolved alert's title says so (`LUMN · lumn-above-target resolved`); the outbox
    sets its `resolves` to the id of the alert it resolves, once it has found it."""
    title = title_of(alert.symbol, alert.rule)
    if alert.kind == "resolved":
        title += " resolved"
    elif alert.kind == "amended":
        title += " amended"
    return Message(
        id=alert_id,
        rule=alert.rule,
        symbol=alert.symbol,
        title=title,
        text=alert.text,
        fired_at=alert.fired_at,
        values=dict(alert.values),
        kind=alert.kind,
    )
