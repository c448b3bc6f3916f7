"""A slow provider can't freeze polling (issue #10.4): every provider call has a total
deadline, headers and body, so a server dripping one byte every few seconds costs one
deadline, not minutes; with Finnhub (a call per symbol) the other symbols are still
answered, and the call ends in PartialQuotes naming the stalled one."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Iterator
from datetime import date

import httpx
import pytest
import respx
from pydantic import SecretStr

from service.errors import ProviderUnavailable
from service.httpclient import build_client
from service.providers.base import PartialQuotes
from service.providers.finnhub import PROVIDER as FINNHUB_TYPE
from service.providers.finnhub import FinnhubProvider
from tests.fakes.drip import DripFinnhub
from tests.providers.conftest import FINNHUB, make_finnhub
from tests.providers.test_contract import VENDORS, Vendor

NOW = int(time.time())


@pytest.fixture
def drip() -> Iterator[DripFinnhub]:
    with DripFinnhub(interval=0.5, drip_for=30.0) as fake:
        fake.set_quote("AAPL", 272.11, 266.18, NOW)
        fake.set_quote("MSFT", 496.37, 490.0, NOW)
        fake.drip.add("SLOW")
        yield fake


@pytest.mark.anyio
async def test_a_dripping_quote_costs_one_deadline_and_the_others_are_answered(drip, clock, caplog):
    caplog.set_level(logging.WARNING)
    client = build_client(timeout=1.0, base_url=drip.base_url + "/")
    finnhub = FinnhubProvider(client, SecretStr(drip.token), FINNHUB_TYPE.limiter(clock))
    started = time.monotonic()
    try:
        with pytest.raises(PartialQuotes) as caught:
            await finnhub.quotes(["AAPL", "SLOW", "MSFT"])
    finally:
        await finnhub.aclose()
    took = time.monotonic() - started
    assert took < 10  # one 1 s deadline, where the drip alone would take 30 s
    assert set(caught.value.quotes) == {"AAPL", "MSFT"} and caught.value.missing == ("SLOW",)
    assert caught.value.retryable and isinstance(caught.value, ProviderUnavailable)
    assert "no complete answer within 1 s" in str(caught.value)
    assert "quote gave no complete answer within 1 s" in caplog.text
    assert drip.token not in caplog.text and drip.token not in str(caught.value)


def _dripping(_request: httpx.Request) -> httpx.Response:
    async def body() -> AsyncIterator[bytes]:
        for _ in range(60):
            await asyncio.sleep(0.5)
            yield b" "

    return httpx.Response(200, stream=_Stream(body()))


class _Stream(httpx.AsyncByteStream):
    def __init__(self, chunks: AsyncIterator[bytes]) -> None:
        self._chunks = chunks

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._chunks:
            yield chunk


@pytest.mark.anyio
@pytest.mark.parametrize("vendor", VENDORS, ids=lambda v: v.name)
async def test_every_vendor_call_has_a_total_deadline(vendor: Vendor, clock):
    provider = vendor.make(clock)
    provider._client.timeout = httpx.Timeout(1.0)  # EARNWATCH_HTTP_TIMEOUT=1s
    started = time.monotonic()
    try:
        with respx.mock(assert_all_mocked=True) as router:
            router.route(url__startswith=vendor.base).mock(side_effect=_dripping)
            with pytest.raises(ProviderUnavailable, match="no complete answer within 1 s"):
                await provider.earnings(date(2026, 2, 3), date(2026, 2, 3), ["LUMN"])
    finally:
        await provider.aclose()
    assert time.monotonic() - started < 10  # the drip alone lasts 30 s


@pytest.mark.anyio
async def test_finnhub_down_for_every_symbol_gives_up_after_three_calls(clock):
    finnhub = make_finnhub(clock)
    symbols = [f"S{i:03d}" for i in range(500)]
    try:
        with respx.mock(assert_all_mocked=True) as router:
            route = router.route(url__startswith=FINNHUB).mock(side_effect=httpx.ConnectError)
            with pytest.raises(PartialQuotes) as caught:
                await finnhub.quotes(symbols)
    finally:
        await finnhub.aclose()
    assert route.call_count == 3  # then the failover moves on, not 500 calls later
    assert caught.value.quotes == {} and list(caught.value.missing) == symbols
