"""The connection layer and schema migration: the one place that tells SQLite and PostgreSQL
apart.

`open_database(url)` gives a `Database`: `write()` and `read()` transactions, each a
`plain.Plain` (plain SQL with `?` placeholders), and `close()`. Two backends:
- SQLite (`sqlite:///path`, `sqlite://` in memory) on the standard library's `sqlite3`
  (`lite.py`): no SQLAlchemy is imported to run on it. Every connection runs with
  `journal_mode=WAL`, `synchronous=FULL` (a commit survives a power loss, not only a
  crash), `busy_timeout=10000` and `foreign_keys=ON`; the driver's own transaction handling
  is off and we emit `BEGIN` ourselves, so reads are isolated and every writer takes
  `BEGIN IMMEDIATE` (no "database is locked" upgrade failures half-way through a
  transaction).
- PostgreSQL on a SQLAlchemy engine through psycopg 3 with `pool_pre_ping` (`pg.py`),
  imported only for a PostgreSQL URL.

`migrate()` runs Alembic `upgrade head` from the packaged `migrations/` folder inside one
transaction (transactional DDL on both backends: an interrupted upgrade leaves the previous
revision), under an advisory lock on PostgreSQL so replicas starting together migrate once.
SQLAlchemy and Alembic are imported only then: when the stored revision (one plain query)
already is the head of the packaged revision files, nothing else runs. On SQLite the
migration's engine runs on one of the database's own `sqlite3` connections (for an
in-memory database, the one it has), and is disposed after.

`create_db_engine`, `write_tx` and `read_tx` are the same promises as a SQLAlchemy engine,
for the migrations' tests and tools (they import SQLAlchemy when called).
"""

from __future__ import annotations

import importlib.util
import os
import re
import sys
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, cast
from urllib.parse import parse_qsl, unquote

from service.errors import StoreError
from service.store.lite import BUSY_TIMEOUT_MS, SqliteDatabase, configure
from service.store.plain import Plain

if TYPE_CHECKING:
    from alembic.config import Config
    from sqlalchemy.engine import Connection, Engine

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
#: pg_advisory_xact_lock key held while migrating ("earnwatch" in ASCII, truncated).
MIGRATION_LOCK_KEY = 0x6561726E7761
__all__ = ["BUSY_TIMEOUT_MS", "Database", "migrate", "open_database"]
_BEGIN_OPTION = "earnwatch_sqlite_begin"
#: Alembic's own bookkeeping table and the assignments of a revision file.
VERSION_TABLE = "alembic_version"
_REVISION = re.compile(r"^(down_revision|revision)\b[^=\n]*=\s*(None|\"([^\"]*)\")", re.M)
#: A database URL as SQLAlchemy's `make_url` splits it (scheme, authority, path, query).
_URL = re.compile(
    r"^(?P<name>[\w+]+)://(?:(?P<user>[^:/]*)(?::(?P<password>[^@]*))?@)?"
    r"(?P<host>\[[^/?]+\]|[^/:?]+)?(?::(?P<port>[^/?]*))?"
    r"(?:/(?P<database>[^?]*))?(?:\?(?P<query>.*))?$",
    re.S,
)
#: The `sqlite3.connect` arguments a SQLite URL's query may set, as SQLAlchemy reads them.
_SQLITE_ARGS = (
    "uri",
    "timeout",
    "isolation_level",
    "detect_types",
    "check_same_thread",
    "cached_statements",
)


class Database(Protocol):
    """What the store's modules use of a backend (`lite.SqliteDatabase`,
    `pg.EngineDatabase`)."""

    @property
    def backend(self) -> str:
        """`sqlite` or `postgresql`."""
        ...

    @property
    def errors(self) -> tuple[type[Exception], ...]:
        """The exceptions a failure of this backend raises."""
        ...

    def write(self) -> AbstractContextManager[Plain]:
        """A transaction that will write (`BEGIN IMMEDIATE` on SQLite); commits at the end."""
        ...

    def read(self) -> AbstractContextManager[Plain]:
        """A read-only transaction (one consistent snapshot)."""
        ...

    def close(self) -> None:
        """Close every connection. Idempotent."""
        ...


def normalize_url(url: str) -> str:
    """`postgres://` and `postgresql://` mean psycopg 3; anything else is kept as given."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def require_psycopg() -> None:
    """Raise StoreError naming the fix when the PostgreSQL driver is not installed (the
    default install has none: SQLite needs no driver)."""
    if importlib.util.find_spec("psycopg") is None:
        raise StoreError(
            "a postgresql database URL needs the PostgreSQL driver: "
            "pip install 'earnwatch[postgres]'"
        )


def password_of(url: str) -> str | None:
    """The password a database URL holds (decoded, as the driver gets it), or None: for
    masking it in a message."""
    found = _URL.match(normalize_url(url))
    password = found["password"] if found is not None else None
    return unquote(password) if password else None


def backend_of(url: str) -> str:
    """The backend a URL names (`sqlite`, `postgresql`, ...: its scheme before any `+`)."""
    found = _URL.match(normalize_url(url))
    if found is None:
        raise StoreError(
            "not a database URL: use sqlite:///PATH or postgresql://USER@HOST/DATABASE"
        )
    return found["name"].partition("+")[0]


@dataclass(frozen=True, slots=True)
class SqliteUrl:
    """A SQLite URL as SQLAlchemy reads it: the database (a path, `:memory:`, or with
    `uri=true` a `file:` URI and the query's other arguments), and `sqlite3.connect`'s
    arguments from the query."""

    database: str
    memory: bool
    uri: bool
    options: dict[str, Any]


def parse_sqlite_url(url: str) -> SqliteUrl | None:
    """The parts of a SQLite URL (`sqlite:///rel`, `sqlite:////abs`, `sqlite://`,
    `sqlite:///:memory:`, with a query string), or None for another backend's URL."""
    found = _URL.match(normalize_url(url))
    if found is None or found["name"].partition("+")[0] != "sqlite":
        return None
    if found["user"] is not None or found["host"] or found["port"] is not None:
        raise StoreError(
            "invalid SQLite URL: use sqlite:///relative/path, sqlite:////absolute/path "
            "or sqlite:// (in memory)"
        )
    database = unquote(found["database"] or "")
    query: dict[str, str] = {}
    for key, value in parse_qsl(found["query"] or "", keep_blank_values=True):
        query[key] = value  # a repeated argument: the last one
    options: dict[str, Any] = {}
    uri = _true(query["uri"]) if "uri" in query else False
    for key, convert in (("timeout", float), ("detect_types", int), ("cached_statements", int)):
        if key in query:
            try:
                options[key] = convert(query[key])
            except ValueError:
                raise StoreError(f"invalid SQLite URL: {key} must be a number") from None
    if uri:
        rest = {k: v for k, v in query.items() if k not in _SQLITE_ARGS}
        if rest:
            database += "?" + "&".join(f"{k}={rest[k]}" for k in sorted(rest))
        memory = rest.get("mode") == "memory" or database.partition("?")[0] == "file::memory:"
    else:
        memory = database in ("", ":memory:")
        database = ":memory:" if memory else database
    return SqliteUrl(database, memory, uri, options)


def _true(value: str) -> bool:
    """A URL's boolean as SQLAlchemy reads one (`true`, `1`, `yes`, `on` ...)."""
    return value.strip().lower() in ("true", "yes", "on", "y", "t", "1")


def open_database(url: str) -> Database:
    """The connection layer for a SQLite or PostgreSQL URL. Does not connect yet."""
    url = normalize_url(url)
    sqlite = parse_sqlite_url(url)
    if sqlite is not None:
        database = sqlite.database
        if not (sqlite.memory or sqlite.uri):
            database = os.path.abspath(database)  # as SQLAlchemy did: from the cwd of now
        return SqliteDatabase(
            database, memory=sqlite.memory, uri=sqlite.uri, options=sqlite.options
        )
    backend = backend_of(url)
    if backend == "postgresql":
        require_psycopg()
        from service.store.pg import EngineDatabase  # SQLAlchemy only for PostgreSQL

        return EngineDatabase.postgresql(url)
    scheme = url.partition("://")[0]
    raise StoreError(f"unsupported database URL scheme {scheme!r}: use sqlite or postgresql")


def describe_error(exc: BaseException) -> str:
    """One line naming a database failure, without SQL parameters (they may hold alert
    text): the driver's error type and the first line of its message."""
    original = getattr(exc, "orig", None) or exc
    first = str(original).strip().splitlines()
    return f"{type(original).__name__}: {first[0] if first else ''}".rstrip(": ")


def create_db_engine(url: str) -> Engine:
    """A SQLAlchemy engine with the same promises (for the migrations' tests and tools;
    the store runs on `open_database`). Does not connect yet."""
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url

    url = normalize_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(url, memory=parsed.database in (None, "", ":memory:"))
    if parsed.get_backend_name() == "postgresql":
        require_psycopg()
        return create_engine(url, pool_pre_ping=True)
    raise StoreError(
        f"unsupported database URL scheme {parsed.drivername!r}: use sqlite or postgresql"
    )


def _sqlite_engine(url: str, *, memory: bool, **kwargs: Any) -> Engine:
    from sqlalchemy import create_engine, event
    from sqlalchemy.pool import StaticPool

    kwargs.setdefault("connect_args", {"check_same_thread": False})
    if memory:
        kwargs["poolclass"] = StaticPool  # one shared connection, or each would see its own DB
    engine = create_engine(url, **kwargs)

    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        configure(dbapi_connection, memory=memory)  # BEGIN is ours: see on_begin

    def on_begin(connection: Connection) -> None:
        mode = connection.get_execution_options().get(_BEGIN_OPTION, "DEFERRED")
        connection.exec_driver_sql(f"BEGIN {mode}")

    event.listen(engine, "connect", on_connect)
    event.listen(engine, "begin", on_begin)
    return engine


@contextmanager
def write_tx(engine: Engine) -> Iterator[Connection]:
    """A transaction that will write: `BEGIN IMMEDIATE` on SQLite. Commits on success."""
    with engine.connect() as connection:
        if engine.dialect.name == "sqlite":
            connection.execution_options(**{_BEGIN_OPTION: "IMMEDIATE"})
        with connection.begin():
            yield connection


@contextmanager
def read_tx(engine: Engine) -> Iterator[Connection]:
    """A read-only transaction (one consistent snapshot)."""
    with engine.connect() as connection, connection.begin():
        yield connection


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic Config built in code: no alembic.ini is needed at run time."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def migrate(target: Database | Engine) -> None:
    """Bring the schema to the newest revision (a no-op when it is there already). Takes
    the store's `Database`, or a SQLAlchemy engine (`create_db_engine`)."""
    database = _database_of(target)
    if at_head(database):
        return  # no need to import SQLAlchemy or Alembic
    from alembic import command
    from alembic.util import CommandError
    from sqlalchemy import text

    try:
        with migration_engine(database) as engine, write_tx(engine) as connection:
            if engine.dialect.name == "postgresql":
                connection.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY}
                )
            command.upgrade(alembic_config(connection), "head")
    except CommandError as exc:
        raise StoreError(
            f"database schema cannot be migrated ({exc}); is it from a newer earnwatch?"
        ) from exc


@contextmanager
def migration_engine(database: Database) -> Iterator[Engine]:
    """A SQLAlchemy engine on `database` for Alembic: PostgreSQL's own engine; on SQLite
    an engine over one of its `sqlite3` connections (for an in-memory database the shared
    one, held for the migration), disposed after without closing that connection."""
    if not isinstance(database, SqliteDatabase):
        from service.store.pg import EngineDatabase

        if not isinstance(database, EngineDatabase):
            raise TypeError(f"no migration engine for {type(database).__name__}")
        yield database.engine
        return
    with database.connection() as raw:
        borrowed = _Borrowed(raw)
        engine = _sqlite_engine("sqlite://", memory=True, creator=lambda: borrowed, connect_args={})
        try:
            yield engine
        finally:
            engine.dispose()


class _Borrowed:
    """A `sqlite3` connection lent to SQLAlchemy: everything but `close()` goes through
    (the database it belongs to closes it)."""

    def __init__(self, connection: Any) -> None:
        object.__setattr__(self, "_connection", connection)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._connection, name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._connection, name, value)

    def close(self) -> None:
        pass


def _database_of(target: Database | Engine) -> Database:
    """`target` itself, or a SQLAlchemy engine as a `Database` (SQLAlchemy is loaded
    already when one is handed in)."""
    engine_module = sys.modules.get("sqlalchemy.engine")
    if engine_module is not None and isinstance(target, engine_module.Engine):
        from service.store.pg import EngineDatabase

        return EngineDatabase(target)
    return cast("Database", target)


def at_head(target: Database | Engine) -> bool:
    """Whether the stored revision is the packaged head (one plain query, no SQLAlchemy
    or Alembic); False when the packaged head is not clear from the files (then Alembic
    decides)."""
    head = packaged_head()
    return head is not None and current_revision(target) == head


def current_revision(target: Database | Engine) -> str | None:
    """The schema revision stored in the database, or None for an empty database (read
    from Alembic's table with plain queries, as Alembic does: one row, or none)."""
    with _database_of(target).read() as db:
        if db.sqlite:
            table = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?"
        else:
            table = (
                "SELECT 1 FROM pg_catalog.pg_tables"
                " WHERE schemaname = current_schema() AND tablename = ?"
            )
        if db.run(table, (VERSION_TABLE,)).fetchone() is None:
            return None
        rows = db.run(f"SELECT version_num FROM {VERSION_TABLE}").fetchall()
    if len(rows) > 1:
        raise StoreError(f"the database holds {len(rows)} schema revisions, expected one")
    return str(rows[0][0]) if rows else None


@cache
def packaged_head() -> str | None:
    """The newest revision of the packaged `migrations/versions/` files, read from their
    `revision = "..."` and `down_revision = "..."` lines without importing Alembic; None
    when that is not one clear head (then `migrate` asks Alembic, which knows)."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in sorted((MIGRATIONS / "versions").glob("*.py")):
        found = dict(
            (m[0], m[2] if m[1] != "None" else None)
            for m in _REVISION.findall(path.read_text(encoding="utf-8"))
        )
        if not found.get("revision") or "down_revision" not in found:
            return None
        revisions.add(str(found["revision"]))
        if found["down_revision"] is not None:
            parents.add(str(found["down_revision"]))
    heads = revisions - parents
    return heads.pop() if len(heads) == 1 and parents <= revisions else None
