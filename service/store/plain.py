"""Plain SQL for the outbox's hot path (`record`, `claim`, `finish_many`).

Those statements run for every delivery, so they are written once, as SQL text over the
column names, and run with `Connection.exec_driver_sql`: no statement is built or compiled
per call and no value goes through a SQLAlchemy type per row, yet a failure is still a
SQLAlchemy error (`StoreError` at the store's edge) and a dropped connection is still
invalidated. A statement takes `?` placeholders; `Plain.sql` gives the backend's (`%s` for
psycopg).

Timestamps are converted here exactly as `tables.UTCDateTime` converts them, so rows
written either way read back alike: a naive datetime is refused; SQLite stores naive UTC
text with microseconds (`YYYY-MM-DD HH:MM:SS.ffffff`, SQLAlchemy's format: it sorts as
time does), PostgreSQL a `timestamptz`; both come back timezone-aware UTC.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from functools import cache
from typing import Any

from sqlalchemy.engine import Connection, CursorResult
from sqlalchemy.exc import StatementError

#: The message `tables.UTCDateTime` refuses a naive datetime with.
NAIVE = "naive datetime refused by the store: pass a timezone-aware one"


@cache
def _pyformat(statement: str) -> str:
    return statement.replace("%", "%%").replace("?", "%s")


class Plain:
    """Plain statements on one connection (inside the caller's transaction)."""

    __slots__ = ("connection", "sqlite")

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.sqlite = connection.dialect.name == "sqlite"

    def sql(self, statement: str) -> str:
        """`statement` with this backend's placeholders (`?` on SQLite, `%s` else)."""
        return statement if self.sqlite else _pyformat(statement)

    def run(self, statement: str, params: Sequence[Any] = ()) -> CursorResult[Any]:
        """Execute one statement (with `?` placeholders)."""
        return self.connection.exec_driver_sql(self.sql(statement), tuple(params))

    def run_many(self, statement: str, rows: Sequence[Sequence[Any]]) -> None:
        """Execute one statement for each row of parameters (the driver's executemany)."""
        if rows:
            self.connection.exec_driver_sql(self.sql(statement), [tuple(r) for r in rows])

    def when(self, moment: datetime | None) -> Any:
        """A timestamp as this backend stores it (None stays None)."""
        if moment is None:
            return None
        if moment.tzinfo is None:
            raise StatementError(NAIVE, None, None, ValueError(NAIVE))
        moment = moment.astimezone(UTC)
        if self.sqlite:
            return moment.replace(tzinfo=None).isoformat(" ", "microseconds")
        return moment


def moment_of(value: Any) -> datetime:
    """A stored timestamp (SQLite text, or a driver's datetime) as an aware UTC datetime."""
    if isinstance(value, str):
        return datetime.fromisoformat(value).replace(tzinfo=UTC)
    moment: datetime = value
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def marks(count: int) -> str:
    """`?, ?, ...` for an IN list of `count` values."""
    return ", ".join("?" * count)
