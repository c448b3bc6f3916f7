"""The `webhook` channel: POSTs a documented, versioned JSON payload, signed per the
Standard Webhooks spec (v1) when the channel has a `secret`.

Promises: `webhook-id` is `msg_<delivery id>`, the same on every retry, so a receiver can
deduplicate on it; the body bytes are a function of the stored Message alone, so every
retry sends the same bytes; only `webhook-timestamp` and `webhook-signature` are fresh.
Payload (keys in this order, compact JSON, UTF-8)::

    {"version": "1", "type": "alert.fired", "alert_id": ..., "rule": ..., "symbol": ...,
     "title": ..., "message": ..., "fired_at": "ISO 8601", "values": {sorted by name}}

A rule with `notify_resolved: true` sends one more when it re-arms: the same keys with
`"type": "alert.resolved"`, its own `alert_id`, `fired_at` (when it re-armed) and values
(at that moment), and, last, `"resolves"`: the `alert_id` of the alert it resolves
(`null` when that alert is no longer stored).

A rule with `notify_amended: true` sends one more per correction of the actuals of a
report it fired on: `"type": "alert.amended"`, the values then (with
`eps_actual_previous`/`revenue_actual_previous`, the figures before the correction), and,
last, `"amends"`: the `alert_id` of the alert that fired on the report.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, ClassVar, Final

from pydantic import Field, SecretStr, field_validator

from service.notify.base import ChannelConfig, Message, classify_status, jsonable
from service.notify.http import detail, expect, http_url, post, url_destination
from service.notify.plugin import ChannelType, NotifierContext

if TYPE_CHECKING:  # h11 loads with the client (NotifierContext.http_client), not the registry
    from service.h11client import H11Client

PAYLOAD_VERSION: Final = "1"
_HEADER_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")
_RESERVED_HEADERS: Final = frozenset(
    {"host", "content-length", "content-type", "transfer-encoding", "connection"}
)
_DELIVERY_ID = re.compile(r"^[A-Za-z0-9_-]{1,200}$")


class WebhookConfig(ChannelConfig):
    """A `type: webhook` channel. `url` and `secret` are secrets (never printed)."""

    url: SecretStr
    secret: SecretStr | None = None
    headers: dict[str, SecretStr] = Field(default_factory=dict)

    _url = field_validator("url")(http_url)

    @field_validator("secret")
    @classmethod
    def _secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            signing_key(value.get_secret_value())
        return value

    @field_validator("headers")
    @classmethod
    def _headers(cls, value: dict[str, SecretStr]) -> dict[str, SecretStr]:
        for name, header in value.items():
            lowered = name.lower()
            if not _HEADER_NAME.match(name):
                raise ValueError(f"header name {name!r} is not a valid HTTP token")
            if lowered in _RESERVED_HEADERS or lowered.startswith("webhook-"):
                raise ValueError(f"header {name!r} is set by earnwatch and cannot be overridden")
            if any(ch in header.get_secret_value() for ch in "\r\n\0"):
                raise ValueError(f"header {name!r}: value must not contain CR, LF or NUL")
        return value


def signing_key(secret: str) -> bytes:
    """The HMAC key: a `whsec_` secret is base64 (as Standard Webhooks issues them); any
    other string is used as its UTF-8 bytes."""
    if not secret:
        raise ValueError("must not be empty")
    if secret.startswith("whsec_"):
        try:
            key = base64.b64decode(secret.removeprefix("whsec_"), validate=True)
        except binascii.Error:
            raise ValueError("a whsec_ secret must be base64 after the prefix") from None
        if not key:
            raise ValueError("must not be empty")
        return key
    return secret.encode()


def sign(key: bytes, msg_id: str, timestamp: str, body: bytes) -> str:
    """`v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">` (Standard Webhooks)."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def webhook_id(delivery_id: str) -> str:
    """`msg_<delivery id>`: stable across retries; never holds a `.` (it is signed)."""
    if not _DELIVERY_ID.match(delivery_id):
        raise ValueError("delivery_id must be 1-200 characters of A-Z a-z 0-9 _ -")
    return f"msg_{delivery_id}"


def payload(message: Message) -> bytes:
    """The request body: a pure function of the message (same bytes on every retry)."""
    resolved = message.kind == "resolved"
    amended = message.kind == "amended"
    body: dict[str, object] = {
        "version": PAYLOAD_VERSION,
        "type": "alert.resolved" if resolved else "alert.amended" if amended else "alert.fired",
        "alert_id": message.id,
        "rule": message.rule,
        "symbol": message.symbol,
        "title": message.title,
        "message": message.text,
        "fired_at": message.fired_at.isoformat(),
        # sorted: the outbox round trip (Message.to_json) sorts them too
        "values": {k: jsonable(v) for k, v in sorted(message.values.items())},
    }
    if resolved:
        body["resolves"] = message.resolves
    if amended:
        body["amends"] = message.amends
    return json.dumps(
        body,
        ensure_ascii=False,
        separators=(",", ":"),
        allow_nan=False,
    ).encode()


class WebhookNotifier:
    """Makes one signed POST per send(). Owns its (guarded) client; close with aclose()."""

    kind: ClassVar[str] = "webhook"
    Config: ClassVar[type[ChannelConfig]] = WebhookConfig

    def __init__(
        self,
        client: H11Client,
        *,
        wall_clock: Callable[[], float] = time.time,
        deadline: float = 10.0,
    ) -> None:
        self._client = client
        self._wall_clock = wall_clock
        self.deadline = deadline

    def destination(self, config: ChannelConfig) -> str:
        return url_destination(expect(config, WebhookConfig).url.get_secret_value())

    async def send(self, message: Message, config: ChannelConfig, *, delivery_id: str) -> None:
        """Return on a 2xx; raise DeliveryError otherwise (3xx: permanent, not followed)."""
        cfg = expect(config, WebhookConfig)
        body = payload(message)
        msg_id = webhook_id(delivery_id)
        now = self._wall_clock()
        timestamp = str(int(now))
        headers = {name: value.get_secret_value() for name, value in cfg.headers.items()}
        headers |= {
            "content-type": "application/json",
            "webhook-id": msg_id,
            "webhook-timestamp": timestamp,
        }
        if cfg.secret is not None:
            key = signing_key(cfg.secret.get_secret_value())
            headers["webhook-signature"] = sign(key, msg_id, timestamp, body)
        response = await post(self._client, cfg.url.get_secret_value(), body, headers)
        status = response.status_code
        if 200 <= status < 300:
            return  # the reply body is read (keep-alive) but needs no scrubbing
        if 300 <= status < 400:
            why = "redirect not followed"
        elif status == 410:
            why = "gone: the receiver asks to disable this endpoint"
        else:
            why = detail(response, cfg)
        classify_status(
            status,
            headers=response.headers,
            detail=why,
            now=datetime.fromtimestamp(now, UTC),
        )

    async def aclose(self) -> None:
        await self._client.aclose()


def _build(context: NotifierContext) -> WebhookNotifier:
    return WebhookNotifier(context.http_client(), deadline=context.deadline)


CHANNEL: Final = ChannelType(
    notifier=WebhookNotifier,
    url_fields=frozenset({"url"}),
    secret_fields=frozenset({"url", "secret", "headers"}),
    build=_build,
    example={
        "url": "https://hooks.example.com/earnwatch/SECRETPATH",
        "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "headers": {"Authorization": "Bearer EXAMPLEHEADERTOKEN"},
    },
)
