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

from sqlalchemy import select
from sqlalchemy.engine import Connection

from service.engine import RuleState, fresh_state
from service.store.outbox import dialect_insert
from service.store.tables import MARKET_DATA, RULE_STATE


@dataclass(frozen=True, slots=True)
class MarketData:
    """JSON text kept under a key, and when it was saved."""

    key: str
    data_json: str
    updated_at: datetime


#: Rows per statement when saving states: the first pass of 5,000 rules over 500 symbols
#: saves 14,000 states, and one statement over all of them built 14,000 row dicts and
#: SQLAlchemy's parameters of each at once (~9 MiB at the top of the daemon's RSS, kept
#: as free pools for its whole life). In batches, in the same transaction.
SAVE_BATCH = 500


def save_states(connection: Connection, states: Mapping[tuple[str, str], RuleState]) -> None:
    """Insert or replace the state of each (rule, symbol)."""
    if not states:
        return
    statement = dialect_insert(connection, RULE_STATE)
    excluded = statement.excluded
    statement = statement.on_conflict_do_update(
        index_elements=["rule", "symbol"],
        set_={
            name: excluded[name]
            for name in (
                "fingerprint",
                "armed",
                "pending_since",
                "last_fired",
                "last_report",
                "fired",
                "eps_notified",
                "revenue_notified",
            )
        },
    )
    items = iter(states.items())
    while batch := list(islice(items, SAVE_BATCH)):
        rows = [
            {
                "rule": rule,
                "symbol": symbol,
                "fingerprint": state.fingerprint,
                "armed": state.armed,
                "pending_since": state.pending_since,
                "last_fired": state.last_fired,
                "last_report": state.last_report,
                "fired": state.fired,
                "eps_notified": state.eps_notified,
                "revenue_notified": state.revenue_notified,
            }
            for (rule, symbol), state in batch
        ]
        connection.execute(statement, rows)


def load_states(connection: Connection) -> dict[tuple[str, str], RuleState]:
    """Every saved rule state by (rule, symbol); a state equal to a fresh one is the shared
    fresh instance (`engine.fresh_state`), as the engine makes them."""
    states: dict[tuple[str, str], RuleState] = {}
    for row in connection.execute(select(RULE_STATE)):  # row by row, not a list of all
        fresh = fresh_state(row.fingerprint)
        state = RuleState(
            fingerprint=fresh.fingerprint,  # one string for every state of the rule
            armed=row.armed,
            pending_since=row.pending_since,
            last_fired=row.last_fired,
            last_report=row.last_report,
            fired=row.fired,
            eps_notified=row.eps_notified,
            revenue_notified=row.revenue_notified,
        )
        states[(row.rule, row.symbol)] = fresh if state == fresh else state
    return states


def delete_states(connection: Connection, keys: list[tuple[str, str]]) -> None:
    """Forget the state of rules or symbols that left the rule file."""
    c = RULE_STATE.c
    for rule, symbol in keys:
        connection.execute(RULE_STATE.delete().where(c.rule == rule, c.symbol == symbol))


def save_market_data(connection: Connection, key: str, data_json: str, now: datetime) -> None:
    """Insert or replace the JSON kept under `key`."""
    statement = dialect_insert(connection, MARKET_DATA).values(
        key=key, data_json=data_json, updated_at=now
    )
    statement = statement.on_conflict_do_update(
        index_elements=["key"],
        set_={"data_json": statement.excluded.data_json, "updated_at": now},
    )
    connection.execute(statement)


def load_market_data(connection: Connection, key: str) -> MarketData | None:
    """The JSON kept under `key` and when it was saved, or None."""
    row = connection.execute(select(MARKET_DATA).where(MARKET_DATA.c.key == key)).first()
    return None if row is None else MarketData(row.key, row.data_json, row.updated_at)
