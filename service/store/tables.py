"""The schema, as SQLAlchemy Core tables on one `MetaData`. They never leave `service.store`.

Every timestamp column is `UTCDateTime`: it refuses naive datetimes on the way in, stores
UTC (SQLite keeps no offset, so it stores naive UTC text that sorts correctly), and gives
back timezone-aware UTC datetimes on the way out, on every backend.

The constraints carry the guarantees: `alert.dedup_key` is UNIQUE (at most one alert per
rule, symbol and event, across restarts and replicas) and `delivery(alert_id, channel)` is
UNIQUE (one delivery row per channel of an alert). A change here needs a new migration in
`migrations/versions/`; `tests/store/test_migrations.py` fails when the two differ.

The store's queries are plain SQL (`plain.py`), so a SQLite daemon never imports this
module: the tables are for the migrations (Alembic compares them with the revisions) and
the tests. Core, not SQLModel or the ORM, which cost a process about 260 ms of import and
several MiB only to declare them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

from service.store.statuses import (
    DEAD,
    DEFERRED,
    DELIVERED,
    MUTED,
    OUTCOMES,
    PENDING,
    SENDING,
    SILENCED,
    STATUSES,
    WAITING,
)

#: The statuses and outcomes live in statuses.py (read at run time without SQLAlchemy).
__all__ = [
    "DEAD",
    "DEFERRED",
    "DELIVERED",
    "MUTED",
    "OUTCOMES",
    "PENDING",
    "SENDING",
    "SILENCED",
    "STATUSES",
    "WAITING",
]


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


METADATA = MetaData()


def _text(name: str, length: int, *, nullable: bool = False, **kwargs: Any) -> Column[str]:
    """A VARCHAR(length) column, NOT NULL unless said otherwise (as the migrations made it)."""
    return Column(name, String(length), nullable=nullable, **kwargs)


def _when(name: str, *, nullable: bool = False, index: bool = False) -> Column[datetime]:
    return Column(name, UTCDateTime(), nullable=nullable, index=index)


#: One alert, written with its dedup key before anything is sent.
ALERT = Table(
    "alert",
    METADATA,
    _text("id", 64, primary_key=True),
    _text("dedup_key", 512),
    _text("rule", 200, index=True),
    _text("symbol", 32),
    _text("report_key", 200, nullable=True),
    _when("fired_at", index=True),
    Column("message_json", Text, nullable=False),
    UniqueConstraint("dedup_key", name="uq_alert_dedup_key"),
)

#: One channel of one alert: the outbox row the worker claims, sends and finishes.
DELIVERY = Table(
    "delivery",
    METADATA,
    _text("id", 64, primary_key=True),
    Column("alert_id", String(64), ForeignKey("alert.id", ondelete="CASCADE"), nullable=False),
    _text("channel", 200),
    _text("kind", 32),
    _text("status", 16, default=PENDING),
    Column("attempts", Integer, nullable=False, default=0),
    _when("next_attempt_at"),
    _when("lease_until", nullable=True),
    _text("lease_holder", 64, nullable=True),  # replica id (r0002)
    Column("last_error", Text, nullable=True),
    _when("created_at"),
    _when("delivered_at", nullable=True),
    Column("hold_reason", Text, nullable=True),  # a stage's mute/defer (r0003)
    UniqueConstraint("alert_id", "channel", name="uq_delivery_alert_channel"),
    # the claim's order within each status: a claim reads the rows it takes (r0006)
    Index("ix_delivery_due", "status", "next_attempt_at", "created_at", "id"),
)

#: One send attempt of a delivery, with its time, outcome, status and (redacted) error.
ATTEMPT = Table(
    "attempt",
    METADATA,
    Column("id", Integer, primary_key=True),
    Column(
        "delivery_id",
        String(64),
        ForeignKey("delivery.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("number", Integer, nullable=False, default=0),
    _when("started_at"),
    _when("finished_at"),
    _text("outcome", 16),
    Column("status_code", Integer, nullable=True),
    Column("error", Text, nullable=True),
    Column("duration_ms", Integer, nullable=False, default=0),
)

#: The engine's memory for one rule and one symbol (`service.engine.RuleState`).
RULE_STATE = Table(
    "rule_state",
    METADATA,
    _text("rule", 200, primary_key=True),
    _text("symbol", 32, primary_key=True),
    _text("fingerprint", 128, default=""),
    Column("armed", Boolean, nullable=False, default=True),
    _when("pending_since", nullable=True),
    _when("last_fired", nullable=True),
    _text("last_report", 200, nullable=True),
    Column("fired", Integer, nullable=False, default=0),
    # the figures of `last_report` as last notified (`notify_amended`, r0005)
    Column("eps_notified", Float, nullable=True),
    Column("revenue_notified", Float, nullable=True),
)

#: The last known market data the daemon keeps across restarts, as JSON by key.
MARKET_DATA = Table(
    "market_data",
    METADATA,
    _text("key", 200, primary_key=True),
    Column("data_json", Text, nullable=False),
    _when("updated_at"),
)

#: The row a starting daemon writes to prove the database takes writes (r0002).
PROBE = Table(
    "probe",
    METADATA,
    _text("name", 64, primary_key=True),
    _text("replica_id", 64),
    _when("written_at"),
)

#: A silence (r0004): no alert of `rule` (when set) for `symbol` (when set) is sent while
#: `starts_at <= fired_at < ends_at`; expiring one moves `ends_at` to now.
SILENCE = Table(
    "silence",
    METADATA,
    _text("id", 64, primary_key=True),
    _text("rule", 200, nullable=True),
    _text("symbol", 32, nullable=True),
    _when("starts_at"),
    _when("ends_at"),
    Column("comment", Text, nullable=True),
    _when("created_at"),
)
