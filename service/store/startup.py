"""What a daemon does to its database at start, before it records or delivers anything.

- The write probe: a real write, committed (an upsert of this replica's row in `probe`).
  A database the daemon can read but not write (a read-only file or mount, a full disk, a
  read-only PostgreSQL) would otherwise let it start, report healthy and record nothing;
  with the probe it exits at start with one line.
- On SQLite, where the file lock guarantees one daemon (`filelock.py`), every `sending`
  lease not held by this replica was left by a process that died: it is voided (the row is
  pending and due again), so a restart after kill -9 resends at once instead of waiting out
  EARNWATCH_DELIVERY_LEASE. The row keeps its attempt count, as after a lease that ran out.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import or_, update
from sqlalchemy.engine import Connection

from service.store.outbox import dialect_insert
from service.store.tables import DELIVERY, PENDING, PROBE, SENDING


def probe_write(connection: Connection, replica_id: str, now: datetime) -> None:
    """Upsert the `start` row of `probe` (the caller commits: that is the probe)."""
    statement = dialect_insert(connection, PROBE).values(
        name="start", replica_id=replica_id, written_at=now
    )
    connection.execute(
        statement.on_conflict_do_update(
            index_elements=["name"], set_={"replica_id": replica_id, "written_at": now}
        )
    )


def void_leases_of_others(connection: Connection, replica_id: str) -> int:
    """Make every delivery leased by another replica pending again; returns how many."""
    c = DELIVERY.c
    result = connection.execute(
        update(DELIVERY)
        .where(
            c.status == SENDING,
            or_(c.lease_holder.is_(None), c.lease_holder != replica_id),
        )
        .values(status=PENDING, lease_until=None, lease_holder=None)
    )
    return int(result.rowcount or 0)
