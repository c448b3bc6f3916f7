"""A client-side rate limiter per provider: sliding windows, plus a pause after a 429.

Each `Rate(calls, per)` keeps the times of the last `calls` calls and allows another only
when the oldest is more than `per` seconds old: so never more than `calls` in any window
of `per` seconds (a token bucket would allow twice that across a window's edge).

Each provider owns one `RateLimiter` and calls `acquire()` before every request, so it
keeps within its free tier by itself. A wait longer than `max_wait` is not slept through:
`acquire()` raises `ProviderRateLimited` with the wait as `retry_after`, and the failover
moves on to the next provider instead of stalling the poll. Time comes from an injected
`Clock`, so tests run on a FakeClock without sleeping.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from service.clock import Clock
from service.errors import ProviderRateLimited
from service.retry_after import RETRY_AFTER_CAP

if TYPE_CHECKING:  # asyncio loads with the first wait: `check` builds limiters without a loop
    import asyncio

#: The pause after a 429 that does not say how long.
DEFAULT_PAUSE: Final = 60.0


@dataclass(frozen=True, slots=True)
class Rate:
    """At most `calls` calls in any window of `per` seconds."""

    calls: int
    per: float


class _MonotonicClock:
    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        import asyncio  # with the first wait, not with the provider registry

        await asyncio.sleep(seconds)


class RateLimiter:
    """Token buckets for one provider; `acquire()` before each request."""

    def __init__(
        self,
        provider: str,
        rates: Sequence[Rate],
        *,
        clock: Clock | None = None,
        max_wait: float = 90.0,
        max_pause: float = RETRY_AFTER_CAP,
    ) -> None:
        self.provider = provider
        self.rates = tuple(rates)
        self._clock = clock
        self._fallback = _MonotonicClock()
        self._max_wait = max_wait
        self._max_pause = max_pause
        self._calls = [deque[float](maxlen=r.calls) for r in self.rates]
        self._paused_until = self._now()
        self._lock: asyncio.Lock | None = None  # made on the first acquire(), in a loop

    def _now(self) -> float:
        if self._clock is not None:
            return self._clock.now().timestamp()
        return self._fallback.monotonic()

    async def _sleep(self, seconds: float) -> None:
        if self._clock is not None:
            await self._clock.sleep(seconds)
        else:
            await self._fallback.sleep(seconds)

    def wait_time(self) -> float:
        """Seconds until a call may be made (0 when one may be made now)."""
        now = self._now()
        wait = max(0.0, self._paused_until - now)
        for calls, rate in zip(self._calls, self.rates, strict=True):
            if len(calls) == rate.calls:
                wait = max(wait, calls[0] + rate.per - now)
        return wait

    async def acquire(self) -> None:
        """Take one call, sleeping while the buckets refill; raise ProviderRateLimited
        (retry_after = the wait) when the wait would exceed `max_wait`."""
        if self._lock is None:
            import asyncio

            self._lock = asyncio.Lock()
        async with self._lock:
            while (wait := self.wait_time()) > 0:
                if wait > self._max_wait:
                    raise ProviderRateLimited(
                        self.provider,
                        f"client-side rate limit reached; next call in {wait:.0f} s",
                        retry_after=wait,
                    )
                await self._sleep(wait)
            now = self._now()
            for calls in self._calls:
                calls.append(now)

    def pause(self, seconds: float | None) -> float:
        """No call for `seconds` (capped at `max_pause`, by default RETRY_AFTER_CAP;
        DEFAULT_PAUSE when None), as a 429's Retry-After asks. Returns the pause applied."""
        applied = min(self._max_pause, DEFAULT_PAUSE if seconds is None else max(0.0, seconds))
        self._paused_until = max(self._paused_until, self._now() + applied)
        return applied
