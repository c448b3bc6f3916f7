"""RateLimiter on a fake clock: sliding windows, Retry-After pauses with a cap, fail-fast
past `max_wait`."""

from __future__ import annotations

import pytest

from service.errors import ProviderRateLimited
from service.providers import finnhub
from service.providers.limiter import Rate, RateLimiter
from service.retry_after import RETRY_AFTER_CAP


@pytest.mark.anyio
async def test_no_more_than_60_calls_in_any_60_seconds(clock):
    limiter = finnhub.PROVIDER.limiter(clock)
    start = clock.now()
    stamps = []
    for _ in range(130):
        await limiter.acquire()
        stamps.append((clock.now() - start).total_seconds())
    assert stamps[59] < 60 and stamps[60] >= 60 and stamps[120] >= 120
    assert all(stamps[i] - stamps[i - 60] >= 60 for i in range(60, 130))


@pytest.mark.anyio
async def test_no_more_than_30_calls_in_any_second(clock):
    limiter = finnhub.PROVIDER.limiter(clock)
    start = clock.now()
    for _ in range(31):
        await limiter.acquire()
    assert (clock.now() - start).total_seconds() == pytest.approx(1.0)


@pytest.mark.anyio
async def test_a_pause_holds_every_call_and_is_capped(clock):
    limiter = RateLimiter("x", [Rate(100, 1.0)], clock=clock, max_wait=1000)
    assert limiter.pause(7) == 7
    start = clock.now()
    await limiter.acquire()
    assert (clock.now() - start).total_seconds() == pytest.approx(7)
    assert limiter.pause(86_400) == RETRY_AFTER_CAP
    assert limiter.pause(None) == 60  # a 429 that did not say how long


@pytest.mark.anyio
async def test_a_wait_past_max_wait_fails_fast_with_retry_after(clock):
    limiter = RateLimiter("fmp", [Rate(2, 86_400.0)], clock=clock, max_wait=2)
    await limiter.acquire()
    await limiter.acquire()
    before = clock.now()
    with pytest.raises(ProviderRateLimited) as caught:
        await limiter.acquire()
    assert clock.now() == before
    assert caught.value.retry_after == pytest.approx(86_400)
    assert str(caught.value).startswith("fmp: client-side rate limit reached")


@pytest.mark.anyio
async def test_without_a_clock_it_uses_the_monotonic_clock():
    limiter = RateLimiter("x", [Rate(5, 1.0)])
    for _ in range(5):
        await limiter.acquire()
    assert limiter.wait_time() > 0
