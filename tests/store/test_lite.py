"""The store's SQLite layer on the standard library's sqlite3 (service/store/lite.py): the
promises the SQLAlchemy engine kept (pragmas on every connection, BEGIN IMMEDIATE for
writers, one snapshot for readers), thread safety, the errors at the store's edge, URLs read
as SQLAlchemy reads them, and database files written by the SQLAlchemy Core store."""

from __future__ import annotations

import sqlite3
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from service.engine import RuleState
from service.errors import StoreError
from service.store import open_store
from service.store.db import open_database, packaged_head, parse_sqlite_url
from service.store.lite import SqliteDatabase
from tests.store.helpers import make_alert, render

T0 = datetime(2026, 1, 28, 21, 5, tzinfo=UTC)


@pytest.fixture
def database(tmp_path: Path) -> SqliteDatabase:
    opened = open_database(f"sqlite:///{tmp_path / 'lite.db'}")
    assert isinstance(opened, SqliteDatabase)
    with opened.write() as db:
        db.run("CREATE TABLE counter (name TEXT PRIMARY KEY, value INTEGER NOT NULL)")
        db.run("INSERT INTO counter VALUES ('n', 0)")
    yield opened
    opened.close()


def pragmas(connection: sqlite3.Connection) -> tuple[object, ...]:
    return tuple(
        connection.execute(f"PRAGMA {name}").fetchone()[0]
        for name in ("journal_mode", "synchronous", "busy_timeout", "foreign_keys")
    )


def test_every_connection_of_a_file_gets_the_pragmas_and_no_driver_transactions(
    database: SqliteDatabase,
) -> None:
    seen: list[tuple[object, ...]] = []
    held = threading.Barrier(3)

    def use() -> None:
        with database.connection() as connection:  # three at once: three connections
            held.wait(timeout=10)
            seen.append((*pragmas(connection), connection.isolation_level))
            held.wait(timeout=10)

    threads = [threading.Thread(target=use) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # WAL, synchronous FULL (2), a 10 s busy timeout, foreign keys on, BEGIN left to us
    assert seen == [("wal", 2, 10000, 1, None)] * 3


def test_an_in_memory_database_is_one_connection_with_the_pragmas_but_no_wal() -> None:
    database = open_database("sqlite://")
    assert isinstance(database, SqliteDatabase)
    try:
        with database.connection() as first:
            assert pragmas(first) == ("memory", 2, 10000, 1)
        with database.write() as db:
            db.run("CREATE TABLE t (x INTEGER)")
            db.run("INSERT INTO t VALUES (1)")
        found: list[object] = []
        other = threading.Thread(target=lambda: found.append(_count(database, "t")))
        other.start()
        other.join()
        assert found == [1]  # another thread sees the same database
        with database.connection() as again:
            assert again is first
    finally:
        database.close()


def _count(database: SqliteDatabase, table: str) -> int:
    with database.read() as db:
        return int(db.run(f"SELECT count(*) FROM {table}").fetchone()[0])


def test_a_writer_holds_the_write_lock_from_its_begin_and_a_reader_does_not(
    database: SqliteDatabase, tmp_path: Path
) -> None:
    other = sqlite3.connect(tmp_path / "lite.db", timeout=0, isolation_level=None)
    try:
        # BEGIN IMMEDIATE: no statement yet, and the write lock is taken
        locked = pytest.raises(sqlite3.OperationalError, match="database is locked")
        with database.write(), locked:
            other.execute("BEGIN IMMEDIATE")
        with database.read() as db:  # BEGIN (deferred): others may still write
            before = db.run("SELECT value FROM counter").fetchone()[0]
            other.execute("BEGIN IMMEDIATE")
            other.execute("UPDATE counter SET value = value + 1")
            other.execute("COMMIT")
            # one snapshot: the read transaction does not see the other's commit
            assert db.run("SELECT value FROM counter").fetchone()[0] == before
        with database.read() as db:
            assert db.run("SELECT value FROM counter").fetchone()[0] == before + 1
    finally:
        other.close()


def test_a_transaction_commits_at_its_end_and_rolls_back_on_an_exception(
    database: SqliteDatabase,
) -> None:
    with database.write() as db:
        db.run("UPDATE counter SET value = 5")
    with pytest.raises(RuntimeError), database.write() as db:
        db.run("UPDATE counter SET value = 6")
        raise RuntimeError("after the statement")
    with database.read() as db:
        assert db.run("SELECT value FROM counter").fetchone()[0] == 5
    with database.connection() as connection:
        assert not connection.in_transaction  # handed back clean, reused


@pytest.mark.parametrize("memory", [False, True])
def test_concurrent_writers_in_threads_lose_no_update(
    database: SqliteDatabase, memory: bool
) -> None:
    """Read-modify-write from 8 threads at once: BEGIN IMMEDIATE serializes them (no lost
    update, no "database is locked" upgrade failure), each thread on its own connection;
    in memory, the one shared connection's lock does (a transaction at a time)."""
    if memory:
        database = SqliteDatabase(":memory:", memory=True)
        with database.write() as db:
            db.run("CREATE TABLE counter (name TEXT PRIMARY KEY, value INTEGER NOT NULL)")
            db.run("INSERT INTO counter VALUES ('n', 0)")
    errors: list[BaseException] = []

    def bump() -> None:
        try:
            for _ in range(25):
                with database.write() as db:
                    (value,) = db.run("SELECT value FROM counter").fetchone()
                    db.run("UPDATE counter SET value = ?", (value + 1,))
        except BaseException as exc:  # collected: the assertion names it
            errors.append(exc)

    threads = [threading.Thread(target=bump) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with database.read() as db:
        assert db.run("SELECT value FROM counter").fetchone()[0] == 200
    if memory:
        database.close()


def test_close_closes_every_connection_even_one_in_use_and_a_later_use_opens_anew(
    database: SqliteDatabase,
) -> None:
    held = threading.Barrier(2)
    kept: list[sqlite3.Connection] = []

    def use() -> None:
        with database.connection() as connection:
            kept.append(connection)
            held.wait(timeout=10)

    threads = [threading.Thread(target=use) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({id(c) for c in kept}) == 2  # both idle in the pool now
    with database.connection() as in_use:
        database.close()
        in_use.execute("SELECT 1")  # not taken from under its user
    for connection in (*kept, in_use):
        with pytest.raises(sqlite3.ProgrammingError):
            connection.execute("SELECT 1")
    with database.read() as db:  # as SQLAlchemy's dispose(): a new connection
        assert db.run("SELECT value FROM counter").fetchone()[0] == 0
    database.close()
    database.close()  # idempotent


# --- errors at the store's edge --------------------------------------------------------


def test_a_database_that_cannot_be_opened_is_one_line_naming_the_driver_s_error(
    tmp_path: Path,
) -> None:
    with pytest.raises(StoreError) as refused:
        open_store(f"sqlite:///{tmp_path / 'missing' / 'earnwatch.db'}")
    assert str(refused.value) == (
        "cannot open the database: OperationalError: unable to open database file"
    )


def test_a_failing_statement_is_a_store_error_without_its_parameters(sqlite_url: str) -> None:
    store = open_store(sqlite_url)
    try:
        secret = "alert text that must not leak"
        store.save_market_data("quotes", secret, T0)
        path = sqlite_url.removeprefix("sqlite:///")
        with sqlite3.connect(path) as raw:
            # a NOT NULL violation names the column, never the values of the statement
            raw.execute("DROP TABLE market_data")
            raw.execute(
                "CREATE TABLE market_data (key TEXT PRIMARY KEY, data_json TEXT,"
                " updated_at TEXT NOT NULL CHECK (updated_at = 'never'))"
            )
        with pytest.raises(StoreError) as failed:
            store.save_market_data("quotes", secret, T0)
        assert str(failed.value) == (
            "store save_market_data failed: IntegrityError: CHECK constraint failed:"
            " updated_at = 'never'"
        )
        assert secret not in str(failed.value) and "\n" not in str(failed.value)
        with sqlite3.connect(path) as raw:
            raw.execute("DROP TABLE delivery")
        with pytest.raises(StoreError, match=r"^store count failed: OperationalError: no such"):
            store.pending_count()
        # a naive datetime is refused before the driver, as the SQLAlchemy type refused it
        with pytest.raises(StoreError) as naive:
            store.save_states({("r", "LUMN"): RuleState(last_fired=datetime(2026, 1, 1))})
        assert str(naive.value) == (
            "store save_states failed: ValueError: naive datetime refused by the store:"
            " pass a timezone-aware one"
        )
    finally:
        store.close()


# --- URLs as SQLAlchemy reads them -----------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "sqlite:///relative.db",
        "sqlite:////absolute/folder/x.db",
        "sqlite://",
        "sqlite:///",
        "sqlite:///:memory:",
        "sqlite:///with%20space.db?timeout=3",
        "sqlite:///file:x?mode=memory&cache=shared&uri=true",
        "sqlite:///file:/tmp/f.db?mode=ro&uri=true",
        "sqlite+pysqlite:///driver.db?cached_statements=10",
    ],
)
def test_sqlite_urls_name_the_database_and_arguments_sqlalchemy_gives_sqlite3(url: str) -> None:
    from sqlalchemy.dialects.sqlite.pysqlite import SQLiteDialect_pysqlite
    from sqlalchemy.engine import make_url

    [expected], options = SQLiteDialect_pysqlite().create_connect_args(make_url(url))
    parsed = parse_sqlite_url(url)
    assert parsed is not None
    database = open_database(url)
    assert isinstance(database, SqliteDatabase)
    assert database.database == expected
    assert parsed.uri == bool(options.get("uri"))
    for key in ("timeout", "cached_statements"):
        assert parsed.options.get(key) == options.get(key)
    memory = expected == ":memory:" or "mode=memory" in expected
    assert database.memory is memory


def test_other_urls_are_not_sqlite_and_a_sqlite_url_with_a_host_is_refused() -> None:
    assert parse_sqlite_url("postgresql://u:secret@h/db") is None
    assert parse_sqlite_url("postgres://u:secret@h/db") is None
    with pytest.raises(StoreError, match=r"^invalid SQLite URL") as refused:
        parse_sqlite_url("sqlite://user:secret@host/x.db")
    assert "secret" not in str(refused.value)
    with pytest.raises(StoreError, match=r"^invalid SQLite URL: timeout must be a number$"):
        parse_sqlite_url("sqlite:///x.db?timeout=soon")
    with pytest.raises(StoreError, match="unsupported database URL scheme 'mysql'"):
        open_database("mysql://u:secret@h/db")


# --- migrations and database files of the SQLAlchemy store -----------------------------


def test_an_in_memory_store_is_migrated_on_its_own_connection_and_keeps_it() -> None:
    store = open_store("sqlite://")
    try:
        assert store.schema_revision() == packaged_head()
        store.save_market_data("k", "{}", T0)  # the connection outlived the migration
        assert store.load_market_data("k") is not None
    finally:
        store.close()


def test_a_database_file_written_by_the_sqlalchemy_store_reads_back_alike(
    sqlite_url: str,
) -> None:
    """Rows written through the Core tables and `UTCDateTime` (the store before it ran on
    sqlite3) read back equal through the plain-SQL store, and its writes sort with them."""
    import sqlalchemy as sa

    from service.store.db import create_db_engine, write_tx
    from service.store.tables import ALERT, DELIVERY, MARKET_DATA, RULE_STATE, SILENCE

    open_store(sqlite_url).close()  # the schema at the head
    alert = make_alert(1, when=T0)
    message = render(alert, "a_old")
    engine = create_db_engine(sqlite_url)
    try:
        with write_tx(engine) as connection:
            connection.execute(
                sa.insert(ALERT).values(
                    id="a_old",
                    dedup_key=alert.dedup_key,
                    rule=alert.rule,
                    symbol=alert.symbol,
                    report_key=None,
                    fired_at=T0,
                    message_json=message.to_json(),
                )
            )
            connection.execute(
                sa.insert(DELIVERY).values(
                    id="d_old",
                    alert_id="a_old",
                    channel="hook",
                    kind="webhook",
                    status="pending",
                    attempts=0,
                    next_attempt_at=T0 + timedelta(seconds=1),
                    created_at=T0,
                )
            )
            connection.execute(
                sa.insert(RULE_STATE).values(
                    rule="r",
                    symbol="LUMN",
                    fingerprint="f",
                    armed=False,
                    pending_since=T0,
                    last_fired=T0 + timedelta(microseconds=5),
                    last_report="2025Q4",
                    fired=3,
                    eps_notified=1.25,
                    revenue_notified=None,
                )
            )
            connection.execute(
                sa.insert(MARKET_DATA).values(key="quotes", data_json="{}", updated_at=T0)
            )
            connection.execute(
                sa.insert(SILENCE).values(
                    id="s_0123456789",
                    rule="r",
                    symbol=None,
                    starts_at=T0,
                    ends_at=T0 + timedelta(hours=1),
                    comment="old",
                    created_at=T0,
                )
            )
    finally:
        engine.dispose()

    store = open_store(sqlite_url)
    try:
        assert store.load_states() == {
            ("r", "LUMN"): RuleState(
                fingerprint="f",
                armed=False,
                pending_since=T0,
                last_fired=T0 + timedelta(microseconds=5),
                last_report="2025Q4",
                fired=3,
                eps_notified=1.25,
                revenue_notified=None,
            )
        }
        data = store.load_market_data("quotes")
        assert data is not None and data.updated_at == T0 and data.updated_at.tzinfo is UTC
        [silence] = store.silences(T0 + timedelta(minutes=1))
        assert (silence.id, silence.starts_at, silence.ends_at) == (
            "s_0123456789",
            T0,
            T0 + timedelta(hours=1),
        )
        # a new alert written by this store, a second later, sorts after the old one
        store.record([(make_alert(2, when=T0 + timedelta(seconds=1)), render, [])], {}, T0)
        old, new = reversed(store.history())
        assert (old.alert_id, old.fired_at) == ("a_old", T0)
        assert old.deliveries[0].next_attempt_at == T0 + timedelta(seconds=1)
        assert new.fired_at == T0 + timedelta(seconds=1)
        # the old pending delivery is claimed on time, not before
        assert store.claim(T0, 10, timedelta(minutes=1)) == []
        [claimed] = store.claim(T0 + timedelta(seconds=1), 10, timedelta(minutes=1))
        assert (claimed.id, claimed.created_at, claimed.message) == ("d_old", T0, message)
    finally:
        store.close()
    with sqlite3.connect(sqlite_url.removeprefix("sqlite:///")) as raw:
        stamps = raw.execute("SELECT fired_at FROM alert ORDER BY fired_at").fetchall()
    # both in SQLAlchemy's text format: naive UTC with microseconds
    assert stamps == [("2026-01-28 21:05:00.000000",), ("2026-01-28 21:05:01.000000",)]
