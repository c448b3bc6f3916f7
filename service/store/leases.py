"""Lease upkeep for the delivery worker, next to `outbox.claim`: claims that skip some
channels, renewal of leases still being worked on, and handing a claim back untried.

Promises:
- Claims that skip deliveries are `outbox.claim(..., exclude=, held=)`: the worker
  excludes channels whose destination host is at its cap, and channels missing from the
  rule file, so a delivery it could not start now stays `pending` in the database,
  claimable by another replica, and is never claimed in a loop; and it never claims one in
  `held`: a process does not claim again what it still works on, even if its lease ran
  out (a stalled renewal, or a fast test clock).
- `renew()` pushes `lease_until` forward for rows still `sending`; it never shortens a
  lease, so a send that outlives its first lease is not claimed again under it.
- `release()` puts a claimed row back to `pending` *without* counting the claim as an
  attempt (and records no attempt): nothing was sent. It applies only while the caller
  still holds the claim (same attempt number, still `sending`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import update
from sqlalchemy.engine import Connection

from service.store.outbox import MAX_ERROR_CHARS
from service.store.tables import DELIVERY, PENDING, SENDING


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
