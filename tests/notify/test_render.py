"""render(): an Alert becomes the Message the outbox stores, the same way every time."""

from __future__ import annotations

from dataclasses import replace
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


def test_a_resolved_alert_renders_a_resolved_title_and_round_trips_its_reference() -> None:
    fired = datetime(2026, 2, 4, 15, 10, tzinfo=UTC)
    text = "RESOLVED: LUMN: lumn-above-target no longer holds (price 7.38)"
    alert = Alert(
        "lumn-above-target",
        "LUMN",
        "k|resolved",
        fired,
        text,
        ("me",),
        {"price": 7.38},
        kind="resolved",
        resolves_key="k",
    )
    message = render(alert, "a2")
    assert (message.title, message.text, message.kind) == (
        "LUMN · lumn-above-target resolved",
        text,
        "resolved",
    )
    assert message.resolves is None  # the outbox sets it once it found the fired alert
    stored = Message.from_json(replace(message, resolves="a1").to_json())
    assert (stored.kind, stored.resolves) == ("resolved", "a1")


def test_a_message_stored_before_resolved_messages_loads_as_fired(message: Message) -> None:
    raw = message.to_json()
    assert '"kind"' not in raw and '"resolves"' not in raw  # fired rows read as before
    old = Message.from_json(raw)
    assert (old.kind, old.resolves) == ("fired", None)
