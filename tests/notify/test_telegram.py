"""The Telegram channel against a real HTTP receiver on 127.0.0.1 answering as the Bot API
does: `{"ok": true, "result": ...}`, flood control (429 with `parameters.retry_after`),
`{"ok": false, "description": ...}` failures, and pacing per chat."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import date
from typing import Any

import pytest
from pydantic import ValidationError

from service.errors import DeliveryError
from service.h11client import H11Client
from service.httpclient import TargetGuard
from service.notify.base import Message
from service.notify.telegram import (
    DEFAULT_API_URL,
    TEXT_LIMIT,
    ChatPacer,
    TelegramConfig,
    TelegramNotifier,
    text_of,
)
from tests.notify.leaks import assert_no_secret_leaks
from tests.notify.test_slack import FakeClock
from tests.servers import Receiver, Reply

pytestmark = pytest.mark.anyio
TOKEN = "123456789:AAtestSECRETtoken_0123456789abcdef"
CHAT = -1001234567890
TEXT = (
    "LUMN · lumn-q4-miss\n"
    "LUMN missed: EPS -0.05 vs 0.02 (-350.0%)\n"
    "\n"
    "earnings_date: 2026-02-03\n"
    "eps_actual: -0.05\n"
    "eps_estimate: 0.02"
)


def sent(chat_id: int | str = CHAT, text: str = TEXT) -> Reply:
    """Telegram's success reply: the sent Message."""
    result = {"message_id": 42, "date": 1770152700, "chat": {"id": chat_id}, "text": text}
    return Reply(200, json.dumps({"ok": True, "result": result}))


def failed(status: int, description: str, **parameters: Any) -> Reply:
    """Telegram's failure reply, as the Bot API sends it."""
    body: dict[str, Any] = {"ok": False, "error_code": status, "description": description}
    if parameters:
        body["parameters"] = parameters
    return Reply(status, json.dumps(body), {"Content-Type": "application/json"})


@pytest.fixture
async def notifier() -> AsyncIterator[TelegramNotifier]:
    client = H11Client(timeout=0.5, guard=TargetGuard(allow_private=True))
    telegram = TelegramNotifier(client, pacer=ChatPacer(0.0))
    yield telegram
    await telegram.aclose()


def config(receiver: Receiver, chat_id: int | str = CHAT, path: str = "") -> TelegramConfig:
    return TelegramConfig.model_validate(
        {"bot_token": TOKEN, "chat_id": chat_id, "api_url": receiver.url_for(path)}
    )


@pytest.mark.parametrize("chat_id", [CHAT, "@earnings_desk", "-1001234567890"])
async def test_one_send_is_one_sendmessage_post_with_the_chat_id_as_given_and_plain_text(
    notifier: TelegramNotifier, receiver: Receiver, message: Message, chat_id: int | str
) -> None:
    receiver.script(sent(chat_id))
    await notifier.send(message, config(receiver, chat_id), delivery_id="d1")
    [request] = receiver.requests
    assert (request.method, request.path) == ("POST", f"/bot{TOKEN}/sendMessage")
    assert request.headers["content-type"] == "application/json"
    assert json.loads(request.body) == {"chat_id": chat_id, "text": TEXT}  # no parse_mode
    assert type(json.loads(request.body)["chat_id"]) is type(chat_id)


async def test_a_self_hosted_api_url_with_a_path_and_a_trailing_slash_is_joined_once(
    notifier: TelegramNotifier, receiver: Receiver, message: Message
) -> None:
    receiver.script(sent())
    await notifier.send(message, config(receiver, path="/tg/"), delivery_id="d")
    assert receiver.requests[0].path == f"/tg/bot{TOKEN}/sendMessage"


async def test_flood_control_429_is_retryable_after_telegrams_retry_after_and_holds_the_chat(
    receiver: Receiver, message: Message
) -> None:
    clock = FakeClock()
    client = H11Client(timeout=0.5, guard=TargetGuard(allow_private=True))
    telegram = TelegramNotifier(
        client, pacer=ChatPacer(1.0, clock=clock, sleep=clock.sleep, max_wait=30.0)
    )
    receiver.script(failed(429, "Too Many Requests: retry after 5", retry_after=5), sent(), sent())
    try:
        with pytest.raises(DeliveryError) as caught:
            await telegram.send(message, config(receiver), delivery_id="d")
        assert (caught.value.permanent, caught.value.retry_after) == (False, 5.0)
        assert caught.value.status == 429
        assert "Too Many Requests: retry after 5" in str(caught.value)
        await telegram.send(message, config(receiver), delivery_id="d")
        await telegram.send(message, config(receiver, "@another_chat"), delivery_id="e")
    finally:
        await telegram.aclose()
    assert clock.slept == [5.0]  # the other chat did not wait
    assert len(receiver.requests) == 3


async def test_a_429_without_parameters_takes_the_wait_from_its_description(
    notifier: TelegramNotifier, receiver: Receiver, message: Message
) -> None:
    receiver.script(failed(429, "Too Many Requests: retry after 34"))
    with pytest.raises(DeliveryError) as caught:
        await notifier.send(message, config(receiver), delivery_id="d")
    assert (caught.value.permanent, caught.value.retry_after) == (False, 34.0)


@pytest.mark.parametrize(
    ("status", "description"),
    [
        (400, "Bad Request: chat not found"),
        (403, "Forbidden: bot was blocked by the user"),
        (401, "Unauthorized"),
        (404, "Not Found"),
    ],
)
async def test_telegram_refusals_fail_for_good_with_its_description_and_no_token(
    notifier: TelegramNotifier,
    receiver: Receiver,
    message: Message,
    status: int,
    description: str,
) -> None:
    receiver.script(failed(status, description))
    with pytest.raises(DeliveryError) as caught:
        await notifier.send(message, config(receiver), delivery_id="d")
    error = caught.value
    assert error.permanent and error.status == status and error.retry_after is None
    assert str(error) == f"Telegram 127.0.0.1:{receiver.port}: HTTP {status}: {description}"
    assert len(receiver.requests) == 1
    assert_no_secret_leaks([TOKEN, TOKEN.split(":")[1]], error=error)


async def test_a_group_upgraded_to_a_supergroup_names_the_new_chat_id(
    notifier: TelegramNotifier, receiver: Receiver, message: Message
) -> None:
    receiver.script(
        failed(
            400,
            "Bad Request: group chat was upgraded to a supergroup chat",
            migrate_to_chat_id=-1009876543210,
        )
    )
    with pytest.raises(DeliveryError, match=r"now chat_id -1009876543210") as caught:
        await notifier.send(message, config(receiver), delivery_id="d")
    assert caught.value.permanent


@pytest.mark.parametrize(
    ("reply", "said"),
    [
        (Reply(200, '{"ok": false, "description": "odd"}'), "HTTP 200: odd"),
        (Reply(200, '{"result": {}}'), 'HTTP 200: a reply without "ok": true: {"result": {}}'),
        (Reply(200, "ok"), "HTTP 200: not a Bot API reply (JSON with ok): ok"),
        (Reply(200, ""), "HTTP 200: not a Bot API reply (JSON with ok): (empty body)"),
        (Reply(302, headers={"Location": "http://169.254.169.254/"}), "redirect not followed"),
    ],
)
async def test_a_200_that_is_not_ok_true_and_a_redirect_are_permanent_and_say_what_came(
    notifier: TelegramNotifier, receiver: Receiver, message: Message, reply: Reply, said: str
) -> None:
    receiver.script(reply)
    with pytest.raises(DeliveryError) as caught:
        await notifier.send(message, config(receiver), delivery_id="d")
    assert caught.value.permanent and str(caught.value).endswith(said), str(caught.value)
    assert len(receiver.requests) == 1


@pytest.mark.parametrize(
    "reply",
    [
        failed(500, "Internal Server Error"),
        Reply(502, "<html><body>502 Bad Gateway</body></html>"),
        Reply(503, "", {"Retry-After": "7"}),
    ],
)
async def test_server_errors_are_retryable(
    notifier: TelegramNotifier, receiver: Receiver, message: Message, reply: Reply
) -> None:
    receiver.script(reply)
    with pytest.raises(DeliveryError) as caught:
        await notifier.send(message, config(receiver), delivery_id="d")
    assert not caught.value.permanent and caught.value.status == reply.status
    assert caught.value.retry_after == (7.0 if reply.status == 503 else None)


async def test_a_timeout_and_a_refused_connection_are_retryable_and_name_only_the_host(
    notifier: TelegramNotifier, receiver: Receiver, message: Message
) -> None:
    receiver.script(Reply(200, "", delay=5.0))
    with pytest.raises(DeliveryError) as slow:
        await notifier.send(message, config(receiver), delivery_id="d")
    closed = Receiver().start()
    closed.stop()
    with pytest.raises(DeliveryError) as refused:
        await notifier.send(message, config(closed), delivery_id="d")
    for error in (slow.value, refused.value):
        assert not error.permanent
        assert "127.0.0.1" in str(error) and "/bot" not in str(error)
        assert_no_secret_leaks([TOKEN, TOKEN.split(":")[1]], error=error)


async def test_a_description_that_quotes_the_token_is_scrubbed(
    notifier: TelegramNotifier, receiver: Receiver, message: Message
) -> None:
    receiver.script(failed(404, f"Not Found: /bot{TOKEN}/sendMessage"))
    with pytest.raises(DeliveryError) as caught:
        await notifier.send(message, config(receiver), delivery_id="d")
    assert "Not Found: /bot***/sendMessage" in str(caught.value)
    assert_no_secret_leaks([TOKEN], error=caught.value)


async def test_a_turn_further_off_than_max_wait_is_a_retryable_error_not_a_long_sleep() -> None:
    clock = FakeClock()
    pacer = ChatPacer(1.0, clock=clock, sleep=clock.sleep, max_wait=10.0)
    await pacer.turn("chat")
    await pacer.turn("chat")
    pacer.hold("chat", 30.0)
    with pytest.raises(DeliveryError) as caught:
        await pacer.turn("chat")
    assert not caught.value.permanent and caught.value.retry_after == pytest.approx(30.0)
    assert clock.slept == [1.0]


# --- the text -----------------------------------------------------------------------------


def test_the_text_shows_unknown_values_as_n_a_and_figures_as_slack_and_email_do(
    message: Message,
) -> None:
    values = {
        "revenue_actual": 3041000000.0,
        "b": None,
        "a": float("nan"),
        "when": date(2026, 1, 2),
    }
    text = text_of(replace(message, values=values))
    assert text.splitlines()[3:] == [
        "a: n/a",
        "b: n/a",
        "revenue_actual: 3.041B",
        "when: 2026-01-02",
    ]
    assert text_of(replace(message, values={})) == "LUMN · lumn-q4-miss\n" + message.text


def test_the_text_is_cut_to_telegrams_4096_characters_counted_as_telegram_counts(
    message: Message,
) -> None:
    text = text_of(replace(message, text="📈" * 5000, values={}))
    assert len(text.encode("utf-16-le")) // 2 <= TEXT_LIMIT and text.endswith("…")
    assert text_of(replace(message, text="x" * (TEXT_LIMIT - 20), values={})).endswith("x")


# --- the options ----------------------------------------------------------------------------


def test_the_api_url_defaults_to_telegram_and_the_destination_is_its_host_and_port() -> None:
    cfg = TelegramConfig.model_validate({"bot_token": TOKEN, "chat_id": CHAT})
    assert cfg.api_url == DEFAULT_API_URL
    notifier = TelegramNotifier(H11Client(timeout=1.0, guard=TargetGuard()))
    assert notifier.destination(cfg) == "api.telegram.org:443"
    assert TOKEN not in repr(cfg)


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"bot_token": "123:abc/../../getMe"}, "bot_token"),
        ({"bot_token": ""}, "bot_token"),
        ({"chat_id": True}, "chat_id"),
        ({"chat_id": 1.5}, "chat_id"),
        ({"chat_id": "my chat"}, "chat_id"),
        ({"chat_id": None}, "chat_id"),
        ({"api_url": "ftp://api.telegram.org"}, "api_url"),
        ({"api_url": "https://tg.example.com/?x=1"}, "api_url"),
        ({"url": "https://api.telegram.org"}, "url"),
    ],
)
def test_bad_options_are_refused_without_quoting_the_token(
    options: dict[str, Any], field: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        TelegramConfig.model_validate({"bot_token": TOKEN, "chat_id": CHAT, **options})
    errors = caught.value.errors(include_input=False)
    assert [e["loc"] for e in errors] == [(field,)]  # one message, even for the union
    assert TOKEN not in str(caught.value) and "abc/../" not in str(errors)
