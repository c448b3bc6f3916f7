"""A resolved message says so on every channel: each renders the Message's title and
text, which render() sets for a resolved alert (`... resolved`, `RESOLVED: ...`)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from email.header import decode_header, make_header

from service.engine import Alert
from service.notify.discord import payload as discord_payload
from service.notify.email import EmailConfig, build_email
from service.notify.ntfy import NtfyConfig, body, headers
from service.notify.render import render
from service.notify.slack import payload as slack_payload
from service.notify.telegram import text_of

TITLE = "LUMN · lumn-above-target resolved"
TEXT = "RESOLVED: LUMN: lumn-above-target no longer holds (price 7.38)"
MESSAGE = render(
    Alert(
        rule="lumn-above-target",
        symbol="LUMN",
        dedup_key="k|resolved",
        fired_at=datetime(2026, 2, 4, 15, 40, tzinfo=UTC),
        text=TEXT,
        channels=("me",),
        values={"price": 7.38},
        kind="resolved",
        resolves_key="k",
    ),
    "alert_2",
)


def test_slack_email_telegram_discord_and_ntfy_show_the_resolved_title_and_text() -> None:
    slack = json.dumps(slack_payload(MESSAGE), ensure_ascii=False)
    assert TITLE in slack and TEXT in slack
    mail = build_email(
        MESSAGE,
        EmailConfig.model_validate({"to": "me@example.com"}),
        sender="earnwatch@example.org",
        delivery_id="d",
    )
    plain = mail.get_body(("plain",))
    assert mail["Subject"] == TITLE and plain is not None and TEXT in plain.get_content()
    assert text_of(MESSAGE).splitlines()[:2] == [TITLE, TEXT]
    discord = discord_payload(MESSAGE)
    assert discord["content"] == TITLE and discord["embeds"][0]["description"] == TEXT
    ntfy = NtfyConfig.model_validate({"url": "https://ntfy.example/topic"})
    assert body(MESSAGE).decode().startswith(TEXT)
    assert str(make_header(decode_header(headers(MESSAGE, ntfy)["Title"]))) == TITLE
