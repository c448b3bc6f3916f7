"""Leases name their holder, and a holder that is gone loses them at once: on PostgreSQL
when its advisory lock is no longer held, on SQLite when the next daemon opens the file."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from service.errors import StoreError
from service.store import Store, open_store
from service.store.pg_replica import ReplicaLock
from service.store.replica import holder_key, new_replica_id, split_key
from tests.store.helpers import T0, make_alert, render

LEASE = timedelta(minutes=2)
SOON = T0 + timedelta(seconds=1)  # long before the lease runs out


def record(store: Store, n: int) -> None:
    store.record([(make_alert(i), render, [("hook", "webhook")]) for i in range(n)], {}, T0)


def holders(url: str) -> list[str | None]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            return list(connection.execute(sa.text("SELECT lease_holder FROM delivery")).scalars())
    finally:
        engine.dispose()


def test_replica_keys_are_stable_apart_from_the_other_locks_and_refuse_garbage() -> None:
    rid = new_replica_id()
    key = holder_key(rid)
    assert key is not None and key == holder_key(rid) and 0 < key < 2**63
    assert split_key(key)[0] >> 16 == 0x6577
    assert holder_key("not-a-replica-id") is None and holder_key("") is None


def test_sqlite_a_new_daemon_voids_the_leases_a_dead_one_left(sqlite_url: str) -> None:
    first = open_store(sqlite_url, daemon=True)
    record(first, 3)
    claimed = first.claim(T0, 10, LEASE)
    assert len(claimed) == 3
    assert set(holders(sqlite_url)) == {first.replica_id}
    first.close()  # as after kill -9: the rows stay `sending` under a two-minute lease

    reader = open_store(sqlite_url)  # a read-only command voids nothing
    assert reader.claim(SOON, 10, LEASE) == []
    reader.close()

    second = open_store(sqlite_url, daemon=True)
    try:
        again = second.claim(SOON, 10, LEASE)
        assert sorted(d.id for d in again) == sorted(d.id for d in claimed)
        assert all(d.attempts == 2 for d in again)  # the lost attempt still counts
        assert set(holders(sqlite_url)) == {second.replica_id}
    finally:
        second.close()


@pytest.mark.postgres
def test_postgresql_a_live_holder_keeps_its_leases_and_a_gone_one_loses_them_at_once(
    pg_url: str,
) -> None:
    first = open_store(pg_url, daemon=True, failover=timedelta(seconds=4))
    second = open_store(pg_url, daemon=True, failover=timedelta(seconds=4))
    try:
        record(first, 3)
        claimed = first.claim(T0, 10, LEASE)
        assert len(claimed) == 3 and set(holders(pg_url)) == {first.replica_id}
        assert second.claim(SOON, 10, LEASE) == []  # alive: its leases stand

        lock = first._replica_lock
        assert lock is not None and lock.backend_pid is not None
        engine = sa.create_engine(pg_url)  # the holder's session ends, as with kill -9
        try:
            with engine.begin() as connection:
                connection.execute(
                    sa.text("SELECT pg_terminate_backend(:pid, 5000)"), {"pid": lock.backend_pid}
                )
        finally:
            engine.dispose()

        again = second.claim(SOON, 10, LEASE)
        assert sorted(d.id for d in again) == sorted(d.id for d in claimed)
        assert all(d.attempts == 2 for d in again)
        assert set(holders(pg_url)) == {second.replica_id}
    finally:
        first.close()
        second.close()


@pytest.mark.postgres
def test_postgresql_leases_without_a_holder_wait_for_their_time(pg_url: str) -> None:
    """Rows leased before r0002, or by a store that holds no liveness lock, keep the lease
    time as their only way back."""
    plain = open_store(pg_url)
    daemon = open_store(pg_url, daemon=True)
    try:
        record(plain, 2)
        assert len(plain.claim(T0, 10, LEASE)) == 2
        assert holders(pg_url) == [None, None]
        assert daemon.claim(SOON, 10, LEASE) == []
        assert len(daemon.claim(T0 + LEASE, 10, LEASE)) == 2
    finally:
        plain.close()
        daemon.close()


@pytest.mark.postgres
def test_postgresql_a_replica_lock_lost_with_its_connection_is_taken_again(pg_url: str) -> None:
    clock = [0.0]
    lock = ReplicaLock(
        pg_url, new_replica_id(), failover=timedelta(seconds=4), monotonic=lambda: clock[0]
    )
    engine = sa.create_engine(pg_url)
    try:
        lock.ensure()
        first_pid = lock.backend_pid
        assert first_pid is not None
        with engine.begin() as connection:
            connection.execute(sa.text("SELECT pg_terminate_backend(:p, 5000)"), {"p": first_pid})
        lock.ensure()  # checked less than a second ago: no query
        assert lock.backend_pid == first_pid
        clock[0] += 5
        lock.ensure()
        assert lock.backend_pid not in (None, first_pid)
        classid, objid = split_key(lock.key)
        with engine.connect() as connection:
            held = connection.execute(
                sa.text(
                    "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted"
                    " AND classid::bigint = :c AND objid::bigint = :o AND objsubid = 1"
                ),
                {"c": classid, "o": objid},
            ).scalar_one()
        assert held == lock.backend_pid
    finally:
        lock.close()
        engine.dispose()
    with pytest.raises(StoreError, match="closed"):
        lock.ensure()
