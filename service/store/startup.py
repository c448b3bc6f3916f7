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

from service.store.plain import Plain
from service.store.statuses import PENDING, SENDING


def probe_write(db: Plain, replica_id: str, now: datetime) -> None:
    """Upsert the `start` row of `probe` (the caller commits: that is the probe)."""
    db.run(
        "INSERT INTO probe (name, replica_id, written_at) VALUES (?, ?, ?)"
        " ON CONFLICT (name) DO UPDATE SET replica_id = excluded.replica_id,"
        " written_at = excluded.written_at",
        ("start", replica_id, db.when(now)),
    )


def void_leases_of_others(db: Plain, replica_id: str) -> int:
    """Make every delivery leased by another replica pending again; returns how many."""
    result = db.run(
        "UPDATE delivery SET status = ?, lease_until = NULL, lease_holder = NULL"
        " WHERE status = ? AND (lease_holder IS NULL OR lease_holder <> ?)",
        (PENDING, SENDING, replica_id),
    )
    return int(result.rowcount or 0)
