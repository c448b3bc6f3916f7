"""Nasdaq's quirks: string-formatted numbers, `rows: null`, future days without `eps`,
`status.rCode`, browser-like headers, and one call per weekday."""

from __future__ import annotations

from datetime import date

import httpx
import pytest
import respx

from service.errors import ProviderDataError, ProviderUnsupported
from service.market import ReportTime
from service.providers.base import text_number
from tests.providers.conftest import NASDAQ, make_nasdaq, ok


@pytest.fixture
async def nasdaq(clock):
    provider = make_nasdaq(clock)
    yield provider
    await provider.aclose()


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("$0.46", 0.46),
        ("($0.14)", -0.14),
        ("$(0.12)", -0.12),
        ("-366.67", -366.67),
        ("+5.93", 5.93),
        ("$71,008,400,000", 71_008_400_000.0),
        ("0.54%", 0.54),
        ("N/A", None),
        ("", None),
        ("NaN", None),
        ("Infinity", None),
        ("1e999", None),
        ("$1,00", None),
        (None, None),
    ],
)
def test_text_numbers_are_parsed_exactly(text, value):
    assert text_number(text) == value


@pytest.mark.anyio
async def test_a_past_day_gives_eps_actuals_and_forecasts(nasdaq):
    with respx.mock(assert_all_mocked=True) as router:
        router.get(f"{NASDAQ}/calendar/earnings").mock(ok("nasdaq", "calendar_2026-02-03.json"))
        events = await nasdaq.earnings(date(2026, 2, 3), date(2026, 2, 3), [])
    by_symbol = {e.symbol: e for e in events}
    assert (by_symbol["BEP"].eps_actual, by_symbol["BEP"].eps_estimate) == (-0.14, -0.03)
    assert by_symbol["LBRDA"].eps_estimate is None and by_symbol["LBRDA"].eps_actual == 1.10
    assert by_symbol["LBRDA"].time is ReportTime.BMO
    assert by_symbol["BEP"].time is ReportTime.UNKNOWN


@pytest.mark.anyio
async def test_a_future_day_has_no_actuals(nasdaq):
    with respx.mock(assert_all_mocked=True) as router:
        router.get(f"{NASDAQ}/calendar/earnings").mock(ok("nasdaq", "calendar_future.json"))
        events = await nasdaq.earnings(date(2026, 7, 17), date(2026, 7, 17), ["HDB", "MCBS"])
    assert [(e.symbol, e.eps_estimate, e.reported) for e in events] == [
        ("HDB", 0.38, False),
        ("MCBS", -0.12, False),
    ]


@pytest.mark.anyio
async def test_rows_null_is_an_empty_day_and_weekends_cost_no_call(nasdaq):
    with respx.mock(assert_all_mocked=True) as router:
        route = router.get(f"{NASDAQ}/calendar/earnings").mock(ok("nasdaq", "calendar_empty.json"))
        events = await nasdaq.earnings(date(2026, 2, 6), date(2026, 2, 9), [])
    assert events == []
    assert [c.request.url.params["date"] for c in route.calls] == ["2026-02-06", "2026-02-09"]


@pytest.mark.anyio
async def test_status_rcode_other_than_200_is_an_error(nasdaq):
    with respx.mock(assert_all_mocked=True) as router:
        router.get(f"{NASDAQ}/calendar/earnings").mock(ok("nasdaq", "error.json"))
        with pytest.raises(ProviderDataError, match="rCode 400"):
            await nasdaq.earnings(date(2026, 2, 3), date(2026, 2, 3), [])


@pytest.mark.anyio
async def test_requests_carry_browser_headers_and_batch_symbols(nasdaq):
    with respx.mock(assert_all_mocked=True) as router:
        route = router.get(f"{NASDAQ}/quote/basic").mock(ok("nasdaq", "quote_basic.json"))
        quotes = await nasdaq.quotes(["AAPL", "MSFT"])
    request = route.calls.last.request
    assert request.url.params.get_list("symbol") == ["aapl|stocks", "msft|stocks"]
    assert request.headers["Origin"] == "https://www.nasdaq.com"
    assert request.headers["Referer"] == "https://www.nasdaq.com/"
    assert request.headers["User-Agent"].startswith("Mozilla/5.0")
    assert quotes["MSFT"].prev_close == 491.71


@pytest.mark.anyio
async def test_price_targets_are_unsupported(nasdaq):
    with pytest.raises(ProviderUnsupported):
        await nasdaq.price_targets("AAPL")


@pytest.mark.anyio
async def test_a_record_without_a_price_is_absent(nasdaq):
    body = {
        "data": {
            "records": [
                {"key": "ZZZZ|STOCKS", "ticker": ["ZZZZ", ""], "lastSale": "N/A", "change": "N/A"}
            ]
        },
        "message": None,
        "status": {"rCode": 200},
    }
    with respx.mock(assert_all_mocked=True) as router:
        router.get(f"{NASDAQ}/quote/basic").mock(httpx.Response(200, json=body))
        assert await nasdaq.quotes(["ZZZZ"]) == {}
