"""The engine's resolved alerts (`notify_resolved: true`): one per firing, when the rule
re-arms by its condition, with a dedup key derived from the firing's, so a restart from
the store's states sends none twice."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from service.engine import RESOLVED_SUFFIX, RuleState, evaluate
from service.notify.render import render
from service.store import Store, open_store
from tests.test_engine import MISS, T0, Run, price_rule, quote, report, rules, walk, with_event

RESOLVED = "    notify_resolved: true\n"
HYSTERESIS = "    clear_when: price < 7.40\n"


def kinds(run: Run) -> list[str]:
    return [a.kind for a in run.alerts]


def test_clear_when_turning_true_sends_one_resolved_alert_for_the_firing() -> None:
    run = Run(price_rule(HYSTERESIS + RESOLVED))
    # fires at 7.6; 7.5 and 7.45 are not below 7.40 yet; 7.38 re-arms
    assert walk(run, [7.0, 7.6, 7.5, 7.45, 7.38, 7.3]) == [0, 1, 0, 0, 1, 0]
    fired, resolved = run.alerts
    assert (fired.kind, resolved.kind) == ("fired", "resolved")
    assert resolved.dedup_key == fired.dedup_key + RESOLVED_SUFFIX
    assert resolved.resolves_key == fired.dedup_key
    assert resolved.fired_at == T0 + timedelta(minutes=20)  # the moment it re-armed
    assert resolved.values["price"] == 7.38  # the values at that moment
    assert resolved.text == "RESOLVED: LUMN: above no longer holds (price 7.38)"
    assert resolved.channels == fired.channels
    assert resolved.report_key is None


def test_when_turning_false_resolves_without_clear_when() -> None:
    run = Run(price_rule(RESOLVED))
    assert walk(run, [7.6, 7.7, 7.5, 7.4]) == [1, 0, 1, 0]
    assert kinds(run) == ["fired", "resolved"]
    assert run.alerts[1].text == "RESOLVED: LUMN: above no longer holds (price 7.5)"


def test_unknown_data_never_resolves() -> None:
    run = Run(price_rule(RESOLVED))
    assert walk(run, [7.6, None, None, 7.7]) == [1, 0, 0, 0]


def test_a_re_arm_that_follows_no_firing_sends_nothing() -> None:
    run = Run(price_rule(RESOLVED))
    assert walk(run, [7.0, 7.1, 7.0]) == [0, 0, 0]  # first evaluation: armed, nothing owed
    # a state disarmed without ever firing (written by an older version, say)
    [rule] = run.ruleset.rules
    run.states[("above", "LUMN")] = RuleState(fingerprint=rule.fingerprint, armed=False)
    assert run.feed(quote(7.0), T0 + timedelta(hours=1)) == 0
    assert run.states[("above", "LUMN")].armed


def test_nothing_is_sent_when_notify_resolved_is_false_or_absent() -> None:
    for extra in ("", "    notify_resolved: false\n"):
        run = Run(price_rule(HYSTERESIS + extra))
        assert walk(run, [7.6, 7.3, 7.6, 7.3]) == [1, 0, 1, 0]
        assert kinds(run) == ["fired", "fired"]


def test_one_resolved_per_firing_across_several_cycles() -> None:
    run = Run(price_rule(HYSTERESIS + RESOLVED))
    walk(run, [7.6, 7.3, 7.2, 7.7, 7.8, 7.35, 7.3, 7.9, 7.3])
    assert kinds(run) == ["fired", "resolved", "fired", "resolved", "fired", "resolved"]
    fired = [a for a in run.alerts if a.kind == "fired"]
    resolved = [a for a in run.alerts if a.kind == "resolved"]
    assert [r.resolves_key for r in resolved] == [f.dedup_key for f in fired]
    assert len({a.dedup_key for a in run.alerts}) == 6


def test_a_re_arm_after_an_edge_the_cooldown_consumed_derives_the_same_key() -> None:
    """The consumed edge records no firing, so its re-arm resolves the same one: the store
    keeps one alert per key, and the second resolved is dropped there."""
    run = Run(price_rule(RESOLVED + "    cooldown: 4h\n"))
    assert walk(run, [7.6, 7.5, 7.6, 7.5]) == [1, 1, 0, 1]
    fired, first, again = run.alerts
    assert first.dedup_key == again.dedup_key == fired.dedup_key + RESOLVED_SUFFIX


def test_turning_notify_resolved_on_keeps_the_state_and_resolves_a_standing_alert() -> None:
    before = price_rule(HYSTERESIS)
    after = price_rule(HYSTERESIS + RESOLVED)
    assert before.rules[0].fingerprint == after.rules[0].fingerprint
    run = Run(before)
    walk(run, [7.6])
    run.ruleset = after
    assert run.feed(quote(7.3), T0 + timedelta(minutes=5)) == 1
    assert run.alerts[-1].resolves_key == run.alerts[0].dedup_key


def test_an_earnings_rule_resolves_its_report_once() -> None:
    run = Run(rules(MISS + RESOLVED))
    now = datetime(2026, 2, 3, 22, 0, tzinfo=UTC)
    minute = timedelta(minutes=1)
    missed, corrected = report(eps=-0.30), report(eps=0.23)
    assert run.feed(with_event(missed), now) == 1
    assert run.feed(with_event(corrected), now + minute) == 1  # no longer a miss
    assert run.feed(with_event(missed), now + 2 * minute) == 0  # once per report
    assert run.feed(with_event(corrected), now + 3 * minute) == 1  # the same key again
    fired, resolved, again = run.alerts
    assert fired.dedup_key == "miss|LUMN|report:2025Q4"
    assert resolved.dedup_key == again.dedup_key == "miss|LUMN|report:2025Q4|resolved"
    assert resolved.report_key == "2025Q4"
    assert resolved.text == (
        "RESOLVED: LUMN: miss no longer holds (eps_actual 0.23, eps_estimate -0.21, reported true)"
    )


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, sqlite_url: str) -> Iterator[Store]:
    url = sqlite_url if request.param == "sqlite" else str(request.getfixturevalue("pg_url"))
    opened = open_store(url)
    yield opened
    opened.close()


def test_a_restart_from_the_stored_states_sends_no_resolved_twice(store: Store) -> None:
    """The states are stored with the alerts of their pass; a process that goes on from
    them (a restart, a new leader) resolves the right key, and only once."""
    ruleset = price_rule(HYSTERESIS + RESOLVED)
    minute = timedelta(minutes=1)

    def process(prices: list[float], start: int) -> list[str]:
        """A process started from the store's states that runs a few passes."""
        states = store.load_states()
        kinds: list[str] = []
        for i, price in enumerate(prices):
            now = T0 + (start + i) * minute + timedelta(microseconds=123457)  # stored exactly
            result = evaluate(ruleset, quote(price), states, now)
            states.update(result.states)
            kinds += [a.kind for a in result.alerts]
            routes = [("hook", "webhook")]
            store.record([(a, render, routes) for a in result.alerts], result.states, now)
        return kinds

    assert process([7.6, 7.5], 0) == ["fired"]  # fired, not cleared yet
    assert process([7.3], 2) == ["resolved"]  # cleared after a restart
    assert process([7.3, 7.2], 3) == []  # and a restart after that sends none again
    resolved, fired = store.history()
    assert (resolved.message.kind, fired.message.kind) == ("resolved", "fired")
    assert resolved.dedup_key == fired.dedup_key + RESOLVED_SUFFIX
    assert resolved.message.resolves == fired.alert_id
