"""The `discord` channel: one message to a Discord webhook, a short `content` line (the
title, shown in push notifications) and one embed with the alert text and its values.

Outcomes follow Discord's documented replies: 204 (or 200 with the message, when the URL
asks `?wait=true`) is success; 429 is retryable and honours the reply's `retry_after`
(seconds, a float), else its `Retry-After` header; 5xx is retryable; 404 `Unknown
Webhook` (code 10015: the webhook was deleted) and every other 4xx are permanent, with
Discord's `message` kept in the error. `allowed_mentions` is empty: an alert text holding
`@everyone` or `<@id>` pings no one. The webhook URL holds its token: errors name the host
only, and a reply's text is scrubbed of the URL's path before it is kept.
"""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any, ClassVar, Final
from urllib.parse import urlsplit

from pydantic import SecretStr, field_validator

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
from service.notify.plugin import ChannelType, NotifierContext
from service.retry_after import retry_after

if TYPE_CHECKING:  # h11 loads with the client (NotifierContext.http_client), not the registry
    from service.h11client import H11Client

# Discord's limits (characters): message content, and an embed's parts and total.
CONTENT_LIMIT: Final = 2000
TITLE_LIMIT: Final = 256
DESCRIPTION_LIMIT: Final = 4096
MAX_FIELDS: Final = 25
FIELD_NAME_LIMIT: Final = 256
FIELD_VALUE_LIMIT: Final = 1024
EMBED_TOTAL_LIMIT: Final = 6000
COLOR: Final = 0xE67E22  # the embed's side bar: an alert orange


class DiscordConfig(ChannelConfig):
    """A `type: discord` channel: `url`, the channel's webhook URL
    (`https://discord.com/api/webhooks/{id}/{token}`; a secret, never printed)."""

    # A refused URL is not quoted even in a raw ValidationError (the loader's problems
    # already leave the input out; a traceback or a caller's str(exc) would not).

    url: SecretStr

    _url = field_validator("url")(http_url)


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _fields(message: Message, room: int) -> list[dict[str, Any]]:
    """The values, sorted by name (unknown ones as `n/a`, as on every channel), as inline
    fields: at most `MAX_FIELDS`, and only as many as fit in `room` characters (the
    embed's total limit)."""
    fields: list[dict[str, Any]] = []
    for name, shown in shown_values(message.values):
        label = _cut(name, FIELD_NAME_LIMIT)
        text = _cut(shown or "-", FIELD_VALUE_LIMIT)
        room -= len(label) + len(text)
        if room < 0 or len(fields) == MAX_FIELDS:
            break
        fields.append({"name": label, "value": text, "inline": True})
    return fields


def payload(message: Message) -> dict[str, Any]:
    """The webhook body: a pure function of the message (same bytes on every retry)."""
    title = _cut(message.title, TITLE_LIMIT)
    embed: dict[str, Any] = {"title": title, "color": COLOR}
    if message.text:
        embed["description"] = _cut(message.text, DESCRIPTION_LIMIT)
    room = EMBED_TOTAL_LIMIT - len(title) - len(embed.get("description", ""))
    fields = _fields(message, room)
    if fields:
        embed["fields"] = fields
    embed["timestamp"] = message.fired_at.isoformat()
    return {
        "content": _cut(message.title, CONTENT_LIMIT),
        "embeds": [embed],
        "allowed_mentions": {"parse": []},
    }


def _host(url: str) -> str:
    """`host[:port]` of the URL, for an error: never its path, query or user info."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or "?"
        port = parts.port
    except ValueError:
        return "(invalid URL)"
    host = f"[{host}]" if ":" in host else host
    return f"{host}:{port}" if port else host


def _reply_json(reply: Reply) -> dict[str, Any]:
    try:
        data = json.loads(reply.body)
    except ValueError:  # also UnicodeDecodeError
        return {}
    return data if isinstance(data, dict) else {}


def _retry_after(reply: Reply, data: dict[str, Any]) -> float | None:
    """Discord's `retry_after` (seconds, a float) when the reply has one, else the
    `Retry-After` header."""
    value = data.get("retry_after")
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
        if math.isfinite(seconds) and seconds >= 0:
            return seconds
    return retry_after(reply.headers)


def _why(reply: Reply, data: dict[str, Any], cfg: DiscordConfig) -> str:
    """Discord's own `message` (with its `code`) when the reply has one, else the body."""
    text = data.get("message")
    if isinstance(text, str) and text.strip():
        why = scrub(" ".join(text.split()), cfg)
        code = data.get("code")
        if isinstance(code, int) and not isinstance(code, bool) and code:
            why += f" (code {code})"
        if data.get("global") is True:
            why += " (global rate limit)"
        return _cut(why, DETAIL_CHARS)
    if 300 <= reply.status_code < 400:
        return "redirect not followed"
    return detail(reply, cfg) or "(empty body)"


class DiscordNotifier:
    """One POST per send(). Owns its (guarded) client; close with aclose()."""

    kind: ClassVar[str] = "discord"
    Config: ClassVar[type[ChannelConfig]] = DiscordConfig

    def __init__(self, client: H11Client, *, deadline: float = 10.0) -> None:
        self._client = client
        self.deadline = deadline

    def destination(self, config: ChannelConfig) -> str:
        return url_destination(expect(config, DiscordConfig).url.get_secret_value())

    async def send(self, message: Message, config: ChannelConfig, *, delivery_id: str) -> None:
        """Return on a 2xx (204, or 200 with `?wait=true`); raise DeliveryError otherwise
        (3xx: permanent, not followed)."""
        cfg = expect(config, DiscordConfig)
        url = cfg.url.get_secret_value()
        body = json.dumps(
            payload(message), ensure_ascii=False, separators=(",", ":"), allow_nan=False
        )
        reply = await post(self._client, url, body.encode(), {"content-type": "application/json"})
        status = reply.status_code
        if 200 <= status < 300:
            return
        data = _reply_json(reply)
        raise DeliveryError(
            f"Discord HTTP {status} from {_host(url)}: {_why(reply, data, cfg)}",
            permanent=is_permanent(status),
            retry_after=_retry_after(reply, data),
            status=status,
        )

    async def aclose(self) -> None:
        await self._client.aclose()


def _build(context: NotifierContext) -> DiscordNotifier:
    return DiscordNotifier(context.http_client(), deadline=context.deadline)


CHANNEL: Final = ChannelType(
    notifier=DiscordNotifier,
    url_fields=frozenset({"url"}),
    secret_fields=frozenset({"url"}),
    build=_build,
    example={"url": "https://discord.com/api/webhooks/123456789012345678/EXAMPLETOKEN"},
)
