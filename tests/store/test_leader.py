"""Leader election: one leader on PostgreSQL, self-fencing, takeover; SQLite always leads.

The PostgreSQL tests run against the real server (`pg_url`), each on its own random lock
key so sessions left by another test cannot interfere. Measured takeover times are printed
(`pytest -s` shows them) and asserted only against the failover budget.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import psycopg
import pytest
from sqlalchemy.engine import make_url

from service.errors import StoreError
from service.store.db import MIGRATION_LOCK_KEY
from service.store.leader import LEADER_LOCK_KEY, SingleLeader, leadership_for
from service.store.leader_timings import LeaderTimings
from service.store.pg_leader import Leadership

pytestmark = pytest.mark.anyio

FAILOVER = timedelta(seconds=15)


# --- helpers -------------------------------------------------------------------------------
def libpq_url(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@pytest.fixture
def key() -> int:
    return random.randint(1, 2**31 - 1)


@pytest.fixture
def admin(pg_url: str) -> Iterator[psycopg.Connection[Any]]:
    """A third connection that watches (and terminates) the others."""
    with psycopg.connect(libpq_url(pg_url), autocommit=True) as conn:
        yield conn


def holders(admin: psycopg.Connection[Any], key: int) -> list[int]:
    """Backend pids holding `key` (a 31-bit key shows as classid 0, objid key)."""
    rows = admin.execute(
        "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted"
        " AND classid = 0 AND objid::bigint = %s AND objsubid = 1",
        (key,),
    ).fetchall()
    return [int(r[0]) for r in rows]


def wait_until_free(admin: psycopg.Connection[Any], key: int, seconds: float = 5.0) -> float:
    started = time.monotonic()
    while holders(admin, key):
        assert time.monotonic() - started < seconds, "the lock was never freed"
        time.sleep(0.02)
    return time.monotonic() - started


class FakeMonotonic:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Proxy:
    """A real psycopg connection whose queries can be made to fail or hang."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.conn = conn
        self.fail = False
        self.hang: threading.Event | None = None

    def execute(self, query: Any, params: Any = None) -> Any:
        if self.hang is not None:
            self.hang.wait(30)
        if self.fail:
            raise psycopg.OperationalError("consuming input failed: server closed the connection")
        return self.conn.execute(query, params)

    def close(self) -> None:
        self.conn.close()

    @property
    def closed(self) -> bool:
        return self.conn.closed

    @property
    def info(self) -> Any:
        return self.conn.info


class Recorder:
    """`connect=` that keeps every connection it made (wrapped in a Proxy)."""

    def __init__(self) -> None:
        self.made: list[Proxy] = []

    def __call__(self, **kwargs: Any) -> Any:
        proxy = Proxy(psycopg.connect(**kwargs))
        self.made.append(proxy)
        return proxy


async def close_all(*leaders: Leadership) -> None:
    for leader in leaders:
        await leader.release()


# --- PostgreSQL ----------------------------------------------------------------------------
@pytest.mark.postgres
async def test_exactly_one_leads_and_release_hands_over(pg_url, admin, key) -> None:
    changes: list[tuple[str, bool, str]] = []

    def make(name: str) -> Leadership:
        return Leadership(
            pg_url,
            failover=FAILOVER,
            key=key,
            on_change=lambda leading, reason: changes.append((name, leading, reason)),
        )

    replicas = {"a": make("a"), "b": make("b")}
    handovers: list[float] = []
    try:
        for i in range(50):
            for name in ("a", "b") if i % 2 == 0 else ("b", "a"):
                await replicas[name].step()
                leading = [n for n, r in replicas.items() if r.leading]
                assert len(leading) <= 1, f"two leaders at step {i}"
            assert len([r for r in replicas.values() if r.leading]) == 1
            assert len(holders(admin, key)) == 1  # S5: one granted lock on the key
            if i % 10 == 9:  # the leader shuts down cleanly; a new replica joins
                name = next(n for n, r in replicas.items() if r.leading)
                other = next(n for n in replicas if n != name)
                released = time.monotonic()
                await replicas[name].release()
                assert not replicas[name].leading
                assert await replicas[name].step() is False  # released for good
                assert await replicas[other].step() is True  # the standby's next step
                handovers.append(time.monotonic() - released)
                replicas[name] = make(name)
    finally:
        await close_all(*replicas.values())
    print(f"\ntakeover after release: max {max(handovers) * 1000:.1f} ms over {len(handovers)}")  # noqa: T201
    assert len(handovers) == 5
    assert [c for c in changes if c[2] == "released at shutdown"]
    wait_until_free(admin, key)


@pytest.mark.postgres
async def test_terminated_leader_fences_and_standby_takes_over(pg_url, admin, key) -> None:
    reasons: list[str] = []
    a = Leadership(pg_url, failover=FAILOVER, key=key, on_change=lambda _l, r: reasons.append(r))
    b = Leadership(pg_url, failover=FAILOVER, key=key)
    try:
        assert await a.step() is True
        assert await b.step() is False
        pid = a.backend_pid
        assert pid is not None and holders(admin, key) == [pid]
        admin.execute("SELECT pg_terminate_backend(%s, 2000)", (pid,))  # returns once gone
        killed = time.monotonic()
        assert await a.step() is False  # the leader notices on its next step
        assert not a.leading
        assert "renewal failed" in reasons[-1]
        assert await b.step() is True  # the standby acquires within one step
        took = time.monotonic() - killed
        assert not a.leading
        assert await a.step() is False  # and the old leader is now the standby
    finally:
        await close_all(a, b)
    print(f"\ntakeover after pg_terminate_backend returned: {took * 1000:.1f} ms")  # noqa: T201
    assert took < FAILOVER.total_seconds()


@pytest.mark.postgres
async def test_failing_renewal_fences_at_once_and_frees_the_lock(pg_url, admin, key) -> None:
    recorder = Recorder()
    a = Leadership(pg_url, failover=FAILOVER, key=key, connect=recorder)
    try:
        assert await a.step() is True
        assert await a.step() is True
        recorder.made[-1].fail = True
        assert await a.step() is False
        assert not a.leading
        assert recorder.made[-1].closed  # closed, so the server dropped the lock
        wait_until_free(admin, key)
        assert await a.step() is True  # a new connection, a new term
        assert len(recorder.made) == 2
    finally:
        await a.release()


@pytest.mark.postgres
async def test_no_renewal_for_half_the_failover_fences_by_itself(pg_url, admin, key) -> None:
    clock = FakeMonotonic()
    reasons: list[str] = []
    a = Leadership(
        pg_url,
        failover=FAILOVER,
        key=key,
        monotonic=clock,
        on_change=lambda _l, r: reasons.append(r),
    )
    fence = a.timings.fence_after
    try:
        assert await a.step() is True
        for _ in range(10):  # renewals every second keep it leading
            clock.now += 1.0
            assert await a.step() is True
        clock.now += fence - 0.01  # the event loop stalls: no step
        assert a.leading
        clock.now += 0.02  # F/2 after the last renewal started: fenced without any step
        assert not a.leading
        assert len(holders(admin, key)) == 1  # still held: the daemon must not rely on it
        assert await a.step() is False  # the step reports it and lets the lock go
        assert reasons[-1].startswith("self-fenced: no successful renewal for 7.5")
        wait_until_free(admin, key)
        assert await a.step() is True
    finally:
        await a.release()


@pytest.mark.postgres
async def test_hanging_renewal_fences_within_the_statement_timeout(pg_url, admin, key) -> None:
    recorder = Recorder()
    failover = timedelta(seconds=1)
    a = Leadership(pg_url, failover=failover, key=key, connect=recorder)
    hang = threading.Event()
    try:
        assert await a.step() is True
        recorder.made[-1].hang = hang  # the network eats the next query
        started = time.monotonic()
        assert await a.step() is False
        took = time.monotonic() - started
        assert a.timings.op_timeout <= took < a.timings.fence_after
        assert len(holders(admin, key)) == 1  # the abandoned thread still has the connection
        hang.set()  # libpq returns (keepalives would end it); the thread closes the connection
        wait_until_free(admin, key)
        assert recorder.made[0].closed
    finally:
        hang.set()
        await a.release()


@pytest.mark.postgres
async def test_quiet_holder_is_terminated_by_the_standby(pg_url, admin, key) -> None:
    """A frozen leader (its kernel still answers keepalives) keeps its session; the standby
    ends it once it has been quiet for 0.6 F, after the leader fenced itself at F/2."""
    failover = timedelta(seconds=2)
    a = Leadership(pg_url, failover=failover, key=key)
    b = Leadership(pg_url, failover=failover, key=key)
    try:
        assert await a.step() is True
        for _ in range(6):  # a live leader renewing every 0.4 s is never terminated
            await asyncio.sleep(0.4)
            assert await a.step() is True
            assert await b.step() is False
        frozen = time.monotonic()
        while not await b.step():  # a stops stepping
            assert a.leading is False or time.monotonic() - frozen < a.timings.fence_after
            await asyncio.sleep(0.1)
        took = time.monotonic() - frozen
        assert not a.leading  # fenced by time before b could lead
        assert a.timings.stale_after - 0.2 < took < failover.total_seconds()
        assert holders(admin, key) == [b.backend_pid]
        assert await a.step() is False
    finally:
        await close_all(a, b)
    print(f"\ntakeover from a frozen leader (F=2 s): {took * 1000:.0f} ms")  # noqa: T201


@pytest.mark.postgres
async def test_sigkilled_holder_frees_the_lock_at_once(pg_url, admin, key) -> None:
    script = (
        "import os, sys, time, psycopg\n"
        "conn = psycopg.connect(os.environ['LOCK_URL'], autocommit=True)\n"
        "conn.execute('SELECT pg_advisory_lock(%s)', (int(sys.argv[1]),))\n"
        "print('locked', flush=True)\n"
        "time.sleep(60)\n"
    )
    env = {**os.environ, "LOCK_URL": libpq_url(pg_url)}
    holder = subprocess.Popen(
        [sys.executable, "-c", script, str(key)], env=env, stdout=subprocess.PIPE, text=True
    )
    a = Leadership(pg_url, failover=FAILOVER, key=key)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        assert await a.step() is False
        assert len(holders(admin, key)) == 1 and a.backend_pid is not None
        killed = time.monotonic()
        holder.send_signal(signal.SIGKILL)
        steps = 1
        while not await a.step():
            assert time.monotonic() - killed < FAILOVER.total_seconds()
            steps += 1
            await asyncio.sleep(0.05)
        took = time.monotonic() - killed
    finally:
        holder.kill()
        holder.wait()
        assert holder.stdout is not None
        holder.stdout.close()
        await a.release()
    print(f"\ntakeover after SIGKILL of the holder: {took * 1000:.0f} ms, {steps} step(s)")  # noqa: T201
    assert took < FAILOVER.total_seconds()


@pytest.mark.postgres
async def test_keepalives_and_timeouts_are_set_on_the_lock_connection(pg_url, admin, key) -> None:
    recorder = Recorder()
    a = Leadership(pg_url, failover=FAILOVER, key=key, connect=recorder)
    try:
        assert await a.step() is True
        conn = recorder.made[0].conn
        client = conn.info.get_parameters()
        assert client["keepalives"] == "1"
        assert client["keepalives_idle"] == "6"
        assert client["keepalives_interval"] == "1"
        assert client["keepalives_count"] == "3"
        assert client["tcp_user_timeout"] == "9000"
        assert client["connect_timeout"] == "4"
        assert client["application_name"] == "earnwatch-leader"
        assert conn.autocommit

        def show(name: str) -> str:
            row = conn.execute(f"SHOW {name}").fetchone()
            assert row is not None
            return str(row[0])

        # Server side: these free the lock when the leader's host goes silent.
        assert show("tcp_keepalives_idle") == "6"
        assert show("tcp_keepalives_interval") == "1"
        assert show("tcp_keepalives_count") == "3"
        assert show("tcp_user_timeout") == "9000"
        assert show("statement_timeout") == "3750ms"
        row = admin.execute(
            "SELECT application_name FROM pg_stat_activity WHERE pid = %s", (a.backend_pid,)
        ).fetchone()
        assert row == ("earnwatch-leader",)
    finally:
        await a.release()


def where(url: str) -> str:
    """How the leader names the database in logs: host:port/db, never the URL."""
    parsed = make_url(url)
    return f"{parsed.host}:{parsed.port or 5432}/{parsed.database}"


@pytest.mark.postgres
async def test_unreachable_database_never_leads_and_logs_no_password(pg_url, key, caplog) -> None:
    url = make_url(pg_url).set(password="s3cr3t-pw-x").render_as_string(hide_password=False)
    a = Leadership(url, failover=FAILOVER, key=key)
    with caplog.at_level(logging.INFO, logger="service.store.leader"):
        assert await a.step() is False
        assert await a.step() is False
        await a.release()
    assert "s3cr3t-pw-x" not in caplog.text
    warnings = [r for r in caplog.records if "cannot reach" in r.getMessage()]
    assert len(warnings) == 1  # the same error is logged once, not at every step
    assert where(pg_url) in warnings[0].getMessage()


@pytest.mark.postgres
async def test_gain_and_loss_are_logged_with_host_and_db_only(pg_url, admin, key, caplog) -> None:
    a = Leadership(pg_url, failover=FAILOVER, key=key)
    password = make_url(pg_url).password
    with caplog.at_level(logging.INFO, logger="service.store.leader"):
        await a.step()
        pid = a.backend_pid
        admin.execute("SELECT pg_terminate_backend(%s, 2000)", (pid,))
        await a.step()
        await a.release()
    records = [r for r in caplog.records if r.name == "service.store.leader"]
    lines = [r.getMessage() for r in records]
    assert any(f"now leads on {where(pg_url)}" in m for m in lines)
    assert any(f"stopped leading on {where(pg_url)}" in m for m in lines)
    assert all(f":{password}@" not in m for m in lines)
    assert all(r.args for r in records)  # %-args, not pre-formatted strings


# --- no database needed --------------------------------------------------------------------
async def test_single_leader_always_leads(sqlite_url) -> None:
    changes: list[tuple[bool, str]] = []
    leader = leadership_for(
        sqlite_url, FAILOVER, on_change=lambda lead, why: changes.append((lead, why))
    )
    assert isinstance(leader, SingleLeader)
    assert leader.leading and leader.step_interval == 1.0
    for _ in range(3):
        assert await leader.step() is True
    assert changes == [(True, "single process (SQLite)")]
    await leader.release()
    await leader.release()
    assert not leader.leading
    assert changes[-1] == (False, "released at shutdown") and len(changes) == 2


def test_leadership_for_picks_the_backend() -> None:
    url = "postgresql://u:pw@db.example:6543/earn?sslmode=require"
    leader = leadership_for(url, FAILOVER)
    assert isinstance(leader, Leadership)
    assert leader.target == "db.example:6543/earn"
    assert leader.key == LEADER_LOCK_KEY != MIGRATION_LOCK_KEY
    assert not leader.leading
    assert isinstance(leadership_for("sqlite:///:memory:", FAILOVER), SingleLeader)
    with pytest.raises(StoreError):
        leadership_for("mysql://u:pw@h/db", FAILOVER)
    with pytest.raises(StoreError):
        Leadership("sqlite:///x.db", failover=FAILOVER)


def test_timings_fit_the_failover_budget() -> None:
    for seconds in (5, 10, 15, 30, 60, 120):
        t = LeaderTimings.from_failover(timedelta(seconds=seconds))
        assert t.step_interval <= t.fence_after / 5
        # the leader fences itself before the server or a standby can end its session...
        assert t.op_timeout < t.fence_after < t.stale_after
        assert t.fence_after < t.keepalive_detection
        assert t.fence_after < t.tcp_user_timeout_ms / 1000
        # ...and a standby stepping every second still takes over within the failover
        assert t.keepalive_detection + 2 <= seconds or seconds < 10
        assert t.stale_after + 2 <= seconds or seconds < 10
    t = LeaderTimings.from_failover(FAILOVER)
    assert (t.keepalives_idle, t.keepalives_interval, t.keepalives_count) == (6, 1, 3)
    assert (t.fence_after, t.stale_after, t.op_timeout) == (7.5, 9.0, 3.75)
    assert t.step_interval == 1.0
    assert LeaderTimings.from_failover(timedelta(seconds=5)).step_interval == 0.5
    with pytest.raises(ValueError):
        LeaderTimings.from_failover(timedelta(0))
