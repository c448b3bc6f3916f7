"""Who holds a delivery lease, and whether that holder is still alive.

Each daemon gets a replica id (a random uuid, 32 hex digits) when it opens the store, and
`claim()` records it in `delivery.lease_holder`. Liveness, per backend:

- PostgreSQL: a daemon holds a session advisory lock on `holder_key(replica_id)` on a
  dedicated connection for its lifetime (`pg_replica.ReplicaLock`) and never claims without
  it. A lease whose holder's key is not granted in `pg_locks` belongs to a dead replica
  (kill -9 closes its socket, so its lock goes at once) and is due at once, whatever its
  lease time says (`dead_holders`). The lease time stays the fallback for rows recorded
  without a holder (before r0002) and for a holder whose key cannot be read.
- SQLite: one daemon per file (`filelock`), so at start every lease held by another replica
  id is a previous process's and is voided then.

This module needs no driver: the PostgreSQL side is plain SQL on the store's connection.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from service.store.plain import Plain
from service.store.statuses import SENDING

#: High 16 bits of every replica key ("ew"): apart from the leader's and the migration's
#: keys, so `pg_locks` shows replica locks as classid 0x6577xxxx, objsubid 1.
REPLICA_KEY_PREFIX = 0x6577

# Advisory locks on bigint keys granted in this database, as (classid, objid).
_GRANTED_SQL = (
    "SELECT classid::bigint, objid::bigint FROM pg_locks WHERE locktype = 'advisory'"
    " AND granted AND objsubid = 1 AND classid::bigint >> 16 = ?"
    " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
)


def new_replica_id() -> str:
    """A fresh replica id: 32 hex digits, the first 12 of them random."""
    return uuid.uuid4().hex


def holder_key(replica_id: str) -> int | None:
    """The advisory lock key of a replica id (a positive 64-bit integer), or None when the
    id is not one `new_replica_id` makes."""
    head = replica_id[:12]
    if len(head) != 12 or any(ch not in "0123456789abcdef" for ch in head):
        return None
    return (REPLICA_KEY_PREFIX << 48) | int(head, 16)


def split_key(key: int) -> tuple[int, int]:
    """(classid, objid) under which `pg_locks` shows an advisory lock on a bigint key."""
    if not -(2**63) <= key < 2**63:
        raise ValueError("an advisory lock key is a signed 64-bit integer")
    unsigned = key & 0xFFFFFFFFFFFFFFFF
    return unsigned >> 32, unsigned & 0xFFFFFFFF


def dead_holders(db: Plain, holders: Sequence[str]) -> list[str]:
    """The holders among `holders` whose advisory lock nobody holds (PostgreSQL only; on
    other backends nobody is known dead). Ids without a key are never called dead."""
    if db.sqlite or not holders:
        return []
    granted = {
        (int(classid), int(objid)) for classid, objid in db.run(_GRANTED_SQL, (REPLICA_KEY_PREFIX,))
    }
    dead = []
    for holder in holders:
        key = holder_key(holder)
        if key is not None and split_key(key) not in granted:
            dead.append(holder)
    return dead


def dead_lease_holders(db: Plain, now: datetime) -> list[str]:
    """Holders of leases still running whose replica is gone (PostgreSQL; else none)."""
    if db.sqlite:
        return []
    holders = db.run(
        "SELECT DISTINCT lease_holder FROM delivery WHERE status = ? AND lease_until > ?"
        " AND lease_holder IS NOT NULL",
        (SENDING, db.when(now)),
    )
    return dead_holders(db, [str(holder) for (holder,) in holders])
