"""The persistent store: the only package that imports SQLAlchemy or Alembic (for
PostgreSQL, and for a migration; SQLite runs on the standard library's sqlite3: `db.py`).

`open_store(url)` connects to SQLite or PostgreSQL, migrates the schema to the newest
revision and returns a `Store`. Its methods are short and synchronous (async callers use
`asyncio.to_thread`), each one transaction, and return frozen dataclasses or domain values,
never rows. Database failures surface as `StoreError` with a one-line message.

The delivery guarantee rests here: an alert and its delivery rows are committed, under the
dedup key's unique constraint, before anything is sent (`record`); a delivery is claimed by
one worker at a time under a lease (`claim`); and it is marked delivered only after the
notifier returned (`finish`). See `outbox.py` for the details.

`open_store(url, daemon=True)` opens the store of a daemon: one per SQLite file
(`filelock.py`), a write proven at start (`startup.py`), and leases that name their
holder, so a holder that died loses them at once (`replica.py`).
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from service.engine import RuleState
from service.errors import StoreError
from service.store import leases, outbox, state
from service.store import silences as silence_rows
from service.store.db import (
    Database,
    at_head,
    backend_of,
    current_revision,
    describe_error,
    migrate,
    normalize_url,
    open_database,
)
from service.store.filelock import ProcessLock, sqlite_file
from service.store.leader import describe_target
from service.store.plain import BindError, Plain
from service.store.replica import new_replica_id
from service.store.startup import probe_write, void_leases_of_others
from service.store.state import MarketData
from service.store.types import (
    AttemptRecord,
    ClaimedDelivery,
    DeliverySummary,
    Finished,
    HistoryEntry,
    NewAlert,
    Outcome,
    Render,
    Silence,
    Status,
)

if TYPE_CHECKING:
    from service.store.pg_replica import ReplicaLock

log = logging.getLogger(__name__)

#: EARNWATCH_FAILOVER's default, for callers that pass none.
DEFAULT_FAILOVER = timedelta(seconds=15)

__all__ = [
    "AttemptRecord",
    "ClaimedDelivery",
    "DeliverySummary",
    "Finished",
    "HistoryEntry",
    "MarketData",
    "NewAlert",
    "Outcome",
    "Render",
    "Silence",
    "Status",
    "Store",
    "open_store",
]


def open_store(url: str, *, daemon: bool = False, failover: timedelta = DEFAULT_FAILOVER) -> Store:
    """Connect, migrate to the newest schema, and return the store. Raises StoreError.

    `daemon=True` is for the process that records and delivers (`earnwatch run`). On a
    SQLite file it first takes the one-daemon lock (`filelock.py`: a second daemon is
    refused). A file's or a server's schema is migrated in a child process (`migrator.py`:
    Alembic never loads in the daemon). Then it proves the database takes writes
    (`startup.py`), and on PostgreSQL takes this replica's liveness lock (`replica.py`,
    timed from `failover`), or on SQLite voids the leases a previous process left. The
    locks go with `close()`."""
    lock: ProcessLock | None = None
    if daemon and (path := sqlite_file(url)) is not None:
        lock = ProcessLock.acquire(path)
    try:
        database = open_database(url)
    except BaseException:
        if lock is not None:
            lock.release()
        raise
    store = Store(database, file_lock=lock)
    try:
        if daemon and (lock is not None or database.backend == "postgresql"):
            # a file or a server: Alembic runs in a child and never loads here (migrator.py)
            if not at_head(database):
                from service.store.migrator import migrate_in_child

                migrate_in_child(url)
        else:
            migrate(database)
        if daemon:
            store._start(url, failover)
    except BaseException as exc:
        store.close()
        if isinstance(exc, failures(database)):
            raise StoreError(f"cannot open the database: {describe_error(exc)}") from exc
        raise
    return store


def failures(database: Database) -> tuple[type[Exception], ...]:
    """What a failure of the database raises: its backend's errors, a value refused before
    the driver (`BindError`), and SQLAlchemy's errors once it is loaded (a migration on
    SQLite; it is never imported for SQLite otherwise)."""
    errors = (*database.errors, BindError)
    loaded = sys.modules.get("sqlalchemy.exc")
    if loaded is not None:
        errors = (*errors, loaded.SQLAlchemyError)
    return errors


def _where(url: str) -> str:
    """The database as a user knows it, never with a password."""
    database = sqlite_file(url)
    if database is not None:
        return str(database)
    if backend_of(url) == "postgresql":
        from sqlalchemy.engine import make_url  # loaded already on PostgreSQL

        return describe_target(make_url(normalize_url(url)))
    return "in memory"


class Store:
    """The outbox, rule state and market data on one database. Thread-safe."""

    def __init__(self, database: Database, *, file_lock: ProcessLock | None = None) -> None:
        self._db = database
        self._failures = failures(database)
        self._file_lock = file_lock
        self._replica_lock: ReplicaLock | None = None
        #: This process's identity as a lease holder (see `replica.py`).
        self.replica_id = new_replica_id()
        # SQLite has one writer at a time: our own threads queue here (woken at once)
        # rather than in SQLite's busy handler, which sleeps and polls (1 ms, then 2, 5,
        # 10 ...). Other processes still meet the busy timeout.
        self._write_lock = threading.Lock() if self.backend == "sqlite" else None

    @contextmanager
    def _write(self) -> Iterator[Plain]:
        """A write transaction (`Database.write`), after this process's other SQLite
        writers."""
        if self._write_lock is None:
            with self._db.write() as db:
                yield db
            return
        with self._write_lock, self._db.write() as db:
            yield db

    def _start(self, url: str, failover: timedelta) -> None:
        """The daemon's start (see `open_store`). Raises StoreError or a database error."""
        try:
            with self._write() as db:
                probe_write(db, self.replica_id, datetime.now(UTC))
                voided = 0
                if self.backend == "sqlite":
                    voided = void_leases_of_others(db, self.replica_id)
        except self._failures as exc:
            raise StoreError(
                f"the database {_where(url)} cannot be written: {describe_error(exc)}"
            ) from exc
        if voided:
            log.info(
                "store: %d delivery(ies) left in flight by a previous process are due again",
                voided,
            )
        if self.backend == "postgresql":
            from service.store.pg_replica import ReplicaLock  # psycopg only for PostgreSQL

            self._replica_lock = ReplicaLock(url, self.replica_id, failover=failover)
            self._replica_lock.ensure()

    def _lease_holder(self) -> str | None:
        """Who a new lease names: on PostgreSQL only a replica whose liveness lock is held
        now (others would take a holder without one for dead); on SQLite this process."""
        if self._replica_lock is not None:
            self._replica_lock.ensure()
            return self.replica_id
        return self.replica_id if self.backend == "sqlite" else None

    @property
    def backend(self) -> str:
        """`sqlite` or `postgresql`."""
        return self._db.backend

    @contextmanager
    def _errors(self, operation: str) -> Iterator[None]:
        try:
            yield
        except self._failures as exc:
            raise StoreError(f"store {operation} failed: {describe_error(exc)}") from exc

    # --- outbox ----------------------------------------------------------------------

    def record(
        self,
        alerts: Sequence[NewAlert],
        states: Mapping[tuple[str, str], RuleState],
        now: datetime,
    ) -> list[str]:
        """In one transaction: insert each new alert with one delivery per (channel, kind),
        skip alerts whose dedup key exists, and upsert `states`. Returns the new alert ids."""
        with self._errors("record"), self._write() as db:
            inserted = outbox.record(db, alerts, now)
            state.save_states(db, states)
            return inserted

    def claim(
        self,
        now: datetime,
        limit: int,
        lease: timedelta,
        exclude: Collection[str] = (),
        held: Collection[str] = (),
    ) -> list[ClaimedDelivery]:
        """Take up to `limit` due deliveries (pending and due, or sending with an expired
        lease or a holder that is gone) whose channel is not in `exclude`, mark them
        `sending` until `now + lease`, held by this replica, and return them."""
        if limit <= 0:
            return []
        holder = self._lease_holder()
        with self._errors("claim"), self._write() as db:
            return outbox.claim(db, now, limit, lease, holder, exclude, held)

    def claim_next(
        self,
        now: datetime,
        limit: int,
        lease: timedelta,
        exclude: Collection[str] = (),
        held: Collection[str] = (),
    ) -> tuple[list[ClaimedDelivery], dict[str, datetime] | None]:
        """`claim()`, and, when it took fewer than `limit` (nothing more is due now), in
        the same transaction: when each channel's next delivery becomes claimable
        (`next_due` by channel, what was just claimed counting as held; the caller
        leaves out the channels it skips). None when it took `limit`: more may be due."""
        if limit <= 0:
            return [], None
        holder = self._lease_holder()
        with self._errors("claim"), self._write() as db:
            claimed = outbox.claim(db, now, limit, lease, holder, exclude, held)
            if len(claimed) == limit:
                return claimed, None
            ours = [*held, *(delivery.id for delivery in claimed)]
            return claimed, outbox.next_due_by_channel(db, ours)

    def finish(
        self,
        delivery_id: str,
        attempt: AttemptRecord,
        new_status: Status,
        next_attempt_at: datetime | None = None,
    ) -> bool:
        """Record the attempt and move the delivery (pending needs `next_attempt_at`).
        Returns False when the delivery had moved on (delivered, or claimed again)."""
        with self._errors("finish"), self._write() as db:
            return outbox.finish(db, delivery_id, attempt, new_status, next_attempt_at)

    def finish_many(self, finished: Sequence[Finished]) -> list[bool]:
        """`finish()` of every item in one transaction (one durable commit for the group);
        whether each delivery moved. All or nothing: on StoreError none is recorded."""
        if not finished:
            return []
        with self._errors("finish"), self._write() as db:
            return outbox.finish_many(db, finished)

    def attempts(self, delivery_id: str) -> list[AttemptRecord]:
        """The recorded attempts of one delivery, oldest first."""
        with self._errors("attempts"), self._db.read() as db:
            return outbox.attempts_of(db, delivery_id)

    def history(
        self, limit: int = 50, rule: str | None = None, status: Status | None = None
    ) -> list[HistoryEntry]:
        """Newest alerts first, each with its deliveries."""
        with self._errors("history"), self._db.read() as db:
            return outbox.history(db, limit, rule, status)

    def pending_count(self) -> int:
        """Deliveries not yet delivered or dead."""
        with self._errors("count"), self._db.read() as db:
            return outbox.pending_count(db)

    def next_due(
        self, exclude: Collection[str] = (), held: Collection[str] = ()
    ) -> datetime | None:
        """When the next delivery that `claim(exclude=, held=)` would consider becomes
        claimable (may be in the past), or None."""
        with self._errors("next_due"), self._db.read() as db:
            return outbox.next_due(db, exclude, held)

    # --- rule state and market data --------------------------------------------------

    def load_states(self) -> dict[tuple[str, str], RuleState]:
        """Every saved rule state by (rule, symbol)."""
        with self._errors("load_states"), self._db.read() as db:
            return state.load_states(db)

    def save_states(self, states: Mapping[tuple[str, str], RuleState]) -> None:
        """Upsert rule states without alerts (e.g. a `for` delay started)."""
        with self._errors("save_states"), self._write() as db:
            state.save_states(db, states)

    def delete_states(self, keys: Sequence[tuple[str, str]]) -> None:
        """Forget the state of (rule, symbol) pairs that left the rule file."""
        with self._errors("delete_states"), self._write() as db:
            state.delete_states(db, list(keys))

    def save_market_data(self, key: str, data_json: str, now: datetime) -> None:
        """Keep `data_json` under `key` (replacing what was there)."""
        with self._errors("save_market_data"), self._write() as db:
            state.save_market_data(db, key, data_json, now)

    def load_market_data(self, key: str) -> MarketData | None:
        """What `save_market_data` kept under `key`, or None."""
        with self._errors("load_market_data"), self._db.read() as db:
            return state.load_market_data(db, key)

    # --- silences (see silences.py) -------------------------------------------------

    def add_silence(
        self,
        *,
        rule: str | None,
        symbol: str | None,
        ends_at: datetime,
        comment: str | None,
        now: datetime,
        starts_at: datetime | None = None,
    ) -> Silence:
        """Store a new silence of `rule` and/or `symbol` from `starts_at` (default `now`)
        until `ends_at`, and return it. Raises ValueError when it names neither."""
        with self._errors("add_silence"), self._write() as db:
            return silence_rows.add(
                db,
                rule=rule,
                symbol=symbol,
                starts_at=starts_at or now,
                ends_at=ends_at,
                comment=comment,
                now=now,
            )

    def silences(self, now: datetime) -> list[Silence]:
        """The silences holding at `now` (started and not ended), oldest first."""
        with self._errors("silences"), self._db.read() as db:
            return silence_rows.active(db, now)

    def expire_silence(self, silence_id: str, now: datetime) -> Silence | None:
        """End a silence at `now` and return it; None when no silence of that id holds."""
        with self._errors("expire_silence"), self._write() as db:
            return silence_rows.expire(db, silence_id, now)

    # --- lifecycle -------------------------------------------------------------------

    def schema_revision(self) -> str | None:
        """The Alembic revision the database is at."""
        with self._errors("schema_revision"):
            return current_revision(self._db)

    def close(self) -> None:
        """Close every pooled connection and free this process's locks. The store is
        unusable afterwards. Idempotent."""
        self._db.close()
        if self._replica_lock is not None:
            self._replica_lock.close()
            self._replica_lock = None
        if self._file_lock is not None:
            self._file_lock.release()
            self._file_lock = None

    # --- lease upkeep (the delivery worker; see leases.py) ---------------------------

    def renew(self, ids: Sequence[str], until: datetime) -> int:
        """Extend the leases of these deliveries, still `sending`, to `until`."""
        with self._errors("renew"), self._write() as db:
            return leases.renew(db, ids, until)

    def release(
        self, delivery_id: str, attempt_number: int, next_attempt_at: datetime, reason: str
    ) -> bool:
        """Hand a claim back untried (pending again, the attempt uncounted)."""
        with self._errors("release"), self._write() as db:
            return leases.release(db, delivery_id, attempt_number, next_attempt_at, reason)
