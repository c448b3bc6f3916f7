"""The values the store hands across its boundary: frozen dataclasses, never rows."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from service.engine import Alert
from service.notify.base import Message
from service.stages import Decision

Outcome = Literal["ok", "retry", "permanent", "error"]
Status = Literal["pending", "deferred", "sending", "delivered", "dead", "muted", "silenced"]
Render = Callable[[Alert, str], Message]
#: One channel of an alert: (channel, kind), or (channel, kind, what the stages decided).
Route = tuple[str, str] | tuple[str, str, Decision]
#: One alert to record: the alert, how to render it once its id is known, its routes.
NewAlert = tuple[Alert, Render, Sequence[Route]]


@dataclass(frozen=True, slots=True)
class ClaimedDelivery:
    """A delivery this worker holds until `lease_until`. `attempts` counts this attempt."""

    id: str
    alert_id: str
    channel: str
    kind: str
    attempts: int
    created_at: datetime
    lease_until: datetime
    message: Message


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    """One send attempt as the worker saw it. `number` is `ClaimedDelivery.attempts`.
    `error` must already be free of secrets (notifiers redact); it is truncated here."""

    number: int
    started_at: datetime
    finished_at: datetime
    outcome: Outcome
    status_code: int | None = None
    error: str | None = None

    @property
    def duration_ms(self) -> int:
        return max(0, round((self.finished_at - self.started_at).total_seconds() * 1000))


@dataclass(frozen=True, slots=True)
class Finished:
    """One finished attempt to record with `Store.finish_many()`: the attempt, and the
    state it moves its delivery to (`pending` needs `next_attempt_at`)."""

    delivery_id: str
    attempt: AttemptRecord
    new_status: Status
    next_attempt_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class DeliverySummary:
    """Where one channel of an alert stands."""

    id: str
    channel: str
    kind: str
    status: Status
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    delivered_at: datetime | None
    hold_reason: str | None = None  # why a stage muted or deferred it


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One alert and each of its deliveries, for `earnwatch history`."""

    alert_id: str
    rule: str
    symbol: str
    dedup_key: str
    report_key: str | None
    fired_at: datetime
    message: Message
    deliveries: tuple[DeliverySummary, ...]


@dataclass(frozen=True, slots=True)
class Silence:
    """An operator's silence: the alerts of `rule` (None: any rule) for `symbol` (None:
    any symbol) fired in [starts_at, ends_at) are recorded `silenced`, never sent."""

    id: str
    rule: str | None
    symbol: str | None
    starts_at: datetime
    ends_at: datetime
    comment: str | None
    created_at: datetime

    def active(self, now: datetime) -> bool:
        """The silence holds at `now`."""
        return self.starts_at <= now < self.ends_at
