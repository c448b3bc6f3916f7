"""Time-only rules are evaluated when their result can change, not at every tick (issue
#16), and still fire on the very tick they fired on when evaluated at every tick."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

import service.pipeline as pipeline_module
from service.engine import Alert, RuleState, evaluate
from service.health import HealthState
from service.market import EarningsEvent, Quote, ReportTime, Snapshot
from service.marketdata import MarketData
from service.metrics import Metrics
from service.pipeline import TIME_EVALUATION, Pipeline
from service.rules import RuleSet
from service.rules.expr import compile_condition
from service.store import Store
from service.wakes import NEVER, WAKE_MARGIN, Wakes, next_midnight, next_wake
from tests.rules.conftest import load
from tests.test_pipeline import FakeProvider

REPORT = date(2026, 2, 10)  # amc: published at 16:00 New York, 21:00 UTC
PUBLISHED = datetime(2026, 2, 10, 21, 0, tzinfo=UTC)
T = PUBLISHED - timedelta(hours=24)  # when `hours_to_earnings <= 24` turns true


def event(day: date = REPORT) -> EarningsEvent:
    return EarningsEvent("AAA", day, ReportTime.AMC, 2025, 4, 0.5)


class Daemon:
    """A pipeline on a fake clock: `tick` is the daemon's TIME_EVALUATION pass (no new
    data), `move`/`quote` bring new data the way the polls do (the changed symbol)."""

    def __init__(self, store: Store, rules: str, monkeypatch: pytest.MonkeyPatch) -> None:
        self.ruleset = load(rules)
        self.pipeline = Pipeline(
            provider=FakeProvider(),
            store=store,
            data=MarketData(),
            states={},
            rules=lambda: self.ruleset,
            metrics=Metrics(),
            health=HealthState(stale_after=timedelta(days=9)),
        )
        self.evaluated: list[tuple[datetime, int]] = []  # (now, pairs) of every pass
        real = pipeline_module.evaluate_work

        def counting(*args: Any) -> Any:
            result = real(*args)
            self.evaluated.append((args[3], result.evaluated))
            return result

        monkeypatch.setattr(pipeline_module, "evaluate_work", counting)

    async def start(self, now: datetime, day: date = REPORT, price: float = 10.0) -> None:
        self.pipeline.data.apply_events([event(day)], ["AAA"], day - timedelta(30), day)
        self.pipeline.data.apply_quotes({"AAA": Quote("AAA", price)}, now)
        await self.pipeline.evaluate(now, None)  # the calendar cycle's full pass

    async def tick(self, now: datetime) -> None:
        await self.pipeline.evaluate(now, set())

    async def ticks(self, start: datetime, end: datetime) -> None:
        now = start
        while now <= end:
            await self.tick(now)
            now += TIME_EVALUATION

    async def move(self, now: datetime, day: date) -> None:
        lo, hi = min(day, REPORT) - timedelta(30), max(day, REPORT) + timedelta(30)
        changed = self.pipeline.data.apply_events([event(day)], ["AAA"], lo, hi)
        assert changed == {"AAA"}
        await self.pipeline.evaluate(now, changed)

    async def quote(self, now: datetime, price: float) -> None:
        changed = self.pipeline.data.apply_quotes({"AAA": Quote("AAA", price, time=now)}, now)
        await self.pipeline.evaluate(now, changed)

    def fired(self, rule: str = "remind") -> datetime | None:
        state = self.pipeline.states.get((rule, "AAA"))
        return state.last_fired if state else None

    def evaluations(self, start: datetime, end: datetime) -> int:
        return sum(n for at, n in self.evaluated if start <= at <= end)


REMINDER = "rules:\n  - name: remind\n    symbols: [AAA]\n    when: hours_to_earnings <= 24\n"


@pytest.mark.anyio
@pytest.mark.parametrize("offset", [0, 3, 7])
async def test_a_reminder_fires_on_the_tick_at_or_after_24_hours_before_the_report(
    store: Store, monkeypatch: pytest.MonkeyPatch, offset: int
) -> None:
    daemon = Daemon(store, REMINDER, monkeypatch)
    start = T - timedelta(hours=2) + timedelta(seconds=offset)
    await daemon.start(start)
    await daemon.ticks(start + TIME_EVALUATION, T - TIME_EVALUATION + timedelta(seconds=offset))
    assert daemon.fired() is None  # not earlier
    # Two hours of 10 s ticks before the crossing evaluated the rule at most at the tick
    # within WAKE_MARGIN of it: no longer at every tick.
    assert daemon.evaluations(start + TIME_EVALUATION, T - timedelta(seconds=WAKE_MARGIN)) == 0
    first_after = T + timedelta(seconds=offset)  # the first tick at or after T
    await daemon.tick(first_after)
    assert daemon.fired() == first_after  # not a tick later


@pytest.mark.anyio
async def test_a_report_moved_later_after_the_wake_was_computed_fires_at_the_new_time(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    daemon = Daemon(store, REMINDER, monkeypatch)
    start = T - timedelta(hours=3)
    await daemon.start(start)  # the wake is T
    await daemon.move(T - timedelta(hours=1), REPORT + timedelta(days=1))
    await daemon.ticks(T - timedelta(hours=1) + TIME_EVALUATION, T + timedelta(hours=1))
    assert daemon.fired() is None  # the old crossing does not fire
    new = T + timedelta(days=1)
    await daemon.ticks(new - timedelta(hours=1), new - TIME_EVALUATION)
    assert daemon.fired() is None
    await daemon.tick(new)
    assert daemon.fired() == new


@pytest.mark.anyio
async def test_a_report_moved_earlier_after_the_wake_was_computed_fires_at_the_new_time(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    daemon = Daemon(store, REMINDER, monkeypatch)
    start = T - timedelta(days=2, hours=1)
    await daemon.start(start, day=REPORT + timedelta(days=2))  # the wake is 2 days away
    await daemon.move(T - timedelta(hours=1), REPORT)
    assert daemon.fired() is None
    await daemon.ticks(T - timedelta(hours=1) + timedelta(seconds=5), T - timedelta(seconds=5))
    assert daemon.fired() is None
    await daemon.tick(T + timedelta(seconds=5))
    assert daemon.fired() == T + timedelta(seconds=5)


@pytest.mark.anyio
async def test_a_report_moved_inside_the_24_hours_fires_with_the_move(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    daemon = Daemon(store, REMINDER, monkeypatch)
    await daemon.start(T - timedelta(hours=1), day=REPORT + timedelta(days=5))
    moved = T + timedelta(minutes=30)
    await daemon.move(moved, REPORT)
    assert daemon.fired() == moved


MIXED = (
    "rules:\n  - name: remind\n    symbols: [AAA]\n"
    "    when: hours_to_earnings <= 24 and price > 5\n"
)


@pytest.mark.anyio
async def test_a_rule_of_time_and_price_fires_when_the_time_crosses(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    daemon = Daemon(store, MIXED, monkeypatch)
    await daemon.start(T - timedelta(hours=1), price=10.0)
    await daemon.ticks(T - timedelta(hours=1) + TIME_EVALUATION, T - TIME_EVALUATION)
    assert daemon.fired() is None
    await daemon.tick(T)
    assert daemon.fired() == T


@pytest.mark.anyio
async def test_a_rule_of_time_and_price_fires_when_the_price_changes(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    daemon = Daemon(store, MIXED, monkeypatch)
    await daemon.start(T - timedelta(hours=1), price=3.0)
    await daemon.ticks(T - timedelta(hours=1) + TIME_EVALUATION, T + timedelta(minutes=30))
    assert daemon.fired() is None  # the time crossed, the price is not there
    # No tick is due for it any more (its next moment is the next midnight; the tick
    # after the crossing is within WAKE_MARGIN of it)...
    late = T + timedelta(minutes=30)
    assert daemon.evaluations(T + 2 * TIME_EVALUATION, late) == 0
    quoted = late + timedelta(seconds=4)
    await daemon.quote(quoted, 6.0)  # ...and the new price fires it at once
    assert daemon.fired() == quoted


@pytest.mark.anyio
async def test_a_running_for_fires_when_it_ends(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    rules = "rules:\n  - name: remind\n    symbols: [AAA]\n    when: price > 5\n    for: 5m\n"
    daemon = Daemon(store, rules, monkeypatch)
    start = datetime(2026, 2, 4, 15, 0, 3, tzinfo=UTC)
    await daemon.start(start)  # pending from `start`: it ends at start + 5 min
    await daemon.ticks(start + TIME_EVALUATION, start + timedelta(minutes=5) - TIME_EVALUATION)
    assert daemon.fired() is None
    assert daemon.evaluations(start + TIME_EVALUATION, start + timedelta(minutes=4)) == 0
    await daemon.tick(start + timedelta(minutes=5))
    assert daemon.fired() == start + timedelta(minutes=5)


@pytest.mark.anyio
async def test_a_reload_starts_over_with_every_pair_due(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    daemon = Daemon(store, REMINDER, monkeypatch)
    await daemon.start(T - timedelta(hours=2))
    await daemon.tick(T - timedelta(hours=2) + TIME_EVALUATION)
    daemon.ruleset = load(REMINDER.replace("<= 24", "<= 26"))  # now already true
    reloaded = T - timedelta(hours=2) + 2 * TIME_EVALUATION
    await daemon.tick(reloaded)
    assert daemon.fired() == reloaded


# --- the same alerts as at every tick --------------------------------------------------
SHAPES = [
    "hours_to_earnings <= {h}",
    "hours_to_earnings < {h} and price > {p}",
    "0 < hours_to_earnings <= {h}",
    "hours_to_earnings > {h}",
    "not reported and hours_to_earnings >= {h}",
    "days_to_earnings <= 1",
    "days_to_earnings == 0 or hours_to_earnings <= {h}",
    "hours_to_earnings / 2 <= {h}",  # arithmetic on the hours: every tick
    'session == "regular" and hours_to_earnings <= {h}',
    "price > {p}",
]


def random_rules(rng: random.Random, count: int) -> str:
    lines = ["rules:"]
    for i in range(count):
        when = rng.choice(SHAPES).format(h=rng.choice([1, 2.5, 24, 30, 47.9]), p=rng.randint(5, 15))
        lines += [f"  - name: r{i}", "    symbols: [AAA, BBB, CCC]", f"    when: {when}"]
        if rng.random() < 0.3:
            lines.append(f"    for: {rng.choice(['90s', '10m', '2h'])}")
        if rng.random() < 0.3:
            lines.append(f"    clear_when: hours_to_earnings > {rng.choice([3, 30])}")
        if rng.random() < 0.2:
            lines.append("    cooldown: 1h")
    return "\n".join(lines) + "\n"


def simulate(ruleset: RuleSet, wakes: Wakes | None, rng: random.Random) -> Iterator[Alert]:
    """Three days of 30 s ticks around three reports, with prices and a report date moving
    at random moments (the changed symbol evaluated), every alert in order."""
    days = {"AAA": date(2026, 2, 6), "BBB": date(2026, 2, 7), "CCC": date(2026, 2, 5)}
    prices = dict.fromkeys(days, 10.0)
    states: dict[tuple[str, str], RuleState] = {}

    def snaps() -> dict[str, Snapshot]:
        return {
            s: Snapshot(s, Quote(s, prices[s]), (EarningsEvent(s, d, ReportTime.BMO),))
            for s, d in days.items()
        }

    def step(now: datetime, changed: set[str] | None) -> Iterator[Alert]:
        result = evaluate(ruleset, snaps(), states, now, changed=changed, wakes=wakes)
        states.update(result.states)
        if wakes is not None:
            wakes.update(ruleset, result.wakes)
        yield from result.alerts

    now = datetime(2026, 2, 3, 4, 0, 7, tzinfo=UTC)
    yield from step(now, None)
    for _ in range(3 * 2880):
        now += timedelta(seconds=30)
        changed: set[str] = set()
        if rng.random() < 0.005:
            symbol = rng.choice(list(days))
            prices[symbol] = rng.choice([3.0, 8.0, 12.0, 20.0])
            changed.add(symbol)
        if rng.random() < 0.0005:
            symbol = rng.choice(list(days))
            days[symbol] += timedelta(days=rng.choice([-1, 1]))
            changed.add(symbol)
        yield from step(now, changed)


def test_wakes_fire_the_same_alerts_at_the_same_ticks_as_every_tick() -> None:
    ruleset = load(random_rules(random.Random(16), 24))
    every_tick = [
        (a.rule, a.symbol, a.fired_at, a.kind) for a in simulate(ruleset, None, random.Random(3))
    ]
    woken = [
        (a.rule, a.symbol, a.fired_at, a.kind) for a in simulate(ruleset, Wakes(), random.Random(3))
    ]
    assert len(every_tick) > 100  # the simulation crosses many thresholds
    assert woken == every_tick


# --- next_wake ---------------------------------------------------------------------------
def rule(when: str, extra: str = "") -> Any:
    return load(f"rules:\n  - name: r\n    symbols: [AAA]\n    when: {when}\n{extra}").rules[0]


NOW = datetime(2026, 2, 9, 12, 0, tzinfo=UTC)
MIDNIGHT = next_midnight(NOW)


def wake(when: str, hours: float | None, extra: str = "", state: RuleState | None = None) -> float:
    values = {"hours_to_earnings": hours}
    return next_wake(rule(when, extra), values, state or RuleState(), NOW.timestamp(), MIDNIGHT)


def test_the_wake_of_a_threshold_is_its_crossing_a_little_early() -> None:
    crossing = NOW.timestamp() + 6 * 3600  # 30 h now, 24 h in six hours
    assert wake("hours_to_earnings <= 24", 30.0) == min(crossing - WAKE_MARGIN, MIDNIGHT)
    assert wake("hours_to_earnings <= 29", 30.0) == NOW.timestamp() + 3600 - WAKE_MARGIN
    # past its only threshold: nothing but the next day can change it
    assert wake("hours_to_earnings <= 24", 10.0) == MIDNIGHT
    # a chain: the next threshold still ahead (0 h); the day ends first (in 17 h)
    assert wake("0 < hours_to_earnings <= 24", 10.0) == NOW.timestamp() + 36000 - WAKE_MARGIN
    assert wake("0 < hours_to_earnings <= 24", 20.0) == MIDNIGHT
    # no report: new data (or the day) changes it
    assert wake("hours_to_earnings <= 24", None) == MIDNIGHT


def test_the_clock_read_any_other_way_wakes_at_every_pass() -> None:
    for when in (
        "hours_to_earnings / 2 <= 12",
        "hours_to_earnings < price",
        'session == "regular"',
        "abs(hours_to_earnings) < 3",
    ):
        assert wake(when, 30.0) <= NOW.timestamp(), when
        assert compile_condition(when).clock is None


def test_a_rule_without_the_clock_has_no_wake_unless_a_for_runs() -> None:
    assert wake("price > 5", None) == NEVER
    pending = RuleState(pending_since=NOW - timedelta(minutes=2))
    assert wake("price > 5", None, "    for: 5m\n", pending) == (
        NOW.timestamp() + 180 - WAKE_MARGIN
    )
    assert wake("price > 5", None, "    for: 5m\n") == NEVER  # not pending


def test_a_failed_pass_does_not_lose_the_pairs_it_was_due_to_evaluate() -> None:
    ruleset = load(REMINDER)
    wakes = Wakes()
    wakes.update(ruleset, {("remind", "AAA"): NOW.timestamp()})
    assert wakes.due(ruleset, NOW) == {("remind", "AAA")}
    assert wakes.due(ruleset, NOW + TIME_EVALUATION) == {("remind", "AAA")}  # never updated
    wakes.update(ruleset, {("remind", "AAA"): NOW.timestamp() + 3600})
    assert wakes.due(ruleset, NOW + TIME_EVALUATION) == set()
    assert wakes.due(load(REMINDER), NOW) is None  # another rule set: all due
