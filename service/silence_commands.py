"""What `earnwatch silence add | list | expire` do, kept out of `cli.py` so it stays
argument parsing and printing. Each returns (exit code, text): 0 done, 1 the database
refused or the id names no active silence, 2 a mistake in the arguments (one line)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, TypeVar

from service.commands import format_table
from service.config import Settings
from service.durations import parse_duration
from service.errors import StoreError
from service.rules.model import NAME, SYMBOL
from service.store.types import Silence

if TYPE_CHECKING:
    from service.store import Store

T = TypeVar("T")


def silence_end(for_: str | None, until: str | None, now: datetime) -> datetime:
    """When a silence starting at `now` ends: `for_` a duration (`2h`, `30m`, `1d`) or
    `until` an ISO 8601 time (read as UTC without an offset), exactly one of them.
    Raises ValueError with a line fit for a user."""
    if (for_ is None) == (until is None):
        raise ValueError("give exactly one of --for DURATION or --until TIME")
    if for_ is not None:
        length = parse_duration(for_)
        if length <= timedelta(0):
            raise ValueError(f"--for {for_!r}: a silence must last longer than 0s")
        return now + length
    assert until is not None
    try:
        end = datetime.fromisoformat(until)
    except ValueError:
        raise ValueError(
            f"--until {until!r}: not an ISO 8601 time; use e.g. 2026-02-04T18:00:00Z"
        ) from None
    end = end.replace(tzinfo=UTC) if end.tzinfo is None else end.astimezone(UTC)
    if end <= now:
        raise ValueError(f"--until {until!r}: {_shown(end)} has passed (now {_shown(now)})")
    return end


def add(
    settings: Settings,
    *,
    rule: str | None,
    symbol: str | None,
    for_: str | None,
    until: str | None,
    comment: str | None,
    now: datetime,
) -> tuple[int, str]:
    """Store a new silence; its id is the first word of the output."""
    if not rule and not symbol:
        return 2, "silence add: give --rule NAME, --symbol SYM or both"
    if rule is not None and not re.match(NAME, rule):
        return 2, f"silence add: --rule {rule!r}: not a rule name (letters, digits, _ . -)"
    if symbol is not None:
        symbol = symbol.strip().upper()
        if not SYMBOL.match(symbol):
            return 2, f"silence add: --symbol {symbol!r}: use 1-10 characters of A-Z 0-9 . -"
    try:
        ends_at = silence_end(for_, until, now)
    except ValueError as exc:
        return 2, f"silence add: {exc}"
    result = _with_store(
        settings,
        "silence add",
        lambda store: store.add_silence(
            rule=rule or None, symbol=symbol, ends_at=ends_at, comment=comment or None, now=now
        ),
    )
    if isinstance(result, str):
        return 1, result
    return 0, f"{result.id} silences {_scope(result)} until {_shown(result.ends_at)}"


def show(settings: Settings, *, as_json: bool, now: datetime) -> tuple[int, str]:
    """The silences holding at `now`: a table, or a JSON array."""
    result = _with_store(settings, "silence list", lambda store: store.silences(now))
    if isinstance(result, str):
        return 1, result
    if as_json:
        return 0, json.dumps([_json(s) for s in result], indent=2)
    if not result:
        return 0, "no active silences"
    headers = ["ID", "RULE", "SYMBOL", "UNTIL", "COMMENT", "CREATED"]
    rows = [
        [
            s.id,
            s.rule or "-",
            s.symbol or "-",
            _shown(s.ends_at),
            " ".join((s.comment or "-").split()),
            _shown(s.created_at),
        ]
        for s in result
    ]
    return 0, format_table(headers, rows)


def expire(settings: Settings, silence_id: str, *, now: datetime) -> tuple[int, str]:
    """End a silence now."""
    result = _with_store(
        settings, "silence expire", lambda store: store.expire_silence(silence_id, now)
    )
    if isinstance(result, str):
        return 1, result
    if result is None:
        return 1, f"silence expire: no active silence {silence_id!r} (unknown or already ended)"
    return 0, f"{result.id} expired at {_shown(now)}: new alerts of {_scope(result)} are sent"


def _with_store(settings: Settings, command: str, work: Callable[[Store], T]) -> T | str:
    """`work(store)` on the database of the settings, or the one line saying why not."""
    from service.parts import store_for

    try:
        store = store_for(settings)
    except StoreError as exc:
        return f"{command}: {exc}"
    try:
        return work(store)
    except StoreError as exc:
        return f"{command}: {exc}"
    finally:
        store.close()


def _scope(silence: Silence) -> str:
    """What a silence covers, in words: `rule R for SYM`, `rule R`, `symbol SYM`."""
    if silence.rule and silence.symbol:
        return f"rule {silence.rule} for {silence.symbol}"
    if silence.rule:
        return f"rule {silence.rule}"
    return f"symbol {silence.symbol}"


def _shown(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _json(silence: Silence) -> dict[str, str | None]:
    return {
        "id": silence.id,
        "rule": silence.rule,
        "symbol": silence.symbol,
        "until": _shown(silence.ends_at),
        "comment": silence.comment,
        "created": _shown(silence.created_at),
    }
