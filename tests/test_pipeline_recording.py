"""The pipeline's recording (issue #10.2 and #10.6): a dropped duplicate is visible, and
an alert the database refused is kept and stored later, never lost, never fired twice."""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, timedelta

import pytest

from service.engine import RuleState
from service.errors import StoreError
from service.health import HealthState
from service.market import EarningsEvent, Quote, ReportTime
from service.marketdata import MarketData
from service.metrics import Metrics
from service.pipeline import Pipeline
from service.rules import RuleSet
from service.store import Store
from tests.rules.conftest import load
from tests.test_metrics import key, samples

NOW = datetime(2026, 2, 3, 22, 0, tzinfo=UTC)
MISS = "  - name: miss\n    symbols: [LUMN]\n    when: reported and eps_actual < eps_estimate\n"
ABOVE = "  - name: above\n    symbols: [LUMN]\n    when: price > 5\n"


class FlakyStore(Store):
    """The real SQLite store, with `record` refusing while `failing` (a full disk)."""

    failing = False
    #: The errors given in turn while failing (SQLite under a read-only lock alternates two).
    reasons = ("store record failed: OperationalError: database or disk is full",)
    calls = 0

    def record(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        if self.failing:
            self.calls += 1
            raise StoreError(self.reasons[(self.calls - 1) % len(self.reasons)])
        return super().record(*args, **kwargs)


@pytest.fixture
def flaky(store: Store) -> FlakyStore:
    flaky = FlakyStore(store._db)
    return flaky


def make(store: Store, ruleset: RuleSet) -> tuple[Pipeline, Metrics, HealthState, list[int]]:
    metrics = Metrics()
    health = HealthState(stale_after=timedelta(hours=1))
    health.scheduler_running = True
    health.mark_provider_success(NOW)
    woken: list[int] = []
    pipeline = Pipeline(
        provider=None,  # type: ignore[arg-type]  # evaluation calls no provider
        store=store,
        data=MarketData(),
        states={},
        rules=lambda: ruleset,
        metrics=metrics,
        health=health,
        on_alerts=lambda: woken.append(1),
    )
    return pipeline, metrics, health, woken


def price(pipeline: Pipeline, value: float, now: datetime) -> set[str]:
    return pipeline.data.apply_quotes({"LUMN": Quote("LUMN", value)}, now)


@pytest.mark.anyio
async def test_a_duplicate_dropped_at_insert_is_logged_and_counted_not_reported_as_new(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    pipeline, metrics, _, woken = make(store, load("rules:\n" + MISS))
    reported = EarningsEvent(
        "LUMN", date(2026, 2, 3), ReportTime.AMC, 2025, 4, eps_estimate=-0.21, eps_actual=-0.3
    )
    pipeline.data.apply_events([reported], ["LUMN"], date(2026, 2, 2), date(2026, 2, 4))
    caplog.set_level(logging.INFO)
    assert len(await pipeline.evaluate(NOW, None)) == 1
    pipeline.states = {}  # e.g. a replica that lost the states: the same report fires again
    assert await pipeline.evaluate(NOW + timedelta(minutes=1), None) == []
    assert len(store.history()) == 1 and woken == [1]
    assert samples(metrics)[key("earnwatch_alerts_deduplicated_total", rule="miss")] == 1
    assert samples(metrics)[key("earnwatch_alerts_fired_total", rule="miss")] == 1
    messages = [r.getMessage() for r in caplog.records]
    assert sum(m.startswith("alert miss LUMN:") for m in messages) == 1
    assert (
        "alert miss for LUMN already recorded (dedup key miss|LUMN|report:2025Q4): "
        "not sent again" in messages
    )


@pytest.mark.anyio
async def test_an_alert_the_database_refused_is_kept_and_stored_once_it_can_write(
    flaky: FlakyStore, caplog: pytest.LogCaptureFixture
) -> None:
    pipeline, metrics, health, woken = make(flaky, load("rules:\n" + ABOVE))
    flaky.failing = True
    crossing = NOW
    assert await pipeline.evaluate(crossing, price(pipeline, 8.0, crossing)) == []
    assert health.check(NOW) == (
        False,
        "recording failed: store record failed: OperationalError: database or disk is full",
    )
    later = NOW + timedelta(minutes=1)
    await pipeline.evaluate(later, price(pipeline, 8.5, later))  # still above: no 2nd alert
    reverted = NOW + timedelta(minutes=2)
    await pipeline.evaluate(reverted, price(pipeline, 4.0, reverted))  # back below
    assert flaky.history() == [] and woken == []
    assert samples(metrics)[key("earnwatch_alerts_unrecorded")] == 1
    flaky.failing = False
    written = NOW + timedelta(minutes=3)
    assert len(await pipeline.evaluate(written, set())) == 1  # no new data: retried anyway
    history = flaky.history()
    assert [(h.rule, h.fired_at) for h in history] == [("above", crossing)]
    assert health.check(written) == (True, "ok") and woken == [1]
    assert flaky.load_states()[("above", "LUMN")].armed  # the states of the passes since
    assert samples(metrics)[key("earnwatch_alerts_unrecorded")] == 0
    assert samples(metrics)[key("earnwatch_recording_failures_total")] == 3
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and errors[0].startswith("recording failed: store record failed")
    assert "recording works again: 1 alert(s) kept in memory now stored" in caplog.text
    await pipeline.evaluate(NOW + timedelta(minutes=4), price(pipeline, 3.0, NOW))
    assert len(flaky.history()) == 1


@pytest.mark.anyio
async def test_an_outage_that_alternates_two_errors_logs_one_error_and_each_other_reason_once(
    flaky: FlakyStore, caplog: pytest.LogCaptureFixture
) -> None:
    pipeline, _, _, _ = make(flaky, load("rules:\n" + ABOVE))
    flaky.reasons = ("store record failed: disk I/O error", "store record failed: readonly")
    flaky.failing = True
    await pipeline.evaluate(NOW, price(pipeline, 8.0, NOW))
    for minute in range(1, 7):  # six more passes retry the kept alert: errors alternate
        await pipeline.evaluate(NOW + timedelta(minutes=minute), set())
    assert flaky.calls >= 6
    lines = [r.getMessage() for r in caplog.records if "recording" in r.getMessage()]
    assert [line.split(";")[0] for line in lines] == [
        "recording failed: store record failed: disk I/O error",
        "recording still failing, now with: store record failed: readonly",
    ]
    flaky.failing = False
    await pipeline.evaluate(NOW + timedelta(minutes=8), set())
    flaky.failing = True  # a new outage logs its error again
    await pipeline.evaluate(NOW + timedelta(minutes=9), price(pipeline, 4.0, NOW))
    await pipeline.evaluate(NOW + timedelta(minutes=10), price(pipeline, 9.0, NOW))
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 2, errors


@pytest.mark.anyio
async def test_states_reloaded_from_the_store_are_not_overwritten_by_waiting_ones(
    flaky: FlakyStore,
) -> None:
    pipeline, _, _, _ = make(flaky, load("rules:\n" + ABOVE))
    flaky.failing = True
    await pipeline.evaluate(NOW, price(pipeline, 8.0, NOW))
    pipeline.states = {}  # a new leadership starts from the store's states
    flaky.failing = False
    await pipeline.evaluate(NOW + timedelta(minutes=1), set())
    assert len(flaky.history()) == 1  # the waiting alert is stored all the same...
    assert flaky.load_states() == {}  # ...but not the states it was fired with


def test_health_turns_bad_while_recording_fails_or_evaluation_stalls() -> None:
    health = HealthState(stale_after=timedelta(hours=1), started_at=NOW)
    health.scheduler_running = True
    health.mark_provider_success(NOW)
    health.evaluation_stale = timedelta(minutes=15)
    health.mark_evaluated(NOW)
    assert health.check(NOW + timedelta(minutes=10)) == (True, "ok")
    assert health.check(NOW + timedelta(minutes=16)) == (
        False,
        "no evaluation pass in the last 900 s",
    )
    health.mark_evaluated(NOW + timedelta(minutes=16))
    health.mark_recording_failure(NOW, "store record failed:\n  disk I/O error")
    assert health.check(NOW + timedelta(minutes=16)) == (
        False,
        "recording failed: store record failed: disk I/O error",
    )
    health.set_leading(False, NOW)
    assert health.check(NOW + timedelta(minutes=16)) == (True, "standby")  # records nothing
    health.set_leading(True, NOW + timedelta(hours=2))  # a new leader gets its grace
    health.mark_recording_success(NOW + timedelta(hours=2))
    assert health.check(NOW + timedelta(hours=2, minutes=1)) == (True, "starting")


@pytest.mark.anyio
async def test_a_replica_that_lost_leadership_still_stores_what_it_fired_while_leading(
    flaky: FlakyStore,
) -> None:
    pipeline, _, _, woken = make(flaky, load("rules:\n" + ABOVE))
    flaky.failing = True
    await pipeline.evaluate(NOW, price(pipeline, 8.0, NOW))
    assert await pipeline.record_waiting(NOW) == []  # still failing: still kept
    flaky.failing = False
    flaky.save_states({("above", "LUMN"): RuleState(fingerprint="the-new-leader's")})
    assert len(await pipeline.record_waiting(NOW + timedelta(minutes=1))) == 1
    assert [h.fired_at for h in flaky.history()] == [NOW] and woken == [1]
    assert flaky.load_states()[("above", "LUMN")].fingerprint == "the-new-leader's"
    assert await pipeline.record_waiting(NOW + timedelta(minutes=2)) == []
