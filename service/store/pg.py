"""PostgreSQL on a SQLAlchemy engine (psycopg 3, `pool_pre_ping`), behind the same small
interface as SQLite (`plain.Plain`; see `db.py`). Imported only for a PostgreSQL URL, or
when `db.migrate()` / `db.current_revision()` are handed a SQLAlchemy engine (any backend:
`EngineDatabase(engine)`)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any

from sqlalchemy import create_engine
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from service.store.db import read_tx, write_tx
from service.store.plain import Plain, Result


class EnginePlain(Plain):
    """`Plain` on one SQLAlchemy connection (`exec_driver_sql`: no statement compiled,
    and a dropped connection is still invalidated by the pool)."""

    __slots__ = ("connection",)

    def __init__(self, connection: Connection) -> None:
        super().__init__(sqlite=connection.dialect.name == "sqlite")
        self.connection = connection

    def run(self, statement: str, params: Sequence[Any] = ()) -> Result:
        return self.connection.exec_driver_sql(self.sql(statement), tuple(params))

    def run_many(self, statement: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            self.connection.exec_driver_sql(self.sql(statement), [tuple(r) for r in rows])


class EngineDatabase:
    """One database on a SQLAlchemy engine: PostgreSQL's (`postgresql()`), or an engine
    made elsewhere (`db.create_db_engine`: its SQLite writers take `BEGIN IMMEDIATE`)."""

    #: What a failure of this backend raises (psycopg's errors come wrapped in these).
    errors: tuple[type[Exception], ...] = (SQLAlchemyError,)

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.backend = engine.dialect.name

    @classmethod
    def postgresql(cls, url: str) -> EngineDatabase:
        """The store's PostgreSQL engine: psycopg 3 with `pool_pre_ping`."""
        return cls(create_engine(url, pool_pre_ping=True))

    def write(self) -> AbstractContextManager[Plain]:
        """A transaction that will write (`db.write_tx`). Commits on success."""
        return self._transaction(write_tx(self.engine))

    def read(self) -> AbstractContextManager[Plain]:
        """A read-only transaction (one consistent snapshot)."""
        return self._transaction(read_tx(self.engine))

    @staticmethod
    @contextmanager
    def _transaction(tx: AbstractContextManager[Connection]) -> Iterator[Plain]:
        with tx as connection:
            yield EnginePlain(connection)

    def close(self) -> None:
        """Close every pooled connection. Idempotent."""
        self.engine.dispose()
