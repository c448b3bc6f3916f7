"""The transactional outbox: alerts and their deliveries, claims, attempts, history.

Promises:
- `record()` writes each alert with its dedup key and one delivery row per channel in the
  caller's single transaction, before anything is sent. A resolved alert's message names
  the id of the alert it resolves, found in that transaction. An alert whose dedup key exists is
  skipped silently (`ON CONFLICT DO NOTHING` on both backends): that unique constraint, not
  memory, is what keeps one alert per rule, symbol and event across restarts and replicas.
- `claim()` hands each due delivery to one claimer only: `FOR UPDATE SKIP LOCKED` on
  PostgreSQL, `BEGIN IMMEDIATE` (one writer at a time) on SQLite. A claim is a lease: a
  `sending` row whose lease ran out (its worker died) is due again, and so is one whose
  holder is known to be gone (`replica.py`), at once. Each claim counts one attempt, so a
  delivery that keeps crashing its worker still reaches `max_attempts`.
- `finish()` records the attempt and moves the delivery in one transaction;
  `finish_many()` does it for a group of finished attempts in one transaction (the
  worker's group commit: one durable commit for many deliveries). `delivered` is
  final. A non-delivered outcome applies only while the caller still holds the claim (its
  attempt number matches and the row is `sending`), so a slow worker whose lease ran out
  cannot overwrite a newer claim.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Final

from sqlalchemy import Table, and_, func, or_, select, true, update
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from service.engine import AMENDED_SUFFIX, RESOLVED_SUFFIX, Alert
from service.notify.base import Message
from service.store.replica import dead_lease_holders
from service.store.tables import (
    ALERT,
    ATTEMPT,
    DEAD,
    DEFERRED,
    DELIVERED,
    DELIVERY,
    PENDING,
    SENDING,
    WAITING,
)
from service.store.types import (
    AttemptRecord,
    ClaimedDelivery,
    DeliverySummary,
    Finished,
    HistoryEntry,
    NewAlert,
    Route,
    Status,
)

if TYPE_CHECKING:
    from sqlalchemy.dialects import postgresql, sqlite

MAX_ERROR_CHARS = 2000


def new_id() -> str:
    """A fresh random id (uuid4, 32 hex digits) for an alert or a delivery."""
    return uuid.uuid4().hex


def dialect_insert(connection: Connection, table: Table) -> postgresql.Insert | sqlite.Insert:
    """An INSERT with `on_conflict_do_nothing/_update` for the connection's backend (each
    dialect's module is imported by the first insert on it, so SQLite never loads
    PostgreSQL's)."""
    if connection.dialect.name == "postgresql":
        from sqlalchemy.dialects import postgresql

        return postgresql.insert(table)
    from sqlalchemy.dialects import sqlite

    return sqlite.insert(table)


def record(connection: Connection, alerts: Sequence[NewAlert], now: datetime) -> list[str]:
    """Insert new alerts and their deliveries; return the ids of the alerts inserted."""
    inserted: list[str] = []
    for alert, render, channels in alerts:
        alert_id = new_id()
        message = render(alert, alert_id)
        if message.id != alert_id:
            raise ValueError(f"render() must use the alert id it is given ({alert.rule})")
        if alert.kind == "resolved":
            resolves = _resolved_alert_id(connection, alert)
            message = replace(message, kind="resolved", resolves=resolves)
        elif alert.kind == "amended":
            amends = _resolved_alert_id(connection, alert)
            message = replace(message, kind="amended", amends=amends)
        statement = (
            dialect_insert(connection, ALERT)
            .values(
                id=alert_id,
                dedup_key=alert.dedup_key,
                rule=alert.rule,
                symbol=alert.symbol,
                report_key=alert.report_key,
                fired_at=alert.fired_at,
                message_json=message.to_json(),
            )
            .on_conflict_do_nothing(index_elements=["dedup_key"])
            .returning(ALERT.c.id)
        )
        if connection.execute(statement).scalar_one_or_none() is None:
            continue  # already fired: the dedup key decides, silently
        rows = [_delivery_row(alert_id, route, now) for route in _one_per_channel(channels)]
        if rows:
            connection.execute(DELIVERY.insert(), rows)
        inserted.append(alert_id)
    return inserted


def _resolved_alert_id(connection: Connection, alert: Alert) -> str | None:
    """The id of the alert a resolved alert resolves: the one stored under its
    `resolves_key` (written earlier in this transaction, or before), else the latest fired
    alert of its rule and symbol; None when there is none (the store was emptied)."""
    a = ALERT.c
    if alert.resolves_key is not None:
        found = connection.execute(
            select(a.id).where(a.dedup_key == alert.resolves_key)
        ).scalar_one_or_none()
        if found is not None:
            return str(found)
    latest = connection.execute(
        select(a.id)
        .where(
            a.rule == alert.rule,
            a.symbol == alert.symbol,
            a.dedup_key.not_like(f"%{RESOLVED_SUFFIX}"),
            a.dedup_key.not_like(f"%{AMENDED_SUFFIX}%"),
            a.fired_at <= alert.fired_at,
        )
        .order_by(a.fired_at.desc(), a.id)
        .limit(1)
    ).scalar_one_or_none()
    return None if latest is None else str(latest)


def _one_per_channel(routes: Sequence[Route]) -> list[Route]:
    """The first route of each channel name (one delivery row per channel)."""
    seen: dict[str, Route] = {}
    for route in routes:
        seen.setdefault(route[0], route)
    return list(seen.values())


def _delivery_row(alert_id: str, route: Route, now: datetime) -> dict[str, object]:
    """The outbox row of one channel, as the stages decided: pending (send), muted (kept,
    never sent) or deferred (due at the deferral's end)."""
    channel, kind = route[0], route[1]
    decision = route[2] if len(route) == 3 else None
    status, due, reason = PENDING, now, None
    if decision is not None and decision.action == "mute":
        status, reason = decision.status, decision.reason
    elif decision is not None and decision.action == "defer" and decision.until is not None:
        reason = decision.reason
        if decision.until > now:
            status, due = DEFERRED, decision.until
    return {
        "id": new_id(),
        "alert_id": alert_id,
        "channel": channel,
        "kind": kind,
        "status": status,
        "attempts": 0,
        "next_attempt_at": due,
        "created_at": now,
        "hold_reason": reason,
    }


#: Due deliveries go earliest first; of those due at the same moment (deferred to the end
#: of one quiet window, say) the older first, so a channel gets its alerts in the order
#: they fired (the id is random: the last tie-break only).
_CLAIM_ORDER: Final = (DELIVERY.c.next_attempt_at, DELIVERY.c.created_at, DELIVERY.c.id)


def _due(now: datetime, dead: Sequence[str] = ()) -> ColumnElement[bool]:
    c = DELIVERY.c
    due = [
        and_(c.status.in_(WAITING), c.next_attempt_at <= now),
        and_(c.status == SENDING, c.lease_until <= now),
    ]
    if dead:  # leases of replicas known to be gone are void whatever their time says
        due.append(and_(c.status == SENDING, c.lease_holder.in_(dead)))
    return or_(*due)


def claim(
    connection: Connection,
    now: datetime,
    limit: int,
    lease: timedelta,
    holder: str | None = None,
    exclude: Collection[str] = (),
    held: Collection[str] = (),
) -> list[ClaimedDelivery]:
    """Mark up to `limit` due deliveries `sending` until now + lease, held by `holder` (a
    replica id, or None when nobody can check this process's liveness), and return them.
    Due: pending and due, or sending under a lease that ran out or whose holder is gone.
    Deliveries of the channels in `exclude` are left alone (the worker excludes channels
    whose destination host is at its cap, or that left the rule file), and so are the
    deliveries in `held` (the caller's own, still in flight: never claimed twice)."""
    c = DELIVERY.c
    dead = dead_lease_holders(connection, now)
    claimable = _due(now, dead) & _skipping(exclude, held)
    due_ids = (
        connection.execute(
            select(c.id)
            .where(claimable)
            .order_by(*_CLAIM_ORDER)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        .scalars()
        .all()
    )
    if not due_ids:
        return []
    lease_until = now + lease
    connection.execute(
        update(DELIVERY)
        .where(c.id.in_(due_ids), _due(now, dead))
        .values(
            status=SENDING,
            lease_until=lease_until,
            lease_holder=holder,
            attempts=c.attempts + 1,
        )
    )
    rows = connection.execute(
        select(c.id, c.alert_id, c.channel, c.kind, c.attempts, c.created_at, ALERT.c.message_json)
        .join(ALERT, ALERT.c.id == c.alert_id)
        .where(c.id.in_(due_ids), c.status == SENDING, c.lease_until == lease_until)
        .order_by(*_CLAIM_ORDER)
    ).all()
    return [
        ClaimedDelivery(
            id=row.id,
            alert_id=row.alert_id,
            channel=row.channel,
            kind=row.kind,
            attempts=row.attempts,
            created_at=row.created_at,
            lease_until=lease_until,
            message=Message.from_json(row.message_json),
        )
        for row in rows
    ]


def finish(
    connection: Connection,
    delivery_id: str,
    attempt: AttemptRecord,
    new_status: Status,
    next_attempt_at: datetime | None,
) -> bool:
    """Record `attempt` and move the delivery to `new_status`. False when the delivery was
    not moved (already delivered, or claimed again by someone else since)."""
    [moved] = finish_many(connection, [Finished(delivery_id, attempt, new_status, next_attempt_at)])
    return moved


def finish_many(connection: Connection, finished: Sequence[Finished]) -> list[bool]:
    """`finish()` of each item, in the caller's one transaction (a group commit): one
    INSERT of every attempt, then one guarded UPDATE per delivery. Whether each moved."""
    for item in finished:
        if item.new_status not in (PENDING, DELIVERED, DEAD):
            raise ValueError(f"finish() cannot set status {item.new_status!r}")
        if item.new_status == PENDING and item.next_attempt_at is None:
            raise ValueError("a pending delivery needs next_attempt_at")
    if not finished:
        return []
    errors = [(item.attempt.error or "")[:MAX_ERROR_CHARS] or None for item in finished]
    connection.execute(
        ATTEMPT.insert(),
        [
            {
                "delivery_id": item.delivery_id,
                "number": item.attempt.number,
                "started_at": item.attempt.started_at,
                "finished_at": item.attempt.finished_at,
                "outcome": item.attempt.outcome,
                "status_code": item.attempt.status_code,
                "error": error,
                "duration_ms": item.attempt.duration_ms,
            }
            for item, error in zip(finished, errors, strict=True)
        ],
    )
    return [_move(connection, item, error) for item, error in zip(finished, errors, strict=True)]


def _move(connection: Connection, item: Finished, error: str | None) -> bool:
    c = DELIVERY.c
    conditions = [c.id == item.delivery_id, c.status != DELIVERED]
    if item.new_status != DELIVERED:
        conditions += [c.status == SENDING, c.attempts == item.attempt.number]
    values: dict[str, object] = {"status": item.new_status, "lease_until": None}
    if error is not None:
        values["last_error"] = error
    if item.next_attempt_at is not None:
        values["next_attempt_at"] = item.next_attempt_at
    if item.new_status == DELIVERED:
        values["delivered_at"] = item.attempt.finished_at
    result = connection.execute(update(DELIVERY).where(*conditions).values(**values))
    return result.rowcount == 1


def attempts_of(connection: Connection, delivery_id: str) -> list[AttemptRecord]:
    """Every recorded attempt of a delivery, oldest first."""
    a = ATTEMPT.c
    rows = connection.execute(
        select(a.number, a.started_at, a.finished_at, a.outcome, a.status_code, a.error)
        .where(a.delivery_id == delivery_id)
        .order_by(a.id)
    ).all()
    return [
        AttemptRecord(
            number=r.number,
            started_at=r.started_at,
            finished_at=r.finished_at,
            outcome=r.outcome,
            status_code=r.status_code,
            error=r.error,
        )
        for r in rows
    ]


def history(
    connection: Connection, limit: int, rule: str | None, status: Status | None
) -> list[HistoryEntry]:
    """The newest `limit` alerts (optionally of one rule, or having a delivery in `status`)."""
    a, d = ALERT.c, DELIVERY.c
    query = select(ALERT).order_by(a.fired_at.desc(), a.id).limit(limit)
    if rule is not None:
        query = query.where(a.rule == rule)
    if status is not None:
        query = query.where(a.id.in_(select(d.alert_id).where(d.status == status)))
    alerts = connection.execute(query).all()
    ids = [row.id for row in alerts]
    by_alert: dict[str, list[DeliverySummary]] = {alert_id: [] for alert_id in ids}
    if ids:
        for row in connection.execute(
            select(DELIVERY).where(d.alert_id.in_(ids)).order_by(d.channel)
        ).all():
            by_alert[row.alert_id].append(
                DeliverySummary(
                    id=row.id,
                    channel=row.channel,
                    kind=row.kind,
                    status=row.status,
                    attempts=row.attempts,
                    next_attempt_at=row.next_attempt_at,
                    last_error=row.last_error,
                    delivered_at=row.delivered_at,
                    hold_reason=row.hold_reason,
                )
            )
    return [
        HistoryEntry(
            alert_id=row.id,
            rule=row.rule,
            symbol=row.symbol,
            dedup_key=row.dedup_key,
            report_key=row.report_key,
            fired_at=row.fired_at,
            message=Message.from_json(row.message_json),
            deliveries=tuple(by_alert[row.id]),
        )
        for row in alerts
    ]


def pending_count(connection: Connection) -> int:
    """Deliveries not final yet (pending, deferred, or sending under a lease)."""
    c = DELIVERY.c
    query = select(func.count()).select_from(DELIVERY).where(c.status.in_((*WAITING, SENDING)))
    return int(connection.execute(query).scalar_one())


def _skipping(exclude: Collection[str], held: Collection[str]) -> ColumnElement[bool]:
    """Deliveries not of the channels in `exclude` and not in `held`."""
    c = DELIVERY.c
    condition: ColumnElement[bool] = true()
    if exclude:
        condition = condition & c.channel.not_in(list(exclude))
    if held:
        condition = condition & c.id.not_in(list(held))
    return condition


def next_due(
    connection: Connection, exclude: Collection[str] = (), held: Collection[str] = ()
) -> datetime | None:
    """When the earliest non-final delivery that `claim(exclude=, held=)` would consider
    becomes claimable, or None when there is none."""
    c = DELIVERY.c
    others = _skipping(exclude, held)
    pending = connection.execute(
        select(func.min(c.next_attempt_at)).where(c.status.in_(WAITING), others)
    ).scalar_one_or_none()
    leased = connection.execute(
        select(func.min(c.lease_until)).where(c.status == SENDING, others)
    ).scalar_one_or_none()
    moments = [m for m in (pending, leased) if m is not None]
    return min(moments) if moments else None
