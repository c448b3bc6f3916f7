"""PostgreSQL on a SQLAlchemy engine (psycopg 3, `pool_pre_ping`), behind the same small
interface as SQLite (`plain.Plain`; see `db.py`). Imported only for a PostgreSQL URL."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any

from sqlalchemy import create_engine
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

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


class PgDatabase:
    """One PostgreSQL database on a SQLAlchemy engine."""

    backend = "postgresql"
    #: What a failure of this backend raises (psycopg's errors come wrapped in these).
    errors: tuple[type[Exception], ...] = (SQLAlchemyError,)

    def __init__(self, url: str) -> None:
        self.engine: Engine = create_engine(url, pool_pre_ping=True)

    @contextmanager
    def _transaction(self) -> Iterator[Plain]:
        with self.engine.connect() as connection, connection.begin():
            yield EnginePlain(connection)

    def write(self) -> AbstractContextManager[Plain]:
        """A transaction that will write. Commits on success."""
        return self._transaction()

    def read(self) -> AbstractContextManager[Plain]:
        """A read-only transaction (one consistent snapshot)."""
        return self._transaction()

    def close(self) -> None:
        """Close every pooled connection. Idempotent."""
        self.engine.dispose()
