"""The webhook channel against a real HTTP receiver on 127.0.0.1."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import replace

import pytest
from pydantic import ValidationError

from service.errors import DeliveryError
from service.h11client import H11Client
from service.httpclient import TargetGuard
from service.notify.base import Message
from service.notify.webhook import WebhookConfig, WebhookNotifier, sign, signing_key
from tests.servers import Receiver, Reply

pytestmark = pytest.mark.anyio
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def verify(secret: str, headers: Mapping[str, str], body: bytes, *, tolerance: float = 300) -> bool:
    """A receiver's check, written from the Standard Webhooks spec, not from our code."""
    key = (
        base64.b64decode(secret.removeprefix("whsec_"))
        if secret.startswith("whsec_")
        else secret.encode()
    )
    msg_id, timestamp = headers["webhook-id"], headers["webhook-timestamp"]
    if abs(time.time() - int(timestamp)) > tolerance:
        return False
    signed = f"{msg_id}.{timestamp}.".encode() + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    for candidate in headers["webhook-signature"].split(" "):
        version, _, value = candidate.partition(",")
        if version == "v1" and hmac.compare_digest(value, expected):
            return True
    return False


@pytest.fixture
async def notifier() -> AsyncIterator[WebhookNotifier]:
    client = H11Client(timeout=0.5, guard=TargetGuard(allow_private=True))
    webhook = WebhookNotifier(client)
    yield webhook
    await webhook.aclose()


def config(receiver: Receiver, **extra: object) -> WebhookConfig:
    return WebhookConfig.model_validate({"url": receiver.url_for("/hook?token=t0k"), **extra})


def test_the_standard_webhooks_test_vector_is_reproduced_byte_for_byte() -> None:
    key = signing_key(SECRET)
    signature = sign(key, "msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330", b'{"test": 2432232314}')
    assert signature == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


async def test_a_signed_delivery_verifies_with_the_secret_and_carries_the_documented_payload(
    notifier: WebhookNotifier, receiver: Receiver, message: Message
) -> None:
    await notifier.send(message, config(receiver, secret=SECRET), delivery_id="dlv_1")

    [request] = receiver.requests
    assert verify(SECRET, request.headers, request.body)
    assert request.headers["webhook-id"] == "msg_dlv_1"
    assert abs(int(request.headers["webhook-timestamp"]) - time.time()) <= 5
    assert request.headers["content-type"] == "application/json"
    assert json.loads(request.body) == {
        "version": "1",
        "type": "alert.fired",
        "alert_id": "alert_01JABCDEF",
        "rule": "lumn-q4-miss",
        "symbol": "LUMN",
        "title": "LUMN · lumn-q4-miss",
        "message": "LUMN missed: EPS -0.05 vs 0.02 (-350.0%)",
        "fired_at": "2026-02-03T21:05:00+00:00",
        "values": {"eps_actual": -0.05, "eps_estimate": 0.02, "earnings_date": "2026-02-03"},
    }


async def test_a_tampered_body_or_a_wrong_secret_fails_verification(
    notifier: WebhookNotifier, receiver: Receiver, message: Message
) -> None:
    await notifier.send(message, config(receiver, secret=SECRET), delivery_id="dlv_1")
    [request] = receiver.requests
    flipped = bytes([request.body[0] ^ 1]) + request.body[1:]
    assert not verify(SECRET, request.headers, flipped)
    assert not verify(
        "whsec_" + base64.b64encode(b"x" * 24).decode(), request.headers, request.body
    )


async def test_a_plain_string_secret_is_used_as_its_utf8_bytes(
    notifier: WebhookNotifier, receiver: Receiver, message: Message
) -> None:
    await notifier.send(message, config(receiver, secret="correct horse"), delivery_id="d2")
    [request] = receiver.requests
    assert verify("correct horse", request.headers, request.body)
    assert verify(
        "whsec_" + base64.b64encode(b"correct horse").decode(), request.headers, request.body
    )


async def test_without_a_secret_id_and_timestamp_are_sent_but_no_signature(
    notifier: WebhookNotifier, receiver: Receiver, message: Message
) -> None:
    await notifier.send(message, config(receiver), delivery_id="d3")
    [request] = receiver.requests
    assert request.headers["webhook-id"] == "msg_d3"
    assert "webhook-signature" not in request.headers


async def test_three_500s_then_200_take_four_sends_with_the_same_id_and_body_bytes(
    notifier: WebhookNotifier, receiver: Receiver, message: Message
) -> None:
    receiver.script(500, 500, 500, 200)
    cfg = config(receiver, secret=SECRET)
    outcomes = []
    for _ in range(4):  # the delivery worker's loop, by hand
        try:
            await notifier.send(message, cfg, delivery_id="dlv_42")
            outcomes.append("ok")
        except DeliveryError as exc:
            assert not exc.permanent and exc.status == 500
            outcomes.append("retry")

    assert outcomes == ["retry", "retry", "retry", "ok"]
    assert {r.headers["webhook-id"] for r in receiver.requests} == {"msg_dlv_42"}
    assert len({r.body for r in receiver.requests}) == 1
    assert all(verify(SECRET, r.headers, r.body) for r in receiver.requests)
    stamps = [int(r.headers["webhook-timestamp"]) for r in receiver.requests]
    assert stamps == sorted(stamps)


async def test_a_429_with_retry_after_is_retryable_after_that_many_seconds(
    notifier: WebhookNotifier, receiver: Receiver, message: Message
) -> None:
    receiver.script(Reply(429, "slow down", {"Retry-After": "2"}))
    with pytest.raises(DeliveryError) as caught:
        await notifier.send(message, config(receiver), delivery_id="d")
    assert (caught.value.permanent, caught.value.retry_after, caught.value.status) == (
        False,
        2.0,
        429,
    )


@pytest.mark.parametrize("status", [400, 401, 403, 404, 410, 413, 422])
async def test_a_4xx_is_a_permanent_failure(
    notifier: WebhookNotifier, receiver: Receiver, message: Message, status: int
) -> None:
    receiver.script(Reply(status, "nope"))
    with pytest.raises(DeliveryError) as caught:
        await notifier.send(message, config(receiver), delivery_id="d")
    assert caught.value.permanent and caught.value.status == status
    assert len(receiver.requests) == 1


@pytest.mark.parametrize("status", [301, 302, 307])
async def test_a_redirect_is_a_permanent_failure_and_is_not_followed(
    notifier: WebhookNotifier, receiver: Receiver, message: Message, status: int
) -> None:
    receiver.script(Reply(status, headers={"Location": receiver.url_for("/elsewhere")}))
    with pytest.raises(DeliveryError, match="redirect not followed") as caught:
        await notifier.send(message, config(receiver), delivery_id="d")
    assert caught.value.permanent
    assert [r.path for r in receiver.requests] == ["/hook?token=t0k"]


async def test_a_receiver_slower_than_the_timeout_is_a_retryable_failure(
    notifier: WebhookNotifier, receiver: Receiver, message: Message
) -> None:
    receiver.script(Reply(200, delay=5.0))
    with pytest.raises(DeliveryError, match="timed out") as caught:
        await notifier.send(message, config(receiver), delivery_id="d")
    assert not caught.value.permanent


async def test_a_refused_connection_is_a_retryable_failure(
    notifier: WebhookNotifier, message: Message
) -> None:
    closed = Receiver().start()
    closed.stop()  # the port is now free: nothing listens
    cfg = WebhookConfig.model_validate({"url": closed.url + "/hook"})
    with pytest.raises(DeliveryError) as caught:
        await notifier.send(message, cfg, delivery_id="d")
    assert not caught.value.permanent


async def test_configured_headers_are_sent(
    notifier: WebhookNotifier, receiver: Receiver, message: Message
) -> None:
    cfg = config(receiver, headers={"Authorization": "Bearer abc", "X-Team": "ops"})
    await notifier.send(message, cfg, delivery_id="d")
    [request] = receiver.requests
    assert request.headers["authorization"] == "Bearer abc"
    assert request.headers["x-team"] == "ops"


@pytest.mark.parametrize(
    "headers",
    [
        {"Host": "x"},
        {"Content-Length": "1"},
        {"webhook-id": "x"},
        {"X-A": "a\r\nB: c"},
        {"a b": "c"},
    ],
)
def test_headers_that_we_set_or_that_carry_cr_lf_are_refused(headers: dict[str, str]) -> None:
    with pytest.raises(ValidationError):
        WebhookConfig.model_validate({"url": "https://example.com/h", "headers": headers})


@pytest.mark.parametrize(
    "url", ["ftp://example.com/x", "file:///etc/passwd", "example.com/hook", "http:///nohost"]
)
def test_a_url_that_is_not_http_with_a_host_is_refused(url: str) -> None:
    with pytest.raises(ValidationError):
        WebhookConfig.model_validate({"url": url})


def test_a_whsec_secret_that_is_not_base64_is_refused() -> None:
    with pytest.raises(ValidationError):
        WebhookConfig.model_validate({"url": "https://example.com/h", "secret": "whsec_!!!"})


def test_the_config_never_prints_its_url_or_secret() -> None:
    cfg = WebhookConfig.model_validate(
        {"url": "https://example.com/SENTINELpath", "secret": "SENTINELsecret"}
    )
    assert "SENTINEL" not in repr(cfg) and "SENTINEL" not in str(cfg)


def test_the_body_is_the_same_bytes_after_the_outbox_round_trip(message: Message) -> None:
    from service.notify.webhook import payload

    assert payload(Message.from_json(message.to_json())) == payload(message)


def test_the_fired_payload_stays_byte_for_byte_as_documented(message: Message) -> None:
    from service.notify.webhook import payload

    assert (
        payload(message)
        == (
            '{"version":"1","type":"alert.fired","alert_id":"alert_01JABCDEF",'
            '"rule":"lumn-q4-miss","symbol":"LUMN","title":"LUMN · lumn-q4-miss",'
            '"message":"LUMN missed: EPS -0.05 vs 0.02 (-350.0%)",'
            '"fired_at":"2026-02-03T21:05:00+00:00",'
            '"values":{"earnings_date":"2026-02-03","eps_actual":-0.05,"eps_estimate":0.02}}'
        ).encode()
    )


async def test_a_resolved_message_is_sent_as_alert_resolved_naming_the_alert_it_resolves(
    notifier: WebhookNotifier, receiver: Receiver
) -> None:
    from datetime import UTC, datetime

    from service.engine import Alert
    from service.notify.render import render

    alert = Alert(
        rule="lumn-above-target",
        symbol="LUMN",
        dedup_key="k|resolved",
        fired_at=datetime(2026, 2, 4, 15, 10, tzinfo=UTC),
        text="RESOLVED: LUMN: lumn-above-target no longer holds (price 7.38)",
        channels=("ops-hook",),
        values={"price": 7.38},
        kind="resolved",
        resolves_key="k",
    )
    stored = Message.from_json(
        replace(render(alert, "alert_02"), resolves="alert_01").to_json()
    )  # as the outbox keeps it
    await notifier.send(stored, config(receiver, secret=SECRET), delivery_id="dlv_2")

    [request] = receiver.requests
    assert verify(SECRET, request.headers, request.body)
    body = json.loads(request.body)
    assert body == {
        "version": "1",
        "type": "alert.resolved",
        "alert_id": "alert_02",
        "rule": "lumn-above-target",
        "symbol": "LUMN",
        "title": "LUMN · lumn-above-target resolved",
        "message": "RESOLVED: LUMN: lumn-above-target no longer holds (price 7.38)",
        "fired_at": "2026-02-04T15:10:00+00:00",
        "values": {"price": 7.38},
        "resolves": "alert_01",
    }
    assert list(body)[-1] == "resolves"
