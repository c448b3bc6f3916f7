"""Every notifier against real receivers: the registry, the shared outcome contract of the
HTTP channels, and `assert_no_secret_leaks` for each channel on every path."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit

import pytest
from pydantic import SecretStr

from service.config import Settings
from service.errors import DeliveryError
from service.h11client import H11Client
from service.httpclient import TargetGuard, build_client
from service.notify import CHANNEL_CONFIGS, NOTIFIERS, build_notifiers
from service.notify.base import ChannelConfig, Message, Notifier
from service.notify.discord import DiscordConfig, DiscordNotifier
from service.notify.email import EmailConfig, EmailNotifier, SmtpOptions
from service.notify.ntfy import NtfyConfig, NtfyNotifier
from service.notify.slack import SlackConfig, SlackNotifier, SlackPacer
from service.notify.telegram import ChatPacer, TelegramConfig, TelegramNotifier
from service.notify.webhook import WebhookConfig, WebhookNotifier
from tests.notify.leaks import assert_no_secret_leaks
from tests.servers import Receiver, Reply, SmtpServer, TlsFiles

pytestmark = pytest.mark.anyio
URL_SECRET = "SENTINELpath123"
SIGNING_SECRET = "SENTINELsigning456"
HEADER_SECRET = "SENTINELheader789"
SMTP_PASSWORD = "SENTINELsmtp000"


def test_each_registry_key_is_its_notifiers_kind_and_configs_follow() -> None:
    assert set(NOTIFIERS) == {"webhook", "slack", "email", "telegram", "discord", "ntfy"}
    for kind, cls in NOTIFIERS.items():
        assert cls.kind == kind
        assert CHANNEL_CONFIGS[kind] is cls.Config
        assert issubclass(cls.Config, ChannelConfig)


async def test_build_notifiers_makes_one_of_each_kind_from_settings() -> None:
    settings = Settings(_env_file=None, SMTP_HOST="127.0.0.1", SMTP_SECURITY="none")
    notifiers = build_notifiers(settings)
    try:
        assert {k: type(v) for k, v in notifiers.items()} == {
            "webhook": WebhookNotifier,
            "slack": SlackNotifier,
            "email": EmailNotifier,
            "telegram": TelegramNotifier,
            "discord": DiscordNotifier,
            "ntfy": NtfyNotifier,
        }
    finally:
        for notifier in notifiers.values():
            await notifier.aclose()


async def test_build_notifiers_guards_http_channels_by_default(
    receiver: Receiver, message: Message
) -> None:
    notifiers = build_notifiers(
        Settings(_env_file=None, allow_private_targets=False, allowed_hosts="")
    )
    try:
        cfg = WebhookConfig.model_validate({"url": receiver.url_for("/hook")})
        with pytest.raises(DeliveryError, match="refused target") as caught:
            await notifiers["webhook"].send(message, cfg, delivery_id="d")
    finally:
        for notifier in notifiers.values():
            await notifier.aclose()
    assert caught.value.permanent and receiver.connections == 0


# --- the HTTP outcome contract, once for every HTTP channel -----------------------------

Factory = Callable[[], tuple[Notifier, Callable[[str], ChannelConfig]]]


def _webhook() -> tuple[Notifier, Callable[[str], ChannelConfig]]:
    client = H11Client(timeout=0.5, guard=TargetGuard(allow_private=True))
    return WebhookNotifier(client), lambda url: WebhookConfig.model_validate(
        {"url": url, "secret": SIGNING_SECRET, "headers": {"Authorization": HEADER_SECRET}}
    )


def _slack() -> tuple[Notifier, Callable[[str], ChannelConfig]]:
    client = H11Client(timeout=0.5, guard=TargetGuard(allow_private=True))
    return SlackNotifier(client, pacer=SlackPacer(0.0)), lambda url: SlackConfig(url=SecretStr(url))


def _discord() -> tuple[Notifier, Callable[[str], ChannelConfig]]:
    # Discord's success is 204 (200 with `?wait=true`): the table's `200 ok` holds, as
    # any 2xx is success; its replies without a JSON `message` are kept as the body.
    client = H11Client(timeout=0.5, guard=TargetGuard(allow_private=True))
    return DiscordNotifier(client), lambda url: DiscordConfig(url=SecretStr(url))


def _ntfy() -> tuple[Notifier, Callable[[str], ChannelConfig]]:
    # Every OUTCOMES row holds as is: ntfy's success is any 2xx (the message JSON it
    # answers with is not required), and its errors are classified by status.
    client = H11Client(timeout=0.5, guard=TargetGuard(allow_private=True))
    return NtfyNotifier(client), lambda url: NtfyConfig.model_validate(
        {"url": url, "token": HEADER_SECRET}  # sent as `Authorization: Bearer ...`
    )


def _telegram() -> tuple[Notifier, Callable[[str], ChannelConfig]]:
    """The receiver's origin is the `api_url`; the URL's secret goes into the token, which
    Telegram carries in the path (`/bot<token>/sendMessage`)."""
    client = H11Client(timeout=0.5, guard=TargetGuard(allow_private=True))

    def make(url: str) -> ChannelConfig:
        parts = urlsplit(url)
        return TelegramConfig.model_validate(
            {
                "bot_token": f"123456789:{URL_SECRET}",
                "chat_id": -1001234567890,
                "api_url": f"{parts.scheme}://{parts.netloc}",
            }
        )

    return TelegramNotifier(client, pacer=ChatPacer(0.0)), make


def _as_the_api_answers(kind: str, reply: int | Reply) -> Reply:
    """A shared reply in the shape this channel's API gives it. Only Telegram differs:
    every Bot API reply is JSON with `ok`, so a 200 is `{"ok": true, ...}` (a bare `ok`
    body is not a Bot API reply and fails for good) and an error is `{"ok": false,
    "error_code", "description"}`, with a 429's wait in `parameters.retry_after`.
    Statuses, headers and delays stay as the table says."""
    reply = reply if isinstance(reply, Reply) else Reply(reply)
    if kind != "telegram" or 300 <= reply.status < 400:
        return reply
    if reply.status < 300:
        return replace(reply, body=json.dumps({"ok": True, "result": {"message_id": 1}}))
    text = reply.body.decode() if isinstance(reply.body, bytes) else reply.body
    answer: dict[str, Any] = {"ok": False, "error_code": reply.status, "description": text}
    if reply.status == 429 and "Retry-After" in reply.headers:
        answer["parameters"] = {"retry_after": int(reply.headers["Retry-After"])}
    return replace(reply, body=json.dumps(answer))


@pytest.fixture(
    params=[_webhook, _slack, _telegram, _discord, _ntfy],
    ids=["webhook", "slack", "telegram", "discord", "ntfy"],
)
async def http_channel(
    request: pytest.FixtureRequest,
) -> AsyncIterator[tuple[Notifier, Callable[[str], ChannelConfig]]]:
    notifier, make = request.param()
    yield notifier, make
    await notifier.aclose()


OUTCOMES: list[tuple[Reply, bool | None, float | None]] = [
    (Reply(200, "ok"), None, None),
    (Reply(500, "boom"), False, None),
    (Reply(503, "down", {"Retry-After": "7"}), False, 7.0),
    (Reply(429, "slow", {"Retry-After": "2"}), False, 2.0),
    (Reply(400, "bad"), True, None),
    (Reply(302, headers={"Location": "http://169.254.169.254/"}), True, None),
]


@pytest.mark.parametrize(("reply", "permanent", "retry_after"), OUTCOMES)
async def test_http_channels_classify_replies_the_same_way(
    http_channel: Any,
    receiver: Receiver,
    message: Message,
    reply: Reply,
    permanent: bool | None,
    retry_after: float | None,
) -> None:
    notifier, make = http_channel
    receiver.script(_as_the_api_answers(notifier.kind, reply))
    cfg = make(receiver.url_for(f"/services/{URL_SECRET}"))
    if permanent is None:
        await notifier.send(message, cfg, delivery_id="d")
    else:
        with pytest.raises(DeliveryError) as caught:
            await notifier.send(message, cfg, delivery_id="d")
        assert (caught.value.permanent, caught.value.retry_after) == (permanent, retry_after)
    assert len(receiver.requests) == 1


# --- no secret leaks, on every path -------------------------------------------------------


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """Everything at DEBUG, except `httpx`, which logs full URLs at INFO: the logging
    setup must keep it at WARNING (see test_httpx_itself_logs_full_urls_at_info)."""
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="httpcore")
    caplog.set_level(logging.WARNING, logger="httpx")
    return caplog


@pytest.mark.parametrize("replies", [[200], [500], [404], [Reply(200, "ok", delay=5.0)]])
async def test_http_channels_leak_no_secret(
    http_channel: Any,
    receiver: Receiver,
    message: Message,
    logs: pytest.LogCaptureFixture,
    replies: list[int | Reply],
) -> None:
    notifier, make = http_channel
    receiver.script(*(_as_the_api_answers(notifier.kind, r) for r in replies))
    cfg = make(receiver.url_for(f"/services/T0/B0/{URL_SECRET}?token={URL_SECRET}"))
    error: DeliveryError | None = None
    try:
        await notifier.send(message, cfg, delivery_id="d")
    except DeliveryError as exc:
        error = exc
    assert_no_secret_leaks(
        [URL_SECRET, SIGNING_SECRET, HEADER_SECRET], error=error, records=logs.records
    )


async def test_a_refused_connection_and_a_refused_target_leak_no_secret(
    http_channel: Any, message: Message, logs: pytest.LogCaptureFixture
) -> None:
    notifier, make = http_channel
    closed = Receiver().start()
    closed.stop()
    errors = []
    for url in (closed.url_for(f"/x/{URL_SECRET}"), f"http://169.254.169.254/{URL_SECRET}"):
        with pytest.raises(DeliveryError) as caught:
            await notifier.send(message, make(url), delivery_id="d")
        errors.append(caught.value)
    for error in errors:
        assert_no_secret_leaks(
            [URL_SECRET, SIGNING_SECRET, HEADER_SECRET], error=error, records=logs.records
        )


async def test_httpx_itself_logs_full_urls_at_info(
    receiver: Receiver, message: Message, caplog: pytest.LogCaptureFixture
) -> None:
    """Why the logging setup must raise the `httpx` logger to WARNING: the providers and
    the heartbeat send through httpx. The channels' client (h11) logs no request at all."""
    caplog.set_level(logging.INFO, logger="httpx")
    async with build_client(timeout=2.0) as client:
        await client.post(receiver.url_for(f"/{URL_SECRET}"), content=b"{}")
    assert URL_SECRET in caplog.text
    caplog.clear()
    caplog.set_level(logging.DEBUG)
    notifier, make = _webhook()
    try:
        await notifier.send(message, make(receiver.url_for(f"/{URL_SECRET}")), delivery_id="d")
    finally:
        await notifier.aclose()
    assert len(receiver.requests) == 2
    assert not [r for r in caplog.records if URL_SECRET in r.getMessage()]


@pytest.mark.parametrize("case", ["delivered", "auth failed", "no starttls", "refused rcpt"])
async def test_email_leaks_no_password(
    message: Message, tls_files: TlsFiles, logs: pytest.LogCaptureFixture, case: str
) -> None:
    users = {"bot": SMTP_PASSWORD if case != "auth failed" else "other"}
    tls = None if case == "no starttls" else tls_files.server_context()
    rcpt = ["550 5.1.1 unknown"] if case == "refused rcpt" else []
    server = SmtpServer(tls=tls, users=users, rcpt_replies=rcpt)
    error: DeliveryError | None = None
    with server:
        options = SmtpOptions(
            host="127.0.0.1",
            port=server.port,
            security="starttls",
            username="bot",
            password=SecretStr(SMTP_PASSWORD),
            timeout=5.0,
        )
        notifier = EmailNotifier(options, ssl_context=tls_files.client_context())
        try:
            await notifier.send(message, EmailConfig(to=("me@example.com",)), delivery_id="d")
        except DeliveryError as exc:
            error = exc
    assert (error is None) == (case == "delivered")
    assert_no_secret_leaks([SMTP_PASSWORD], error=error, records=logs.records)
