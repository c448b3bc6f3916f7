"""Providers in the order of EARNWATCH_PROVIDERS, each call served by the first that can.

A call goes to each provider in turn until one answers; a `ProviderError` (including
ProviderUnsupported for a missing capability) moves it to the next. A provider whose
declared capabilities (`serves`) lack the call is passed over without being asked, as if
it had answered ProviderUnsupported. Per-provider health is kept in this object: after a
refused key a provider is skipped for `AUTH_COOLDOWN`, after a 429 until its Retry-After,
and after `TRIP_AFTER` failures in a row for `TRIP_COOLDOWN` (a small circuit breaker).
When every provider fails or is cooling down, the last error is raised.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence, Set
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import ClassVar, Final, TypeVar

from service.clock import Clock, SystemClock
from service.errors import (
    ProviderAuthError,
    ProviderError,
    ProviderRateLimited,
    ProviderUnavailable,
    ProviderUnsupported,
)
from service.market import EarningsEvent, PriceTargets, Quote
from service.providers.base import PartialQuotes, Provider
from service.providers.plugin import Capability

log = logging.getLogger(__name__)

T = TypeVar("T")

AUTH_COOLDOWN: Final = timedelta(minutes=30)
RATE_COOLDOWN: Final = timedelta(seconds=60)  # a 429 that did not say how long
TRIP_AFTER: Final = 5
TRIP_COOLDOWN: Final = timedelta(seconds=30)


@dataclass(slots=True)
class _Health:
    failures: int = 0
    until: datetime | None = None
    last_error: ProviderError | None = None


class FailoverProvider:
    """The Provider protocol over an ordered list of providers."""

    name: ClassVar[str] = "failover"
    # Each member chunks its own quote requests; callers may pass any number of symbols.
    max_batch: ClassVar[int] = 1000

    def __init__(
        self,
        providers: Sequence[Provider],
        *,
        clock: Clock | None = None,
        serves: Mapping[str, Set[Capability]] | None = None,
    ) -> None:
        """`serves` holds the declared capabilities by provider name; a provider absent
        from it is asked every call."""
        if not providers:
            raise ValueError("FailoverProvider needs at least one provider")
        self.providers = tuple(providers)
        self._clock = clock or SystemClock()
        self._health = [_Health() for _ in self.providers]
        self._serves = dict(serves or {})
        #: By call, the name of the provider that answered it last (for confirmation).
        self.served: dict[Capability, str] = {}

    async def quotes(self, symbols: Sequence[str]) -> dict[str, Quote]:
        """The first provider's full answer; when none answers in full, the first
        PartialQuotes is raised, so the caller still has the symbols it did answer."""
        partials: list[PartialQuotes] = []

        async def ask(provider: Provider) -> dict[str, Quote]:
            try:
                return await provider.quotes(symbols)
            except PartialQuotes as exc:
                partials.append(exc)
                raise

        try:
            return await self._first(Capability.QUOTES, ask)
        except ProviderError as exc:
            if partials and partials[0] is not exc:
                raise partials[0] from exc
            raise

    async def earnings(self, start: date, end: date, symbols: Sequence[str]) -> list[EarningsEvent]:
        return await self._first(Capability.EARNINGS, lambda p: p.earnings(start, end, symbols))

    async def price_targets(self, symbol: str) -> PriceTargets | None:
        return await self._first(Capability.PRICE_TARGETS, lambda p: p.price_targets(symbol))

    async def earnings_besides(
        self, source: str, start: date, end: date, symbols: Sequence[str]
    ) -> tuple[str, list[EarningsEvent]]:
        """The calendar from the first provider serving earnings other than `source` (a
        second opinion on `source`'s actuals, EARNWATCH_CONFIRM=2), with its name; each
        call is counted by that provider's own limiter. Raises like `earnings`."""
        served: list[str] = []

        async def ask(provider: Provider) -> list[EarningsEvent]:
            served.append(provider.name)
            return await provider.earnings(start, end, symbols)

        events = await self._first(Capability.EARNINGS, ask, skip=source, record=False)
        return served[-1], events

    async def aclose(self) -> None:
        for provider in self.providers:
            await provider.aclose()

    def cooling_down(self, now: datetime | None = None) -> list[str]:
        """Names of the providers skipped at `now` (for /healthz and logs)."""
        moment = now or self._clock.now()
        return [
            p.name
            for p, h in zip(self.providers, self._health, strict=True)
            if h.until is not None and h.until > moment
        ]

    async def _first(
        self,
        call: Capability,
        run: Callable[[Provider], Awaitable[T]],
        *,
        skip: str | None = None,
        record: bool = True,
    ) -> T:
        last: ProviderError | None = None
        for provider, health in zip(self.providers, self._health, strict=True):
            if provider.name == skip:
                continue
            if call not in self._serves.get(provider.name, (call,)):
                log.debug("%s does not serve %s; skipped", provider.name, call)
                last = ProviderUnsupported(provider.name, f"does not serve {call}")
                continue
            now = self._clock.now()
            if health.until is not None and health.until > now:
                log.debug("%s cooling down; skipped for %s", provider.name, call)
                last = health.last_error or last
                continue
            try:
                result = await run(provider)
            except ProviderError as exc:
                self._failed(provider.name, health, exc, now)
                log.warning("%s failed %s (%s); trying the next provider", provider.name, call, exc)
                last = exc
                continue
            if health.failures:
                log.info("%s recovered", provider.name)
            health.failures, health.until, health.last_error = 0, None, None
            if record:
                self.served[call] = provider.name
            return result
        if last is None:
            last = ProviderUnavailable(self.name, f"no provider could serve {call}")
        raise last

    @staticmethod
    def _failed(name: str, health: _Health, exc: ProviderError, now: datetime) -> None:
        health.last_error = exc
        if isinstance(exc, ProviderUnsupported):
            return  # a missing capability says nothing about the provider's health
        health.failures += 1
        if isinstance(exc, ProviderAuthError):
            health.until = now + AUTH_COOLDOWN
        elif isinstance(exc, ProviderRateLimited):
            wait = RATE_COOLDOWN if exc.retry_after is None else timedelta(seconds=exc.retry_after)
            health.until = now + wait
        elif health.failures >= TRIP_AFTER:
            health.until = now + TRIP_COOLDOWN
            log.warning(
                "%s failed %d times in a row; skipped for %s", name, health.failures, TRIP_COOLDOWN
            )
