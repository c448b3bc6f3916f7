"""Plain SQL: the one small interface every query of the store runs through.

A `Plain` is one connection inside the caller's transaction. Its statements are SQL text
over the column names with `?` placeholders (`Plain.sql` gives the backend's: `%s` for
psycopg), run with `run` (one statement; the result has its rows and `rowcount`) or
`run_many` (the driver's executemany). No statement is built or compiled per call and no
value goes through a type object per row. Two backends implement it (see `db.py`):
SQLite on the standard library's `sqlite3` (`lite.py`: no SQLAlchemy), PostgreSQL on the
SQLAlchemy engine's connection (`pg.py`, `exec_driver_sql`, so a dropped connection is
still invalidated). Either way a failure is the backend's driver error (`Database.errors`),
`StoreError` at the store's edge.

Timestamps are converted here (`when`, `moment_of`) exactly as `tables.UTCDateTime`
converts them, so rows written either way, before or since, read back alike: a naive
datetime is refused; SQLite stores naive UTC text with microseconds
(`YYYY-MM-DD HH:MM:SS.ffffff`, SQLAlchemy's format: it sorts as time does), PostgreSQL a
`timestamptz`; both come back timezone-aware UTC.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from functools import cache
from typing import Any, Protocol

#: The message `tables.UTCDateTime` refuses a naive datetime with.
NAIVE = "naive datetime refused by the store: pass a timezone-aware one"


class BindError(Exception):
    """A value the store refuses before it reaches the driver (a naive datetime). Like
    SQLAlchemy's StatementError it carries the cause as `orig`, which the store's error
    message names (`ValueError: naive datetime refused ...`)."""

    def __init__(self, orig: Exception) -> None:
        super().__init__(str(orig))
        self.orig = orig


class Result(Protocol):
    """What `Plain.run` returns: a `sqlite3.Cursor`, or SQLAlchemy's `CursorResult`.
    `rowcount` is the rows a statement without RETURNING changed."""

    @property
    def rowcount(self) -> int: ...

    def __iter__(self) -> Iterator[Any]: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> Sequence[Any]: ...


@cache
def _pyformat(statement: str) -> str:
    return statement.replace("%", "%%").replace("?", "%s")


class Plain:
    """Plain statements on one connection (inside the caller's transaction). A backend
    implements `run` and `run_many`; `sqlite` says which one this is."""

    __slots__ = ("sqlite",)

    def __init__(self, *, sqlite: bool) -> None:
        self.sqlite = sqlite

    def sql(self, statement: str) -> str:
        """`statement` with this backend's placeholders (`?` on SQLite, `%s` else)."""
        return statement if self.sqlite else _pyformat(statement)

    def run(self, statement: str, params: Sequence[Any] = ()) -> Result:
        """Execute one statement (with `?` placeholders)."""
        raise NotImplementedError

    def run_many(self, statement: str, rows: Sequence[Sequence[Any]]) -> None:
        """Execute one statement for each row of parameters (the driver's executemany)."""
        raise NotImplementedError

    def when(self, moment: datetime | None) -> Any:
        """A timestamp as this backend stores it (None stays None)."""
        if moment is None:
            return None
        if moment.tzinfo is None:
            raise BindError(ValueError(NAIVE))
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


def maybe_moment(value: Any) -> datetime | None:
    """`moment_of`, None staying None."""
    return None if value is None else moment_of(value)


def marks(count: int) -> str:
    """`?, ?, ...` for an IN list of `count` values."""
    return ", ".join("?" * count)
