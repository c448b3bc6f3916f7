"""Deadlines and the per-host cap are the same for every channel type (issue #10.3 item
5): each notifier says how long a send may take and where it goes, and the worker cuts a
Slack or an email send at that deadline just as a webhook's, against real servers."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest

from service.clock import FakeClock
from service.config import Settings
from service.delivery import DeliveryWorker
from service.h11client import H11Client
from service.httpclient import TargetGuard
from service.notify import build_notifiers
from service.notify.base import ChannelConfig
from service.notify.email import EmailConfig, EmailNotifier, SmtpOptions
from service.notify.slack import SlackConfig, SlackNotifier, SlackPacer
from service.notify.telegram import ChatPacer, TelegramConfig, TelegramNotifier
from service.store import Store
from tests.slow_servers import DripReceiver, SlowSmtp
from tests.store.helpers import T0, make_alert, render

pytestmark = pytest.mark.anyio


async def test_every_notifier_has_its_deadline_and_destination_from_settings() -> None:
    settings = Settings(
        _env_file=None,
        delivery_timeout=timedelta(seconds=7),
        smtp_timeout=timedelta(seconds=20),
        smtp_host="mail.example",
        smtp_port=2525,
    )
    notifiers = build_notifiers(settings)
    try:
        assert {k: n.deadline for k, n in notifiers.items()} == {
            "webhook": 7.0,
            "slack": 7.0,
            "email": 20.0,
            "discord": 7.0,
            "ntfy": 7.0,
            "telegram": 7.0,
        }
        one = SlackConfig.model_validate({"url": "https://hooks.slack.com/services/T/B/a"})
        two = SlackConfig.model_validate({"url": "https://hooks.slack.com/services/T/B/b"})
        slack = notifiers["slack"]
        assert slack.destination(one) == slack.destination(two) == "hooks.slack.com:443"
        mail = EmailConfig.model_validate({"to": "me@example.com"})
        assert notifiers["email"].destination(mail) == "smtp:mail.example:2525"
        bot = TelegramConfig.model_validate({"bot_token": "1:a", "chat_id": 1})
        own = bot.model_copy(update={"api_url": "http://tg.internal:8081"})
        assert notifiers["telegram"].destination(bot) == "api.telegram.org:443"
        assert notifiers["telegram"].destination(own) == "tg.internal:8081"
    finally:
        for notifier in notifiers.values():
            await notifier.aclose()


async def deliver_once(
    store: Store,
    kind: str,
    notifier: SlackNotifier | EmailNotifier | TelegramNotifier,
    config: ChannelConfig,
) -> tuple[str | None, str | None]:
    store.record([(make_alert(1), render, [("chan", kind)])], {}, T0)
    worker = DeliveryWorker(
        store, {kind: notifier}, lambda: {"chan": config}, clock=FakeClock(T0), rng=random.Random(1)
    )
    assert await worker.run_once() == 1
    [entry] = store.history()
    [delivery] = entry.deliveries
    [attempt] = store.attempts(delivery.id)
    return attempt.outcome, attempt.error


async def test_a_dripping_slack_reply_is_cut_at_the_deadline(store: Store) -> None:
    with DripReceiver(interval=0.5) as slow:
        client = H11Client(timeout=2.0, guard=TargetGuard(allow_private=True))
        notifier = SlackNotifier(client, pacer=SlackPacer(0.0), deadline=1.5)
        config = SlackConfig.model_validate({"url": slow.url_for("/services/T/B/x")})
        try:
            outcome, error = await deliver_once(store, "slack", notifier, config)
        finally:
            await notifier.aclose()
    assert outcome == "retry"
    assert error == "channel 'chan': no complete reply within 1.5 s (the send deadline)"


async def test_a_dripping_telegram_reply_is_cut_at_the_deadline(store: Store) -> None:
    with DripReceiver(interval=0.5) as slow:
        client = H11Client(timeout=2.0, guard=TargetGuard(allow_private=True))
        notifier = TelegramNotifier(client, pacer=ChatPacer(0.0), deadline=1.5)
        config = TelegramConfig.model_validate(
            {"bot_token": "123:SECRETtoken", "chat_id": 1, "api_url": slow.url_for("")}
        )
        try:
            outcome, error = await deliver_once(store, "telegram", notifier, config)
        finally:
            await notifier.aclose()
    assert outcome == "retry"
    assert error == "channel 'chan': no complete reply within 1.5 s (the send deadline)"


async def test_an_smtp_server_slow_on_every_command_is_cut_at_smtp_timeout_in_all(
    store: Store,
) -> None:
    # each reply comes 0.6 s late, inside aiosmtplib's 1.5 s per command; the whole
    # submission (greeting, EHLO, MAIL, RCPT, DATA, the message) takes over 3.5 s
    with SlowSmtp(delay=0.6) as smtp:
        options = SmtpOptions("127.0.0.1", smtp.port, security="none", timeout=1.5)
        notifier = EmailNotifier(options)
        config = EmailConfig.model_validate({"to": "me@example.com"})
        outcome, error = await deliver_once(store, "email", notifier, config)
        assert smtp.mails == 0
    assert outcome == "retry"
    assert error == "channel 'chan': no complete reply within 1.5 s (the send deadline)"
