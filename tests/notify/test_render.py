"""render(): an Alert becomes the Message the outbox stores, the same way every time."""

from __future__ import annotations

from datetime import UTC, datetime

from service.engine import Alert
from service.notify.base import Message
from service.notify.render import render


def test_render_builds_the_title_and_keeps_text_values_and_time() -> None:
    fired = datetime(2026, 2, 3, 21, 5, tzinfo=UTC)
    alert = Alert("lumn-q4-miss", "LUMN", "k", fired, "missed", ("me",), {"price": 7.1})
    message = render(alert, "a1")
    assert message == Message(
        id="a1",
        rule="lumn-q4-miss",
        symbol="LUMN",
        title="LUMN · lumn-q4-miss",
        text="missed",
        fired_at=fired,
        values={"price": 7.1},
    )


def test_render_is_deterministic_and_survives_the_outbox_round_trip(message: Message) -> None:
    assert Message.from_json(message.to_json()).to_json() == message.to_json()
