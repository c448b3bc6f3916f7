"""An amended message (`notify_amended: true`) is an Alert routed like any other: the
stages mute or defer it per channel, the outbox records it with the id of the alert it
amends, `history` shows it, the metric counts it, and the webhook sends it as
`alert.amended`; the rule state saved with it keeps the figures, so a restarted pipeline
sends the correction no second time."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta

import pytest

from service.clock import FakeClock
from service.commands import show_history
from service.config import Settings
from service.market import Quote
from service.metrics import Metrics
from service.pipeline import Pipeline
from service.stages import Decision, Stage
from service.store import Store
from tests.servers import Receiver
from tests.test_engine import report
from tests.test_metrics import key, samples
from tests.test_resolved_stages import From
from tests.test_stages import NOW, RULES, Fixed, _pipeline, _worker, load

pytestmark = pytest.mark.anyio

AMENDING = RULES.replace("price > 7.56", "reported and eps_actual > eps_estimate").replace(
    "    notify: [hook, other]\n", "    notify: [hook, other]\n    notify_amended: true\n"
)
LATER = NOW + timedelta(minutes=5)


async def _eps(pipeline: Pipeline, eps: float, now: datetime) -> list[str]:
    day = date(2026, 2, 3)
    event = report(eps=eps, revenue=3.041e9)
    pipeline.data.apply_quotes({"LUMN": Quote("LUMN", 8.46)}, now)
    pipeline.data.apply_events([event], ["LUMN"], day - timedelta(days=5), day)
    return await pipeline.evaluate(now, {"LUMN"})


async def test_an_amended_message_passes_the_stages_and_history_shows_what_it_amends(
    store: Store, sqlite_url: str
) -> None:
    until = NOW + timedelta(hours=16)
    mute_hook = Fixed("silence", Decision.mute("silence s1", status="silenced"))
    defer_other = Fixed("quiet", Decision.defer(until, "quiet hours"), frozenset({"other"}))
    stages: list[Stage] = [From(mute_hook, LATER), From(defer_other, LATER)]  # after firing
    metrics = Metrics()
    with Receiver() as receiver:
        ruleset = load(AMENDING.format(url=receiver.url_for("/hook")))
        pipeline = _pipeline(store, ruleset, stages, metrics)
        [fired_id] = await _eps(pipeline, 0.23, NOW)
        [amended_id] = await _eps(pipeline, 0.25, LATER)
        assert await _eps(pipeline, 0.25, LATER + timedelta(minutes=1)) == []
        # a restarted pipeline on the same store: the correction is sent no second time
        again = _pipeline(store, ruleset, stages, metrics)
        again.states.update(store.load_states())
        assert await _eps(again, 0.25, LATER + timedelta(minutes=2)) == []
        clock = FakeClock(LATER)
        worker = _worker(store, ruleset, clock)
        while await worker.run_once():
            pass
        assert len(receiver.requests) == 2  # the fired alert on both channels, nothing else
        clock.advance(timedelta(hours=16))
        while await worker.run_once():
            pass
        bodies = [json.loads(r.body) for r in receiver.requests]
    assert [b["type"] for b in bodies] == ["alert.fired", "alert.fired", "alert.amended"]
    assert bodies[2]["alert_id"] == amended_id and bodies[2]["amends"] == fired_id
    assert bodies[2]["title"] == "LUMN · above amended"
    assert bodies[2]["message"] == "AMENDED: LUMN: above: EPS 0.23 -> 0.25, revenue 3.041B"

    amended, fired = store.history(limit=5)
    assert (amended.alert_id, fired.alert_id) == (amended_id, fired_id)
    by_channel = {d.channel: d for d in amended.deliveries}
    assert (by_channel["hook"].status, by_channel["hook"].hold_reason) == (
        "silenced",
        "silence s1",
    )
    assert (by_channel["other"].status, by_channel["other"].hold_reason) == (
        "delivered",
        "quiet hours",
    )
    assert samples(metrics)[key("earnwatch_alerts_amended_total", rule="above")] == 1.0
    assert samples(metrics)[key("earnwatch_alerts_fired_total", rule="above")] == 1.0

    settings = Settings(_env_file=None, database_url=sqlite_url)
    code, text = show_history(settings, limit=5, rule=None, status=None, as_json=False)
    assert code == 0 and "AMENDED: LUMN: above: EPS 0.23 -> 0.25" in text
    code, raw = show_history(settings, limit=5, rule=None, status=None, as_json=True)
    entries = json.loads(raw)
    assert [(e["kind"], e["amends"]) for e in entries] == [("amended", fired_id), ("fired", None)]
