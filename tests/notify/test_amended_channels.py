"""An amended message (`notify_amended`) says "amended" with the figures before and after
the correction on every channel, each sent for real: Slack, Telegram, Discord and ntfy to
a local HTTP receiver answering as the service does, email to aiosmtpd, the webhook with
`"type": "alert.amended"` and `"amends"`. The message is the one the engine makes when a
beat's EPS is corrected from 0.23 to 0.25."""

from __future__ import annotations

import email.header
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from service.h11client import H11Client
from service.httpclient import TargetGuard
from service.notify.base import Message
from service.notify.discord import DiscordConfig, DiscordNotifier
from service.notify.email import EmailConfig, EmailNotifier
from service.notify.ntfy import NtfyConfig, NtfyNotifier
from service.notify.render import render
from service.notify.slack import SlackConfig, SlackNotifier, SlackPacer
from service.notify.telegram import ChatPacer, TelegramConfig, TelegramNotifier
from service.notify.webhook import WebhookConfig, WebhookNotifier
from tests.notify.test_email import options
from tests.notify.test_ntfy import PUBLISHED
from tests.notify.test_telegram import TOKEN, sent
from tests.servers import Receiver, Reply, SmtpServer
from tests.test_engine import Run, report, rules, with_event

pytestmark = pytest.mark.anyio

TITLE = "LUMN · lumn-beat amended"
TEXT = "AMENDED: LUMN: lumn-beat: EPS 0.23 -> 0.25, revenue 3.041B"
FIRST_ID = "alert_first"


def amended_message() -> Message:
    """The engine's amended alert for a corrected EPS, rendered and given the fired
    alert's id as the outbox does."""
    run = Run(
        rules(
            "  - name: lumn-beat\n    symbols: [LUMN]\n"
            "    when: reported and eps_actual > eps_estimate\n    notify_amended: true\n"
        )
    )
    t0 = datetime(2026, 2, 3, 22, 0, tzinfo=UTC)
    run.feed(with_event(report(eps=0.23, revenue=3.041e9)), t0)
    run.feed(with_event(report(eps=0.25, revenue=3.041e9)), t0 + timedelta(minutes=5))
    fired, amended = run.alerts
    assert amended.kind == "amended" and amended.resolves_key == fired.dedup_key
    return replace(render(amended, "alert_amended"), amends=FIRST_ID)


MESSAGE = amended_message()


def client() -> H11Client:
    return H11Client(timeout=5.0, guard=TargetGuard(allow_private=True))


def says_amended_with_both_figures(text: str) -> None:
    assert "amended" in text.lower()
    assert "0.23" in text and "0.25" in text
    assert "eps_actual_previous" in text  # the values listed: the figure before, too


def test_the_message_names_both_figures() -> None:
    assert (MESSAGE.title, MESSAGE.text) == (TITLE, TEXT)
    assert MESSAGE.values["eps_actual"] == 0.25
    assert MESSAGE.values["eps_actual_previous"] == 0.23


async def test_webhook() -> None:
    with Receiver() as receiver:
        notifier = WebhookNotifier(client())
        try:
            cfg = WebhookConfig.model_validate({"url": receiver.url_for("/hook")})
            await notifier.send(MESSAGE, cfg, delivery_id="d1")
        finally:
            await notifier.aclose()
    body = json.loads(receiver.requests[0].body)
    assert (body["type"], body["amends"], body["alert_id"]) == (
        "alert.amended",
        FIRST_ID,
        "alert_amended",
    )
    assert (body["title"], body["message"]) == (TITLE, TEXT)
    assert (body["values"]["eps_actual_previous"], body["values"]["eps_actual"]) == (0.23, 0.25)


async def test_slack() -> None:
    with Receiver() as receiver:
        notifier = SlackNotifier(client(), pacer=SlackPacer(0.0))
        try:
            cfg = SlackConfig.model_validate({"url": receiver.url_for("/services/T0/B0/x")})
            await notifier.send(MESSAGE, cfg, delivery_id="d1")
        finally:
            await notifier.aclose()
    body = json.loads(receiver.requests[0].body)
    assert body["text"] == f"{TITLE}: {TEXT}"
    assert body["blocks"][0]["text"]["text"] == TITLE
    says_amended_with_both_figures(json.dumps(body["blocks"], ensure_ascii=False))


async def test_email() -> None:
    with SmtpServer() as server:
        await EmailNotifier(options(server)).send(
            MESSAGE, EmailConfig(to=("me@example.com",)), delivery_id="d1"
        )
    [mail] = server.messages
    assert mail.parsed["Subject"] == TITLE
    parts = {
        p.get_content_type(): p.get_content() for p in mail.parsed.walk() if not p.is_multipart()
    }
    assert TEXT in parts["text/plain"]
    says_amended_with_both_figures(parts["text/plain"])
    says_amended_with_both_figures(parts["text/html"])


async def test_telegram() -> None:
    with Receiver() as receiver:
        receiver.script(sent())
        notifier = TelegramNotifier(client(), pacer=ChatPacer(0.0))
        try:
            cfg = TelegramConfig.model_validate(
                {"bot_token": TOKEN, "chat_id": 42, "api_url": receiver.url_for("")}
            )
            await notifier.send(MESSAGE, cfg, delivery_id="d1")
        finally:
            await notifier.aclose()
    text = json.loads(receiver.requests[0].body)["text"]
    assert text.splitlines()[:2] == [TITLE, TEXT]
    says_amended_with_both_figures(text)


async def test_discord() -> None:
    with Receiver() as receiver:
        receiver.script(Reply(204))
        notifier = DiscordNotifier(client())
        try:
            cfg = DiscordConfig.model_validate(
                {"url": receiver.url_for("/api/webhooks/123456789012345678/tok")}
            )
            await notifier.send(MESSAGE, cfg, delivery_id="d1")
        finally:
            await notifier.aclose()
    body = json.loads(receiver.requests[0].body)
    assert body["content"] == TITLE
    assert body["embeds"][0]["description"] == TEXT
    says_amended_with_both_figures(json.dumps(body["embeds"], ensure_ascii=False))


async def test_ntfy() -> None:
    with Receiver() as receiver:
        receiver.script(PUBLISHED)
        notifier = NtfyNotifier(client())
        try:
            cfg = NtfyConfig.model_validate({"url": receiver.url_for("/earnings")})
            await notifier.send(MESSAGE, cfg, delivery_id="d1")
        finally:
            await notifier.aclose()
    [request] = receiver.requests
    title = str(email.header.make_header(email.header.decode_header(request.headers["title"])))
    assert title == TITLE
    text = request.body.decode("utf-8")
    assert text.startswith(TEXT)
    says_amended_with_both_figures(text)
