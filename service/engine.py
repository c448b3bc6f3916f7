"""Pure evaluation of a rule set against per-symbol snapshots.

(rules, snapshots, states, now) -> (alerts, new states, rule errors). No IO, no clock
reads, no globals.

One rule's failure is that rule's failure: a condition that raises is unknown for that
symbol (it neither fires nor re-arms), a message that fails to render is replaced by the
default message with a note, and either is returned as a `RuleError` for the caller to
count and log. Every other rule and symbol goes on.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from functools import lru_cache
from types import MappingProxyType
from typing import Final, Literal

from service.market import (
    DATE_CHANGE_VARS,
    TIME_CHANGE_VARS,
    VARIABLES,
    Snapshot,
    Value,
    variables,
)
from service.rules import CompiledRule, RuleSet, SymbolRules
from service.rules.expr import Compiled
from service.rules.messages import amended_message, resolved_message
from service.wakes import Key, Wakes, next_midnight, next_wake

RuleErrorKind = Literal["condition", "render"]
AlertKind = Literal["fired", "resolved", "amended"]
#: What one step did: fired, re-armed by its condition (`clear_when`, or `when` false), or
#: neither.
StepOutcome = Literal["fired", "rearmed"] | None


@dataclass(frozen=True, slots=True)
class RuleState:
    """What the engine remembers about one rule for one symbol. Plain data the store saves.

    `armed`: the rule may fire on its next true evaluation (false after firing, until the
    condition is false again, or `clear_when` is true). `pending_since`: when the condition
    turned true while a `for` delay runs. `last_fired`: for `cooldown`. `last_report`: the
    report key of the last alert of a rule that reads earnings variables. `fingerprint`: the
    rule definition this state belongs to (a changed rule starts afresh). `fired`: how many
    alerts this state has produced (part of the dedup key of rules not tied to a report).
    Together they give back the dedup key of the last alert (`last_fired_key`), which a
    resolved alert (`notify_resolved`) extends: no column of its own is needed.
    `eps_notified`, `revenue_notified` (rules with `notify_amended` only): the actual EPS
    and revenue of `last_report` as last notified, by its alert or its last amended
    message (or first known since), which the next correction is compared with.
    """

    fingerprint: str = ""
    armed: bool = True
    pending_since: datetime | None = None
    last_fired: datetime | None = None
    last_report: str | None = None
    fired: int = 0
    eps_notified: float | None = None
    revenue_notified: float | None = None


@lru_cache(maxsize=1 << 16)
def fresh_state(fingerprint: str) -> RuleState:
    """The state of a rule that has not fired yet for a symbol: one shared instance per
    fingerprint (a RuleState is frozen), not one per (rule, symbol): 5,000 rules over
    500 symbols held 14,000 equal ones (1.3 MiB). Bounded, for a daemon whose rules are
    edited and reloaded for months."""
    return RuleState(fingerprint=fingerprint)


@dataclass(frozen=True, slots=True)
class Alert:
    """One alert the engine decided to emit. `dedup_key` names its event (see
    `dedup_key()`): the store's unique constraint on it keeps one alert per rule, symbol
    and event, across restarts."""

    rule: str
    symbol: str
    dedup_key: str
    fired_at: datetime
    text: str  # the rendered message
    channels: tuple[str, ...]  # channel names from the rule file, in order
    values: Mapping[str, Value] = field(default_factory=dict)  # the variables when it fired
    report_key: str | None = None
    urgent: bool = False  # the rule's `urgent: true`: quiet hours do not hold it
    #: `resolved`: the rule re-armed after firing (`notify_resolved: true`); `resolves_key`
    #: is then the dedup key of the alert it resolves (the outbox finds its id).
    #: `amended`: the actuals of the report it fired on were corrected (`notify_amended:
    #: true`); `resolves_key` is then the dedup key of the alert it amends.
    kind: AlertKind = "fired"
    resolves_key: str | None = None


@dataclass(frozen=True, slots=True)
class RuleError:
    """One rule that failed for one symbol in one pass: its condition (`when` or
    `clear_when`) raised, or its message failed to render. `exc_type` names the exception
    (never its text: it may quote alert values)."""

    rule: str
    symbol: str
    kind: RuleErrorKind
    exc_type: str
    line: int = 0  # the rule's line in the rule file


@dataclass(frozen=True, slots=True)
class Evaluation:
    """What one evaluation pass produced: alerts to store, the states that changed, and
    the rules that failed (each still evaluated as well as it could be)."""

    alerts: list[Alert]
    states: dict[tuple[str, str], RuleState]
    evaluated: int  # rule x symbol pairs evaluated
    errors: list[RuleError] = field(default_factory=list)
    #: The next wake (`service/wakes.py`) of each evaluated pair whose rule moves with
    #: the clock (a clock variable, a `for`), for `Wakes.update`.
    wakes: dict[Key, float] = field(default_factory=dict)


def report_key(values: Mapping[str, Value]) -> str | None:
    """The report the variables describe (same as EarningsEvent.report_key), or None."""
    period = values.get("fiscal_period")
    if isinstance(period, str):
        return period
    when = values.get("earnings_date")
    return when.isoformat() if isinstance(when, date) else None


#: Rules that read these follow the report's current date: a reminder re-arms when the
#: date moves.
_FOLLOWS_DATE: Final = DATE_CHANGE_VARS | {"hours_to_earnings", "days_to_earnings"}


def event_key(rule: CompiledRule, values: Mapping[str, Value]) -> str | None:
    """The event an earnings rule fires once for: its report (`report_key`), and for a rule
    that reads `earnings_date_changed` or the time to the report, the report's date once it
    moved from the one first seen (`...|date:YYYY-MM-DD`), so each move is a new event and
    a reminder re-arms; likewise `...|time:amc` for `earnings_time_changed`. A date never
    moved keeps the plain report key (the keys of alerts stored before issue #13)."""
    if not rule.uses_earnings:
        return None
    report = report_key(values)
    if report is None:
        return None
    date_moved = values.get("earnings_date_changed") is True
    if not date_moved and values.get("earnings_time_changed") is not True:
        return report  # the common case, without the names below
    names = rule.when.names | (rule.clear_when.names if rule.clear_when else frozenset())
    when = values.get("earnings_date")
    if names & _FOLLOWS_DATE and date_moved:
        report += f"|date:{when.isoformat() if isinstance(when, date) else when}"
    if names & TIME_CHANGE_VARS and values.get("earnings_time_changed") is True:
        report += f"|time:{values.get('earnings_time')}"
    return report


def _guarded(condition: Compiled, values: Mapping[str, Value]) -> tuple[Value, str | None]:
    """The condition's value, or unknown and the exception's type name if it raised (a
    rule can pass `check` and still raise on real data, e.g. an overflowing product)."""
    try:
        return condition(values), None
    except Exception as exc:  # any failure of one rule stays that rule's
        return None, type(exc).__name__


def step(
    rule: CompiledRule, state: RuleState | None, values: Mapping[str, Value], now: datetime
) -> tuple[RuleState, bool, str | None]:
    """Advance one rule for one symbol: the new state, whether it fires now, and the
    exception type name when a condition raised (that condition is then unknown). See
    `advance`, which also says when the rule re-armed."""
    state, outcome, error = advance(rule, state, values, now)
    return state, outcome == "fired", error


def advance(
    rule: CompiledRule, state: RuleState | None, values: Mapping[str, Value], now: datetime
) -> tuple[RuleState, StepOutcome, str | None]:
    """Advance one rule for one symbol: the new state, what happened (fired, re-armed by
    its condition, or nothing), and the exception type name when a condition raised.

    Edge-triggered: fires when `when` turns true while armed; re-arms when `when` is
    false (or `clear_when` is true). Unknown neither fires nor re-arms, so a gap in the
    data can never produce a second alert. `for` must hold continuously (unknown breaks
    it); an edge inside `cooldown` is consumed without an alert; a rule that reads
    earnings variables fires at most once per report, and a new report re-arms it.
    """
    condition, error = _guarded(rule.when, values)
    return _advanced(rule, state, condition, error, values, now)


def _advanced(
    rule: CompiledRule,
    state: RuleState | None,
    condition: Value,
    error: str | None,
    values: Mapping[str, Value],
    now: datetime,
) -> tuple[RuleState, StepOutcome, str | None]:
    """`advance` once `when` is evaluated: `condition` its value, `error` the exception
    type name when it raised."""
    if state is None or state.fingerprint != rule.fingerprint:
        state = fresh_state(rule.fingerprint)
    report = event_key(rule, values)
    if not state.armed and report is not None and report != state.last_report:
        state = replace(state, armed=True, pending_since=None)  # a new report, a new event
    if not state.armed:
        if rule.clear_when is not None:
            cleared, clear_error = _guarded(rule.clear_when, values)
            rearm, error = cleared is True, error or clear_error
        else:
            rearm = condition is False
        if rearm:
            return replace(state, armed=True, pending_since=None), "rearmed", error
        return state, None, error
    if condition is not True:
        if state.pending_since is not None:
            return replace(state, pending_since=None), None, error
        return state, None, error
    if report is not None and report == state.last_report:
        return replace(state, armed=False, pending_since=None), None, None
    if rule.hold is not None:
        if state.pending_since is None:
            state = replace(state, pending_since=now)
        if now - state.pending_since < rule.hold:  # type: ignore[operator]
            return state, None, None
    if (
        rule.cooldown is not None
        and state.last_fired is not None
        and now - state.last_fired < rule.cooldown
    ):
        return replace(state, armed=False, pending_since=None), None, None
    fired = replace(
        state,
        armed=False,
        pending_since=None,
        last_fired=now,
        last_report=report if report is not None else state.last_report,
        fired=state.fired + 1,
    )
    return fired, "fired", None


def dedup_key(
    rule: CompiledRule, symbol: str, state: RuleState, report: str | None, fired_at: datetime
) -> str:
    """Identity of an alert: per report for earnings rules, else per firing (`state` is
    the state after firing at `fired_at`).

    A report rule's key must collide: one alert per report, across restarts and replicas.
    Any other key is unique per event: its firing count alone restarts at 0 whenever the
    state does (a condition edited and reverted has its old fingerprint back), which made
    later crossings collide with earlier alerts and vanish. With the firing time (UTC,
    microseconds) two replicas firing the same crossing no longer collide either; that is
    acceptable because only the leader evaluates.
    """
    if report is not None:
        return f"{rule.name}|{symbol}|report:{report}"
    moment = fired_at.astimezone(UTC).isoformat(timespec="microseconds")
    return f"{rule.name}|{symbol}|{rule.fingerprint}|{state.fired}|{moment}"


RESOLVED_SUFFIX: Final = "|resolved"


def last_fired_key(rule: CompiledRule, symbol: str, state: RuleState) -> str | None:
    """The dedup key of the last alert `state` (not re-armed since) records, derived as
    `dedup_key()` made it, or None when it records no firing."""
    if state.last_fired is None:
        return None
    report = state.last_report if rule.uses_earnings else None
    return dedup_key(rule, symbol, state, report, state.last_fired)


def resolved_alert(
    rule: CompiledRule,
    symbol: str,
    state: RuleState,
    values: Mapping[str, Value],
    now: datetime,
) -> Alert | None:
    """The resolved alert of a rule with `notify_resolved` that re-armed from `state`
    (its state before re-arming), or None when that state records no firing.

    Its dedup key is the fired alert's plus RESOLVED_SUFFIX: one resolved message per
    firing, across restarts (the store keeps one alert per key). A re-arm after an edge
    the cooldown or the report consumed derives the same key, so the store drops it."""
    fired = last_fired_key(rule, symbol, state)
    if fired is None:
        return None
    names = rule.when.names | (rule.clear_when.names if rule.clear_when else frozenset())
    return Alert(
        rule=rule.name,
        symbol=symbol,
        dedup_key=fired + RESOLVED_SUFFIX,
        fired_at=now,
        text=resolved_message(rule.name, symbol, values, names),
        channels=rule.channels,
        values={k: v for k, v in values.items() if v is not None},
        report_key=(state.last_report or "").split("|")[0] or None if rule.uses_earnings else None,
        kind="resolved",
        resolves_key=fired,
        urgent=rule.urgent,  # an urgent rule's resolution is not held by quiet hours either
    )


AMENDED_SUFFIX: Final = "|amended"
#: The report's figures a correction is about, as (variable, label in the message).
FIGURES: Final = (("eps_actual", "EPS"), ("revenue_actual", "revenue"))


def _figure(values: Mapping[str, Value], name: str) -> float | None:
    """A reported figure, or None when unknown or not a finite number (never a correction)."""
    value = values.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def amend(
    rule: CompiledRule,
    symbol: str,
    state: RuleState,
    fired: bool,
    values: Mapping[str, Value],
    now: datetime,
) -> tuple[RuleState, Alert | None]:
    """For a rule with `notify_amended`: the state with the report's figures tracked, and
    the amended alert when a figure the rule notified changed (a provider's correction).

    A firing records the figures it fired with. Afterwards, while the values describe the
    report of the last firing, a known figure that now differs is a correction: one amended
    alert (old and new figures; `resolves_key` the fired alert's key) and its figures become
    the ones to compare with. A figure known for the first time (revenue after EPS) is
    recorded without an alert, and one that disappears (unknown again) changes nothing.
    Its dedup key is the fired alert's plus `|amended|<old>-><new>`: a restart or a
    replica that derives it again sends nothing twice."""
    new = tuple(_figure(values, name) for name, _ in FIGURES)
    if fired:
        return replace(state, eps_notified=new[0], revenue_notified=new[1]), None
    key = last_fired_key(rule, symbol, state)
    report = (state.last_report or "").split("|")[0]
    if key is None or not report or report_key(values) != report:
        return state, None
    old = (state.eps_notified, state.revenue_notified)
    now_known = tuple(o if n is None else n for o, n in zip(old, new, strict=True))
    if now_known == old:
        return state, None
    state = replace(state, eps_notified=now_known[0], revenue_notified=now_known[1])
    if all(o is None or o == n for o, n in zip(old, now_known, strict=True)):
        return state, None  # only figures known for the first time: no correction
    shown = [(label, o, n) for (_, label), o, n in zip(FIGURES, old, now_known, strict=True)]
    change = ",".join(f"{o}->{n}" for _, o, n in shown)
    previous = {f"{name}_previous": o for (name, _), o in zip(FIGURES, old, strict=True)}
    return state, Alert(
        rule=rule.name,
        symbol=symbol,
        dedup_key=f"{key}{AMENDED_SUFFIX}|{change}",
        fired_at=now,
        text=amended_message(rule.name, symbol, shown),
        channels=rule.channels,
        values={k: v for k, v in (dict(values) | previous).items() if v is not None},
        report_key=report,
        kind="amended",
        resolves_key=key,
        urgent=rule.urgent,
    )


#: (symbol, the rules to evaluate for it): one unit of an evaluation pass.
Work = tuple[str, Iterable[CompiledRule]]


def evaluate(
    ruleset: RuleSet,
    snapshots: Mapping[str, Snapshot],
    states: Mapping[tuple[str, str], RuleState],
    now: datetime,
    *,
    changed: Iterable[str] | None = None,
    wakes: Wakes | None = None,
) -> Evaluation:
    """Evaluate the rules against the snapshots at `now`.

    With `changed`, only the rules of those symbols are evaluated in full; for other
    symbols only the rules whose result can move with the clock alone (time-dependent
    variables, a running `for`) are, and with `wakes` only those of them whose wake has
    come (the caller records the result's `wakes` in it). Without `changed`, everything
    is evaluated.
    """
    return evaluate_work(plan(ruleset, states, changed, wakes, now), snapshots, states, now)


def with_rule_keys(
    ruleset: RuleSet, states: Mapping[tuple[str, str], RuleState]
) -> dict[tuple[str, str], RuleState]:
    """`states` keyed by the rule set's own (rule, symbol) key objects (`SymbolRules`),
    where it has the pair; a pair it does not have keeps its key. States read from the
    store come with a key tuple and two strings of their own per row (14,000 saved states
    of 5,000 rules: ~2 MiB held twice); keyed so, the pass's lookups also match by
    identity."""
    own = {
        key: key
        for rules in ruleset.by_symbol.values()
        if isinstance(rules, SymbolRules)  # a rule set built by hand may hold plain tuples
        for key in rules.keys
    }
    return {own.get(key, key): state for key, state in states.items()}


def plan(
    ruleset: RuleSet,
    states: Mapping[tuple[str, str], RuleState],
    changed: Iterable[str] | None = None,
    wakes: Wakes | None = None,
    now: datetime | None = None,
) -> list[Work]:
    """What `evaluate` would evaluate, symbol by symbol, so a caller can evaluate a big
    pass in slices (`evaluate_work` on each) and let other work run between them."""
    if changed is None:
        return list(ruleset.by_symbol.items())
    due = wakes.due(ruleset, now) if wakes is not None and now is not None else None
    if due is None:
        return list(_due(ruleset, states, set(changed)))
    return list(_woken(ruleset, set(changed), due))


def evaluate_work(
    work: Iterable[Work],
    snapshots: Mapping[str, Snapshot],
    states: Mapping[tuple[str, str], RuleState],
    now: datetime,
) -> Evaluation:
    """Evaluate the planned (symbol, rules) pairs; see `evaluate`."""
    alerts: list[Alert] = []
    new_states: dict[tuple[str, str], RuleState] = {}
    errors: list[RuleError] = []
    wakes: dict[Key, float] = {}
    evaluated = 0
    moment, midnight = now.timestamp(), next_midnight(now)
    get_state = states.get
    for symbol, rules in work:
        snapshot = snapshots.get(symbol)
        values = variables(snapshot, now) if snapshot is not None else UNKNOWN
        if rules.__class__ is not SymbolRules or rules.symbol != symbol:
            rules = SymbolRules(symbol, rules)
        evaluated += len(rules)
        # keys and functions built once: (rule, key, its `when` function)
        for rule, key, when in zip(rules, rules.keys, rules.whens, strict=True):
            old = get_state(key)
            try:
                condition = when(values)
                failed = None
            except Exception as exc:  # any failure of one rule stays that rule's
                condition, failed = None, type(exc).__name__
            if (
                old is not None
                and old.fingerprint == rule.fingerprint
                and not rule.notify_amended
                and (
                    (old.armed and condition is not True and old.pending_since is None)
                    or (
                        not old.armed
                        and condition is not False
                        and rule.clear_when is None
                        and _same_event(rule, old, values)
                    )
                )
            ):
                # What `advance` gives back unchanged: armed and not true, or fired and
                # neither false nor a new report. The commonest case by far of a pass.
                if failed is not None:
                    errors.append(RuleError(rule.name, symbol, "condition", failed, rule.line))
                if rule.time_dependent or rule.hold is not None:
                    wakes[key] = next_wake(rule, values, old, moment, midnight)
                continue
            state, outcome, failed = _advanced(rule, old, condition, failed, values, now)
            if failed is not None:
                errors.append(RuleError(rule.name, symbol, "condition", failed, rule.line))
            if rule.notify_amended:
                state, amended = amend(rule, symbol, state, outcome == "fired", values, now)
                if amended is not None:
                    alerts.append(amended)
            if state is not old and state != old:
                new_states[key] = state
            if rule.time_dependent or rule.hold is not None:
                wakes[key] = next_wake(rule, values, state, moment, midnight)
            if outcome == "rearmed" and rule.notify_resolved and old is not None:
                resolved = resolved_alert(rule, symbol, old, values, now)
                if resolved is not None:
                    alerts.append(resolved)
            if outcome == "fired":
                report = event_key(rule, values)
                text, failed = rule.render_checked(values, symbol, now)
                if failed is not None:
                    errors.append(RuleError(rule.name, symbol, "render", failed, rule.line))
                alerts.append(
                    Alert(
                        rule=rule.name,
                        symbol=symbol,
                        dedup_key=dedup_key(rule, symbol, state, report, now),
                        fired_at=now,
                        text=text,
                        channels=rule.channels,
                        values={k: v for k, v in values.items() if v is not None},
                        report_key=report_key(values) if rule.uses_earnings else None,
                        urgent=rule.urgent,
                    )
                )
    return Evaluation(
        alerts=alerts, states=new_states, evaluated=evaluated, errors=errors, wakes=wakes
    )


def _same_event(rule: CompiledRule, state: RuleState, values: Mapping[str, Value]) -> bool:
    """Whether a fired `state` still describes the event `values` are of (no new report
    re-arms it): `advance`'s test, by `event_key`."""
    if not rule.uses_earnings:
        return True
    report = event_key(rule, values)
    return report is None or report == state.last_report


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


def _woken(
    ruleset: RuleSet, changed: set[str], due: set[Key]
) -> Iterator[tuple[str, Iterable[CompiledRule]]]:
    """The rules of the changed symbols, and the pairs whose wake has come."""
    names_of: dict[str, set[str]] = {}
    for name, symbol in due:
        names_of.setdefault(symbol, set()).add(name)
    for symbol, rules in ruleset.by_symbol.items():
        if symbol in changed:
            yield symbol, rules
            continue
        names = names_of.get(symbol)
        if names:
            yield symbol, [r for r in rules if r.name in names]


UNKNOWN: Final[Mapping[str, Value]] = MappingProxyType(dict.fromkeys(VARIABLES))
