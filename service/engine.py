"""Pure evaluation of a rule set against per-symbol snapshots.

(rules, snapshots, states, now) -> (alerts, new states). No IO, no clock reads, no globals.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from types import MappingProxyType
from typing import Final

from service.market import VARIABLES, Snapshot, Value, variables
from service.rules import CompiledRule, RuleSet


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


@dataclass(frozen=True, slots=True)
class Evaluation:
    """What one evaluation pass produced: alerts to store, and the states that changed."""

    alerts: list[Alert]
    states: dict[tuple[str, str], RuleState]
    evaluated: int  # rule x symbol pairs evaluated


def report_key(values: Mapping[str, Value]) -> str | None:
    """The report the variables describe (same as EarningsEvent.report_key), or None."""
    period = values.get("fiscal_period")
    if isinstance(period, str):
        return period
    when = values.get("earnings_date")
    return when.isoformat() if isinstance(when, date) else None


def step(
    rule: CompiledRule, state: RuleState | None, values: Mapping[str, Value], now: datetime
) -> tuple[RuleState, bool]:
    """Advance one rule for one symbol: the new state, and whether it fires now.

    Edge-triggered: fires when `when` turns true while armed; re-arms when `when` is
    false (or `clear_when` is true). Unknown neither fires nor re-arms, so a gap in the
    data can never produce a second alert. `for` must hold continuously (unknown breaks
    it); an edge inside `cooldown` is consumed without an alert; a rule that reads
    earnings variables fires at most once per report, and a new report re-arms it.
    """
    if state is None or state.fingerprint != rule.fingerprint:
        state = RuleState(fingerprint=rule.fingerprint)
    condition = rule.when(values)
    report = report_key(values) if rule.uses_earnings else None
    if not state.armed and report is not None and report != state.last_report:
        state = replace(state, armed=True, pending_since=None)  # a new report, a new event
    if not state.armed:
        rearm = rule.clear_when(values) is True if rule.clear_when else condition is False
        if rearm:
            return replace(state, armed=True, pending_since=None), False
        return state, False
    if condition is not True:
        if state.pending_since is not None:
            return replace(state, pending_since=None), False
        return state, False
    if report is not None and report == state.last_report:
        return replace(state, armed=False, pending_since=None), False
    if rule.hold is not None:
        if state.pending_since is None:
            state = replace(state, pending_since=now)
        if now - state.pending_since < rule.hold:  # type: ignore[operator]
            return state, False
    if (
        rule.cooldown is not None
        and state.last_fired is not None
        and now - state.last_fired < rule.cooldown
    ):
        return replace(state, armed=False, pending_since=None), False
    fired = replace(
        state,
        armed=False,
        pending_since=None,
        last_fired=now,
        last_report=report if report is not None else state.last_report,
        fired=state.fired + 1,
    )
    return fired, True


def dedup_key(rule: CompiledRule, symbol: str, state: RuleState, report: str | None) -> str:
    """Stable identity of an alert: per report for earnings rules, else per firing."""
    if report is not None:
        return f"{rule.name}|{symbol}|report:{report}"
    return f"{rule.name}|{symbol}|{rule.fingerprint}|{state.fired}"


def evaluate(
    ruleset: RuleSet,
    snapshots: Mapping[str, Snapshot],
    states: Mapping[tuple[str, str], RuleState],
    now: datetime,
    *,
    changed: Iterable[str] | None = None,
) -> Evaluation:
    """Evaluate the rules against the snapshots at `now`.

    With `changed`, only the rules of those symbols are evaluated in full; for other
    symbols only the rules whose result can move with the clock alone (time-dependent
    variables, a running `for`) are. Without it, everything is evaluated.
    """
    alerts: list[Alert] = []
    new_states: dict[tuple[str, str], RuleState] = {}
    evaluated = 0
    if changed is None:
        work: Iterable[tuple[str, Iterable[CompiledRule]]] = ruleset.by_symbol.items()
    else:
        work = _due(ruleset, states, set(changed))
    for symbol, rules in work:
        snapshot = snapshots.get(symbol)
        values = variables(snapshot, now) if snapshot is not None else UNKNOWN
        for rule in rules:
            evaluated += 1
            key = (rule.name, symbol)
            old = states.get(key)
            state, fire = step(rule, old, values, now)
            if state != old:
                new_states[key] = state
            if fire:
                report = report_key(values) if rule.uses_earnings else None
                alerts.append(
                    Alert(
                        rule=rule.name,
                        symbol=symbol,
                        dedup_key=dedup_key(rule, symbol, state, report),
                        fired_at=now,
                        text=rule.render(values, symbol, now),
                        channels=rule.channels,
                        values={k: v for k, v in values.items() if v is not None},
                        report_key=report,
                    )
                )
    return Evaluation(alerts=alerts, states=new_states, evaluated=evaluated)


def _due(
    ruleset: RuleSet, states: Mapping[tuple[str, str], RuleState], changed: set[str]
) -> Iterator[tuple[str, Iterable[CompiledRule]]]:
    pending: set[tuple[str, str]] = {k for k, s in states.items() if s.pending_since is not None}
    for symbol, rules in ruleset.by_symbol.items():
        if symbol in changed:
            yield symbol, rules
            continue
        due = [r for r in rules if r.time_dependent or (r.name, symbol) in pending]
        if due:
            yield symbol, due


UNKNOWN: Final[Mapping[str, Value]] = MappingProxyType(dict.fromkeys(VARIABLES))
