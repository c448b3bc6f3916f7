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

from sqlalchemy import Row, select, update
from sqlalchemy.engine import Connection

from service.store.tables import SILENCE
from service.store.types import Silence


def new_silence_id() -> str:
    return "s_" + secrets.token_hex(5)


def add(
    connection: Connection,
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
    connection.execute(
        SILENCE.insert().values(
            id=silence.id,
            rule=rule,
            symbol=symbol,
            starts_at=starts_at,
            ends_at=ends_at,
            comment=comment,
            created_at=now,
        )
    )
    return silence


def active(connection: Connection, now: datetime) -> list[Silence]:
    """The silences holding at `now` (started, not ended), oldest first."""
    c = SILENCE.c
    rows = connection.execute(
        select(SILENCE).where(c.starts_at <= now, c.ends_at > now).order_by(c.created_at, c.id)
    ).all()
    return [_silence(row) for row in rows]


def expire(connection: Connection, silence_id: str, now: datetime) -> Silence | None:
    """End the silence `silence_id` at `now` and return it; None when no silence of that
    id holds at `now` (unknown, already ended, or not started yet)."""
    c = SILENCE.c
    row = connection.execute(
        select(SILENCE).where(c.id == silence_id, c.starts_at <= now, c.ends_at > now)
    ).first()
    if row is None:
        return None
    connection.execute(update(SILENCE).where(c.id == silence_id).values(ends_at=now))
    return replace(_silence(row), ends_at=now)


def _silence(row: Row[Any]) -> Silence:
    return Silence(
        id=row.id,
        rule=row.rule,
        symbol=row.symbol,
        starts_at=row.starts_at,
        ends_at=row.ends_at,
        comment=row.comment,
        created_at=row.created_at,
    )
