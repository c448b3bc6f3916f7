"""The pass (`evaluate`) gives, pair by pair, what `advance` gives (issue #16): its shortcut
for the states a pass leaves as they are (armed and not true, or fired and neither false
nor a new report) changes no state, alert, error or wake."""

from __future__ import annotations

import copy
import pickle
import random
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

from service.engine import (
    RuleError,
    RuleState,
    advance,
    amend,
    evaluate,
    evaluate_work,
    plan,
    resolved_alert,
    with_rule_keys,
)
from service.market import EarningsEvent, Quote, ReportTime, Snapshot, select_event, variables
from service.pipeline import _slices
from service.rules import RuleSet, SymbolRules
from service.wakes import next_midnight, next_wake
from tests.rules.conftest import load

NOW = datetime(2026, 2, 3, 20, 0, tzinfo=UTC)
SYMBOLS = ["AAA", "BBB", "CCC", "DDD", "EEE", "FFF"]
RULES = """\
rules:
  - name: above
    symbols: [AAA, BBB, CCC, DDD, EEE, FFF]
    when: price > 50
  - name: hysteresis
    symbols: [AAA, BBB, CCC, DDD, EEE, FFF]
    when: price > 50
    clear_when: price < 40
  - name: beat
    symbols: [AAA, BBB, CCC, DDD, EEE, FFF]
    when: reported and eps_actual > eps_estimate
    notify_resolved: true
  - name: amended
    symbols: [AAA, BBB, CCC, DDD, EEE, FFF]
    when: reported
    notify_amended: true
  - name: soon
    symbols: [AAA, BBB, CCC, DDD, EEE, FFF]
    when: not reported and hours_to_earnings <= 24
  - name: held
    symbols: [AAA, BBB, CCC, DDD, EEE, FFF]
    when: change_pct < -2
    for: 10m
    cooldown: 1h
  - name: unknown
    symbols: [AAA, BBB, CCC, DDD, EEE, FFF]
    when: price > target_median or abs(change_pct) >= 3
"""


def snapshots(rng: random.Random) -> dict[str, Snapshot]:
    out = {}
    for s in SYMBOLS[:-1]:  # the last has no snapshot: every variable unknown
        price = rng.choice([None, rng.uniform(30, 70)])
        event = EarningsEvent(
            s,
            date(2026, 2, rng.randint(2, 5)),
            ReportTime.AMC,
            2025,
            rng.choice([3, 4]),
            0.5,
            rng.choice([None, 0.4, 0.6]),
        )
        out[s] = Snapshot(
            s,
            quote=Quote(s, price, prev_close=rng.uniform(30, 70)) if price else None,
            events=(event,),
            report_prices={"2025Q4": 50.0},
        )
    return out


def random_state(rule: Any, rng: random.Random) -> RuleState | None:
    if rng.random() < 0.15:
        return None
    return RuleState(
        fingerprint=rule.fingerprint if rng.random() < 0.9 else "old",
        armed=rng.random() < 0.5,
        pending_since=rng.choice([None, NOW - timedelta(minutes=rng.randint(1, 20))]),
        last_fired=rng.choice([None, NOW - timedelta(minutes=rng.randint(1, 120))]),
        last_report=rng.choice([None, "2025Q3", "2025Q4"]),
        fired=rng.randint(0, 3),
        eps_notified=rng.choice([None, 0.4, 0.6]),
    )


def reference(
    ruleset: RuleSet,
    snaps: dict[str, Snapshot],
    states: dict[tuple[str, str], RuleState],
    now: datetime,
) -> tuple[dict[Any, RuleState], list[str], list[RuleError], dict[Any, float]]:
    """Every pair through `advance`, as the pass did before its shortcut."""
    new: dict[Any, RuleState] = {}
    alerts: list[str] = []
    errors: list[RuleError] = []
    wakes: dict[Any, float] = {}
    midnight = next_midnight(now)
    for symbol, rules in ruleset.by_symbol.items():
        snap = snaps.get(symbol)
        values = variables(snap, now) if snap else dict.fromkeys(variables(Snapshot("X"), now))
        for rule in rules:
            key = (rule.name, symbol)
            old = states.get(key)
            state, outcome, failed = advance(rule, old, values, now)
            if failed is not None:
                errors.append(RuleError(rule.name, symbol, "condition", failed, rule.line))
            if rule.notify_amended:
                state, amended = amend(rule, symbol, state, outcome == "fired", values, now)
                if amended is not None:
                    alerts.append(amended.dedup_key)
            if state != old:
                new[key] = state
            if rule.time_dependent or rule.hold is not None:
                wakes[key] = next_wake(rule, values, state, now.timestamp(), midnight)
            if outcome == "rearmed" and rule.notify_resolved and old is not None:
                resolved = resolved_alert(rule, symbol, old, values, now)
                if resolved is not None:
                    alerts.append(resolved.dedup_key)
            if outcome == "fired":
                alerts.append(f"{rule.name}|{symbol}|fired")
    return new, alerts, errors, wakes


def test_the_pass_gives_what_advance_gives_for_every_pair() -> None:
    ruleset = load(RULES)
    rng = random.Random(16)
    for _ in range(300):
        snaps = snapshots(rng)
        states = {
            (r.name, s): state
            for s in SYMBOLS
            for r in ruleset.by_symbol[s]
            if (state := random_state(r, rng)) is not None
        }
        result = evaluate(ruleset, snaps, states, NOW)
        new, alerts, errors, wakes = reference(ruleset, snaps, states, NOW)
        assert result.states == new
        got = [
            a.dedup_key if a.kind != "fired" else f"{a.rule}|{a.symbol}|fired"
            for a in result.alerts
        ]
        assert got == alerts
        assert result.errors == errors
        assert result.wakes == wakes


def test_a_condition_that_raises_in_the_shortcut_is_still_reported() -> None:
    ruleset = load(RULES)

    class Raising:
        source, names, clock = "price > 50", frozenset({"price"}), ()

        def __call__(self, values: Any) -> Any:
            raise ZeroDivisionError

    rule = replace(ruleset.by_symbol["AAA"][0], when=Raising())
    poisoned = replace(ruleset, rules=(rule,), by_symbol={"AAA": (rule,)})
    armed = {("above", "AAA"): RuleState(fingerprint=rule.fingerprint)}
    result = evaluate(poisoned, snapshots(random.Random(1)), armed, NOW)
    assert result.errors == [RuleError("above", "AAA", "condition", "ZeroDivisionError", 2)]
    assert result.states == {} and result.alerts == []


def test_the_report_a_rule_sees_is_the_first_of_equals_as_before() -> None:
    """`select_event` in one walk keeps `max`'s and `min`'s choice among equal dates."""
    day = date(2026, 2, 2)
    first, second = (EarningsEvent("AAA", day, ReportTime.AMC, 2025, q, 0.5, 0.6) for q in (3, 4))
    assert select_event((first, second), NOW) is first
    pending = tuple(EarningsEvent("AAA", day, ReportTime.BMO, 2025, q, 0.5) for q in (3, 4))
    assert select_event(pending, NOW) is pending[0]
    assert select_event((*pending, first), NOW) is first  # a reported one first
    stale = EarningsEvent("AAA", date(2025, 12, 1), ReportTime.AMC, 2025, 2, 0.5, 0.6)
    assert select_event((stale, *pending), NOW) is pending[0]  # past 30 days: the next
    assert select_event((stale,), NOW) is None


def test_a_rule_sets_own_rules_give_the_pass_of_plain_ones() -> None:
    """`by_symbol` holds `SymbolRules`, whose pair keys the pass takes as they are; the
    same work as plain lists (built keys) gives the same states, alerts, errors and wakes,
    and the keys are each pair's (rule name, symbol)."""
    ruleset = load(RULES)
    for symbol, rules in ruleset.by_symbol.items():
        assert isinstance(rules, SymbolRules) and rules.symbol == symbol
        assert rules.keys == tuple((r.name, symbol) for r in rules)
        assert rules.whens == tuple(r.when.fn for r in rules)
        assert rules.keys is rules.keys  # built once: the states' and wakes' key objects
        assert rules == tuple(rules)  # still the tuple it was
        assert copy.deepcopy(rules).keys == rules.keys
        assert pickle.loads(pickle.dumps(rules.keys)) == rules.keys
    rng = random.Random(61)
    for _ in range(200):
        snaps = snapshots(rng)
        states = {
            (r.name, s): state
            for s in SYMBOLS
            for r in ruleset.by_symbol[s]
            if (state := random_state(r, rng)) is not None
        }
        own = evaluate_work(plan(ruleset, states), snaps, states, NOW)
        plain_work = [(s, list(rules)) for s, rules in plan(ruleset, states)]
        plain = evaluate_work(plain_work, snaps, states, NOW)
        # A SymbolRules given under another symbol's name is not taken at its word.
        swapped = [("AAA", ruleset.by_symbol["BBB"])]
        assert (
            evaluate_work(swapped, snaps, states, NOW).states
            == evaluate_work([("AAA", list(ruleset.by_symbol["BBB"]))], snaps, states, NOW).states
        )
        assert own.states == plain.states and own.errors == plain.errors
        assert [a.dedup_key for a in own.alerts] == [a.dedup_key for a in plain.alerts]
        assert own.wakes == plain.wakes and own.evaluated == plain.evaluated


def test_the_pipelines_slices_keep_a_rule_sets_own_rules() -> None:
    ruleset = load(RULES)
    work = plan(ruleset, {})
    parts = list(_slices(work, 10))
    assert [w for part in parts for w in part] == work
    assert all(rules.__class__ is SymbolRules for part in parts for _s, rules in part)
    assert all(isinstance(rules, tuple) for _s, rules in next(_slices([("AAA", [])], 1)))


def test_the_states_of_pairs_that_have_not_fired_share_one_instance_per_fingerprint() -> None:
    """A first pass over rules nothing fires leaves one fresh state object per rule
    definition, not one per (rule, symbol): equal to a fresh RuleState, and frozen."""
    ruleset = load(RULES)
    snaps = {s: Snapshot(s) for s in SYMBOLS}  # nothing known: no rule fires or waits
    result = evaluate(ruleset, snaps, {}, NOW)
    assert result.alerts == []
    by_fingerprint: dict[str, set[int]] = {}
    for (name, _symbol), state in result.states.items():
        rule = next(r for r in ruleset.rules if r.name == name)
        assert state == RuleState(fingerprint=rule.fingerprint)
        by_fingerprint.setdefault(state.fingerprint, set()).add(id(state))
    assert len(result.states) == len(ruleset.rules) * len(SYMBOLS)
    assert all(len(ids) == 1 for ids in by_fingerprint.values())
    # a state that changes is a new object: the shared one is never altered
    quote = Quote("AAA", 60.0, prev_close=50.0)
    fired = evaluate(ruleset, {"AAA": Snapshot("AAA", quote=quote)}, result.states, NOW)
    above = ruleset.by_symbol["AAA"][0]
    assert fired.states[("above", "AAA")].armed is False
    assert result.states[("above", "BBB")] == RuleState(fingerprint=above.fingerprint)


def test_states_read_back_are_keyed_by_the_rule_sets_own_key_objects() -> None:
    ruleset = load(RULES)
    states = {
        (r.name, s): RuleState(fingerprint=r.fingerprint, fired=1)
        for s in SYMBOLS
        for r in ruleset.by_symbol[s]
    }
    states[("gone", "AAA")] = RuleState(fingerprint="old")  # a rule no longer in the file
    copied = {(str(name), str(symbol)): state for (name, symbol), state in states.items()}
    keyed = with_rule_keys(ruleset, copied)
    assert keyed == states and list(keyed) == list(states)
    own = {key: key for s in SYMBOLS for key in ruleset.by_symbol[s].keys}
    for key in keyed:
        assert key is own[key] if key in own else key == ("gone", "AAA")
    assert evaluate(ruleset, snapshots(random.Random(3)), keyed, NOW) == evaluate(
        ruleset, snapshots(random.Random(3)), copied, NOW
    )
