"""A replica's liveness on PostgreSQL (see `service/store/replica.py`): a session advisory
lock on the replica's own key, held on a dedicated connection while its store is open.

The connection is opened exactly like the leader election's (`pg_leader.Leadership`: the
same keepalives, `tcp_user_timeout` and statement timeout derived from EARNWATCH_FAILOVER),
so a partitioned replica loses its lock about when it would lose leadership, and a killed
one at once. Only imported for a PostgreSQL URL (it needs psycopg).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from datetime import timedelta

import psycopg

from service.errors import StoreError
from service.store.pg_leader import Connect, Leadership, _one_line, _Session
from service.store.replica import holder_key

log = logging.getLogger(__name__)

APPLICATION_NAME = "earnwatch-replica"


class ReplicaLock:
    """Holds this replica's advisory lock. Thread-safe; its calls block (run them in a
    worker thread, as every store call is).

    `ensure()` runs before every claim: it checks the lock at most once per `check_every`
    seconds and takes it again when it was lost (a dropped connection), so this replica
    never records a lease that others cannot see it is alive to hold; it raises StoreError
    when the lock cannot be had."""

    def __init__(
        self,
        url: str,
        replica_id: str,
        *,
        failover: timedelta,
        connect: Connect = psycopg.connect,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        key = holder_key(replica_id)
        if key is None:
            raise ValueError(f"not a replica id: {replica_id!r}")
        # The election's connection setup, reused on our own key; nothing is elected.
        self._election = Leadership(
            url,
            failover=failover,
            key=key,
            connect=connect,
            terminate_stale=False,
            application_name=APPLICATION_NAME,
        )
        self.key = key
        self.target = self._election.target
        self.check_every = self._election.timings.step_interval
        self._monotonic = monotonic
        self._mutex = threading.Lock()
        self._session: _Session | None = None
        self._checked = -math.inf
        self._closed = False

    @property
    def backend_pid(self) -> int | None:
        """The lock connection's server process id (diagnostics and tests)."""
        session = self._session
        conn = session.conn if session is not None else None
        return conn.info.backend_pid if conn is not None and not conn.closed else None

    def ensure(self) -> None:
        """Make sure the lock is held now (see the class docstring). Raises StoreError."""
        with self._mutex:
            if self._closed:
                raise StoreError("the replica lock is closed")
            started = self._monotonic()
            if self._session is not None and started - self._checked < self.check_every:
                return
            try:
                self._hold()
            except psycopg.Error as exc:
                self._drop()
                raise StoreError(
                    f"cannot hold this replica's liveness lock on {self.target}: {_one_line(exc)}"
                ) from exc
            self._checked = started

    def _hold(self) -> None:
        session = self._session
        if session is not None and session.conn is not None and not session.conn.closed:
            try:
                if self._election._renew_sync(session):
                    return
                log.warning(
                    "replica lock on %s was lost (others may resend this replica's "
                    "deliveries in flight); taking it again",
                    self.target,
                )
            except psycopg.Error as exc:
                log.warning(
                    "replica lock connection to %s failed (%s); reconnecting",
                    self.target,
                    _one_line(exc),
                )
                self._drop()
                session = None
        if session is None or session.conn is None or session.conn.closed:
            self._drop()
            session = self._session = _Session()
            session.conn = self._election._open_sync()
        if not self._election._try_lock(session.conn):
            raise psycopg.OperationalError(f"advisory lock {self.key} is held by another session")

    def _drop(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            session.close()

    def close(self) -> None:
        """Close the connection, which frees the lock on the server. Idempotent."""
        with self._mutex:
            self._closed = True
            self._drop()
