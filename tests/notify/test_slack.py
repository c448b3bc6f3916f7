"""The Slack channel against a real HTTP receiver on 127.0.0.1: Slack's replies, 429 and
Retry-After, and pacing per webhook URL."""

from __future__ import annotations

import itertools
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from functools import partial

import anyio
import pytest

from service.errors import DeliveryError
from service.h11client import H11Client
from service.httpclient import TargetGuard
from service.notify.base import Message
from service.notify.slack import SlackConfig, SlackNotifier, SlackPacer
from tests.servers import Receiver, Reply

pytestmark = pytest.mark.anyio
INTERVAL = 0.2


@pytest.fixture
async def notifier() -> AsyncIterator[SlackNotifier]:
    client = H11Client(timeout=0.5, guard=TargetGuard(allow_private=True))
    slack = SlackNotifier(client, pacer=SlackPacer(INTERVAL))
    yield slack
    await slack.aclose()


def config(receiver: Receiver, path: str = "/services/T0/B0/xyz") -> SlackConfig:
    return SlackConfig.model_validate({"url": receiver.url_for(path)})


async def test_ok_is_success_and_the_payload_has_blocks_and_a_plain_text_fallback(
    notifier: SlackNotifier, receiver: Receiver, message: Message
) -> None:
    await notifier.send(message, config(receiver), delivery_id="d1")
    [request] = receiver.requests
    body = json.loads(request.body)
    assert body["text"] == "LUMN · lumn-q4-miss: LUMN missed: EPS -0.05 vs 0.02 (-350.0%)"
    kinds = [block["type"] for block in body["blocks"]]
    assert kinds == ["header", "section", "section", "context"]
    assert body["blocks"][0]["text"]["text"] == "LUMN · lumn-q4-miss"
    fields = [f["text"] for f in body["blocks"][2]["fields"]]
    assert "*eps_actual*\n-0.05" in fields and "*earnings_date*\n2026-02-03" in fields


async def test_mrkdwn_control_characters_in_the_text_are_escaped(
    notifier: SlackNotifier, receiver: Receiver, message: Message
) -> None:
    from dataclasses import replace

    await notifier.send(
        replace(message, text="<!channel> & <b>"), config(receiver), delivery_id="d"
    )
    section = json.loads(receiver.requests[0].body)["blocks"][1]["text"]["text"]
    assert section == "&lt;!channel&gt; &amp; &lt;b&gt;"


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (400, "invalid_payload"),
        (404, "no_service"),
        (404, "channel_not_found"),
        (410, "channel_is_archived"),
        (403, "action_prohibited"),
        (200, "not ok"),
    ],
)
async def test_slack_error_bodies_are_permanent_with_the_body_in_the_error(
    notifier: SlackNotifier, receiver: Receiver, message: Message, status: int, body: str
) -> None:
    receiver.script(Reply(status, body))
    with pytest.raises(DeliveryError) as caught:
        await notifier.send(message, config(receiver), delivery_id="d")
    assert caught.value.permanent and caught.value.status == status
    assert body in str(caught.value)
    assert len(receiver.requests) == 1


async def test_a_rollup_error_500_is_retryable(
    notifier: SlackNotifier, receiver: Receiver, message: Message
) -> None:
    receiver.script(Reply(500, "rollup_error"))
    with pytest.raises(DeliveryError, match="rollup_error") as caught:
        await notifier.send(message, config(receiver), delivery_id="d")
    assert not caught.value.permanent


async def test_a_429_honours_retry_after_and_holds_that_url_back(
    receiver: Receiver, message: Message
) -> None:
    clock = FakeClock()
    client = H11Client(timeout=0.5, guard=TargetGuard(allow_private=True))
    slack = SlackNotifier(client, pacer=SlackPacer(1.0, clock=clock, sleep=clock.sleep))
    receiver.script(Reply(429, "rate_limited", {"Retry-After": "2"}))
    try:
        with pytest.raises(DeliveryError) as caught:
            await slack.send(message, config(receiver), delivery_id="d")
        assert (caught.value.permanent, caught.value.retry_after) == (False, 2.0)
        await slack.send(message, config(receiver), delivery_id="d")
        await slack.send(message, config(receiver, "/services/other"), delivery_id="e")
    finally:
        await slack.aclose()
    assert clock.slept == [2.0]  # the other URL did not wait


async def test_a_429_with_an_http_date_retry_after_honours_that_date(
    receiver: Receiver, message: Message
) -> None:
    # The receiver's own Date header (BaseHTTPRequestHandler sends one) is what it counts from.
    clock = FakeClock()
    client = H11Client(timeout=0.5, guard=TargetGuard(allow_private=True))
    slack = SlackNotifier(
        client, pacer=SlackPacer(1.0, clock=clock, sleep=clock.sleep, max_wait=60)
    )
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    receiver.script(Reply(429, "rate_limited", {"Retry-After": when}))
    try:
        with pytest.raises(DeliveryError) as caught:
            await slack.send(message, config(receiver), delivery_id="d")
        assert not caught.value.permanent
        assert caught.value.retry_after is not None and 29.0 <= caught.value.retry_after <= 30.0
        await slack.send(message, config(receiver), delivery_id="d")
    finally:
        await slack.aclose()
    assert clock.slept == [caught.value.retry_after]  # the URL was held back that long


async def test_a_timeout_and_a_refused_connection_are_retryable(
    notifier: SlackNotifier, receiver: Receiver, message: Message
) -> None:
    receiver.script(Reply(200, "ok", delay=5.0))
    with pytest.raises(DeliveryError) as slow:
        await notifier.send(message, config(receiver), delivery_id="d")
    closed = Receiver().start()
    closed.stop()
    with pytest.raises(DeliveryError) as refused:
        await notifier.send(message, config(closed), delivery_id="d")
    assert not slow.value.permanent and not refused.value.permanent


async def test_three_messages_to_one_url_are_spaced_by_the_interval_and_none_is_dropped(
    notifier: SlackNotifier, receiver: Receiver, message: Message
) -> None:
    other = Receiver().start()
    try:
        async with anyio.create_task_group() as tg:
            for i in range(3):
                send = partial(notifier.send, message, config(receiver), delivery_id=f"d{i}")
                tg.start_soon(send)
            tg.start_soon(partial(notifier.send, message, config(other), delivery_id="x"))
    finally:
        other.stop()
    times = [r.at for r in receiver.requests]
    assert len(times) == 3
    gaps = [b - a for a, b in itertools.pairwise(times)]
    # The pacer spaces the sends; arrivals carry the loopback's jitter on a loaded machine
    # (one gap seen at 0.177 s of 0.2): each gap well above none, the span the full two.
    assert all(gap >= INTERVAL * 0.75 for gap in gaps), gaps
    assert times[-1] - times[0] >= 2 * INTERVAL * 0.9
    assert other.requests[0].at < times[1]  # another URL is not queued behind this one


async def test_a_turn_further_off_than_max_wait_is_a_retryable_error_not_a_long_sleep() -> None:
    clock = FakeClock()
    pacer = SlackPacer(1.0, clock=clock, sleep=clock.sleep, max_wait=10.0)
    pacer.hold("u", 30.0)
    with pytest.raises(DeliveryError) as caught:
        await pacer.turn("u")
    assert not caught.value.permanent and caught.value.retry_after == pytest.approx(30.0)
    assert clock.slept == []


class FakeClock:
    """Monotonic time that moves only when a pacer sleeps."""

    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds
