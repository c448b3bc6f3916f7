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

from service.store.outbox import MAX_ERROR_CHARS
from service.store.plain import Plain, marks
from service.store.statuses import PENDING, SENDING


def renew(db: Plain, ids: Sequence[str], until: datetime) -> int:
    """Extend the lease of these `sending` rows to `until` (never shorter). Returns how
    many rows were extended."""
    if not ids:
        return 0
    at = db.when(until)
    result = db.run(
        f"UPDATE delivery SET lease_until = ? WHERE id IN ({marks(len(ids))})"
        " AND status = ? AND lease_until < ?",
        (at, *ids, SENDING, at),
    )
    return int(result.rowcount)


def release(
    db: Plain,
    delivery_id: str,
    attempt_number: int,
    next_attempt_at: datetime,
    reason: str,
) -> bool:
    """Hand a claim back untried: `pending` again at `next_attempt_at`, the claim's
    attempt uncounted, `reason` as the last error. False when the claim was not ours."""
    result = db.run(
        "UPDATE delivery SET status = ?, attempts = attempts - 1, lease_until = NULL,"
        " next_attempt_at = ?, last_error = ? WHERE id = ? AND status = ? AND attempts = ?",
        (
            PENDING,
            db.when(next_attempt_at),
            reason[:MAX_ERROR_CHARS],
            delivery_id,
            SENDING,
            attempt_number,
        ),
    )
    return int(result.rowcount) == 1
