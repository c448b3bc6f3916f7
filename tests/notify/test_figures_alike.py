"""One alert shows the same figures on every channel: Slack's fields and the email's
values (plain text and HTML) are `figures.shown_values`, before and after the outbox."""

from __future__ import annotations

import html
import math
from datetime import UTC, date, datetime

from service.notify.base import Message
from service.notify.email import EmailConfig, build_email
from service.notify.slack import payload

MESSAGE = Message(
    id="alert_1",
    rule="r",
    symbol="LUMN",
    title="LUMN · r",
    text="LUMN fired",
    fired_at=datetime(2026, 2, 3, 21, 5, tzinfo=UTC),
    values={
        "ratio": 0.1234567,
        "revenue_actual": 1_234_000_000.0,
        "change_pct": -3.14159,
        "earnings_date": date(2026, 2, 3),
        "eps_actual": None,
        "eps_estimate": math.nan,
        "reported": True,
    },
)
SHOWN = {
    "change_pct": "-3.1416",
    "earnings_date": "2026-02-03",
    "eps_actual": "n/a",
    "eps_estimate": "n/a",
    "ratio": "0.1235",
    "reported": "true",
    "revenue_actual": "1.234B",
}


def slack_fields(message: Message) -> list[tuple[str, str]]:
    [fields] = [b["fields"] for b in payload(message)["blocks"] if "fields" in b]
    pairs = [f["text"].split("\n", 1) for f in fields]
    return [(name.strip("*"), text) for name, text in pairs]


def email_values(message: Message) -> tuple[list[tuple[str, str]], str]:
    cfg = EmailConfig.model_validate({"to": "me@example.com"})
    mail = build_email(message, cfg, sender="earnwatch@example.org", delivery_id="d")
    plain = mail.get_body(("plain",))
    rich = mail.get_body(("html",))
    assert plain is not None and rich is not None
    lines = [line.split(": ", 1) for line in plain.get_content().splitlines() if ": " in line]
    return [(name, text) for name, text in lines if name in MESSAGE.values], rich.get_content()


def test_slack_and_email_show_the_same_text_for_every_value() -> None:
    for message in (MESSAGE, Message.from_json(MESSAGE.to_json())):  # as sent, as stored
        slack = slack_fields(message)
        email, rich = email_values(message)
        assert slack == email == sorted(SHOWN.items())
        for name, text in SHOWN.items():
            assert f"<tr><td>{name}</td><td>{html.escape(text)}</td></tr>" in rich


def test_telegram_discord_and_ntfy_show_the_same_text_as_slack() -> None:
    from service.notify.discord import payload as discord_payload
    from service.notify.ntfy import body as ntfy_body
    from service.notify.telegram import text_of

    expected = sorted(SHOWN.items())
    for message in (MESSAGE, Message.from_json(MESSAGE.to_json())):
        assert slack_fields(message) == expected
        fields = discord_payload(message)["embeds"][0]["fields"]
        assert [(f["name"], f["value"]) for f in fields] == expected
        telegram = [line.split(": ", 1) for line in text_of(message).splitlines()[3:]]
        assert [tuple(pair) for pair in telegram] == expected
        ntfy = [line.split(": ", 1) for line in ntfy_body(message).decode().splitlines()[2:]]
        assert [tuple(pair) for pair in ntfy] == expected
