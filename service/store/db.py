"""Engine setup and schema migration: the one place that tells SQLite and PostgreSQL apart.

Promises:
- SQLite runs with `journal_mode=WAL`, `synchronous=FULL` (a commit survives a power loss,
  not only a crash), `busy_timeout=10000` and `foreign_keys=ON` on every connection. The
  driver's own transaction handling is switched off and we emit `BEGIN` ourselves, so reads
  are isolated and every writer takes `BEGIN IMMEDIATE` (no "database is locked" upgrade
  failures half-way through a transaction).
- PostgreSQL goes through psycopg 3 with `pool_pre_ping`.
- `migrate()` runs Alembic `upgrade head` from the packaged `migrations/` folder inside one
  transaction (transactional DDL on both backends: an interrupted upgrade leaves the
  previous revision), under an advisory lock on PostgreSQL so replicas starting together
  migrate once. Alembic is imported only then: when the stored revision (one plain
  query) already is the head of the packaged revision files, nothing else runs.
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import create_engine, event, inspect, text
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import StaticPool

from service.errors import StoreError

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
#: pg_advisory_xact_lock key held while migrating ("earnwatch" in ASCII, truncated).
MIGRATION_LOCK_KEY = 0x6561726E7761
BUSY_TIMEOUT_MS = 10_000
_BEGIN_OPTION = "earnwatch_sqlite_begin"
#: Alembic's own bookkeeping table and the assignments of a revision file.
VERSION_TABLE = "alembic_version"
_REVISION = re.compile(r"^(down_revision|revision)\b[^=\n]*=\s*(None|\"([^\"]*)\")", re.M)


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


def describe_error(exc: SQLAlchemyError) -> str:
    """One line naming the failure, without SQL parameters (they may hold alert text)."""
    original = getattr(exc, "orig", None) or exc
    first = str(original).strip().splitlines()
    return f"{type(original).__name__}: {first[0] if first else ''}".rstrip(": ")


def create_db_engine(url: str) -> Engine:
    """An engine configured as the module docstring promises. Does not connect yet."""
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


def _sqlite_engine(url: str, *, memory: bool) -> Engine:
    kwargs: dict[str, Any] = {"connect_args": {"check_same_thread": False}}
    if memory:
        kwargs["poolclass"] = StaticPool  # one shared connection, or each would see its own DB
    engine = create_engine(url, **kwargs)

    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we emit BEGIN ourselves (see on_begin)
        cursor = dbapi_connection.cursor()
        try:
            if not memory:
                cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=FULL")
            cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA foreign_keys=ON")
        finally:
            cursor.close()

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


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest revision (a no-op when it is there already)."""
    if at_head(engine):
        return  # no need to import Alembic
    from alembic import command
    from alembic.util import CommandError

    try:
        with write_tx(engine) as connection:
            if engine.dialect.name == "postgresql":
                connection.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY}
                )
            command.upgrade(alembic_config(connection), "head")
    except CommandError as exc:
        raise StoreError(
            f"database schema cannot be migrated ({exc}); is it from a newer earnwatch?"
        ) from exc


def at_head(engine: Engine) -> bool:
    """Whether the stored revision is the packaged head (one plain query, no Alembic);
    False when the packaged head is not clear from the files (then Alembic decides)."""
    head = packaged_head()
    return head is not None and current_revision(engine) == head


def current_revision(engine: Engine) -> str | None:
    """The schema revision stored in the database, or None for an empty database (read
    from Alembic's table with a plain query, as Alembic does: one row, or none)."""
    with read_tx(engine) as connection:
        if not inspect(connection).has_table(VERSION_TABLE):
            return None
        rows = connection.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).all()
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
