"""What every notifier shares: the rendered Message, the Notifier protocol, the channel
config base model, and the one classification of HTTP statuses into outcomes.

A notifier makes one delivery attempt of an already rendered message. It never retries
and never sleeps: on failure it raises DeliveryError(permanent=..., retry_after=...), and
`service/delivery.py` owns the retry policy, once. Each notifier also says how long one
send may take in total (`deadline`) and where a channel's sends go (`destination`): the
worker enforces both, the same way for every channel type.

Every JSON body carries values through `jsonable()` and is encoded with
`allow_nan=False`: numbers stay raw (machine-readable), a date is ISO 8601, and a
non-finite number is unknown (`null`), never `Infinity` or `NaN`, which strict receivers
reject. Text for humans comes from `service.figures` instead (`shown_values`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, ClassVar, Protocol

from pydantic import BaseModel, ConfigDict, Field

from service.errors import DeliveryError
from service.market import Value
from service.quiet import QuietHours
from service.retry_after import retry_after as read_retry_after


class ChannelConfig(BaseModel):
    """Base of each channel type's options in the rule file (`type:` excluded). A
    validation error never quotes the input: it may be a secret URL or token. The fields
    here are every channel's (`quiet_hours`), read by the stages, never by a notifier."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, hide_input_in_errors=True, defer_build=True
    )

    quiet_hours: QuietHours | None = Field(
        None, description="deliveries due inside this window wait for its end"
    )


@dataclass(frozen=True, slots=True)
class Message:
    """One alert, rendered, as it is stored in the outbox and sent (the same bytes on every
    retry). `id` is the alert's stable id; `values` are the variables when it fired.
    `kind` is `fired`, or `resolved` for the message of a rule that re-armed after firing
    (`notify_resolved`), whose `resolves` is then the id of the alert it resolves."""

    id: str
    rule: str
    symbol: str
    title: str
    text: str
    fired_at: datetime
    values: Mapping[str, Value] = field(default_factory=dict)
    kind: str = "fired"
    resolves: str | None = None
    #: `amended` (`notify_amended`): the id of the alert whose figures were corrected.
    amends: str | None = None

    def to_json(self) -> str:
        data: dict[str, Any] = {
            "id": self.id,
            "rule": self.rule,
            "symbol": self.symbol,
            "title": self.title,
            "text": self.text,
            "fired_at": self.fired_at.isoformat(),
            "values": {k: jsonable(v) for k, v in self.values.items()},
        }
        if self.kind != "fired":  # a fired alert's row reads as it did before resolved ones
            data |= {"kind": self.kind, "resolves": self.resolves}
        if self.kind == "amended":
            data["amends"] = self.amends
        return json.dumps(
            data,
            sort_keys=True,
            separators=(",", ":"),
            allow_nan=False,
        )

    @classmethod
    def from_json(cls, raw: str) -> Message:
        data = json.loads(raw)
        return cls(
            id=data["id"],
            rule=data["rule"],
            symbol=data["symbol"],
            title=data["title"],
            text=data["text"],
            fired_at=datetime.fromisoformat(data["fired_at"]),
            values=data["values"],
            kind=data.get("kind", "fired"),  # rows stored before resolved messages
            resolves=data.get("resolves"),
            amends=data.get("amends"),
        )


def jsonable(value: Value) -> Any:
    """`value` as JSON carries it: the raw number (None when not finite), a date in ISO
    8601, anything else as it is. The one conversion of the outbox and of JSON bodies."""
    if isinstance(value, date):
        return value.isoformat()
    return finite(value)


def finite(value: Value) -> Value:
    """`value`, with a non-finite float (inf, -inf, nan) made unknown (None)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class Notifier(Protocol):
    """Makes one delivery attempt. Never retries, never sleeps."""

    kind: ClassVar[str]  # the `type:` in the rule file
    Config: ClassVar[type[ChannelConfig]]
    deadline: float  # seconds one send() may take in all, enforced by the worker

    def destination(self, config: ChannelConfig) -> str:
        """Where this channel's sends go (`host:port`), for the per-host cap."""
        ...

    async def send(self, message: Message, config: ChannelConfig, *, delivery_id: str) -> None:
        """Return on success; raise DeliveryError(permanent=..., retry_after=...) otherwise."""
        ...

    async def aclose(self) -> None: ...


#: Statuses worth another try; every other 4xx is permanent.
RETRYABLE_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


def is_permanent(status: int) -> bool:
    """A reply with this status fails for good (a retry would get the same answer): any
    status below 500 that is not in RETRYABLE_STATUSES."""
    return status < 500 and status not in RETRYABLE_STATUSES


def classify_status(
    status: int,
    *,
    headers: Mapping[str, str],
    detail: str = "",
    now: datetime | None = None,
) -> None:
    """Return for 2xx; raise the DeliveryError this status means otherwise, its
    `retry_after` read from the response's `headers` (Retry-After against its `Date`,
    see service.retry_after)."""
    if 200 <= status < 300:
        return
    permanent = is_permanent(status)
    message = f"HTTP {status}" + (f": {detail}" if detail else "")
    wait = read_retry_after(headers, now=now)
    raise DeliveryError(message, permanent=permanent, retry_after=wait, status=status)
