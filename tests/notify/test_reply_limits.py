"""What a receiver's reply can do to us (issues #10.3, #9.9, #10.10), against real
servers on 127.0.0.1: a 512 MB error body is read up to 64 KiB and the connection hung
up; a reply that quotes the channel's secret URL is scrubbed before it becomes an error;
non-finite values are sent as `null`, never as `Infinity`."""

from __future__ import annotations

import json
import math
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from service.errors import DeliveryError
from service.h11client import H11Client
from service.httpclient import TargetGuard
from service.notify.base import Message
from service.notify.http import MAX_REPLY_BYTES, post
from service.notify.slack import SlackConfig, SlackNotifier, SlackPacer
from service.notify.slack import payload as slack_payload
from service.notify.webhook import WebhookConfig, WebhookNotifier
from service.notify.webhook import payload as webhook_payload
from tests.servers import Receiver, Reply
from tests.slow_servers import DripReceiver

pytestmark = pytest.mark.anyio
HUGE = 512 * 1024 * 1024
SECRET_PATH = "/services/T000/B000/XOXBsecretTOKENvalue"


@pytest.fixture
async def webhook() -> AsyncIterator[WebhookNotifier]:
    notifier = WebhookNotifier(H11Client(timeout=5.0, guard=TargetGuard(allow_private=True)))
    yield notifier
    await notifier.aclose()


@pytest.fixture
async def slack() -> AsyncIterator[SlackNotifier]:
    client = H11Client(timeout=5.0, guard=TargetGuard(allow_private=True))
    notifier = SlackNotifier(client, pacer=SlackPacer(0.0))
    yield notifier
    await notifier.aclose()


def strict_json(raw: bytes) -> Any:
    def refuse(constant: str) -> None:
        raise ValueError(f"not JSON: {constant}")

    return json.loads(raw, parse_constant=refuse)


async def test_a_512_mb_error_body_is_read_up_to_64_kib_and_the_rest_never_received(
    webhook: WebhookNotifier, message: Message
) -> None:
    with DripReceiver(status=500, size=HUGE, chunk=64 * 1024, interval=0.0) as big:
        config = WebhookConfig.model_validate({"url": big.url_for("/hook")})
        with pytest.raises(DeliveryError) as caught:
            await webhook.send(message, config, delivery_id="d1")
        deadline = time.monotonic() + 20
        while big.seen[0].ended is None and time.monotonic() < deadline:
            time.sleep(0.05)
        seen = big.seen[0]
    assert not caught.value.permanent and caught.value.status == 500
    assert str(caught.value).endswith("…") and len(str(caught.value)) < 400
    # before: the whole body was read into memory (the daemon went to 2.6 GB)
    assert seen.hung_up and seen.sent < 32 * 1024 * 1024, seen


async def test_post_keeps_at_most_the_limit_and_says_it_cut(receiver: Receiver) -> None:
    receiver.script(Reply(500, b"e" * (MAX_REPLY_BYTES + 10)))
    async with H11Client(timeout=5.0, guard=TargetGuard(allow_private=True)) as client:
        reply = await post(client, receiver.url_for("/x"), b"{}", {})
    assert len(reply.body) == MAX_REPLY_BYTES and reply.truncated
    assert receiver.requests[0].headers["accept-encoding"] == "identity"  # no bomb


@pytest.mark.parametrize("extra, cut", [(0, False), (1, True)])
async def test_a_reply_that_ends_at_the_limit_is_not_cut_and_one_byte_more_is(
    receiver: Receiver, extra: int, cut: bool
) -> None:
    # Whatever the chunking, the boundary decides (a chunk ending exactly at the limit
    # once read as "not cut" although more followed).
    receiver.script(Reply(500, b"e" * (MAX_REPLY_BYTES + extra)))
    async with H11Client(timeout=5.0, guard=TargetGuard(allow_private=True)) as client:
        reply = await post(client, receiver.url_for("/x"), b"{}", {})
    assert len(reply.body) == MAX_REPLY_BYTES and reply.truncated is cut


async def test_a_404_quoting_the_webhook_url_is_an_error_without_its_path_or_query(
    webhook: WebhookNotifier, receiver: Receiver, message: Message
) -> None:
    receiver.script(Reply(404, f"Cannot POST {SECRET_PATH}?code=AzureFnKey123=="))
    url = receiver.url_for(f"{SECRET_PATH}?code=AzureFnKey123==")
    config = WebhookConfig.model_validate({"url": url})
    with pytest.raises(DeliveryError) as caught:
        await webhook.send(message, config, delivery_id="d2")
    error = str(caught.value)
    assert error == "HTTP 404: Cannot POST ***?***"
    assert "XOXB" not in error and "AzureFnKey" not in error


async def test_a_slack_error_quoting_its_url_or_token_is_scrubbed(
    slack: SlackNotifier, receiver: Receiver, message: Message
) -> None:
    receiver.script(Reply(404, f"no_service: {SECRET_PATH}"), Reply(403, "XOXBsecretTOKENvalue"))
    config = SlackConfig.model_validate({"url": receiver.url_for(SECRET_PATH)})
    errors = []
    for delivery_id in ("d3", "d4"):
        with pytest.raises(DeliveryError) as caught:
            await slack.send(message, config, delivery_id=delivery_id)
        errors.append(str(caught.value))
    assert errors == ["Slack HTTP 404: no_service: ***", "Slack HTTP 403: ***"]


def non_finite_message(message: Message) -> Message:
    values = {**message.values, "up": math.inf, "down": -math.inf, "what": math.nan}
    return Message(
        message.id, message.rule, message.symbol, message.title, message.text,
        message.fired_at, values,
    )  # fmt: skip


def test_non_finite_values_are_null_in_the_webhook_body_and_the_stored_message(
    message: Message,
) -> None:
    odd = non_finite_message(message)
    body = strict_json(webhook_payload(odd))  # before: `Infinity`, a strict receiver's 400
    assert body["values"]["up"] is None and body["values"]["what"] is None
    stored = strict_json(odd.to_json().encode())
    assert stored["values"]["down"] is None
    assert webhook_payload(Message.from_json(odd.to_json())) == webhook_payload(odd)


async def test_non_finite_values_are_left_out_of_slack_fields_and_sent_as_json(
    slack: SlackNotifier, receiver: Receiver, message: Message
) -> None:
    odd = non_finite_message(message)
    fields = json.dumps(slack_payload(odd), allow_nan=False)
    assert "inf" not in fields and "nan" not in fields
    config = SlackConfig.model_validate({"url": receiver.url_for("/services/T/B/x")})
    await slack.send(odd, config, delivery_id="d5")
    strict_json(receiver.requests[0].body)
