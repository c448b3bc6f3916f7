"""The `ntfy` channel: POSTs the alert as plain text to an ntfy topic URL (ntfy.sh or a
self-hosted server), with the title, priority and tags in ntfy's headers.

The request: the body is the message text, then one `name: value` line per value
(sorted by name, figures as on every channel, unknown ones as `n/a`), UTF-8, cut at
ntfy's 4,096-byte message limit (a longer body would become an attachment, or be
refused where attachments are off).
Headers: `Title` (the message title), `Tags` (comma-separated; default
`chart_with_upwards_trend`, which ntfy shows as 📈), `Priority` when the channel sets one
(else ntfy's default, 3), and `Authorization: Bearer <token>` when it has a token. A
header value that is not printable ASCII (the title's ` · ` is not) is sent as one RFC 2047
encoded word (`=?UTF-8?B?...?=`), which ntfy decodes.

Outcomes: any 2xx is delivered (ntfy answers 200 with the message as JSON; the body is not
required, so a proxy in front may rewrite it). 429 (ntfy's rate limit) and 5xx are
retryable, `Retry-After` honoured when given; every other reply fails for good (401/403:
token or topic access; 413: too large; 3xx: not followed), with ntfy's own `error` text
kept. The topic URL is a secret (on the public server a topic name is a password), so is
the token: errors name the host only.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar, Final
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator

from service.errors import DeliveryError
from service.figures import shown_values
from service.httpclient import redact_url
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
from service.rules.model import one_or_many_schema

if TYPE_CHECKING:  # h11 loads with the client (NotifierContext.http_client), not the registry
    from service.h11client import H11Client

#: ntfy's default `message-size-limit` (ntfy.sh's too), in bytes.
BODY_LIMIT: Final = 4096
DEFAULT_TAGS: Final = ("chart_with_upwards_trend",)
_PRIORITY_PROBLEM: Final = "must be a whole number from 1 (min) to 5 (max); leave it out for 3"


class NtfyConfig(ChannelConfig):
    """A `type: ntfy` channel. `url` (the topic URL) and `token` are secrets."""

    # str() of a ValidationError quotes the input (the raw URL or token) unless told not to.

    url: SecretStr
    token: SecretStr | None = None
    priority: int | None = Field(default=None, ge=1, le=5)
    tags: tuple[str, ...] = Field(default=DEFAULT_TAGS, json_schema_extra=one_or_many_schema)

    @field_validator("url")
    @classmethod
    def _url(cls, value: SecretStr) -> SecretStr:
        http_url(value)
        if urlsplit(value.get_secret_value()).path in ("", "/"):
            raise ValueError("must name the topic, e.g. https://ntfy.sh/my-earnings")
        return value

    @field_validator("token")
    @classmethod
    def _token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        token = value.get_secret_value()
        if not token:
            raise ValueError("must not be empty (leave `token` out for a public topic)")
        if not token.isascii() or not token.isprintable() or " " in token:
            raise ValueError("must be the access token alone (no `Bearer `, no spaces)")
        return value

    @field_validator("priority", mode="before")
    @classmethod
    def _priority(cls, value: Any) -> Any:
        # Before pydantic's coercion: `true` or "4" is not a priority.
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 5:
            raise ValueError(_PRIORITY_PROBLEM)
        return value

    @field_validator("tags", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return (value,) if isinstance(value, str) else value

    @field_validator("tags")
    @classmethod
    def _tags(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for tag in value:
            if not tag.strip():
                raise ValueError("a tag must not be empty")
            if "," in tag or not tag.isprintable():
                raise ValueError(f"tag {tag!r} must be one line without commas")
        return tuple(dict.fromkeys(tag.strip() for tag in value))


def header_value(text: str) -> str:
    """`text` as it can go in a header: itself when it is printable ASCII, else one RFC
    2047 encoded word of its UTF-8 bytes (which also carries any control character
    safely). Text that looks like an encoded word is encoded too, so ntfy shows it as is."""
    if text.isascii() and text.isprintable() and "=?" not in text:
        return text
    return "=?UTF-8?B?" + base64.b64encode(text.encode()).decode("ascii") + "?="


def body(message: Message) -> bytes:
    """The message text, a blank line and `name: value` per value, sorted by name (unknown
    ones as `n/a`, as on every channel); cut at BODY_LIMIT bytes (on a character
    boundary, ending in `…`)."""
    lines = [f"{name}: {text}" for name, text in shown_values(message.values)]
    text = message.text + ("\n\n" + "\n".join(lines) if lines else "")
    data = text.encode()
    if len(data) <= BODY_LIMIT:
        return data
    ellipsis = "…".encode()
    return data[: BODY_LIMIT - len(ellipsis)].decode(errors="ignore").encode() + ellipsis


def headers(message: Message, config: NtfyConfig) -> dict[str, str]:
    """ntfy's publish headers for this message on this channel."""
    out = {"content-type": "text/plain; charset=utf-8", "Title": header_value(message.title)}
    if config.priority is not None:
        out["Priority"] = str(config.priority)
    if config.tags:
        out["Tags"] = header_value(",".join(config.tags))
    if config.token is not None:
        out["Authorization"] = f"Bearer {config.token.get_secret_value()}"
    return out


def _why(reply: Reply, config: NtfyConfig) -> str:
    """ntfy's `error` text (with its code) when the reply is ntfy's error JSON, else the
    reply body; scrubbed of the channel's secrets either way."""
    try:
        data = json.loads(reply.body)
    except ValueError:
        data = None
    if isinstance(data, dict) and isinstance(data.get("error"), str):
        text = " ".join(data["error"].split())
        if isinstance(data.get("code"), int):
            text += f" ({data['code']})"
        text = scrub(text, config)
        return text[:DETAIL_CHARS] + ("…" if len(text) > DETAIL_CHARS else "")
    return detail(reply, config) or "(empty body)"


class NtfyNotifier:
    """One POST to the topic URL per send(). Owns its (guarded) client; close with
    aclose()."""

    kind: ClassVar[str] = "ntfy"
    Config: ClassVar[type[ChannelConfig]] = NtfyConfig

    def __init__(
        self,
        client: H11Client,
        *,
        wall_clock: Callable[[], float] = time.time,
        deadline: float = 10.0,
    ) -> None:
        self._client = client
        self._wall_clock = wall_clock  # for a Retry-After given as an HTTP date
        self.deadline = deadline

    def destination(self, config: ChannelConfig) -> str:
        return url_destination(expect(config, NtfyConfig).url.get_secret_value())

    async def send(self, message: Message, config: ChannelConfig, *, delivery_id: str) -> None:
        """Return on a 2xx; raise DeliveryError otherwise."""
        cfg = expect(config, NtfyConfig)
        url = cfg.url.get_secret_value()
        reply = await post(self._client, url, body(message), headers(message, cfg))
        status = reply.status_code
        if 200 <= status < 300:
            return
        now = datetime.fromtimestamp(self._wall_clock(), UTC)
        why = "redirect not followed" if 300 <= status < 400 else _why(reply, cfg)
        raise DeliveryError(
            f"{redact_url(url)}: HTTP {status}: {why}",
            permanent=is_permanent(status),
            retry_after=retry_after(reply.headers, now=now),
            status=status,
        )

    async def aclose(self) -> None:
        await self._client.aclose()


def _build(context: NotifierContext) -> NtfyNotifier:
    return NtfyNotifier(context.http_client(), deadline=context.deadline)


CHANNEL: Final = ChannelType(
    notifier=NtfyNotifier,
    url_fields=frozenset({"url"}),
    secret_fields=frozenset({"url", "token"}),
    build=_build,
    example={
        "url": "https://ntfy.sh/earnwatch-EXAMPLETOPIC",
        "token": "tk_EXAMPLEACCESSTOKEN0000000000",
        "priority": 4,
        "tags": ["chart_with_upwards_trend"],
    },
)
