"""PartialQuotes through the failover: the next provider is asked for every symbol, and
when it fails too the symbols the first one did answer are not lost."""

from __future__ import annotations

import httpx
import pytest
import respx

from service.errors import ProviderUnavailable
from service.providers.base import PartialQuotes
from service.providers.failover import FailoverProvider
from tests.providers.conftest import FINNHUB, NASDAQ, make_finnhub, make_nasdaq, ok
from tests.providers.test_contract import serve_nasdaq


def finnhub_with_msft_down(request: httpx.Request) -> httpx.Response:
    if request.url.params["symbol"] == "MSFT":
        raise httpx.ReadTimeout("stalled", request=request)
    return ok("finnhub", "quote_AAPL.json")


@pytest.mark.anyio
async def test_the_next_provider_answers_in_full(clock):
    failover = FailoverProvider([make_finnhub(clock), make_nasdaq(clock)], clock=clock)
    try:
        with respx.mock(assert_all_mocked=True) as router:
            router.route(url__startswith=FINNHUB).mock(side_effect=finnhub_with_msft_down)
            router.route(url__startswith=NASDAQ).mock(side_effect=serve_nasdaq)
            quotes = await failover.quotes(["AAPL", "MSFT"])
    finally:
        await failover.aclose()
    assert set(quotes) == {"AAPL", "MSFT"}


@pytest.mark.anyio
async def test_when_the_next_provider_fails_the_first_answers_are_kept(clock):
    failover = FailoverProvider([make_finnhub(clock), make_nasdaq(clock)], clock=clock)
    try:
        with respx.mock(assert_all_mocked=True) as router:
            router.route(url__startswith=FINNHUB).mock(side_effect=finnhub_with_msft_down)
            router.route(url__startswith=NASDAQ).mock(httpx.Response(503))
            with pytest.raises(PartialQuotes) as caught:
                await failover.quotes(["AAPL", "MSFT"])
    finally:
        await failover.aclose()
    assert set(caught.value.quotes) == {"AAPL"} and caught.value.missing == ("MSFT",)
    assert isinstance(caught.value.__cause__, ProviderUnavailable)
    assert caught.value.provider == "finnhub"
