"""The `telegram` channel: one Bot API `sendMessage` per alert, in plain text, paced per
chat.

Request: `POST {api_url}/bot{bot_token}/sendMessage` with JSON `{"chat_id": ..., "text":
...}`; no `parse_mode`, so nothing needs escaping. The text is the title, the alert text
and the values (sorted by name, unknown ones as `n/a`), cut to Telegram's 4,096
characters. The token is in the URL path, so that URL never goes into an error or a log:
errors name the API's host.

Outcomes follow the Bot API's replies, which are JSON with `ok`: a 200 with `"ok": true`
is success; a 429 is retryable and honours `parameters.retry_after` (or `Retry-After`);
5xx is retryable; any other reply (400 `Bad Request: chat not found`, 401 `Unauthorized`,
403 `Forbidden: bot was blocked by the user`, a 200 that is not `"ok": true`, a redirect)
is permanent, with Telegram's `description` in the error. Pacing: at most one message per
`interval` per chat and bot (Telegram allows about one a second); a 429 holds that chat
back for its `retry_after`. A turn further off than `max_wait` is not waited for: it
raises a retryable DeliveryError with `retry_after` set to the wait.
"""

from __future__ import annotations

import json
import math
import re
from typing import TYPE_CHECKING, Any, ClassVar, Final

from pydantic import SecretStr, StrictInt, StrictStr, field_validator

from service.errors import DeliveryError
from service.figures import shown_values
from service.notify.base import (
    ChannelConfig,
    Message,
    is_permanent,
)
from service.notify.http import (
    DETAIL_CHARS,
    Reply,
    detail,
    expect,
    http_url,
    post,
    scrub,
    url_destination,
)
from service.notify.pacing import Pacer
from service.notify.plugin import ChannelType, NotifierContext
from service.retry_after import RETRY_AFTER_CAP, retry_after

if TYPE_CHECKING:  # h11 loads with the client (NotifierContext.http_client), not the registry
    from service.h11client import H11Client

DEFAULT_API_URL: Final = "https://api.telegram.org"
TEXT_LIMIT: Final = 4096  # Telegram's limit, counted here in UTF-16 units (never over)
_TOKEN = re.compile(r"^[A-Za-z0-9:_-]+$")  # nothing that could change the URL's path
_USERNAME = re.compile(r"^@[A-Za-z][A-Za-z0-9_]{3,}$")
_NUMERIC = re.compile(r"^-?[0-9]+$")
_RETRY_IN_TEXT = re.compile(r"retry after (\d+)")


class TelegramConfig(ChannelConfig):
    """A `type: telegram` channel. `bot_token` is a secret (never printed); `chat_id` is a
    number (`-1001234567890`) or a `@channelname`, sent as given."""

    bot_token: SecretStr
    chat_id: StrictInt | StrictStr
    api_url: str = DEFAULT_API_URL

    @field_validator("bot_token")
    @classmethod
    def _token(cls, value: SecretStr) -> SecretStr:
        if not _TOKEN.match(value.get_secret_value()):
            raise ValueError("must be a bot token from @BotFather (digits, ':', letters, _ -)")
        return value

    @field_validator("chat_id", mode="before")
    @classmethod
    def _chat_id(cls, value: object) -> object:
        # Before the union: one message for every wrong shape, not one per member.
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str) and (_USERNAME.match(value) or _NUMERIC.match(value)):
            return value
        raise ValueError("must be a numeric chat id (-1001234567890) or a @channelname")

    @field_validator("api_url")
    @classmethod
    def _api_url(cls, value: str) -> str:
        http_url(SecretStr(value))
        if "?" in value or "#" in value:
            raise ValueError("must not have a query or a fragment")
        return value.rstrip("/")


class ChatPacer(Pacer):
    """Per bot and chat: Telegram allows about one message a second per chat."""

    what = "Telegram chat"


def _utf16_units(char: str) -> int:
    return 2 if ord(char) > 0xFFFF else 1


def _cut(text: str, limit: int = TEXT_LIMIT) -> str:
    """`text` in at most `limit` UTF-16 units (how Telegram counts), `…` when cut."""
    if sum(_utf16_units(ch) for ch in text) <= limit:
        return text
    kept: list[str] = []
    used = 1  # room for the ellipsis
    for ch in text:
        used += _utf16_units(ch)
        if used > limit:
            break
        kept.append(ch)
    return "".join(kept) + "…"


def text_of(message: Message) -> str:
    """The plain message text: title, alert text, then one `name: value` line per value,
    sorted by name (unknown ones as `n/a`, as on every channel)."""
    lines = [message.title, message.text]
    values = [f"{name}: {text}" for name, text in shown_values(message.values)]
    if values:
        lines += ["", *values]
    return _cut("\n".join(lines))


def payload(message: Message, config: TelegramConfig) -> bytes:
    """The request body: a pure function of the message and the chat."""
    return json.dumps(
        {"chat_id": config.chat_id, "text": text_of(message)},
        ensure_ascii=False,
        separators=(",", ":"),
        allow_nan=False,
    ).encode()


def _answer(reply: Reply) -> dict[str, Any] | None:
    """The reply's JSON object, or None when the body is not one (a proxy's HTML page)."""
    if reply.truncated:
        return None
    try:
        data = json.loads(reply.body)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _seconds(value: object) -> float | None:
    """`value` as seconds if it is a JSON number (finite, not negative, not a bool)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) and value >= 0 else None


def _retry_after(reply: Reply, answer: dict[str, Any] | None) -> float | None:
    """Seconds to wait: Telegram's `parameters.retry_after`, else the `Retry-After`
    header, else a `retry after N` in a 429's description; capped at RETRY_AFTER_CAP."""
    seconds: float | None = None
    if answer is not None:
        parameters = answer.get("parameters")
        if isinstance(parameters, dict):
            seconds = _seconds(parameters.get("retry_after"))
    if seconds is None:
        seconds = retry_after(reply.headers)
    if seconds is None and reply.status_code == 429 and answer is not None:
        found = _RETRY_IN_TEXT.search(str(answer.get("description", "")))
        seconds = float(found.group(1)) if found else None
    return None if seconds is None else min(seconds, RETRY_AFTER_CAP)


def _why(reply: Reply, answer: dict[str, Any] | None, config: TelegramConfig) -> str:
    """What went wrong, in Telegram's words when it gave some (scrubbed of the token)."""
    status = reply.status_code
    if 300 <= status < 400:
        return "redirect not followed"
    description = answer.get("description") if answer is not None else None
    if isinstance(description, str) and description:
        text = scrub(" ".join(description.split()), config)
        why = text[:DETAIL_CHARS] + ("…" if len(text) > DETAIL_CHARS else "")
        parameters = answer.get("parameters") if answer is not None else None
        if isinstance(parameters, dict) and isinstance(parameters.get("migrate_to_chat_id"), int):
            why += f" (the group is now chat_id {parameters['migrate_to_chat_id']})"
        return why
    if status == 200 and answer is not None:
        return f'a reply without "ok": true: {detail(reply, config)}'
    if status == 200:
        return f"not a Bot API reply (JSON with ok): {detail(reply, config) or '(empty body)'}"
    return detail(reply, config) or "(empty body)"


class TelegramNotifier:
    """One paced sendMessage per send(). Owns its (guarded) client; close with aclose()."""

    kind: ClassVar[str] = "telegram"
    Config: ClassVar[type[ChannelConfig]] = TelegramConfig

    def __init__(
        self, client: H11Client, *, pacer: ChatPacer | None = None, deadline: float = 10.0
    ) -> None:
        """`pacer`'s `max_wait` should stay well under `deadline`: a turn further off is
        a retry at that time, not a send cut short by its deadline."""
        self._client = client
        self._pacer = pacer or ChatPacer(1.0, max_wait=deadline / 2)
        self.deadline = deadline

    def destination(self, config: ChannelConfig) -> str:
        return url_destination(expect(config, TelegramConfig).api_url)

    async def send(self, message: Message, config: ChannelConfig, *, delivery_id: str) -> None:
        """Return when Telegram answers `"ok": true`; raise DeliveryError otherwise."""
        cfg = expect(config, TelegramConfig)
        token = cfg.bot_token.get_secret_value()
        # In memory only: a bot's limit is per chat, and two bots have their own.
        key = f"{cfg.api_url}\0{token}\0{cfg.chat_id}"
        await self._pacer.turn(key)
        url = f"{cfg.api_url}/bot{token}/sendMessage"
        reply = await post(
            self._client, url, payload(message, cfg), {"content-type": "application/json"}
        )
        answer = _answer(reply)
        status = reply.status_code
        if status == 200 and answer is not None and answer.get("ok") is True:
            return
        wait = _retry_after(reply, answer)
        if status == 429 or wait is not None:
            self._pacer.hold(key, wait if wait is not None else 1.0)
        permanent = is_permanent(status)
        raise DeliveryError(
            f"Telegram {self.destination(cfg)}: HTTP {status}: {_why(reply, answer, cfg)}",
            permanent=permanent,
            retry_after=wait,
            status=status,
        )

    async def aclose(self) -> None:
        await self._client.aclose()


def _build(context: NotifierContext) -> TelegramNotifier:
    # A chat's turn further off than half the deadline is a retry then, not a cut send.
    pacer = ChatPacer(1.0, max_wait=context.deadline / 2)
    return TelegramNotifier(context.http_client(), pacer=pacer, deadline=context.deadline)


CHANNEL: Final = ChannelType(
    notifier=TelegramNotifier,
    url_fields=frozenset({"api_url"}),
    secret_fields=frozenset({"bot_token"}),
    build=_build,
    example={
        "bot_token": "123456789:AAEXAMPLE-bot_tokenSECRET0123456789",
        "chat_id": -1001234567890,
        "api_url": DEFAULT_API_URL,
    },
)
