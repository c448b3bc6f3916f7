"""The session's open of each provider's quote (issue #13, item 5: `price_at_open`), read
from the real payload shapes in tests/fixtures/: Finnhub's `o`, FMP's `open`; Nasdaq's
basic quote has no open, and an unknown symbol's `o: 0` is no open."""

from __future__ import annotations

import httpx
import pytest
import respx

from tests.providers.conftest import (
    FINNHUB,
    FMP,
    NASDAQ,
    fixture_json,
    make_finnhub,
    make_fmp,
    make_nasdaq,
    ok,
)


@pytest.mark.anyio
async def test_finnhubs_o_is_the_quotes_open(clock):
    provider = make_finnhub(clock)
    try:
        with respx.mock(assert_all_mocked=True) as router:
            router.get(f"{FINNHUB}/quote").mock(ok("finnhub", "quote_AAPL.json"))
            quotes = await provider.quotes(["AAPL"])
    finally:
        await provider.aclose()
    assert quotes["AAPL"].open == 268.0


@pytest.mark.anyio
async def test_fmps_open_is_the_quotes_open(clock):
    provider = make_fmp(clock)
    try:
        with respx.mock(assert_all_mocked=True) as router:
            batch = httpx.Response(200, json=fixture_json("fmp", "batch_quote.json"))
            router.get(f"{FMP}/batch-quote").mock(batch)
            quotes = await provider.quotes(["AAPL", "MSFT"])
    finally:
        await provider.aclose()
    assert (quotes["AAPL"].open, quotes["MSFT"].open) == (268.0, 491.5)


@pytest.mark.anyio
async def test_nasdaqs_basic_quote_has_no_open(clock):
    provider = make_nasdaq(clock)
    try:
        with respx.mock(assert_all_mocked=True) as router:
            basic = httpx.Response(200, json=fixture_json("nasdaq", "quote_basic.json"))
            router.get(url__startswith=f"{NASDAQ}/").mock(basic)
            quotes = await provider.quotes(["AAPL"])
    finally:
        await provider.aclose()
    assert quotes["AAPL"].open is None
