"""Pure evaluation of a rule set against per-symbol snapshots.

(rules, snapshots, states, now) -> (alerts, new states). No IO, no clock reads, no globals.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from service.market import Value


@dataclass(frozen=True, slots=True)
class RuleState:
    """What the engine remembers about one rule for one symbol. Plain data the store saves.

    `armed`: the rule may fire on its next true evaluation (false after firing, until the
    condition is false again, or `clear_when` is true). `pending_since`: when the condition
    turned true while a `for` delay runs. `last_fired`: for `cooldown`. `last_report`: the
    report key of the last alert of a rule that reads earnings variables. `fingerprint`: the
    rule definition this state belongs to (a changed rule starts afresh). `fired`: how many
    alerts this state has produced (part of the dedup key of rules not tied to a report).
    """

    fingerprint: str = ""
    armed: bool = True
    pending_since: datetime | None = None
    last_fired: datetime | None = None
    last_report: str | None = None
    fired: int = 0


@dataclass(frozen=True, slots=True)
class Alert:
    """One alert the engine decided to emit. `dedup_key` is stable: the store's unique
    constraint on it keeps one alert per rule, symbol and event, across restarts."""

    rule: str
    symbol: str
    dedup_key: str
    fired_at: datetime
    text: str  # the rendered message
    channels: tuple[str, ...]  # channel names from the rule file, in order
    values: Mapping[str, Value] = field(default_factory=dict)  # the variables when it fired
    report_key: str | None = None
