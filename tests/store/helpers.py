"""Small builders shared by the store and delivery tests."""

from __future__ import annotations

from datetime import UTC, datetime

from service.engine import Alert
from service.notify.base import Message

T0 = datetime(2025, 1, 28, 21, 5, tzinfo=UTC)


def make_alert(n: int = 0, *, rule: str = "beat", when: datetime = T0) -> Alert:
    return Alert(
        rule=rule,
        symbol=f"SYM{n}",
        dedup_key=f"{rule}:SYM{n}:2025Q1",
        fired_at=when,
        text=f"alert {n}",
        channels=("hook",),
        report_key="2025Q1",
    )


def render(alert: Alert, alert_id: str) -> Message:
    return Message(
        id=alert_id,
        rule=alert.rule,
        symbol=alert.symbol,
        title=f"{alert.symbol} {alert.rule}",
        text=alert.text,
        fired_at=alert.fired_at,
        values={"eps": 1.25, "day": "2025-01-28"},
    )
