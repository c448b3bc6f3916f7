"""The silences an operator sets (`earnwatch silence ...`), one row each in `silence`.

A silence is never deleted: expiring one moves its end to now, so `history` can still name
the silence that stopped an alert. Ids are `s_` and 10 hex digits: short enough to type,
random enough never to collide in practice (the primary key refuses a collision anyway).
"""

from __future__ import annotations

import secrets
from dataclasses import replace
from datetime import datetime
from typing import Any

from service.store.plain import Plain, moment_of
from service.store.types import Silence

_COLUMNS = "id, rule, symbol, starts_at, ends_at, comment, created_at"


def new_silence_id() -> str:
    return "s_" + secrets.token_hex(5)


def add(
    db: Plain,
    *,
    rule: str | None,
    symbol: str | None,
    starts_at: datetime,
    ends_at: datetime,
    comment: str | None,
    now: datetime,
) -> Silence:
    """Insert a silence and return it. Raises ValueError when it names neither a rule nor
    a symbol (it would silence everything) or ends before it starts."""
    if rule is None and symbol is None:
        raise ValueError("a silence needs a rule, a symbol or both")
    if ends_at <= starts_at:
        raise ValueError("a silence must end after it starts")
    silence = Silence(
        id=new_silence_id(),
        rule=rule,
        symbol=symbol,
        starts_at=starts_at,
        ends_at=ends_at,
        comment=comment,
        created_at=now,
    )
    db.run(
        f"INSERT INTO silence ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (
            silence.id,
            rule,
            symbol,
            db.when(starts_at),
            db.when(ends_at),
            comment,
            db.when(now),
        ),
    )
    return silence


def active(db: Plain, now: datetime) -> list[Silence]:
    """The silences holding at `now` (started, not ended), oldest first."""
    at = db.when(now)
    rows = db.run(
        f"SELECT {_COLUMNS} FROM silence WHERE starts_at <= ? AND ends_at > ?"
        " ORDER BY created_at, id",
        (at, at),
    )
    return [_silence(row) for row in rows]


def expire(db: Plain, silence_id: str, now: datetime) -> Silence | None:
    """End the silence `silence_id` at `now` and return it; None when no silence of that
    id holds at `now` (unknown, already ended, or not started yet)."""
    at = db.when(now)
    row = db.run(
        f"SELECT {_COLUMNS} FROM silence WHERE id = ? AND starts_at <= ? AND ends_at > ?",
        (silence_id, at, at),
    ).fetchone()
    if row is None:
        return None
    db.run("UPDATE silence SET ends_at = ? WHERE id = ?", (at, silence_id))
    return replace(_silence(row), ends_at=now)


def _silence(row: Any) -> Silence:
    silence_id, rule, symbol, starts_at, ends_at, comment, created_at = row
    return Silence(
        id=silence_id,
        rule=rule,
        symbol=symbol,
        starts_at=moment_of(starts_at),
        ends_at=moment_of(ends_at),
        comment=comment,
        created_at=moment_of(created_at),
    )
