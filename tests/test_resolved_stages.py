"""A resolved message (`notify_resolved: true`) is an Alert routed like any other: the
stages mute or defer it per channel, the outbox records each outcome, `history` shows it
as RESOLVED with the alert it resolves, and the webhook sends it as `alert.resolved`."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta

import pytest

from service.clock import FakeClock
from service.commands import show_history
from service.config import Settings
from service.engine import Alert
from service.market import Quote
from service.metrics import Metrics
from service.pipeline import Pipeline
from service.rules import Channel
from service.stages import SEND, Decision, Stage
from service.store import Store
from tests.servers import Receiver
from tests.test_metrics import key, samples
from tests.test_stages import NOW, RULES, Fixed, _pipeline, _worker, load

pytestmark = pytest.mark.anyio

RESOLVING = RULES.replace(
    "    notify: [hook, other]\n",
    "    clear_when: price < 7.40\n    notify: [hook, other]\n    notify_resolved: true\n",
)
LATER = NOW + timedelta(minutes=5)


@dataclass
class From:
    """A test stage that decides as `stage` from `start` on (a silence, quiet hours that
    begin after the alert fired), and sends before. It never looks at the alert's kind."""

    stage: Fixed
    start: datetime
    name: str = "from"

    def decide(self, alert: Alert, channel: Channel, now: datetime) -> Decision:
        return self.stage.decide(alert, channel, now) if now >= self.start else SEND


async def _price(pipeline: Pipeline, price: float, now: datetime) -> list[str]:
    pipeline.data.apply_quotes({"LUMN": Quote("LUMN", price)}, now)
    return await pipeline.evaluate(now, {"LUMN"})


async def test_a_resolved_message_passes_the_stages_like_the_alert_it_resolves(
    store: Store, sqlite_url: str
) -> None:
    until = NOW + timedelta(hours=16)
    mute_hook = Fixed("silence", Decision.mute("silence s1", status="silenced"))
    defer_other = Fixed("quiet", Decision.defer(until, "quiet hours"), frozenset({"other"}))
    stages: list[Stage] = [From(mute_hook, LATER), From(defer_other, LATER)]  # after firing
    metrics = Metrics()
    with Receiver() as receiver:
        ruleset = load(RESOLVING.format(url=receiver.url_for("/hook")))
        pipeline = _pipeline(store, ruleset, stages, metrics)
        [fired_id] = await _price(pipeline, 7.61, NOW)
        assert await _price(pipeline, 7.45, NOW + timedelta(minutes=1)) == []  # not below 7.40
        [resolved_id] = await _price(pipeline, 7.38, LATER)
        clock = FakeClock(LATER)
        worker = _worker(store, ruleset, clock)
        while await worker.run_once():
            pass
        assert len(receiver.requests) == 2  # the fired alert on both channels, nothing else
        clock.advance(timedelta(hours=16))
        while await worker.run_once():
            pass
        bodies = [json.loads(r.body) for r in receiver.requests]
    assert [b["type"] for b in bodies] == ["alert.fired", "alert.fired", "alert.resolved"]
    assert bodies[2]["alert_id"] == resolved_id and bodies[2]["resolves"] == fired_id
    assert bodies[2]["title"] == "LUMN · above resolved"
    assert bodies[2]["message"] == "RESOLVED: LUMN: above no longer holds (price 7.38)"

    resolved, fired = store.history(limit=5)
    assert (resolved.alert_id, fired.alert_id) == (resolved_id, fired_id)
    by_channel = {d.channel: d for d in resolved.deliveries}
    assert (by_channel["hook"].status, by_channel["hook"].hold_reason) == (
        "silenced",
        "silence s1",
    )
    assert (by_channel["other"].status, by_channel["other"].hold_reason) == (
        "delivered",
        "quiet hours",
    )
    assert samples(metrics)[key("earnwatch_alerts_resolved_total", rule="above")] == 1.0
    assert samples(metrics)[key("earnwatch_alerts_fired_total", rule="above")] == 1.0

    settings = Settings(_env_file=None, database_url=sqlite_url)
    code, text = show_history(settings, limit=5, rule=None, status=None, as_json=False)
    assert code == 0 and "RESOLVED: LUMN: above no longer holds (price 7.38)" in text
    code, raw = show_history(settings, limit=5, rule=None, status=None, as_json=True)
    entries = json.loads(raw)
    assert [(e["kind"], e["resolves"]) for e in entries] == [
        ("resolved", fired_id),
        ("fired", None),
    ]
