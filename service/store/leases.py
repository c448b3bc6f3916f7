"""Lease upkeep for the delivery worker, next to `outbox.claim`: claims that skip some
channels, renewal of leases still being worked on, and handing a claim back untried.

Promises:
- `claim_excluding()` is `outbox.claim()` restricted to deliveries whose channel is not in
  `exclude` (the worker excludes channels whose destination host is at its cap, and
  channels missing from the rule file), so a delivery it could not start now stays
  `pending` in the database, claimable by another replica, and is never claimed in a loop;
  and never one in `held`: a process does not claim again what it still works on, even
  if its lease ran out (a stalled renewal, or a fast test clock).
- `renew()` pushes `lease_until` forward for rows still `sending`; it never shortens a
  lease, so a send that outlives its first lease is not claimed again under it.
- `release()` puts a claimed row back to `pending` *without* counting the claim as an
  attempt (and records no attempt): nothing was sent. It applies only while the caller
  still holds the claim (same attempt number, still `sending`).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from service.notify.base import Message
from service.store.outbox import MAX_ERROR_CHARS, _due
from service.store.tables import ALERT, DELIVERY, PENDING, SENDING
from service.store.types import ClaimedDelivery


def _others(exclude: Collection[str], held: Collection[str]) -> ColumnElement[bool]:
    c = DELIVERY.c
    condition: ColumnElement[bool] = c.id.is_not(None)
    if exclude:
        condition = condition & c.channel.not_in(list(exclude))
    if held:
        condition = condition & c.id.not_in(list(held))
    return condition


def claim_excluding(
    connection: Connection,
    now: datetime,
    limit: int,
    lease: timedelta,
    exclude: Collection[str],
    held: Collection[str] = (),
) -> list[ClaimedDelivery]:
    """`outbox.claim()`, skipping deliveries of the channels in `exclude` and the
    deliveries in `held` (those the caller is still working on)."""
    c = DELIVERY.c
    due_ids = (
        connection.execute(
            select(c.id)
            .where(_due(now), _others(exclude, held))
            .order_by(c.next_attempt_at, c.id)
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
        .where(c.id.in_(due_ids), _due(now))
        .values(status=SENDING, lease_until=lease_until, attempts=c.attempts + 1)
    )
    rows = connection.execute(
        select(c.id, c.alert_id, c.channel, c.kind, c.attempts, c.created_at, ALERT.c.message_json)
        .join(ALERT, ALERT.c.id == c.alert_id)
        .where(c.id.in_(due_ids), c.status == SENDING, c.lease_until == lease_until)
        .order_by(c.next_attempt_at, c.id)
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


def renew(connection: Connection, ids: Sequence[str], until: datetime) -> int:
    """Extend the lease of these `sending` rows to `until` (never shorter). Returns how
    many rows were extended."""
    if not ids:
        return 0
    c = DELIVERY.c
    result = connection.execute(
        update(DELIVERY)
        .where(c.id.in_(list(ids)), c.status == SENDING, c.lease_until < until)
        .values(lease_until=until)
    )
    return int(result.rowcount)


def release(
    connection: Connection,
    delivery_id: str,
    attempt_number: int,
    next_attempt_at: datetime,
    reason: str,
) -> bool:
    """Hand a claim back untried: `pending` again at `next_attempt_at`, the claim's
    attempt uncounted, `reason` as the last error. False when the claim was not ours."""
    c = DELIVERY.c
    result = connection.execute(
        update(DELIVERY)
        .where(c.id == delivery_id, c.status == SENDING, c.attempts == attempt_number)
        .values(
            status=PENDING,
            attempts=c.attempts - 1,
            lease_until=None,
            next_attempt_at=next_attempt_at,
            last_error=reason[:MAX_ERROR_CHARS],
        )
    )
    return int(result.rowcount) == 1


def next_due_excluding(
    connection: Connection, exclude: Collection[str], held: Collection[str] = ()
) -> datetime | None:
    """`outbox.next_due()` over the deliveries `claim_excluding()` would consider."""
    c = DELIVERY.c
    others = _others(exclude, held)
    pending = connection.execute(
        select(func.min(c.next_attempt_at)).where(c.status == PENDING, others)
    ).scalar_one_or_none()
    leased = connection.execute(
        select(func.min(c.lease_until)).where(c.status == SENDING, others)
    ).scalar_one_or_none()
    moments = [m for m in (pending, leased) if m is not None]
    return min(moments) if moments else None
