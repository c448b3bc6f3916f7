"""Digest rules (`digest: "0 8 * * mon"`, service/digest.py): validated at load, one message
per firing through the real pipeline, SQLite store, delivery worker and a real HTTP
receiver on a FakeClock; none for a week with no reports; none twice after a restart."""

from __future__ import annotations

import json
import random
from datetime import UTC, date, datetime, timedelta

import pytest

from service.clock import FakeClock
from service.delivery import DeliveryWorker
from service.digest import MAX_LATE, due_firing, report_line
from service.errors import RuleFileError
from service.h11client import H11Client
from service.health import HealthState
from service.httpclient import TargetGuard
from service.market import NEW_YORK, EarningsEvent, ReportTime
from service.marketdata import MarketData
from service.metrics import Metrics
from service.notify import CHANNEL_CONFIGS
from service.notify.webhook import WebhookNotifier
from service.pipeline import Pipeline
from service.rules import RuleSet, load_rules
from service.rules.schema import rule_file_schema
from service.stages import Decision
from service.store import Store, open_store
from tests.servers import Receiver
from tests.test_stages import Fixed

RULES = """
channels:
  hook: {{type: webhook, url: "{url}"}}
rules:
  - name: week-ahead
    symbols: [LUMN, PLTR, EQIX]
    digest: "0 8 * * mon"
    notify: [hook]
"""

#: Monday 2026-02-02, 08:00 New York (EST) is 13:00 UTC.
MONDAY_8 = datetime(2026, 2, 2, 8, 0, tzinfo=NEW_YORK)


def load(text: str) -> RuleSet:
    return load_rules(text, source="rules.yaml", env={}, channel_configs=CHANNEL_CONFIGS)


def _problems(text: str) -> list[str]:
    with pytest.raises(RuleFileError) as info:
        load(text)
    return [f"{p.line}: {p.message}" for p in info.value.problems]


# --- the rule file ------------------------------------------------------------------------


def test_a_digest_rule_loads_apart_from_the_condition_rules_with_its_defaults() -> None:
    ruleset = load(RULES.format(url="https://hooks.example/x"))
    assert ruleset.rules == () and ruleset.by_symbol == {}  # the engine never sees it
    (digest,) = ruleset.digests
    assert digest.window == timedelta(days=7) and digest.tz.key == "America/New_York"
    assert ruleset.symbols == {"LUMN", "PLTR", "EQIX"}  # their calendar is polled
    assert ruleset.summary().startswith("1 rule")
    berlin = load(
        RULES.format(url="https://hooks.example/x") + "    tz: Europe/Berlin\n    window: 2d\n"
    ).digests[0]
    assert berlin.tz.key == "Europe/Berlin" and berlin.window == timedelta(days=2)


def test_a_digest_with_when_a_bad_cron_or_a_bad_zone_is_an_error_at_its_line() -> None:
    base = RULES.format(url="https://hooks.example/x")
    both = _problems(base + "    when: price > 1\n")
    assert len(both) == 1 and both[0].startswith("7: a digest rule has no `when:`")
    cron = _problems(base.replace("0 8 * * mon", "0 8 * *"))
    assert len(cron) == 1 and cron[0].startswith("7: invalid cron expression '0 8 * *'")
    weekday = _problems(base.replace("0 8 * * mon", "0 8 * * 1"))
    assert len(weekday) == 1 and weekday[0].startswith("7: write the weekday of '0 8 * * 1' by")
    zone = _problems(base + "    tz: Mars/Olympus\n")
    assert zone == ["9: unknown time zone 'Mars/Olympus' (e.g. Europe/Berlin)"]
    neither = _problems(base.replace('    digest: "0 8 * * mon"\n', ""))
    assert neither == ["5: a rule needs `when:` (a condition) or `digest:` (a cron expression)"]
    window = _problems(
        base.replace('    digest: "0 8 * * mon"\n', "    when: price > 1\n    window: 7d\n")
    )
    assert window == ["8: `window:` belongs to a digest rule (`digest:`)"]


def test_the_schema_knows_the_digest_keys() -> None:
    rule = rule_file_schema(CHANNEL_CONFIGS)["$defs"]["RuleModel"]
    assert {"digest", "window", "tz", "when"} <= set(rule["properties"])
    assert "when" not in rule.get("required", [])


def test_due_firing_sends_only_the_latest_missed_firing_and_only_if_recent() -> None:
    (rule,) = load(RULES.format(url="https://hooks.example/x")).digests
    now = MONDAY_8.astimezone(UTC)
    assert due_firing(rule, now - timedelta(minutes=1), now - timedelta(seconds=1)) is None
    assert due_firing(rule, now - timedelta(minutes=1), now) == now
    assert due_firing(rule, now, now + timedelta(minutes=1)) is None  # checked already
    assert due_firing(rule, None, now + MAX_LATE) == now  # a start 1 h late: still sent
    assert due_firing(rule, None, now + MAX_LATE + timedelta(seconds=1)) is None  # too old
    three_weeks = now + timedelta(weeks=3, minutes=5)
    assert due_firing(rule, now, three_weeks) == now + timedelta(weeks=3)  # latest only


# --- one message per firing, through the real parts --------------------------------------


def _data() -> MarketData:
    data = MarketData()
    lumn = EarningsEvent(
        "LUMN",
        date(2026, 2, 3),
        ReportTime.AMC,
        2025,
        4,
        eps_estimate=-0.21,
        revenue_estimate=3_080_000_000,
    )
    pltr = EarningsEvent("PLTR", date(2026, 2, 2), ReportTime.AMC, 2025, 4, eps_estimate=0.23)
    later = EarningsEvent("EQIX", date(2026, 2, 25), ReportTime.AMC, 2025, 4)  # in 3 weeks
    data.apply_events(
        [lumn, pltr, later], ["LUMN", "PLTR", "EQIX"], date(2026, 2, 1), date(2026, 3, 1)
    )
    return data


def _pipeline(store: Store, ruleset: RuleSet, data: MarketData) -> Pipeline:
    return Pipeline(
        provider=None,  # type: ignore[arg-type]  # digests call no provider
        store=store,
        data=data,
        states={},
        rules=lambda: ruleset,
        metrics=Metrics(),
        health=HealthState(stale_after=timedelta(hours=1)),
    )


def _worker(store: Store, ruleset: RuleSet, clock: FakeClock) -> DeliveryWorker:
    client = H11Client(timeout=2.0, guard=TargetGuard(allow_private=True))
    channels = {name: c.config for name, c in ruleset.channels.items()}
    return DeliveryWorker(
        store,
        {"webhook": WebhookNotifier(client)},
        lambda: channels,  # type: ignore[arg-type,return-value]
        clock=clock,
        rng=random.Random(1),
    )


async def _run(pipeline: Pipeline, worker: DeliveryWorker, clock: FakeClock, minutes: int) -> None:
    """A market cycle's digest step every 30 s for `minutes`, delivering as it goes."""
    for _ in range(minutes * 2):
        await pipeline.send_digests(clock.now())
        while await worker.run_once():
            pass
        clock.advance(timedelta(seconds=30))


@pytest.mark.anyio
async def test_one_digest_on_monday_8_none_for_an_empty_week_none_twice_after_a_restart(
    sqlite_url: str,
) -> None:
    clock = FakeClock(MONDAY_8 - timedelta(minutes=5))
    with Receiver() as receiver:
        ruleset = load(RULES.format(url=receiver.url_for("/hook")))
        store = open_store(sqlite_url)
        data = _data()
        pipeline = _pipeline(store, ruleset, data)
        worker = _worker(store, ruleset, clock)
        await _run(pipeline, worker, clock, 15)  # 07:55 -> 08:10 New York
        bodies = [json.loads(r.body) for r in receiver.requests]
        assert len(bodies) == 1
        (body,) = bodies
        assert body["rule"] == "week-ahead" and body["fired_at"] == MONDAY_8.isoformat()
        assert body["values"] == {"reports": 2, "symbols": "PLTR,LUMN"}
        lines = body["message"].splitlines()
        assert lines == [
            "week-ahead: 2 reports in the 7 days from 2026-02-02 08:00 EST",
            "PLTR 2026-02-02 (Mon), amc, 2025Q4, EPS est 0.23, revenue est n/a",
            "LUMN 2026-02-03 (Tue), amc, 2025Q4, EPS est -0.21, revenue est $3.08B",
        ]  # EQIX reports on the 25th, past the window
        store.close()

        # A restart 10 minutes after the firing: the new process looks back MAX_LATE,
        # finds 08:00 again, and the store drops it as already recorded.
        store = open_store(sqlite_url)
        pipeline = _pipeline(store, ruleset, _data())
        worker = _worker(store, ruleset, clock)
        assert await pipeline.send_digests(clock.now()) == []
        while await worker.run_once():
            pass
        assert len(receiver.requests) == 1

        # The next Monday: no report in the week of the 9th (EQIX is on the 25th):
        # nothing to list, nothing sent.
        clock.advance(MONDAY_8 + timedelta(weeks=1) - timedelta(minutes=2) - clock.now())
        await _run(pipeline, worker, clock, 5)
        assert len(receiver.requests) == 1
        (entry,) = store.history(limit=5)
        store.close()
    assert entry.rule == "week-ahead"


class _NoCalendar:
    """A provider with an empty calendar: the market cycle's report-window polls."""

    name = "stub"

    async def earnings(self, start: date, end: date, symbols: list[str]) -> list[EarningsEvent]:
        return []


@pytest.mark.anyio
async def test_the_market_cycle_sends_the_digest_through_the_stages(store: Store) -> None:
    until = MONDAY_8.astimezone(UTC) + timedelta(hours=2)
    stage = Fixed("quiet hours", Decision.defer(until, "quiet hours of hook until 10:00"))
    ruleset = load(RULES.format(url="https://hooks.example/x"))
    pipeline = Pipeline(
        provider=_NoCalendar(),  # type: ignore[arg-type]
        store=store,
        data=_data(),
        states={},
        rules=lambda: ruleset,
        metrics=Metrics(),
        health=HealthState(stale_after=timedelta(hours=1)),
        stages=[stage],
    )
    await pipeline.market_cycle(MONDAY_8.astimezone(UTC) - timedelta(seconds=5))
    assert store.history(limit=5) == []
    await pipeline.market_cycle(MONDAY_8.astimezone(UTC) + timedelta(seconds=5))
    (entry,) = store.history(limit=5)
    (delivery,) = entry.deliveries
    assert (delivery.status, delivery.next_attempt_at) == ("deferred", until)
    assert entry.rule == "week-ahead" and entry.symbol == "PLTR,LUMN"


def test_a_moved_date_is_noted_when_the_date_lifecycle_says_so() -> None:
    event = _data().events["LUMN"][0]
    moved = {
        "earnings_date": date(2026, 2, 3),
        "earnings_date_changed": True,
        "earnings_date_previous": date(2026, 2, 5),
    }
    assert report_line(event, moved).endswith(", moved from 2026-02-05")
    assert "moved" not in report_line(event, {**moved, "earnings_date_changed": False})
    assert "moved" not in report_line(event, {})  # no lifecycle variables: nothing to say
