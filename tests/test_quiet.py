"""Quiet hours (service/quiet.py): the window arithmetic (midnight, days, DST, the default
zone), the rule file's `quiet_hours:` and `urgent:` with their mistakes at their place,
the stage, and a night of deferred alerts through the real pipeline, store, delivery
worker and HTTP receiver: they survive a store reopen and arrive in the order they fired,
each with its original `fired_at`."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from service.clock import FakeClock
from service.commands import show_history
from service.config import Settings
from service.delivery import DeliveryWorker
from service.engine import Alert, evaluate
from service.errors import RuleFileError
from service.h11client import H11Client
from service.health import HealthState
from service.httpclient import TargetGuard
from service.market import Quote, Snapshot
from service.marketdata import MarketData
from service.metrics import Metrics
from service.notify import CHANNEL_CONFIGS
from service.notify.webhook import WebhookNotifier
from service.parts import stages_for
from service.pipeline import Pipeline
from service.quiet import QuietHours, QuietHoursStage, window_end
from service.rules import RuleSet, load_rules
from service.stages import SEND, Decision, route
from service.store import Store, open_store
from tests.servers import Receiver
from tests.test_cli import earnwatch


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def quiet(**fields: Any) -> QuietHours:
    return QuietHours.model_validate({"from": "22:00", "to": "07:00", **fields})


# --- the window ----------------------------------------------------------------------------


def test_the_zone_defaults_to_new_york_and_every_day() -> None:
    hours = quiet()
    assert hours.tz == "America/New_York" and hours.zone.key == "America/New_York"
    assert hours.days == ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def test_a_window_crossing_midnight_holds_from_its_start_to_its_end_excluded() -> None:
    hours = quiet()  # New York, EST in January: 22:00-07:00 is 03:00Z-12:00Z
    end = utc(2026, 1, 15, 12, 0)
    assert window_end(hours, utc(2026, 1, 15, 2, 59)) is None  # 21:59 on the 14th
    assert window_end(hours, utc(2026, 1, 15, 3, 0)) == end  # 22:00: the start is in
    assert window_end(hours, utc(2026, 1, 15, 4, 30)) == end  # 23:30
    assert window_end(hours, utc(2026, 1, 15, 5, 30)) == end  # 00:30, the next day
    assert window_end(hours, utc(2026, 1, 15, 11, 59)) == end  # 06:59
    assert window_end(hours, end) is None  # 07:00: the end is out
    assert window_end(hours, utc(2026, 1, 15, 17, 0)) is None  # noon


def test_a_window_within_one_day_and_the_time_zone_it_is_read_in() -> None:
    hours = quiet(**{"from": "12:00", "to": "13:30", "tz": "UTC"})
    assert window_end(hours, utc(2026, 6, 1, 12, 45)) == utc(2026, 6, 1, 13, 30)
    assert window_end(hours, utc(2026, 6, 1, 13, 30)) is None
    assert window_end(hours, utc(2026, 6, 1, 11, 59)) is None
    tokyo = quiet(**{"from": "12:00", "to": "13:30", "tz": "Asia/Tokyo"})  # UTC+9
    assert window_end(tokyo, utc(2026, 6, 1, 3, 15)) == utc(2026, 6, 1, 4, 30)
    assert window_end(tokyo, utc(2026, 6, 1, 12, 45)) is None
    # `now` in any zone is the same moment
    assert window_end(hours, utc(2026, 6, 1, 12, 45).astimezone(tokyo.zone)) == utc(
        2026, 6, 1, 13, 30
    )


def test_days_are_the_days_a_window_starts_so_friday_night_holds_on_saturday_morning() -> None:
    hours = quiet(days=["fri"])  # 2026-01-16 is a Friday
    assert window_end(hours, utc(2026, 1, 17, 4, 0)) == utc(2026, 1, 17, 12, 0)  # Fri 23:00
    assert window_end(hours, utc(2026, 1, 17, 11, 0)) == utc(2026, 1, 17, 12, 0)  # Sat 06:00
    assert window_end(hours, utc(2026, 1, 18, 4, 0)) is None  # Sat 23:00: not a listed day
    assert window_end(hours, utc(2026, 1, 16, 11, 0)) is None  # Fri 06:00: Thursday's night
    office = quiet(**{"from": "09:00", "to": "17:00", "days": ["mon"]})  # 2026-01-19: Monday
    assert window_end(office, utc(2026, 1, 19, 15, 0)) == utc(2026, 1, 19, 22, 0)
    assert window_end(office, utc(2026, 1, 20, 15, 0)) is None  # Tuesday


def test_the_spring_forward_night_keeps_the_wall_clock_ends_and_is_an_hour_shorter() -> None:
    hours = quiet()  # 2026-03-08 02:00 EST -> 03:00 EDT
    end = utc(2026, 3, 8, 11, 0)  # 07:00 EDT, not 12:00Z as under EST
    assert window_end(hours, utc(2026, 3, 8, 3, 0)) == end  # 22:00 EST on the 7th
    assert window_end(hours, utc(2026, 3, 8, 6, 59)) == end  # 01:59 EST
    assert window_end(hours, utc(2026, 3, 8, 7, 0)) == end  # 03:00 EDT, just after the jump
    assert window_end(hours, utc(2026, 3, 8, 10, 59)) == end
    assert window_end(hours, end) is None
    # A time the clocks skip is read with the offset before the jump: 02:30 is 03:30 EDT.
    skipped = quiet(**{"to": "02:30"})
    assert window_end(skipped, utc(2026, 3, 8, 7, 10)) == utc(2026, 3, 8, 7, 30)
    assert window_end(skipped, utc(2026, 3, 8, 7, 30)) is None


def test_the_fall_back_night_keeps_the_wall_clock_ends_and_is_an_hour_longer() -> None:
    hours = quiet()  # 2026-11-01 02:00 EDT -> 01:00 EST
    end = utc(2026, 11, 1, 12, 0)  # 07:00 EST
    assert window_end(hours, utc(2026, 11, 1, 2, 0)) == end  # 22:00 EDT on Oct 31
    assert window_end(hours, utc(2026, 11, 1, 5, 30)) == end  # the first 01:30 (EDT)
    assert window_end(hours, utc(2026, 11, 1, 6, 30)) == end  # the second 01:30 (EST)
    assert window_end(hours, utc(2026, 11, 1, 11, 59)) == end
    assert window_end(hours, end) is None
    # A time that occurs twice is its first occurrence: the window ends at 01:30 EDT.
    twice = quiet(**{"to": "01:30"})
    assert window_end(twice, utc(2026, 11, 1, 5, 0)) == utc(2026, 11, 1, 5, 30)
    assert window_end(twice, utc(2026, 11, 1, 6, 0)) is None  # 01:00 EST, after it


def test_window_end_refuses_a_naive_now() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        window_end(quiet(), datetime(2026, 1, 15, 23, 0))


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"from": "24:00"}, 'a time of day is written "HH:MM", from 00:00 to 23:59'),
        ({"to": "7h"}, 'a time of day is written "HH:MM"'),
        ({"to": "22:00"}, "`to` must differ from `from`"),
        ({"tz": "Mars/Olympus"}, "unknown time zone 'Mars/Olympus'"),
        ({"tz": "../../etc/passwd"}, "unknown time zone"),
        ({"days": ["mon", "Fri"]}, "Input should be 'mon'"),
        ({"days": []}, "at least 1 item"),
    ],
)
def test_the_model_refuses_what_is_not_a_window(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        quiet(**fields)


def test_an_hour_of_one_digit_is_read_as_two() -> None:
    assert quiet(**{"to": "7:05"}).end == "07:05"


# --- the rule file ----------------------------------------------------------------------------


def load(text: str) -> RuleSet:
    return load_rules(text, source="rules.yaml", env={}, channel_configs=CHANNEL_CONFIGS)


def problems(text: str) -> list[str]:
    with pytest.raises(RuleFileError) as info:
        load(text)
    return info.value.lines()


FILE = """\
channels:
  me:
    type: webhook
    url: https://hooks.example.com/me
    quiet_hours:
      from: {start}
      to: {end}
      tz: {tz}
      days: {days}
rules:
  - name: above
    symbols: [LUMN]
    when: price > 7.56
    notify: [me]
  - name: far-above
    symbols: [LUMN]
    when: price > 9
    notify: [me]
    urgent: true
"""


def rule_file(
    start: str = '"22:00"', end: str = '"07:00"', tz: str = "UTC", days: str = "[mon, fri]"
) -> str:
    return FILE.format(start=start, end=end, tz=tz, days=days)


def test_every_channel_type_takes_quiet_hours_and_rules_take_urgent() -> None:
    ruleset = load(rule_file())
    config = ruleset.channels["me"].config
    assert config.quiet_hours == quiet(tz="UTC", days=["mon", "fri"])  # type: ignore[attr-defined]
    above, far = ruleset.rule("above"), ruleset.rule("far-above")
    assert above is not None and far is not None
    assert (above.urgent, far.urgent) == (False, True)
    snapshots = {"LUMN": Snapshot("LUMN", quote=Quote("LUMN", 9.5))}
    alerts = evaluate(ruleset, snapshots, {}, utc(2026, 1, 15, 23, 0)).alerts
    assert {a.rule: a.urgent for a in alerts} == {"above": False, "far-above": True}
    for kind, model in CHANNEL_CONFIGS.items():
        assert "quiet_hours" in model.model_fields, kind


def test_an_unquoted_time_is_read_as_written_not_as_yaml_1_1_sexagesimal() -> None:
    ruleset = load(rule_file(start="22:00", end="7:30"))
    hours = ruleset.channels["me"].config.quiet_hours  # type: ignore[attr-defined]
    assert (hours.start, hours.end) == ("22:00", "07:30")


def test_each_mistake_in_quiet_hours_is_named_at_its_line_and_column() -> None:
    assert problems(rule_file(start='"25:00"')) == [
        'rules.yaml:6:13: channels.me.quiet_hours.from: a time of day is written "HH:MM", '
        "from 00:00 to 23:59, not '25:00'"
    ]
    assert problems(rule_file(end='"22:00"')) == [
        "rules.yaml:7:11: channels.me.quiet_hours.to: `to` must differ from `from` "
        "(the window would be empty)"
    ]
    assert problems(rule_file(tz="America/New_Yrok")) == [
        "rules.yaml:8:11: channels.me.quiet_hours.tz: unknown time zone 'America/New_Yrok' "
        "(did you mean 'America/New_York'?): use an IANA name such as America/New_York, "
        "Europe/London or UTC"
    ]
    assert problems(rule_file(days="[mon, fry]")) == [
        "rules.yaml:9:19: channels.me.quiet_hours.days[1]: input should be 'mon', 'tue', "
        "'wed', 'thu', 'fri', 'sat' or 'sun'"
    ]
    text = rule_file().replace("      days:", "      weekdays:")
    assert problems(text) == [
        "rules.yaml:9:7: channels.me.quiet_hours.weekdays: unknown key 'weekdays'"
    ]
    (urgent,) = problems(rule_file().replace("urgent: true", "urgent: maybe"))
    assert urgent.startswith("rules.yaml:19:13: rules[1].urgent: input should be a valid boolean")


def test_earnwatch_check_names_a_bad_zone_at_its_place(tmp_path: Path) -> None:
    (tmp_path / "rules.yaml").write_text(rule_file(tz="Europe/Londn"))
    result = earnwatch("check", "rules.yaml", cwd=tmp_path)
    assert result.returncode == 1
    assert (
        "rules.yaml:8:11: channels.me.quiet_hours.tz: unknown time zone 'Europe/Londn' "
        "(did you mean 'Europe/London'?)" in result.stdout + result.stderr
    )
    (tmp_path / "rules.yaml").write_text(rule_file())
    result = earnwatch("check", "rules.yaml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


# --- the stage -----------------------------------------------------------------------------------


def _alert(urgent: bool = False) -> Alert:
    return Alert(
        rule="above",
        symbol="LUMN",
        dedup_key="above|LUMN|1",
        fired_at=utc(2026, 1, 15, 23, 0),
        text="LUMN above 7.56",
        channels=("me",),
        urgent=urgent,
    )


def test_the_stage_defers_inside_the_window_and_an_urgent_alert_passes(store: Store) -> None:
    ruleset = load(rule_file(tz="America/New_York", days="[mon, tue, wed, thu, fri]"))
    channel = ruleset.channels["me"]
    assert list(stages_for(Settings(_env_file=None), store))[-1] == QuietHoursStage()
    stages = [QuietHoursStage()]
    night = utc(2026, 1, 16, 4, 0)  # Thursday 23:00 in New York
    assert route(stages, _alert(), channel, night) == Decision.defer(
        utc(2026, 1, 16, 12, 0), "quiet hours of me until 07:00 EST"
    )
    assert route(stages, _alert(urgent=True), channel, night) is SEND
    assert route(stages, _alert(), channel, utc(2026, 1, 16, 17, 0)) is SEND  # noon
    plain = load("channels:\n  me: {type: webhook, url: https://h.example/x}\nrules: []\n")
    assert QuietHoursStage().decide(_alert(), plain.channels["me"], night) is SEND


# --- a night of alerts, through the real parts -------------------------------------------------

NIGHT_RULES = """
channels:
  hook:
    type: webhook
    url: "{url}"
    quiet_hours: {{from: "22:00", to: "07:00"}}
rules:
  - name: above
    symbols: [LUMN, PLTR, EQIX]
    when: price > 7.56
    notify: [hook]
  - name: far-above
    symbols: [LUMN]
    when: price > 100
    notify: [hook]
    urgent: true
"""


def _pipeline(store: Store, ruleset: RuleSet) -> Pipeline:
    return Pipeline(
        provider=None,  # type: ignore[arg-type]  # evaluation calls no provider
        store=store,
        data=MarketData(),
        states={},
        rules=lambda: ruleset,
        metrics=Metrics(),
        health=HealthState(stale_after=timedelta(hours=1)),
        stages=stages_for(Settings(_env_file=None), store),
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
        per_host=1,  # one send at a time to the receiver: the arrival order is the claim order
    )


@pytest.mark.anyio
async def test_a_night_of_alerts_waits_survives_a_reopen_and_arrives_in_the_order_it_fired(
    sqlite_url: str,
) -> None:
    evening = utc(2026, 1, 16, 3, 30)  # 22:30 in New York (EST)
    morning = utc(2026, 1, 16, 12, 0)  # 07:00
    clock = FakeClock(evening)
    with Receiver() as receiver:
        ruleset = load(NIGHT_RULES.format(url=receiver.url_for("/hook")))
        store = open_store(sqlite_url)
        pipeline = _pipeline(store, ruleset)
        fired: list[datetime] = []
        # EQIX, then LUMN, then PLTR: not the order of their names, nor of random ids.
        for minutes, symbol in [(0, "EQIX"), (7, "LUMN"), (31, "PLTR")]:
            now = evening + timedelta(minutes=minutes)
            pipeline.data.apply_quotes({symbol: Quote(symbol, 7.61)}, now)
            assert len(await pipeline.evaluate(now, {symbol})) == 1
            fired.append(now)
        worker = _worker(store, ruleset, clock)
        while await worker.run_once():
            pass
        assert receiver.requests == []  # all deferred
        entries = store.history(limit=10)
        assert {(d.status, d.next_attempt_at) for e in entries for d in e.deliveries} == {
            ("deferred", morning)
        }
        assert {d.hold_reason for e in entries for d in e.deliveries} == {
            "quiet hours of hook until 07:00 EST"
        }
        settings = Settings(_env_file=None, database_url=sqlite_url)
        code, text = show_history(settings, limit=5, rule=None, status="deferred", as_json=False)
        assert code == 0 and text.count("deferred") == 3
        assert "until 2026-01-16 12:00Z: quiet hours of" in text  # the cell is cut at 40
        # an urgent rule goes through the same quiet channel at once
        urgent_at = evening + timedelta(minutes=40)
        clock.set(urgent_at)
        pipeline.data.apply_quotes({"LUMN": Quote("LUMN", 120.0)}, urgent_at)
        assert len(await pipeline.evaluate(urgent_at, {"LUMN"})) == 1
        while await worker.run_once():
            pass
        assert [json.loads(r.body)["rule"] for r in receiver.requests] == ["far-above"]
        store.close()

        store = open_store(sqlite_url)  # a restart: the deferrals are in the database
        clock.set(morning - timedelta(seconds=1))
        worker = _worker(store, ruleset, clock)
        assert not await worker.run_once()
        clock.advance(timedelta(seconds=1))
        while await worker.run_once():
            pass
        bodies = [json.loads(r.body) for r in receiver.requests[1:]]
        entries = store.history(limit=10)
        store.close()
    assert [(b["symbol"], b["fired_at"]) for b in bodies] == [
        ("EQIX", fired[0].isoformat()),
        ("LUMN", fired[1].isoformat()),
        ("PLTR", fired[2].isoformat()),
    ]
    assert sorted(d.status for e in entries for d in e.deliveries) == ["delivered"] * 4
