"""FMP's quirks: the 4,000-row page cap, 402 with a plain-text body, error notes with HTTP
200, the global calendar, and `fiscalPeriod` strings."""

from __future__ import annotations

from datetime import date

import httpx
import pytest
import respx

from service.errors import ProviderAuthError, ProviderRateLimited, ProviderUnsupported
from tests.providers.conftest import FMP, KEY, fixture_json, fixture_text, make_fmp


@pytest.fixture
async def fmp(clock):
    provider = make_fmp(clock)
    yield provider
    await provider.aclose()


def row(symbol: str, day: str) -> dict[str, object]:
    return {
        "symbol": symbol,
        "date": day,
        "epsActual": None,
        "epsEstimated": 1.0,
        "revenueActual": None,
        "revenueEstimated": None,
        "time": None,
        "fiscalPeriod": "Q1",
        "fiscalYear": 2026,
        "lastUpdated": "2026-05-01",
    }


@pytest.mark.anyio
async def test_a_full_page_is_followed_by_the_next_until_a_short_one(fmp):
    pages = {
        "0": [row(f"A{i}", "2026-05-14") for i in range(4000)],
        "1": [row("LATE", "2026-05-13")] + [row(f"B{i}", "2026-05-15") for i in range(10)],
    }

    def serve(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=pages[request.url.params["page"]])

    with respx.mock(assert_all_mocked=True) as router:
        route = router.get(f"{FMP}/earnings-calendar").mock(side_effect=serve)
        events = await fmp.earnings(date(2026, 5, 13), date(2026, 5, 19), ["LATE"])
    assert [c.request.url.params["page"] for c in route.calls] == ["0", "1"]
    assert [e.symbol for e in events] == ["LATE"]


@pytest.mark.anyio
async def test_a_month_is_read_in_seven_day_windows(fmp):
    with respx.mock(assert_all_mocked=True) as router:
        route = router.get(f"{FMP}/earnings-calendar").mock(httpx.Response(200, json=[]))
        await fmp.earnings(date(2026, 2, 1), date(2026, 2, 28), ["LUMN"])
    params = [c.request.url.params for c in route.calls]
    assert (params[0]["from"], params[0]["to"]) == ("2026-02-01", "2026-02-07")
    assert len(params) == 4 and all(p["includeReportTimes"] == "true" for p in params)


@pytest.mark.anyio
async def test_without_symbols_foreign_listings_are_left_out(fmp):
    rows = fixture_json("fmp", "earnings_calendar.json")
    with respx.mock(assert_all_mocked=True) as router:
        router.get(f"{FMP}/earnings-calendar").mock(httpx.Response(200, json=rows))
        events = await fmp.earnings(date(2026, 2, 2), date(2026, 2, 6), [])
    assert [e.symbol for e in events] == ["LUMN", "RAMP", "AUC"]
    auc = events[2]
    assert auc.eps_estimate is None and auc.time.value == "unknown" and not auc.reported


@pytest.mark.anyio
async def test_402_with_a_plain_text_body_is_a_missing_capability(fmp):
    paywall = httpx.Response(
        402,
        text=fixture_text("fmp", "payment_required.txt"),
        headers={"Content-Type": "application/json; charset=utf-8"},
    )
    with respx.mock(assert_all_mocked=True) as router:
        router.get(f"{FMP}/batch-quote").mock(paywall)
        with pytest.raises(ProviderUnsupported):
            await fmp.quotes(["QQQ"])


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("name", "error"),
    [
        ("error_invalid_key.json", ProviderAuthError),
        ("error_limit.json", ProviderRateLimited),
        ("error_legacy.json", ProviderUnsupported),
    ],
)
async def test_error_notes_with_http_200_are_errors(fmp, name, error):
    with respx.mock(assert_all_mocked=True) as router:
        router.get(f"{FMP}/batch-quote").mock(httpx.Response(200, json=fixture_json("fmp", name)))
        with pytest.raises(error) as caught:
            await fmp.quotes(["AAPL"])
    assert KEY not in str(caught.value)


@pytest.mark.anyio
async def test_the_daily_quota_fails_fast_instead_of_waiting_a_day(fmp):
    with respx.mock(assert_all_mocked=True) as router:
        route = router.get(f"{FMP}/batch-quote").mock(httpx.Response(200, json=[]))
        for _ in range(250):
            await fmp.quotes(["AAPL"])
        with pytest.raises(ProviderRateLimited) as caught:
            await fmp.quotes(["AAPL"])
    assert route.call_count == 250 and caught.value.retry_after > 3600


@pytest.mark.anyio
async def test_price_targets_are_unsupported(fmp):
    with pytest.raises(ProviderUnsupported):
        await fmp.price_targets("AAPL")
