"""SQLite on the standard library's `sqlite3`: the embedded default, with no SQLAlchemy.

Promises (those the SQLAlchemy engine kept before, unchanged):
- Every connection runs with `journal_mode=WAL` (a file; an in-memory database has no
  WAL), `synchronous=FULL` (a commit survives a power loss, not only a crash),
  `busy_timeout=10000` and `foreign_keys=ON`.
- The driver's own transaction handling is off (`isolation_level=None`): we emit `BEGIN`
  ourselves, so reads are isolated (`BEGIN`, one snapshot) and every writer takes
  `BEGIN IMMEDIATE` (no "database is locked" upgrade failure half-way through a
  transaction). A transaction commits when its block ends and rolls back on an exception.
- Thread-safe: the store is called from `asyncio.to_thread` workers. A file database keeps
  a small pool of connections (each used by one thread at a time, `check_same_thread` off;
  at most `POOL_SIZE` kept idle, as SQLAlchemy's QueuePool did); an in-memory database is
  one shared connection (each would otherwise see a database of its own) guarded by a
  lock for the whole transaction. `close()` closes them all (one in use as it ends);
  as SQLAlchemy's `Engine.dispose()` did, a later use opens a new one.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any

from service.store.plain import Plain, Result

BUSY_TIMEOUT_MS = 10_000
#: Idle connections kept for reuse (SQLAlchemy's QueuePool default for a file: 5).
POOL_SIZE = 5


def configure(connection: sqlite3.Connection, *, memory: bool) -> None:
    """Set what every connection runs with (the module docstring's promises): the store's
    own connections and those of the SQLAlchemy engine made for a migration or a tool
    (`db.create_db_engine`)."""
    connection.isolation_level = None  # the driver's transactions off: we emit BEGIN
    if not memory:
        connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=FULL")
    connection.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    connection.execute("PRAGMA foreign_keys=ON")


class SqlitePlain(Plain):
    """`Plain` on one `sqlite3` connection."""

    __slots__ = ("connection",)

    def __init__(self, connection: sqlite3.Connection) -> None:
        super().__init__(sqlite=True)
        self.connection = connection

    def run(self, statement: str, params: Sequence[Any] = ()) -> Result:
        return self.connection.execute(statement, params)

    def run_many(self, statement: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            self.connection.executemany(statement, rows)


class SqliteDatabase:
    """One SQLite database (a file, or in memory) on `sqlite3` connections."""

    backend = "sqlite"
    #: What a failure of this backend raises (the store's edge makes it a StoreError).
    errors: tuple[type[Exception], ...] = (sqlite3.Error,)

    def __init__(
        self,
        database: str,
        *,
        memory: bool,
        uri: bool = False,
        options: dict[str, Any] | None = None,
    ) -> None:
        self.database = database
        self.memory = memory
        self._uri = uri
        self._options = dict(options or {})
        self._lock = threading.Lock()  # the pool's list, or the shared connection's use
        self._idle: list[sqlite3.Connection] = []
        self._shared: sqlite3.Connection | None = None
        #: Counts `close()` calls: a connection taken before one is closed when given back.
        self._generation = 0

    def connect(self) -> sqlite3.Connection:
        """A new connection, configured as the module docstring promises."""
        connection: sqlite3.Connection = sqlite3.connect(
            self.database, uri=self._uri, check_same_thread=False, **self._options
        )
        try:
            configure(connection, memory=self.memory)
        except BaseException:
            connection.close()
            raise
        return connection

    @contextmanager
    def connection(self) -> Iterator[sqlite3.Connection]:
        """A connection for this thread's use until the block ends (outside a transaction).
        In memory: the shared one, under the lock."""
        if self.memory:
            with self._lock:
                if self._shared is None:
                    self._shared = self.connect()
                yield self._shared
            return
        with self._lock:
            generation = self._generation
            connection = self._idle.pop() if self._idle else None
        if connection is None:
            connection = self.connect()
        try:
            yield connection
        finally:
            self._give_back(connection, generation)

    def _give_back(self, connection: sqlite3.Connection, generation: int) -> None:
        """Keep a connection for reuse, or close it: the pool is full, `close()` was called
        since it was taken, or it is still in a transaction (a rollback failed: its state
        is unknown)."""
        if not connection.in_transaction:
            with self._lock:
                if generation == self._generation and len(self._idle) < POOL_SIZE:
                    self._idle.append(connection)
                    return
        connection.close()

    @contextmanager
    def _transaction(self, begin: str) -> Iterator[Plain]:
        with self.connection() as connection:
            connection.execute(begin)
            try:
                yield SqlitePlain(connection)
                connection.execute("COMMIT")
            except BaseException:
                if connection.in_transaction:
                    with contextlib.suppress(sqlite3.Error):  # the first error is the one
                        connection.execute("ROLLBACK")
                raise

    def write(self) -> AbstractContextManager[Plain]:
        """A transaction that will write (`BEGIN IMMEDIATE`). Commits on success."""
        return self._transaction("BEGIN IMMEDIATE")

    def read(self) -> AbstractContextManager[Plain]:
        """A read-only transaction (`BEGIN`: one consistent snapshot)."""
        return self._transaction("BEGIN")

    def close(self) -> None:
        """Close every connection (one in use when it is given back). Idempotent."""
        with self._lock:
            self._generation += 1
            idle, self._idle = self._idle, []
            shared, self._shared = self._shared, None
        for connection in idle:
            connection.close()
        if shared is not None:
            shared.close()
