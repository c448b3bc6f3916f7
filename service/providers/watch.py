"""A provider wrapper that tells who asks when each symbol's price was last answered.

`/healthz` turns unhealthy when a watched symbol's price has not been refreshed for a few
refresh periods; the pipeline does not know which symbols a failed call still answered,
so the daemon wraps its provider in `QuoteWatch` and hands it `HealthState.mark_prices`.
A symbol counts as answered when the call for it succeeded, whether or not the provider
knew a quote for it (an unknown symbol is not a stalled one).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import date, datetime
from typing import ClassVar

from service.clock import Clock
from service.market import EarningsEvent, PriceTargets, Quote
from service.providers.base import PartialQuotes, Provider, wanted

Seen = Callable[[datetime, Iterable[str]], None]


class QuoteWatch:
    """`provider`, with `seen(now, symbols)` called after each quote call for the symbols
    it answered (all of them, or those a PartialQuotes does not list as missing)."""

    name: ClassVar[str] = "watched"
    max_batch: ClassVar[int] = 1000

    def __init__(self, provider: Provider, seen: Seen, clock: Clock) -> None:
        self.inner = provider
        self._seen = seen
        self._clock = clock

    async def quotes(self, symbols: Sequence[str]) -> dict[str, Quote]:
        asked = wanted(symbols)
        try:
            answer = await self.inner.quotes(symbols)
        except PartialQuotes as exc:
            missing = set(exc.missing)
            self._seen(self._clock.now(), [s for s in asked if s not in missing])
            raise
        self._seen(self._clock.now(), asked)
        return answer

    async def earnings(self, start: date, end: date, symbols: Sequence[str]) -> list[EarningsEvent]:
        return await self.inner.earnings(start, end, symbols)

    async def price_targets(self, symbol: str) -> PriceTargets | None:
        return await self.inner.price_targets(symbol)

    async def aclose(self) -> None:
        await self.inner.aclose()
