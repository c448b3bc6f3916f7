"""One cycle's steps against a fake provider and a real SQLite store."""

import asyncio
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta

import pytest

from service.errors import ProviderUnavailable
from service.health import HealthState
from service.market import EarningsEvent, PriceTargets, Quote
from service.marketdata import MarketData
from service.metrics import Metrics
from service.pipeline import QUOTE_CHUNK, Pipeline
from service.store import Store
from tests.rules.conftest import load

NOW = datetime(2026, 2, 4, 15, 0, tzinfo=UTC)
SYMBOLS = [f"S{i:02d}" for i in range(60)]


class FakeProvider:
    name = "fake"
    max_batch = 1

    def __init__(self, fail_calls: Sequence[int] = ()) -> None:
        self.calls: list[list[str]] = []
        self.fail_calls = set(fail_calls)
        self.stored_before_call: list[int] = []
        self.store: Store | None = None

    async def quotes(self, symbols: Sequence[str]) -> dict[str, Quote]:
        self.calls.append(list(symbols))
        if self.store is not None:
            self.stored_before_call.append(len(self.store.history(limit=1000)))
        if len(self.calls) in self.fail_calls:
            raise ProviderUnavailable("fake", "HTTP 503")
        return {s: Quote(s, 10.0) for s in symbols}

    async def earnings(self, start: date, end: date, symbols: Sequence[str]) -> list[EarningsEvent]:
        return []

    async def price_targets(self, symbol: str) -> PriceTargets | None:
        return None

    async def aclose(self) -> None:
        pass


def pipeline(store: Store, provider: FakeProvider) -> Pipeline:
    ruleset = load(
        f"rules:\n  - name: up\n    symbols: [{', '.join(SYMBOLS)}]\n    when: price > 5\n"
    )
    return Pipeline(
        provider=provider,
        store=store,
        data=MarketData(),
        states={},
        rules=lambda: ruleset,
        metrics=Metrics(),
        health=HealthState(stale_after=timedelta(minutes=5)),
    )


@pytest.mark.anyio
async def test_quotes_come_in_chunks_and_each_chunk_is_evaluated_as_it_arrives(
    store: Store,
) -> None:
    provider = FakeProvider()
    provider.store = store
    changed = await pipeline(store, provider).poll_quotes(lambda: NOW)
    assert [len(c) for c in provider.calls] == [QUOTE_CHUNK, QUOTE_CHUNK, 60 - 2 * QUOTE_CHUNK]
    assert provider.stored_before_call == [0, QUOTE_CHUNK, 2 * QUOTE_CHUNK]  # alerts already stored
    assert changed == set(SYMBOLS) and len(store.history(limit=1000)) == 60


@pytest.mark.anyio
async def test_a_failed_chunk_loses_only_its_own_symbols(store: Store) -> None:
    provider = FakeProvider(fail_calls=[2])
    changed = await pipeline(store, provider).poll_quotes(lambda: NOW)
    assert changed == set(SYMBOLS) - set(provider.calls[1])


@pytest.mark.anyio
async def test_a_stop_ends_the_poll_between_chunks(store: Store) -> None:
    provider = FakeProvider()
    stop = asyncio.Event()
    the_pipeline = pipeline(store, provider)

    async def quotes_then_stop(symbols: Sequence[str]) -> dict[str, Quote]:
        stop.set()
        return await FakeProvider.quotes(provider, symbols)

    provider.quotes = quotes_then_stop  # type: ignore[method-assign]
    await the_pipeline.poll_quotes(lambda: NOW, stop=stop)
    assert len(provider.calls) == 1
