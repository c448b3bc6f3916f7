"""Leader election on PostgreSQL: one replica holds a session advisory lock and polls.

Any number of replicas share one database. The one whose dedicated connection holds
`pg_try_advisory_lock(LEADER_LOCK_KEY)` leads: it alone runs polling and evaluation. The
others call `step()` too and take the lock as soon as the leader's session ends. Delivery is
not guarded here: every replica may deliver (claims use `FOR UPDATE SKIP LOCKED`), and the
unique dedup key keeps alerts single whatever the timing. No home-made cluster protocol:
PostgreSQL's own session lock is the only shared state.

How the timings follow from `failover` (F, EARNWATCH_FAILOVER, 15 s by default; see
`LeaderTimings.from_failover`):

- The leader renews every `step()` (the daemon calls it every second): one query on the
  lock's connection checks that this session still holds the lock, under a statement
  timeout of F/4. A failed or timed-out renewal drops leadership at once: the connection
  is closed, which frees the lock on the server.
- Self-fencing: `leading` turns False by itself once the last successful renewal *started*
  more than F/2 ago, even if `step()` is not called (blocked event loop, frozen process).
- A dead or partitioned leader: the lock connection runs with server-side TCP keepalives
  and `tcp_user_timeout` (set per session) sized so the server drops it about 0.6 F after
  the last traffic, i.e. after the leader fenced itself (F/2) and early enough for a
  standby to take over within F. libpq's client-side keepalives get the same values, so a
  leader also notices a dead server.
- A holder that the network keeps "alive" (a proxy, a frozen process whose kernel still
  answers keepalives) is found by the standby: if the lock's holder has been idle on the
  server for more than 0.6 F (a live leader renews every second), the standby terminates
  its backend (`pg_terminate_backend`, as GoAlert does with idle holders) and takes the
  lock. The holder fenced itself at F/2 already, so the two never lead at once.
- A SIGKILLed leader's socket is closed by its kernel: the lock goes at once and a standby
  leads on its next step.

The lock lives on a dedicated psycopg 3 connection (autocommit; not the SQLAlchemy pool, and
not through PgBouncer in transaction mode, which breaks session locks). Its calls are
blocking and run in a worker thread (`asyncio.to_thread`-style, through the loop's default
executor) under an asyncio timeout. psycopg's async connection is not used on purpose: when
cancelled mid-query it tries to cancel on the server and waits up to 10 s more, which is
exactly the hang a partition causes. A thread that overstays its timeout is abandoned: the
session is marked dead, leadership is dropped at once, and the thread closes the
connection itself when libpq returns (bounded by the keepalives and `tcp_user_timeout`).

Logs name the database as `host:port/dbname`; the URL (which holds the password) is never
logged. SQLite has no replicas: `SingleLeader` always leads. `leadership_for` picks one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Protocol

from service.errors import StoreError
from service.store.db import MIGRATION_LOCK_KEY, backend_of, require_psycopg

if TYPE_CHECKING:
    from sqlalchemy.engine import URL

log = logging.getLogger(__name__)

#: Session advisory lock key of the leader ("ewld" in ASCII). It fits in 31 bits, so
#: `pg_locks` shows it as `classid = 0, objid = LEADER_LOCK_KEY, objsubid = 1`:
#: `SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted
#:  AND objid = 1702325348` is 1 while a replica leads.
LEADER_LOCK_KEY = 0x65776C64
assert LEADER_LOCK_KEY != MIGRATION_LOCK_KEY

APPLICATION_NAME = "earnwatch-leader"

#: Called with (leading, reason) each time this replica gains or loses leadership.
OnChange = Callable[[bool, str], None]


class Leader(Protocol):
    """What the daemon needs from an election, on any backend."""

    @property
    def step_interval(self) -> float:
        """Seconds between `step()` calls (well under the self-fence delay F/2)."""
        ...

    @property
    def leading(self) -> bool:
        """True while this replica may poll and evaluate (checked by every job)."""
        ...

    async def step(self) -> bool:
        """Acquire or renew; returns `leading`. Never raises for database trouble."""
        ...

    async def release(self) -> None:
        """Give leadership up for good (clean shutdown). Idempotent."""
        ...


def describe_target(url: URL) -> str:
    """`host:port/dbname`, never user or password."""
    host = url.host or "localhost"
    return f"{host}:{url.port or 5432}/{url.database or ''}"


class SingleLeader:
    """SQLite: one process, no election. Leads from the first step until `release()`."""

    def __init__(self, *, on_change: OnChange | None = None) -> None:
        self._on_change = on_change
        self._leading = False
        self._released = False

    @property
    def step_interval(self) -> float:
        return 1.0

    @property
    def leading(self) -> bool:
        return not self._released

    async def step(self) -> bool:
        if not self._released and not self._leading:
            self._leading = True
            log.info("leader election: not needed on SQLite; this process leads")
            if self._on_change is not None:
                self._on_change(True, "single process (SQLite)")
        return self.leading

    async def release(self) -> None:
        if self._released:
            return
        self._released = True
        if self._leading and self._on_change is not None:
            self._on_change(False, "released at shutdown")


def leadership_for(url: str, failover: timedelta, *, on_change: OnChange | None = None) -> Leader:
    """A PostgreSQL election for a PostgreSQL URL, a `SingleLeader` for SQLite."""
    backend = backend_of(url)
    if backend == "sqlite":
        return SingleLeader(on_change=on_change)
    if backend == "postgresql":
        require_psycopg()
        from service.store.pg_leader import Leadership  # psycopg only for PostgreSQL

        return Leadership(url, failover=failover, on_change=on_change)
    raise StoreError(f"no leader election for database URL scheme {backend!r}")
