"""The ntfy channel against a real HTTP receiver on 127.0.0.1 that answers as ntfy does:
the message JSON on success, ntfy's error JSON (`code`, `http`, `error`, `link`) otherwise."""

from __future__ import annotations

import email.header
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
from service.notify.ntfy import BODY_LIMIT, NtfyConfig, NtfyNotifier, body, header_value
from tests.servers import Receiver, Reply

pytestmark = pytest.mark.anyio
TOPIC = "/earnings-t0p1c-s3cret"
TOKEN = "tk_AgQdq7mVBoFD37zQVN29RhuMzNIz2"


def ntfy_error(code: int, error: str, link: str = "") -> Reply:
    """A reply as ntfy's errHTTP writes it."""
    data = {"code": code, "http": code // 100, "error": error} | ({"link": link} if link else {})
    return Reply(code // 100, json.dumps(data), {"Content-Type": "application/json"})


PUBLISHED = Reply(
    200,
    json.dumps(
        {
            "id": "sPs71M8A2T",
            "time": 1770152700,
            "expires": 1770195900,
            "event": "message",
            "topic": TOPIC.lstrip("/"),
            "title": "LUMN · lumn-q4-miss",
            "message": "LUMN missed",
        }
    ),
    {"Content-Type": "application/json"},
)
UNAUTHORIZED = ntfy_error(40101, "unauthorized", "https://ntfy.sh/docs/publish/#authentication")
FORBIDDEN = ntfy_error(40301, "forbidden", "https://ntfy.sh/docs/publish/#authentication")
TOO_LARGE = ntfy_error(
    41301, "attachment too large, or bandwidth limit reached", "https://ntfy.sh/docs/publish/"
)
RATE_LIMITED = ntfy_error(
    42901, "limit reached: too many requests, please be nice", "https://ntfy.sh/docs/publish/"
)


@pytest.fixture
async def notifier() -> AsyncIterator[NtfyNotifier]:
    client = H11Client(timeout=0.5, guard=TargetGuard(allow_private=True))
    ntfy = NtfyNotifier(client)
    yield ntfy
    await ntfy.aclose()


def config(receiver: Receiver, **extra: object) -> NtfyConfig:
    return NtfyConfig.model_validate({"url": receiver.url_for(TOPIC), **extra})


def decoded(value: str) -> str:
    """A header as a receiver reads it: RFC 2047 encoded words decoded (ntfy uses Go's
    mime.WordDecoder; the standard library's decoder here, not our code)."""
    return str(email.header.make_header(email.header.decode_header(value)))


async def test_the_message_is_posted_as_text_with_title_tags_priority_and_token(
    notifier: NtfyNotifier, receiver: Receiver, message: Message
) -> None:
    receiver.script(PUBLISHED)
    await notifier.send(message, config(receiver, priority=4, token=TOKEN), delivery_id="d1")

    [request] = receiver.requests
    assert (request.method, request.path) == ("POST", TOPIC)
    assert request.body.decode("utf-8") == (
        "LUMN missed: EPS -0.05 vs 0.02 (-350.0%)\n"
        "\n"
        "earnings_date: 2026-02-03\n"
        "eps_actual: -0.05\n"
        "eps_estimate: 0.02"
    )
    assert request.headers["content-type"] == "text/plain; charset=utf-8"
    assert request.headers["title"].isascii()
    assert request.headers["title"].startswith("=?UTF-8?B?")
    assert decoded(request.headers["title"]) == "LUMN · lumn-q4-miss"
    assert request.headers["priority"] == "4"
    assert request.headers["tags"] == "chart_with_upwards_trend"
    assert request.headers["authorization"] == f"Bearer {TOKEN}"


async def test_without_priority_or_token_neither_header_is_sent_and_tags_are_joined(
    notifier: NtfyNotifier, receiver: Receiver, message: Message
) -> None:
    cfg = config(receiver, tags=["chart_with_downwards_trend", "warning", "LUMN"])
    await notifier.send(message, cfg, delivery_id="d")
    [request] = receiver.requests
    assert "priority" not in request.headers and "authorization" not in request.headers
    assert request.headers["tags"] == "chart_with_downwards_trend,warning,LUMN"


async def test_an_empty_tag_list_sends_no_tags_header(
    notifier: NtfyNotifier, receiver: Receiver, message: Message
) -> None:
    await notifier.send(message, config(receiver, tags=[]), delivery_id="d")
    assert "tags" not in receiver.requests[0].headers


def test_unknown_values_read_n_a_and_figures_read_as_on_other_channels(
    message: Message,
) -> None:
    values = {"revenue_actual": 3041000000.0, "price": None, "pct": float("nan"), "eps": 0.1}
    text = body(replace(message, values=values)).decode()
    assert text.splitlines()[2:] == [
        "eps: 0.1",
        "pct: n/a",
        "price: n/a",
        "revenue_actual: 3.041B",
    ]
    assert body(replace(message, values={})) == message.text.encode()


def test_a_long_body_is_cut_at_ntfys_message_limit_on_a_character_boundary(
    message: Message,
) -> None:
    data = body(replace(message, text="é" * BODY_LIMIT, values={"d": date(2026, 2, 3)}))
    assert len(data) <= BODY_LIMIT and data.decode().endswith("…")


@pytest.mark.parametrize("text", ["plain ASCII", "tab\there", "=?UTF-8?Q?looks_encoded?=", "📈 up"])
def test_header_values_are_ascii_and_decode_back_to_the_text(text: str) -> None:
    value = header_value(text)
    assert value.isascii() and value.isprintable()
    assert decoded(value) == text
    assert (value == text) == (text == "plain ASCII")


async def test_a_429_is_retryable_after_ntfys_retry_after(
    notifier: NtfyNotifier, receiver: Receiver, message: Message
) -> None:
    receiver.script(replace(RATE_LIMITED, headers={**RATE_LIMITED.headers, "Retry-After": "5"}))
    with pytest.raises(DeliveryError, match="too many requests") as caught:
        await notifier.send(message, config(receiver), delivery_id="d")
    error = caught.value
    assert (error.permanent, error.retry_after, error.status) == (False, 5.0, 429)
    assert len(receiver.requests) == 1  # one attempt: the worker owns retries


async def test_a_429_without_retry_after_is_retryable_with_no_hint(
    notifier: NtfyNotifier, receiver: Receiver, message: Message
) -> None:
    receiver.script(RATE_LIMITED)
    with pytest.raises(DeliveryError) as caught:
        await notifier.send(message, config(receiver), delivery_id="d")
    assert (caught.value.permanent, caught.value.retry_after) == (False, None)


@pytest.mark.parametrize(
    ("reply", "text"),
    [
        (UNAUTHORIZED, "HTTP 401: unauthorized (40101)"),
        (FORBIDDEN, "HTTP 403: forbidden (40301)"),
        (TOO_LARGE, "HTTP 413: attachment too large, or bandwidth limit reached (41301)"),
        (
            ntfy_error(40007, "invalid priority parameter"),
            "HTTP 400: invalid priority parameter (40007)",
        ),
    ],
)
async def test_auth_and_size_errors_are_permanent_with_ntfys_error_text(
    notifier: NtfyNotifier, receiver: Receiver, message: Message, reply: Reply, text: str
) -> None:
    receiver.script(reply)
    with pytest.raises(DeliveryError) as caught:
        await notifier.send(message, config(receiver, token=TOKEN), delivery_id="d")
    error = caught.value
    assert error.permanent and error.status == reply.status
    assert str(error) == f"{receiver.url}/***: {text}"
    assert "t0p1c" not in str(error) and TOKEN not in str(error)


@pytest.mark.parametrize("status", [500, 502, 503])
async def test_a_5xx_is_retryable(
    notifier: NtfyNotifier, receiver: Receiver, message: Message, status: int
) -> None:
    receiver.script(Reply(status, "<html>bad gateway</html>"))
    with pytest.raises(DeliveryError, match="bad gateway") as caught:
        await notifier.send(message, config(receiver), delivery_id="d")
    assert not caught.value.permanent and caught.value.status == status


async def test_a_reply_quoting_the_topic_is_scrubbed(
    notifier: NtfyNotifier, receiver: Receiver, message: Message
) -> None:
    receiver.script(ntfy_error(40010, f"topic {TOPIC.lstrip('/')} is disallowed"))
    with pytest.raises(DeliveryError) as caught:
        await notifier.send(message, config(receiver), delivery_id="d")
    assert "t0p1c" not in str(caught.value) and "***" in str(caught.value)


async def test_a_redirect_is_permanent_and_not_followed(
    notifier: NtfyNotifier, receiver: Receiver, message: Message
) -> None:
    receiver.script(Reply(301, headers={"Location": receiver.url_for("/other")}))
    with pytest.raises(DeliveryError, match="redirect not followed") as caught:
        await notifier.send(message, config(receiver), delivery_id="d")
    assert caught.value.permanent and [r.path for r in receiver.requests] == [TOPIC]


async def test_a_timeout_and_a_refused_connection_are_retryable(
    notifier: NtfyNotifier, receiver: Receiver, message: Message
) -> None:
    receiver.script(replace(PUBLISHED, delay=5.0))
    with pytest.raises(DeliveryError, match="timed out") as slow:
        await notifier.send(message, config(receiver), delivery_id="d")
    closed = Receiver().start()
    closed.stop()  # the port is now free: nothing listens
    with pytest.raises(DeliveryError) as refused:
        await notifier.send(message, config(closed), delivery_id="d")
    assert not slow.value.permanent and not refused.value.permanent
    assert "t0p1c" not in str(slow.value) + str(refused.value)


def test_destination_is_the_servers_host_and_port() -> None:
    cfg = NtfyConfig.model_validate({"url": "https://ntfy.sh/my-earnings"})
    notifier = NtfyNotifier(H11Client(timeout=0.5, guard=TargetGuard()))
    assert notifier.destination(cfg) == "ntfy.sh:443"


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        ({"priority": 0}, "from 1 (min) to 5 (max)"),
        ({"priority": 6}, "from 1 (min) to 5 (max)"),
        ({"priority": "high"}, "from 1 (min) to 5 (max)"),
        ({"priority": True}, "from 1 (min) to 5 (max)"),
        ({"priority": 2.5}, "from 1 (min) to 5 (max)"),
        ({"tags": ["a,b"]}, "without commas"),
        ({"tags": [""]}, "must not be empty"),
        ({"token": ""}, "must not be empty"),
        ({"token": "Bearer tk_SENTINEL"}, "the access token alone"),
        ({"url": "https://ntfy.sh/"}, "must name the topic"),
        ({"url": "ftp://ntfy.sh/SENTINEL"}, "http:// or https://"),
    ],
)
def test_invalid_options_are_refused_with_a_clear_message_that_quotes_no_secret(
    options: dict[str, object], problem: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        NtfyConfig.model_validate({"url": "https://ntfy.sh/SENTINELtopic", **options})
    text = str(caught.value)
    assert problem in text and "SENTINEL" not in text


def test_every_priority_from_1_to_5_and_one_tag_as_a_string_are_accepted() -> None:
    for priority in range(1, 6):
        assert NtfyConfig.model_validate({"url": "https://ntfy.sh/t", "priority": priority})
    cfg = NtfyConfig.model_validate({"url": "https://ntfy.sh/t", "tags": "warning"})
    assert cfg.tags == ("warning",)
    assert NtfyConfig.model_validate({"url": "https://ntfy.sh/t"}).tags == (
        "chart_with_upwards_trend",
    )


def test_the_config_never_prints_its_topic_or_token() -> None:
    cfg = NtfyConfig.model_validate(
        {"url": "https://ntfy.sh/SENTINELtopic", "token": "tk_SENTINELtoken"}
    )
    assert "SENTINEL" not in repr(cfg) and "SENTINEL" not in str(cfg)
