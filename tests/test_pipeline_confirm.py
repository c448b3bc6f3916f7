"""The pipeline's confirmation step (EARNWATCH_CONFIRM=2) on a fake clock: two in-memory
providers behind the real FailoverProvider, a real SQLite store. Who is asked when, and
which alerts the verdict lets through."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta

import pytest

from service.health import HealthState
from service.market import EarningsEvent, PriceTargets, Quote, ReportTime
from service.marketdata import MarketData
from service.metrics import Metrics
from service.pipeline import Cadence, Pipeline
from service.providers import FailoverProvider
from service.providers.plugin import Capability
from service.store import Store
from tests.rules.conftest import load

NOW = datetime(2026, 11, 3, 21, 30, tzinfo=UTC)  # 16:30 New York, after an amc report
DAY = date(2026, 11, 3)
ROW = EarningsEvent(
    symbol="LUMN",
    date=DAY,
    time=ReportTime.AMC,
    fiscal_year=2026,
    fiscal_quarter=3,
    eps_estimate=-0.21,
    revenue_estimate=3_080_000_000,
)
RULES = load(
    """\
rules:
  - name: beat
    symbols: [LUMN]
    when: reported and eps_surprise_pct > 0
  - name: miss
    symbols: [LUMN]
    when: eps_surprise_pct < 0
  - name: suspect
    symbols: [LUMN]
    when: data_suspect
"""
)


class Calendar:
    """A provider whose calendar the test sets; it counts the calls it gets."""

    max_batch = 1

    def __init__(self, name: str) -> None:
        self.name = name
        self.rows: list[EarningsEvent] = [ROW]
        self.calls = 0

    def report(self, eps: float | None, revenue: float | None = 3_041_000_000) -> None:
        self.rows = [
            EarningsEvent(**{**_fields(ROW), "eps_actual": eps, "revenue_actual": revenue})
        ]

    async def earnings(self, start: date, end: date, symbols: Sequence[str]) -> list[EarningsEvent]:
        self.calls += 1
        return [r for r in self.rows if start <= r.date <= end and r.symbol in symbols]

    async def quotes(self, symbols: Sequence[str]) -> dict[str, Quote]:
        return {}

    async def price_targets(self, symbol: str) -> PriceTargets | None:
        return None

    async def aclose(self) -> None:
        return None


def _fields(event: EarningsEvent) -> dict[str, object]:
    return {name: getattr(event, name) for name in event.__slots__}  # type: ignore[attr-defined]


def build(store: Store, *, confirm: bool = True) -> tuple[Pipeline, Calendar, Calendar]:
    first, second = Calendar("one"), Calendar("two")
    serves = {n: frozenset({Capability.EARNINGS}) for n in ("one", "two")}
    chain = FailoverProvider([first, second], serves=serves)  # type: ignore[list-item]
    cadence = Cadence(
        earnings_poll=timedelta(seconds=30),
        confirm_wait=timedelta(minutes=10) if confirm else None,
        provider_names=("one", "two"),
    )
    pipeline = Pipeline(
        provider=chain,
        store=store,
        data=MarketData(),
        states={},
        rules=lambda: RULES,
        metrics=Metrics(),
        health=HealthState(stale_after=timedelta(minutes=5)),
        cadence=cadence,
        second_opinion=chain,
    )
    return pipeline, first, second


def fired(store: Store) -> list[str]:
    return [entry.rule for entry in reversed(store.history(limit=100))]


@pytest.mark.anyio
async def test_the_second_is_asked_once_actuals_appear_and_the_first_is_reread_while_suspect(
    store: Store,
) -> None:
    pipeline, first, second = build(store)
    await pipeline.calendar_cycle(NOW)
    await pipeline.market_cycle(NOW)
    assert second.calls == 0  # no actuals: nobody else is asked
    first.report(-0.30)  # a miss, says the first provider alone
    second.report(0.40)
    await pipeline.calendar_cycle(NOW)
    await pipeline.market_cycle(NOW)
    assert second.calls == 1 and fired(store) == ["suspect"]  # no miss from suspect figures
    calls = first.calls
    await pipeline.market_cycle(NOW + timedelta(seconds=10))  # not due yet
    assert (first.calls, second.calls) == (calls, 1)
    # the first provider corrects itself: re-read with the next ask, it agrees
    first.report(0.40)
    later = NOW + timedelta(seconds=30)
    await pipeline.market_cycle(later)
    assert (first.calls, second.calls) == (calls + 1, 2)
    assert fired(store) == ["suspect", "beat"]
    history = pipeline.data.reports["LUMN"]["2026Q3"]
    assert (history.source, history.second, history.confirmed_by) == ("one", "two", 2)
    await pipeline.market_cycle(later + timedelta(minutes=5))
    assert second.calls == 2  # confirmed: not asked again


@pytest.mark.anyio
async def test_the_wait_releases_a_single_providers_figures_and_survives_a_resume(
    store: Store,
) -> None:
    pipeline, first, second = build(store)
    await pipeline.calendar_cycle(NOW)
    first.report(0.23)
    await pipeline.calendar_cycle(NOW)
    await pipeline.market_cycle(NOW)
    assert second.calls == 1 and fired(store) == []
    await pipeline.market_cycle(NOW + timedelta(minutes=5))
    await pipeline.save_data(NOW + timedelta(minutes=5))
    await pipeline.resume()  # a restart, or a new leader: the first-seen time is kept
    await pipeline.market_cycle(NOW + timedelta(minutes=9, seconds=59))
    assert fired(store) == []
    await pipeline.market_cycle(NOW + timedelta(minutes=10))
    assert fired(store) == ["beat"]
    asked = second.calls
    await pipeline.market_cycle(NOW + timedelta(minutes=11))
    assert second.calls == asked  # released: the second is no longer asked


@pytest.mark.anyio
async def test_with_confirmation_off_nobody_else_is_asked_and_the_miss_fires_at_once(
    store: Store,
) -> None:
    pipeline, first, second = build(store, confirm=False)
    await pipeline.calendar_cycle(NOW)
    first.report(-0.30)
    await pipeline.calendar_cycle(NOW)
    await pipeline.market_cycle(NOW)
    assert second.calls == 0 and fired(store) == ["miss"]


@pytest.mark.anyio
async def test_a_resume_keys_the_stored_states_by_the_rule_sets_own_keys(store: Store) -> None:
    pipeline, _first, _second = build(store)
    await pipeline.evaluate(NOW, None)
    assert pipeline.states  # the pass left states, and saved them
    await pipeline.resume()  # a restart: the states come back from the store
    own = {key: key for rules in RULES.by_symbol.values() for key in rules.keys}
    assert pipeline.states and all(key is own[key] for key in pipeline.states)
