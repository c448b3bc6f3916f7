"""The Discord channel against a real HTTP receiver on 127.0.0.1 answering as Discord does:
204 (200 with `?wait=true`), the 429 rate-limit shape, 404 `Unknown Webhook`, 5xx, and a
refused connection; and the request body and headers as the webhook API expects them."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import date

import pytest
from pydantic import ValidationError

from service.errors import DeliveryError
from service.h11client import H11Client
from service.httpclient import TargetGuard
from service.notify.base import Message
from service.notify.discord import (
    COLOR,
    CONTENT_LIMIT,
    DESCRIPTION_LIMIT,
    EMBED_TOTAL_LIMIT,
    MAX_FIELDS,
    TITLE_LIMIT,
    DiscordConfig,
    DiscordNotifier,
    payload,
)
from tests.notify.leaks import assert_no_secret_leaks
from tests.servers import Receiver, Reply

pytestmark = pytest.mark.anyio
TOKEN = "SENTINELdiscordTOKEN-abc_123"
HOOK_PATH = f"/api/webhooks/123456789012345678/{TOKEN}"
RATE_LIMITED = json.dumps(
    {"message": "You are being rate limited.", "retry_after": 1.234, "global": False}
)
UNKNOWN_WEBHOOK = json.dumps({"message": "Unknown Webhook", "code": 10015})


@pytest.fixture
async def notifier() -> AsyncIterator[DiscordNotifier]:
    client = H11Client(timeout=0.5, guard=TargetGuard(allow_private=True))
    discord = DiscordNotifier(client)
    yield discord
    await discord.aclose()


def config(receiver: Receiver, path: str = HOOK_PATH) -> DiscordConfig:
    return DiscordConfig.model_validate({"url": receiver.url_for(path)})


async def test_a_204_is_success_and_the_request_is_one_json_message_with_one_embed(
    notifier: DiscordNotifier, receiver: Receiver, message: Message
) -> None:
    receiver.script(Reply(204))
    await notifier.send(message, config(receiver), delivery_id="d1")
    [request] = receiver.requests
    assert (request.method, request.path) == ("POST", HOOK_PATH)
    assert request.headers["content-type"] == "application/json"
    assert json.loads(request.body) == {
        "content": "LUMN · lumn-q4-miss",
        "embeds": [
            {
                "title": "LUMN · lumn-q4-miss",
                "color": COLOR,
                "description": "LUMN missed: EPS -0.05 vs 0.02 (-350.0%)",
                "fields": [
                    {"name": "earnings_date", "value": "2026-02-03", "inline": True},
                    {"name": "eps_actual", "value": "-0.05", "inline": True},
                    {"name": "eps_estimate", "value": "0.02", "inline": True},
                ],
                "timestamp": "2026-02-03T21:05:00+00:00",
            }
        ],
        "allowed_mentions": {"parse": []},
    }


async def test_a_200_with_the_message_is_success_with_wait_true(
    notifier: DiscordNotifier, receiver: Receiver, message: Message
) -> None:
    receiver.script(Reply(200, json.dumps({"id": "1", "type": 0, "content": "LUMN"})))
    await notifier.send(message, config(receiver, HOOK_PATH + "?wait=true"), delivery_id="d")
    assert receiver.requests[0].path == HOOK_PATH + "?wait=true"


async def test_everyone_in_the_text_pings_no_one_and_unknown_values_read_n_a(
    notifier: DiscordNotifier, receiver: Receiver, message: Message
) -> None:
    values = {"price": 7.5, "eps_actual": None, "pe": float("nan"), "on": date(2026, 2, 3)}
    pinging = replace(message, text="@everyone <@123> LUMN missed", values=values)
    receiver.script(Reply(204))
    await notifier.send(pinging, config(receiver), delivery_id="d")
    body = json.loads(receiver.requests[0].body)
    assert body["allowed_mentions"] == {"parse": []}
    assert body["embeds"][0]["description"] == "@everyone <@123> LUMN missed"
    assert [(f["name"], f["value"]) for f in body["embeds"][0]["fields"]] == [
        ("eps_actual", "n/a"),  # unknown, as on every channel (service/figures.py)
        ("on", "2026-02-03"),
        ("pe", "n/a"),
        ("price", "7.5"),
    ]


def test_the_payload_keeps_to_discords_limits(message: Message) -> None:
    big = replace(
        message,
        title="T" * 3000,
        text="x" * 5000,
        values={f"v{i:02d}": "y" * 2000 for i in range(40)},
    )
    body = payload(big)
    [embed] = body["embeds"]
    assert len(body["content"]) == CONTENT_LIMIT and body["content"].endswith("…")
    assert len(embed["title"]) == TITLE_LIMIT
    assert len(embed["description"]) == DESCRIPTION_LIMIT
    assert 0 < len(embed["fields"]) <= MAX_FIELDS
    assert all(len(f["value"]) <= 1024 for f in embed["fields"])
    total = len(embed["title"]) + len(embed["description"])
    total += sum(len(f["name"]) + len(f["value"]) for f in embed["fields"])
    assert total <= EMBED_TOTAL_LIMIT
    many = replace(message, values={f"v{i:02d}": i for i in range(40)})
    assert len(payload(many)["embeds"][0]["fields"]) == MAX_FIELDS


async def test_a_429_honours_discords_retry_after_float(
    notifier: DiscordNotifier, receiver: Receiver, message: Message
) -> None:
    headers = {
        "Content-Type": "application/json",
        "Retry-After": "2",
        "X-RateLimit-Remaining": "0",
        "X-RateLimit-Reset-After": "1.234",
    }
    receiver.script(Reply(429, RATE_LIMITED, headers))
    with pytest.raises(DeliveryError) as caught:
        await notifier.send(message, config(receiver), delivery_id="d")
    error = caught.value
    assert (error.permanent, error.retry_after, error.status) == (False, 1.234, 429)
    assert "You are being rate limited." in str(error)
    assert len(receiver.requests) == 1  # one attempt, no retry inside


async def test_a_429_without_a_json_body_falls_back_to_the_retry_after_header(
    notifier: DiscordNotifier, receiver: Receiver, message: Message
) -> None:
    receiver.script(Reply(429, "<html>rate limited</html>", {"Retry-After": "3"}))
    with pytest.raises(DeliveryError) as caught:
        await notifier.send(message, config(receiver), delivery_id="d")
    assert (caught.value.permanent, caught.value.retry_after) == (False, 3.0)


async def test_unknown_webhook_is_permanent_with_discords_message(
    notifier: DiscordNotifier, receiver: Receiver, message: Message
) -> None:
    receiver.script(Reply(404, UNKNOWN_WEBHOOK, {"Content-Type": "application/json"}))
    with pytest.raises(DeliveryError) as caught:
        await notifier.send(message, config(receiver), delivery_id="d")
    error = caught.value
    assert error.permanent and error.status == 404 and error.retry_after is None
    assert str(error) == (
        f"Discord HTTP 404 from 127.0.0.1:{receiver.port}: Unknown Webhook (code 10015)"
    )


@pytest.mark.parametrize(
    ("status", "body", "text"),
    [
        (400, '{"message": "Invalid Form Body", "code": 50035}', "Invalid Form Body (code 50035)"),
        (401, '{"message": "401: Unauthorized", "code": 0}', "401: Unauthorized"),
        (403, '{"message": "Missing Access", "code": 50001}', "Missing Access (code 50001)"),
        (413, "Request Entity Too Large", "Request Entity Too Large"),
        (302, "", "redirect not followed"),
    ],
)
async def test_other_4xx_and_redirects_are_permanent_with_the_reply_kept(
    notifier: DiscordNotifier,
    receiver: Receiver,
    message: Message,
    status: int,
    body: str,
    text: str,
) -> None:
    receiver.script(Reply(status, body))
    with pytest.raises(DeliveryError) as caught:
        await notifier.send(message, config(receiver), delivery_id="d")
    assert caught.value.permanent and caught.value.status == status
    assert str(caught.value).endswith(text)


@pytest.mark.parametrize("status", [500, 502, 503, 504])
async def test_a_5xx_is_retryable(
    notifier: DiscordNotifier, receiver: Receiver, message: Message, status: int
) -> None:
    receiver.script(Reply(status, '{"message": "Internal Server Error", "code": 0}'))
    with pytest.raises(DeliveryError, match="Internal Server Error") as caught:
        await notifier.send(message, config(receiver), delivery_id="d")
    assert not caught.value.permanent and caught.value.status == status


async def test_a_timeout_and_a_refused_connection_are_retryable(
    notifier: DiscordNotifier, receiver: Receiver, message: Message
) -> None:
    receiver.script(Reply(204, delay=5.0))
    with pytest.raises(DeliveryError) as slow:
        await notifier.send(message, config(receiver), delivery_id="d")
    closed = Receiver().start()
    closed.stop()
    with pytest.raises(DeliveryError) as refused:
        await notifier.send(message, config(closed), delivery_id="d")
    assert not slow.value.permanent and not refused.value.permanent
    assert_no_secret_leaks([TOKEN], error=slow.value)
    assert_no_secret_leaks([TOKEN], error=refused.value)


async def test_a_reply_quoting_the_token_is_scrubbed_from_the_error(
    notifier: DiscordNotifier, receiver: Receiver, message: Message
) -> None:
    receiver.script(
        Reply(400, json.dumps({"message": f"bad webhook {TOKEN}", "code": 50027})),
        Reply(404, f"Cannot POST {HOOK_PATH}"),
    )
    for _ in range(2):
        with pytest.raises(DeliveryError) as caught:
            await notifier.send(message, config(receiver), delivery_id="d")
        assert "127.0.0.1" in str(caught.value)
        assert_no_secret_leaks([TOKEN, HOOK_PATH], error=caught.value)


def test_the_url_must_be_http_and_its_value_is_never_quoted() -> None:
    DiscordConfig.model_validate({"url": "http://proxy.internal:8080/api/webhooks/1/x"})
    for bad in (f"ftp://discord.com/api/webhooks/1/{TOKEN}", f"discord.com/{TOKEN}"):
        with pytest.raises(ValidationError) as caught:
            DiscordConfig.model_validate({"url": bad})
        assert TOKEN not in str(caught.value)
    with pytest.raises(ValidationError, match="extra"):
        DiscordConfig.model_validate({"url": "https://discord.com/x", "username": "bot"})
    cfg = DiscordConfig.model_validate({"url": f"https://discord.com/api/webhooks/1/{TOKEN}"})
    assert TOKEN not in repr(cfg) and TOKEN not in str(cfg)


async def test_the_destination_is_host_and_port(
    notifier: DiscordNotifier, receiver: Receiver
) -> None:
    assert notifier.destination(config(receiver)) == f"127.0.0.1:{receiver.port}"
    cfg = DiscordConfig.model_validate({"url": f"https://discord.com/api/webhooks/1/{TOKEN}"})
    assert notifier.destination(cfg) == "discord.com:443"
