"""PostgreSQL leader election (see `service/store/leader.py` for the design): the only
module that imports psycopg, and only imported for a PostgreSQL database URL, so the default
install (SQLite, no `postgres` extra) never needs the driver."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

import psycopg
from sqlalchemy.engine import URL, make_url

from service.errors import StoreError
from service.store.db import normalize_url
from service.store.leader import APPLICATION_NAME, LEADER_LOCK_KEY, OnChange, describe_target
from service.store.leader_timings import LeaderTimings
from service.store.replica import split_key

log = logging.getLogger("service.store.leader")

Connect = Callable[..., "psycopg.Connection[Any]"]
_T = TypeVar("_T")

_RENEW_SQL = (
    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND classid::bigint = %s"
    " AND objid::bigint = %s AND objsubid = 1 AND pid = pg_backend_pid() AND granted"
)
# The other session holding our key in this database, and for how long it has been quiet.
_HOLDER_SQL = (
    "SELECT a.pid, EXTRACT(EPOCH FROM clock_timestamp() - a.state_change)::float8,"
    " a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
    " WHERE l.locktype = 'advisory' AND l.classid::bigint = %s AND l.objid::bigint = %s"
    " AND l.objsubid = 1 AND l.granted AND l.pid <> pg_backend_pid()"
    " AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
)


def _one_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    text = lines[0] if lines else ""
    return f"{type(exc).__name__}: {text}".rstrip(": ")


def _consume(future: asyncio.Future[Any]) -> None:
    """Retrieve an abandoned future's outcome so asyncio does not report it."""
    if not future.cancelled():
        future.exception()


class _Session:
    """The dedicated connection, used by one worker thread at a time.

    `close()` from the event loop closes the connection now if no thread uses it, or tells
    the thread using it to close it when libpq returns: exactly one side closes it, so a
    connection (and the lock it may hold) is never leaked by an abandoned call."""

    def __init__(self) -> None:
        self.conn: psycopg.Connection[Any] | None = None
        self._mutex = threading.Lock()
        self._busy = False
        self._closed = False

    async def run(self, work: Callable[[_Session], _T], timeout: float) -> _T:
        """`work(self)` in a worker thread; on timeout or cancellation the session is closed
        (abandoned) and the exception propagates."""
        with self._mutex:
            if self._closed or self._busy:
                raise psycopg.OperationalError("the lock session is closed")
            self._busy = True
        future = asyncio.get_running_loop().run_in_executor(None, self._call, work)
        try:
            return await asyncio.wait_for(asyncio.shield(future), timeout)
        except BaseException:
            if not future.done():
                future.add_done_callback(_consume)
                self.close()
            raise

    def _call(self, work: Callable[[_Session], _T]) -> _T:
        try:
            return work(self)
        finally:
            with self._mutex:
                self._busy = False
                close = self._closed
            if close:
                self._close_connection()

    def close(self) -> None:
        with self._mutex:
            self._closed = True
            busy = self._busy
        if not busy:
            self._close_connection()

    def _close_connection(self) -> None:
        conn, self.conn = self.conn, None
        if conn is not None:
            with contextlib.suppress(Exception):  # a broken connection may complain
                conn.close()


@dataclass(frozen=True)
class _Attempt:
    acquired: bool
    terminated: tuple[int, float, str] | None = None  # pid, idle seconds, application


class Leadership:
    """Leader election on one PostgreSQL database (see the module docstring).

    Not thread-safe: call `step()` and `release()` from one event loop. `on_change(leading,
    reason)` runs inside `step()`/`release()` whenever `leading` changes there; note that
    `leading` may also turn False by itself (self-fence) between steps, which the next
    `step()` reports.
    """

    def __init__(
        self,
        url: str,
        *,
        failover: timedelta,
        key: int = LEADER_LOCK_KEY,
        on_change: OnChange | None = None,
        connect: Connect = psycopg.connect,
        monotonic: Callable[[], float] = time.monotonic,
        terminate_stale: bool = True,
        application_name: str = APPLICATION_NAME,
    ) -> None:
        parsed = make_url(normalize_url(url))
        if parsed.get_backend_name() != "postgresql":
            raise StoreError("leader election needs a PostgreSQL database URL")
        self.timings = LeaderTimings.from_failover(failover)
        self.key = key
        self.target = describe_target(parsed)
        self._classid, self._objid = split_key(key)
        self._params = self._connection_params(parsed, application_name)
        self._on_change = on_change
        self._connect = connect
        self._monotonic = monotonic
        self._terminate_stale = terminate_stale
        self._session: _Session | None = None
        self._leading = False
        self._last_ok = -math.inf  # monotonic start of the last successful acquire/renew
        self._released = False
        self._stepping = asyncio.Lock()
        self._last_error: str | None = None

    def _connection_params(self, url: URL, application_name: str) -> dict[str, Any]:
        params: dict[str, Any] = {
            "host": url.host,
            "port": url.port,
            "user": url.username,
            "password": url.password,
            "dbname": url.database,
        }
        for name, value in url.query.items():  # e.g. sslmode; a repeated one keeps the last
            params[name] = value[-1] if isinstance(value, tuple) else value
        params.update(self.timings.libpq_params())
        params["application_name"] = application_name
        return {k: v for k, v in params.items() if v is not None}

    # --- state -----------------------------------------------------------------------
    @property
    def step_interval(self) -> float:
        return self.timings.step_interval

    @property
    def leading(self) -> bool:
        """True while the lock is held and the last renewal started less than F/2 ago."""
        return self._leading and self._monotonic() - self._last_ok < self.timings.fence_after

    @property
    def backend_pid(self) -> int | None:
        """The lock connection's server process id (diagnostics and tests)."""
        session = self._session
        conn = session.conn if session is not None else None
        return conn.info.backend_pid if conn is not None and not conn.closed else None

    def _set(self, leading: bool, reason: str) -> None:
        if leading == self._leading:
            return
        self._leading = leading
        if leading:
            log.info("leader election: this replica now leads on %s (%s)", self.target, reason)
        elif self._released:
            log.info("leader election: leadership on %s released (%s)", self.target, reason)
        else:
            log.warning(
                "leader election: this replica stopped leading on %s: %s", self.target, reason
            )
        if self._on_change is not None:
            self._on_change(leading, reason)

    def _drop_session(self) -> None:
        if self._session is not None:
            self._session.close()  # frees the lock on the server, now or when the call returns
            self._session = None

    def _lose(self, reason: str) -> None:
        self._drop_session()
        self._set(False, reason)

    # --- the election ------------------------------------------------------------------
    async def step(self) -> bool:
        """Renew when leading, else try to acquire. Returns `leading`. Database failures are
        logged and reported as not leading, never raised. Call it every second or so."""
        if self._stepping.locked():  # a step overran: do not pile up
            return self.leading
        async with self._stepping:
            if self._released:
                return False
            try:
                if self._leading:
                    await self._renew()
                else:
                    await self._acquire()
            except asyncio.CancelledError:
                self._lose("election step cancelled")
                raise
            return self.leading

    async def _renew(self) -> None:
        started = self._monotonic()
        age = started - self._last_ok
        if age >= self.timings.fence_after:
            self._lose(
                f"self-fenced: no successful renewal for {age:.1f} s "
                f"(limit {self.timings.fence_after:g} s)"
            )
            return
        session = self._session
        if session is None:
            self._lose("the lock connection is gone")
            return
        try:
            held = await session.run(self._renew_sync, self.timings.op_timeout)
        except TimeoutError:
            self._lose(f"self-fenced: renewal took more than {self.timings.op_timeout:g} s")
            return
        except psycopg.Error as exc:
            self._lose(f"self-fenced: renewal failed: {_one_line(exc)}")
            return
        if not held:
            self._lose("self-fenced: the advisory lock is no longer held by this session")
            return
        self._last_ok = started

    def _renew_sync(self, session: _Session) -> bool:
        conn = session.conn
        if conn is None:
            raise psycopg.OperationalError("the lock connection is gone")
        row = conn.execute(_RENEW_SQL, (self._classid, self._objid)).fetchone()
        return row is not None and int(row[0]) > 0

    async def _acquire(self) -> None:
        started = self._monotonic()
        if self._session is None:
            self._session = _Session()
        session = self._session
        timeout = self.timings.connect_timeout + 3 * self.timings.op_timeout
        try:
            attempt = await session.run(self._acquire_sync, timeout)
        except (TimeoutError, psycopg.Error) as exc:
            self._drop_session()
            message = _one_line(exc) if str(exc) else f"no answer within {timeout:g} s"
            if message != self._last_error:
                log.warning("leader election: cannot reach %s: %s", self.target, message)
            self._last_error = message
            return
        self._last_error = None
        if attempt.terminated is not None:
            pid, idle, application = attempt.terminated
            log.warning(
                "leader election: terminated the stale lock holder on %s "
                "(pid %d, %r, quiet for %.1f s > %g s)",
                self.target,
                pid,
                application,
                idle,
                self.timings.stale_after,
            )
        if attempt.acquired:
            self._last_ok = started
            self._set(True, "advisory lock acquired")

    def _acquire_sync(self, session: _Session) -> _Attempt:
        if session.conn is None:
            session.conn = self._open_sync()
        conn = session.conn
        if self._try_lock(conn):
            return _Attempt(True)
        if not self._terminate_stale:
            return _Attempt(False)
        holder = conn.execute(_HOLDER_SQL, (self._classid, self._objid)).fetchone()
        if holder is None or holder[1] is None or float(holder[1]) <= self.timings.stale_after:
            return _Attempt(False)
        pid, idle, application = int(holder[0]), float(holder[1]), str(holder[2] or "")
        if conn.info.server_version >= 140000:  # wait (bounded) until the backend has gone
            wait_ms = max(1, int(self.timings.op_timeout * 500))
            row = conn.execute("SELECT pg_terminate_backend(%s, %s)", (pid, wait_ms)).fetchone()
        else:
            row = conn.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone()
        terminated = (pid, idle, application) if row is not None and row[0] else None
        return _Attempt(self._try_lock(conn), terminated)

    def _try_lock(self, conn: psycopg.Connection[Any]) -> bool:
        row = conn.execute("SELECT pg_try_advisory_lock(%s)", (self.key,)).fetchone()
        return row is not None and bool(row[0])

    def _open_sync(self) -> psycopg.Connection[Any]:
        conn = self._connect(autocommit=True, **self._params)
        try:
            for name, value in self.timings.server_settings().items():
                try:
                    conn.execute("SELECT set_config(%s, %s, false)", (name, value))
                except psycopg.DatabaseError as exc:  # e.g. a server without tcp_user_timeout
                    log.warning(
                        "leader election: cannot set %s on %s: %s",
                        name,
                        self.target,
                        _one_line(exc),
                    )
        except BaseException:
            conn.close()
            raise
        return conn

    async def release(self) -> None:
        """Unlock and close the lock's connection so a standby takes over at its next step.
        Later steps return False. Idempotent; never raises for database trouble."""
        if self._released:
            return
        self._released = True
        async with self._stepping:
            session, self._session = self._session, None
            if session is not None and self._leading:
                try:
                    await session.run(self._unlock_sync, self.timings.op_timeout)
                except (TimeoutError, psycopg.Error) as exc:
                    log.warning(
                        "leader election: unlock on %s failed (%s); closing the connection "
                        "frees the lock",
                        self.target,
                        _one_line(exc),
                    )
            if session is not None:
                session.close()
            self._set(False, "released at shutdown")

    def _unlock_sync(self, session: _Session) -> None:
        if session.conn is not None:
            session.conn.execute("SELECT pg_advisory_unlock(%s)", (self.key,))
