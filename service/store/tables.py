"""The schema, as SQLModel tables. These classes never leave `service.store`.

Every timestamp column is `UTCDateTime`: it refuses naive datetimes on the way in, stores
UTC (SQLite keeps no offset, so it stores naive UTC text that sorts correctly), and gives
back timezone-aware UTC datetimes on the way out, on every backend.

The constraints carry the guarantees: `alert.dedup_key` is UNIQUE (at most one alert per
rule, symbol and event, across restarts and replicas) and `delivery(alert_id, channel)` is
UNIQUE (one delivery row per channel of an alert). A change here needs a new migration in
`migrations/versions/`; `tests/store/test_migrations.py` fails when the two differ.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import DateTime, Index, Table, Text, UniqueConstraint
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel

#: Delivery statuses. `sending` rows hold a lease; `delivered`, `dead`, `muted` and
#: `silenced` are final. `deferred` (a stage holds it until `next_attempt_at`) is due like
#: `pending` once its time comes; `muted` and `silenced` (a stage, a silence stopped it)
#: are never sent. See service/stages.py.
PENDING = "pending"
DEFERRED = "deferred"
SENDING = "sending"
DELIVERED = "delivered"
DEAD = "dead"
MUTED = "muted"
SILENCED = "silenced"
STATUSES = (PENDING, DEFERRED, SENDING, DELIVERED, DEAD, MUTED, SILENCED)
#: Statuses waiting for a send once `next_attempt_at` has come.
WAITING = (PENDING, DEFERRED)

#: Attempt outcomes.
OUTCOMES = ("ok", "retry", "permanent", "error")


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every backend."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime refused by the store: pass a timezone-aware one")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        moment = cast(datetime, value)
        if moment.tzinfo is None:
            return moment.replace(tzinfo=UTC)
        return moment.astimezone(UTC)


def _when(*, nullable: bool = False, index: bool = False) -> Any:
    return Field(default=None, sa_type=UTCDateTime(), nullable=nullable, index=index)


class AlertRow(SQLModel, table=True):
    """One alert, written with its dedup key before anything is sent."""

    __tablename__ = "alert"
    __table_args__ = (UniqueConstraint("dedup_key", name="uq_alert_dedup_key"),)

    id: str = Field(primary_key=True, max_length=64)
    dedup_key: str = Field(max_length=512)
    rule: str = Field(max_length=200, index=True)
    symbol: str = Field(max_length=32)
    report_key: str | None = Field(default=None, max_length=200)
    fired_at: datetime = _when(index=True)
    message_json: str = Field(sa_type=Text)


class DeliveryRow(SQLModel, table=True):
    """One channel of one alert: the outbox row the worker claims, sends and finishes."""

    __tablename__ = "delivery"
    __table_args__ = (
        UniqueConstraint("alert_id", "channel", name="uq_delivery_alert_channel"),
        Index("ix_delivery_due", "status", "next_attempt_at"),
    )

    id: str = Field(primary_key=True, max_length=64)
    alert_id: str = Field(foreign_key="alert.id", ondelete="CASCADE", max_length=64)
    channel: str = Field(max_length=200)
    kind: str = Field(max_length=32)
    status: str = Field(default=PENDING, max_length=16)
    attempts: int = Field(default=0)
    next_attempt_at: datetime = _when()
    lease_until: datetime | None = _when(nullable=True)
    lease_holder: str | None = Field(default=None, max_length=64)  # replica id (r0002)
    last_error: str | None = Field(default=None, sa_type=Text)
    created_at: datetime = _when()
    delivered_at: datetime | None = _when(nullable=True)
    hold_reason: str | None = Field(default=None, sa_type=Text)  # a stage's mute/defer (r0003)


class AttemptRow(SQLModel, table=True):
    """One send attempt of a delivery, with its time, outcome, status and (redacted) error."""

    __tablename__ = "attempt"

    id: int | None = Field(default=None, primary_key=True)
    delivery_id: str = Field(
        foreign_key="delivery.id", ondelete="CASCADE", max_length=64, index=True
    )
    number: int = Field(default=0)
    started_at: datetime = _when()
    finished_at: datetime = _when()
    outcome: str = Field(max_length=16)
    status_code: int | None = Field(default=None)
    error: str | None = Field(default=None, sa_type=Text)
    duration_ms: int = Field(default=0)


class RuleStateRow(SQLModel, table=True):
    """The engine's memory for one rule and one symbol (`service.engine.RuleState`)."""

    __tablename__ = "rule_state"

    rule: str = Field(primary_key=True, max_length=200)
    symbol: str = Field(primary_key=True, max_length=32)
    fingerprint: str = Field(default="", max_length=128)
    armed: bool = Field(default=True)
    pending_since: datetime | None = _when(nullable=True)
    last_fired: datetime | None = _when(nullable=True)
    last_report: str | None = Field(default=None, max_length=200)
    fired: int = Field(default=0)
    #: the figures of `last_report` as last notified (`notify_amended`, r0005)
    eps_notified: float | None = Field(default=None)
    revenue_notified: float | None = Field(default=None)


class MarketDataRow(SQLModel, table=True):
    """The last known market data the daemon keeps across restarts, as JSON by key."""

    __tablename__ = "market_data"

    key: str = Field(primary_key=True, max_length=200)
    data_json: str = Field(sa_type=Text)
    updated_at: datetime = _when()


class ProbeRow(SQLModel, table=True):
    """The row a starting daemon writes to prove the database takes writes (r0002)."""

    __tablename__ = "probe"

    name: str = Field(primary_key=True, max_length=64)
    replica_id: str = Field(max_length=64)
    written_at: datetime = _when()


class SilenceRow(SQLModel, table=True):
    """A silence (r0004): no alert of `rule` (when set) for `symbol` (when set) is sent
    while `starts_at <= fired_at < ends_at`; expiring one moves `ends_at` to now."""

    __tablename__ = "silence"

    id: str = Field(primary_key=True, max_length=64)
    rule: str | None = Field(default=None, max_length=200)
    symbol: str | None = Field(default=None, max_length=32)
    starts_at: datetime = _when()
    ends_at: datetime = _when()
    comment: str | None = Field(default=None, sa_type=Text)
    created_at: datetime = _when()


def table_of(model: type[SQLModel]) -> Table:
    """The Core table of a model, for typed `insert()`/`update()`/`select()` statements."""
    return cast(Table, model.__table__)  # type: ignore[attr-defined]


ALERT = table_of(AlertRow)
DELIVERY = table_of(DeliveryRow)
ATTEMPT = table_of(AttemptRow)
RULE_STATE = table_of(RuleStateRow)
MARKET_DATA = table_of(MarketDataRow)
PROBE = table_of(ProbeRow)
SILENCE = table_of(SilenceRow)
METADATA = SQLModel.metadata
