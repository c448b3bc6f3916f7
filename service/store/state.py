"""What the daemon remembers between cycles and across restarts, besides the outbox.

- Rule state (`service.engine.RuleState`) per (rule, symbol), upserted in the same
  transaction as the alerts it produced, so a restart never re-fires what was recorded.
- Market data: the last known quotes and calendar as JSON text by key, so a restart has
  something to evaluate before the first poll answers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from itertools import islice

from service.engine import RuleState, fresh_state
from service.store.plain import Plain, maybe_moment, moment_of


@dataclass(frozen=True, slots=True)
class MarketData:
    """JSON text kept under a key, and when it was saved."""

    key: str
    data_json: str
    updated_at: datetime


_STATE_COLUMNS = (
    "fingerprint",
    "armed",
    "pending_since",
    "last_fired",
    "last_report",
    "fired",
    "eps_notified",
    "revenue_notified",
)
_SAVE_STATE = (
    f"INSERT INTO rule_state (rule, symbol, {', '.join(_STATE_COLUMNS)})"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (rule, symbol) DO UPDATE SET "
    + ", ".join(f"{name} = excluded.{name}" for name in _STATE_COLUMNS)
)
_SAVE_MARKET_DATA = (
    'INSERT INTO market_data ("key", data_json, updated_at) VALUES (?, ?, ?)'
    ' ON CONFLICT ("key") DO UPDATE SET data_json = excluded.data_json,'
    " updated_at = excluded.updated_at"
)


#: Rows per statement when saving states: the first pass of 5,000 rules over 500 symbols
#: saves 14,000 states, and one statement over all of them built every row's parameters at
#: once (~9 MiB at the top of the daemon's RSS, kept as free pools for its whole life).
#: In batches, in the same transaction.
SAVE_BATCH = 500


def save_states(db: Plain, states: Mapping[tuple[str, str], RuleState]) -> None:
    """Insert or replace the state of each (rule, symbol)."""
    items = iter(states.items())
    while batch := list(islice(items, SAVE_BATCH)):
        db.run_many(_SAVE_STATE, _state_rows(db, batch))


def _state_rows(
    db: Plain, batch: list[tuple[tuple[str, str], RuleState]]
) -> list[tuple[object, ...]]:
    return [
        (
            rule,
            symbol,
            state.fingerprint,
            state.armed,
            db.when(state.pending_since),
            db.when(state.last_fired),
            state.last_report,
            state.fired,
            state.eps_notified,
            state.revenue_notified,
        )
        for (rule, symbol), state in batch
    ]


def load_states(db: Plain) -> dict[tuple[str, str], RuleState]:
    """Every saved rule state by (rule, symbol), read row by row; a state equal to a fresh
    one is the shared fresh instance (`engine.fresh_state`), as the engine makes them."""
    states: dict[tuple[str, str], RuleState] = {}
    rows = db.run(f"SELECT rule, symbol, {', '.join(_STATE_COLUMNS)} FROM rule_state")
    for (
        rule,
        symbol,
        fingerprint,
        armed,
        pending_since,
        last_fired,
        last_report,
        fired,
        eps_notified,
        revenue_notified,
    ) in rows:
        fresh = fresh_state(fingerprint)
        state = RuleState(
            fingerprint=fresh.fingerprint,  # one string for every state of the rule
            armed=bool(armed),
            pending_since=maybe_moment(pending_since),
            last_fired=maybe_moment(last_fired),
            last_report=last_report,
            fired=fired,
            eps_notified=eps_notified,
            revenue_notified=revenue_notified,
        )
        states[(rule, symbol)] = fresh if state == fresh else state
    return states


def delete_states(db: Plain, keys: list[tuple[str, str]]) -> None:
    """Forget the state of rules or symbols that left the rule file."""
    db.run_many("DELETE FROM rule_state WHERE rule = ? AND symbol = ?", keys)


def save_market_data(db: Plain, key: str, data_json: str, now: datetime) -> None:
    """Insert or replace the JSON kept under `key`."""
    db.run(_SAVE_MARKET_DATA, (key, data_json, db.when(now)))


def load_market_data(db: Plain, key: str) -> MarketData | None:
    """The JSON kept under `key` and when it was saved, or None."""
    row = db.run(
        'SELECT "key", data_json, updated_at FROM market_data WHERE "key" = ?', (key,)
    ).fetchone()
    return None if row is None else MarketData(row[0], row[1], moment_of(row[2]))
