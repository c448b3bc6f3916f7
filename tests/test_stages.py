"""The stages between the engine and the outbox (service/stages.py): their order, and
every outcome recorded through the real pipeline, store and delivery worker to a real
HTTP receiver: a muted alert is kept and never sent, a deferred one is sent once its
time comes, with its original `fired_at`, also after a restart."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from service.clock import FakeClock
from service.commands import show_history
from service.config import Settings
from service.delivery import DeliveryWorker
from service.engine import Alert
from service.h11client import H11Client
from service.health import HealthState
from service.httpclient import TargetGuard
from service.market import Quote
from service.marketdata import MarketData
from service.metrics import Metrics
from service.notify import CHANNEL_CONFIGS
from service.notify.webhook import WebhookNotifier
from service.parts import stages_for
from service.pipeline import Pipeline
from service.quiet import QuietHoursStage
from service.rules import Channel, RuleSet, load_rules
from service.silences import SilenceStage
from service.stages import SEND, Decision, Stage, route
from service.store import Store, open_store
from tests.servers import Receiver
from tests.test_metrics import key, samples

pytestmark = pytest.mark.anyio
NOW = datetime(2026, 2, 4, 15, 0, tzinfo=UTC)


def load(text: str) -> RuleSet:
    return load_rules(text, source="rules.yaml", env={}, channel_configs=CHANNEL_CONFIGS)


@dataclass
class Fixed:
    """A stage that answers the same for every alert on the channels it names."""

    name: str
    decision: Decision
    channels: frozenset[str] = frozenset({"hook"})

    def decide(self, alert: Alert, channel: Channel, now: datetime) -> Decision:
        return self.decision if channel.name in self.channels else SEND


# --- the order of the stages ---------------------------------------------------------------


def _channel(name: str = "hook") -> Channel:
    return load(RULES.format(url="https://hooks.example/x")).channels[name]


def _alert() -> Alert:
    return Alert(
        rule="above",
        symbol="LUMN",
        dedup_key="above|LUMN|1",
        report_key=None,
        fired_at=NOW,
        text="LUMN above 7.56",
        values={},
        channels=("hook",),
    )


def test_no_stage_sends_and_the_first_mute_wins_over_any_deferral_before_or_after() -> None:
    later, latest = NOW + timedelta(hours=1), NOW + timedelta(hours=9)
    defer = Fixed("quiet", Decision.defer(later, "quiet hours"))
    defer_more = Fixed("quiet2", Decision.defer(latest, "quiet hours 2"))
    mute = Fixed("silence", Decision.mute("silence s1"))
    channel, alert = _channel(), _alert()
    assert route([], alert, channel, NOW) is SEND
    assert route([defer, mute], alert, channel, NOW) == Decision.mute("silence s1")
    assert route([mute, defer], alert, channel, NOW) == Decision.mute("silence s1")
    assert route([defer_more, defer], alert, channel, NOW).until == latest
    assert route([defer, defer_more], alert, channel, NOW).until == latest


def test_a_deferral_needs_an_aware_time_and_the_stages_are_silences_then_quiet_hours(
    store: Store,
) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        Decision.defer(datetime(2026, 2, 4, 22, 0), "quiet hours")
    stages = list(stages_for(Settings(_env_file=None), store))
    assert isinstance(stages[0], SilenceStage)
    assert stages[1:] == [QuietHoursStage()]


# --- every outcome recorded, through the real parts -------------------------------------------

RULES = """
channels:
  hook: {{type: webhook, url: "{url}"}}
  other: {{type: webhook, url: "{url}"}}
rules:
  - name: above
    symbols: [LUMN]
    when: price > 7.56
    notify: [hook, other]
"""


def _pipeline(store: Store, ruleset: RuleSet, stages: list[Stage], metrics: Metrics) -> Pipeline:
    health = HealthState(stale_after=timedelta(hours=1))
    return Pipeline(
        provider=None,  # type: ignore[arg-type]  # evaluation calls no provider
        store=store,
        data=MarketData(),
        states={},
        rules=lambda: ruleset,
        metrics=metrics,
        health=health,
        stages=stages,
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


async def _fire(pipeline: Pipeline, now: datetime) -> list[str]:
    pipeline.data.apply_quotes({"LUMN": Quote("LUMN", 7.61)}, now)
    return await pipeline.evaluate(now, {"LUMN"})


async def test_a_muted_channel_is_recorded_with_its_reason_and_never_sent(
    store: Store, sqlite_url: str
) -> None:
    with Receiver() as receiver:
        ruleset = load(RULES.format(url=receiver.url_for("/hook")))
        metrics = Metrics()
        pipeline = _pipeline(
            store, ruleset, [Fixed("silence", Decision.mute("silence s1"))], metrics
        )
        assert len(await _fire(pipeline, NOW)) == 1
        worker = _worker(store, ruleset, FakeClock(NOW))
        while await worker.run_once():
            pass
        paths = [r.path for r in receiver.requests]
    assert paths == ["/hook"]  # `other` only: `hook` was muted
    (entry,) = store.history(limit=5)
    by_channel = {d.channel: d for d in entry.deliveries}
    assert (by_channel["hook"].status, by_channel["hook"].hold_reason) == ("muted", "silence s1")
    assert by_channel["hook"].attempts == 0
    assert by_channel["other"].status == "delivered"
    assert samples(metrics)[key("earnwatch_deliveries_held_total", action="mute")] == 1.0
    code, text = show_history(
        Settings(_env_file=None, database_url=sqlite_url),
        limit=5,
        rule=None,
        status="muted",
        as_json=False,
    )
    assert code == 0 and "muted" in text and "silence s1" in text


async def test_a_deferred_channel_waits_survives_a_restart_and_goes_with_its_fired_at(
    sqlite_url: str,
) -> None:
    until = NOW + timedelta(hours=16)
    clock = FakeClock(NOW)
    with Receiver() as receiver:
        ruleset = load(RULES.format(url=receiver.url_for("/hook")))
        store = open_store(sqlite_url)
        quiet = Fixed("quiet hours", Decision.defer(until, "quiet hours of hook until 07:00"))
        pipeline = _pipeline(store, ruleset, [quiet], Metrics())
        assert len(await _fire(pipeline, NOW)) == 1
        worker = _worker(store, ruleset, clock)
        while await worker.run_once():
            pass
        assert [r.path for r in receiver.requests] == ["/hook"]  # `other` went at once
        (entry,) = store.history(limit=5)
        hook = {d.channel: d for d in entry.deliveries}["hook"]
        assert (hook.status, hook.next_attempt_at) == ("deferred", until)
        assert store.next_due() == until
        store.close()

        store = open_store(sqlite_url)  # a restart: the deferral is in the database
        clock.advance(timedelta(hours=15, minutes=59))
        worker = _worker(store, ruleset, clock)
        assert not await worker.run_once()
        clock.advance(timedelta(minutes=1))
        while await worker.run_once():
            pass
        bodies = [json.loads(r.body) for r in receiver.requests]
        (entry,) = store.history(limit=5)
        store.close()
    assert len(bodies) == 2
    assert bodies[1]["fired_at"] == NOW.isoformat()  # the original time, not the send's
    hook = {d.channel: d for d in entry.deliveries}["hook"]
    assert (hook.status, hook.hold_reason) == ("delivered", "quiet hours of hook until 07:00")


@dataclass
class Counting:
    """A prepared stage that silences `hook` and counts its reads."""

    name: str = "silences"
    prepared: int = 0

    async def prepare(self, now: datetime) -> None:
        self.prepared += 1

    def decide(self, alert: Alert, channel: Channel, now: datetime) -> Decision:
        if channel.name == "hook":
            return Decision.mute("silence s9", status="silenced")
        return SEND


async def test_a_prepared_stage_reads_only_when_a_pass_fires_and_its_mute_says_silenced(
    store: Store,
) -> None:
    with Receiver() as receiver:
        ruleset = load(RULES.format(url=receiver.url_for("/hook")))
    stage = Counting()
    pipeline = _pipeline(store, ruleset, [stage], Metrics())
    await pipeline.evaluate(NOW, None)  # nothing fires: no price yet
    assert stage.prepared == 0
    assert len(await _fire(pipeline, NOW)) == 1
    assert stage.prepared == 1
    (entry,) = store.history(limit=5, status="silenced")
    hook = {d.channel: d for d in entry.deliveries}["hook"]
    assert (hook.status, hook.hold_reason) == ("silenced", "silence s9")
