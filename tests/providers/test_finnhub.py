"""Finnhub's quirks: empty `hour`, duplicate rows, unsorted rows, truncation, foreign
listings, `t == 0`, and the free tier's 403 on price targets."""

from __future__ import annotations

from datetime import UTC, date, datetime

import httpx
import pytest
import respx

from service.errors import ProviderUnsupported
from service.market import ReportTime
from tests.providers.conftest import FINNHUB, fixture_json, make_finnhub, ok


@pytest.fixture
async def finnhub(clock):
    provider = make_finnhub(clock)
    yield provider
    await provider.aclose()


@pytest.mark.anyio
async def test_duplicate_rows_keep_the_latest_fiscal_period_and_rows_come_back_sorted(finnhub):
    with respx.mock(assert_all_mocked=True) as router:
        router.get(f"{FINNHUB}/calendar/earnings").mock(ok("finnhub", "calendar_duplicates.json"))
        events = await finnhub.earnings(date(2020, 7, 1), date(2022, 3, 3), [])
    assert [(e.symbol, e.date.isoformat()) for e in events] == [
        ("BAC", "2020-07-16"),
        ("AAOI", "2022-03-01"),
        ("CHPT", "2022-03-02"),
        ("NVDA", "2022-03-03"),
    ]
    # CHPT's real rows (Finnhub-API#479): 2021Q4 carries `hour: "amc"`, 2022Q4 `hour: ""`.
    # The report of that day is 2022Q4; its time of day is taken from the other row.
    chpt = events[2]
    assert (chpt.fiscal_period, chpt.time) == ("2022Q4", ReportTime.AMC)
    assert (chpt.eps_estimate, chpt.eps_actual, chpt.revenue_estimate) == (
        -0.1521,
        -0.17,
        76545819,
    )
    aaoi = events[1]
    assert aaoi.time is ReportTime.UNKNOWN and aaoi.fiscal_period is None  # no quarter/year
    assert not aaoi.reported and aaoi.revenue_estimate == 194287968


@pytest.mark.anyio
@pytest.mark.parametrize("order", [1, -1])
async def test_dg_duplicate_day_keeps_the_later_fiscal_year(finnhub, order):
    # DG 2023-06-01 (Finnhub-API#523): 2024Q1 and 2023Q1 on one day, both `bmo`; rows come
    # unsorted, so the choice must not depend on their order.
    rows = fixture_json("finnhub", "calendar_DG.json")["earningsCalendar"][::order]
    with respx.mock(assert_all_mocked=True) as router:
        router.get(f"{FINNHUB}/calendar/earnings").mock(
            httpx.Response(200, json={"earningsCalendar": rows})
        )
        events = await finnhub.earnings(date(2023, 3, 1), date(2023, 12, 9), ["DG"])
    june = [e for e in events if e.date == date(2023, 6, 1)]
    assert [(e.fiscal_period, e.eps_estimate, e.eps_actual) for e in june] == [
        ("2024Q1", 2.4521, 2.34)
    ]


@pytest.mark.anyio
async def test_many_symbols_read_the_calendar_in_three_day_windows(finnhub):
    with respx.mock(assert_all_mocked=True) as router:
        route = router.get(f"{FINNHUB}/calendar/earnings").mock(
            ok("finnhub", "calendar_empty.json")
        )
        await finnhub.earnings(date(2026, 2, 1), date(2026, 2, 28), [f"S{i}" for i in range(50)])
    windows = [(c.request.url.params["from"], c.request.url.params["to"]) for c in route.calls]
    assert len(windows) == 10 and windows[0] == ("2026-02-01", "2026-02-03")
    assert all("symbol" not in c.request.url.params for c in route.calls)


@pytest.mark.anyio
async def test_a_full_window_is_split_until_it_is_not_truncated(finnhub):
    full = {"earningsCalendar": [{"symbol": "X", "date": "2026-02-01", "hour": ""}] * 1500}

    def serve(request: httpx.Request) -> httpx.Response:
        first, last = request.url.params["from"], request.url.params["to"]
        return httpx.Response(200, json=full if first != last else {"earningsCalendar": []})

    with respx.mock(assert_all_mocked=True) as router:
        route = router.get(f"{FINNHUB}/calendar/earnings").mock(side_effect=serve)
        await finnhub.earnings(date(2026, 2, 1), date(2026, 2, 3), [])
    spans = [(c.request.url.params["from"], c.request.url.params["to"]) for c in route.calls]
    assert spans[0] == ("2026-02-01", "2026-02-03")
    assert ("2026-02-03", "2026-02-03") in spans and len(spans) == 5


@pytest.mark.anyio
async def test_a_symbol_that_comes_back_as_another_listing_is_dropped(finnhub):
    with respx.mock(assert_all_mocked=True) as router:
        route = router.get(f"{FINNHUB}/calendar/earnings").mock(ok("finnhub", "calendar_TSM.json"))
        events = await finnhub.earnings(date(2026, 10, 1), date(2026, 10, 31), ["TSM"])
    assert events == [] and route.calls.last.request.url.params["symbol"] == "TSM"


@pytest.mark.anyio
async def test_price_targets_are_parsed(finnhub):
    with respx.mock(assert_all_mocked=True) as router:
        router.get(f"{FINNHUB}/stock/price-target").mock(ok("finnhub", "price_target.json"))
        targets = await finnhub.price_targets("lumn")
    assert targets is not None
    assert (targets.symbol, targets.median, targets.mean, targets.high, targets.low) == (
        "LUMN",
        7.56,
        7.4,
        10.0,
        4.0,
    )
    assert targets.updated == datetime(2026, 1, 30, tzinfo=UTC)


@pytest.mark.anyio
async def test_the_free_tier_403_on_price_targets_is_a_missing_capability(finnhub):
    refusal = httpx.Response(403, json=fixture_json("finnhub", "error_no_access.json"))
    with respx.mock(assert_all_mocked=True) as router:
        router.get(f"{FINNHUB}/stock/price-target").mock(refusal)
        with pytest.raises(ProviderUnsupported):
            await finnhub.price_targets("LUMN")


@pytest.mark.anyio
async def test_a_symbol_outside_the_plan_is_skipped_and_the_others_kept(finnhub):
    def serve(request: httpx.Request) -> httpx.Response:
        if request.url.params["symbol"] == "AAPL":
            return ok("finnhub", "quote_AAPL.json")
        return ok("finnhub", "error_no_access.json")

    with respx.mock(assert_all_mocked=True) as router:
        router.get(f"{FINNHUB}/quote").mock(side_effect=serve)
        quotes = await finnhub.quotes(["AAPL", "VOD.L"])
    assert set(quotes) == {"AAPL"}


@pytest.mark.anyio
async def test_a_zero_quote_with_t_zero_is_no_quote(finnhub):
    with respx.mock(assert_all_mocked=True) as router:
        router.get(f"{FINNHUB}/quote").mock(ok("finnhub", "quote_unknown.json"))
        assert await finnhub.quotes(["ZZZZ"]) == {}


@pytest.mark.anyio
async def test_the_rate_limit_body_of_a_429_is_a_rate_limit(finnhub):
    limited = httpx.Response(429, json=fixture_json("finnhub", "error_limit.json"))
    with respx.mock(assert_all_mocked=True) as router:
        router.get(f"{FINNHUB}/quote").mock(limited)
        with pytest.raises(Exception, match="HTTP 429") as caught:
            await finnhub.quotes(["AAPL"])
    assert caught.value.retry_after == 60  # no Retry-After: the default pause


@pytest.mark.anyio
async def test_a_429_with_an_http_date_retry_after_pauses_until_that_date(finnhub):
    # Measured against the response's Date, not our clock (a real one, far from 2026-02-04).
    limited = httpx.Response(
        429,
        headers={
            "Retry-After": "Wed, 04 Feb 2026 15:00:45 GMT",
            "Date": "Wed, 04 Feb 2026 15:00:00 GMT",
        },
        json=fixture_json("finnhub", "error_limit.json"),
    )
    with respx.mock(assert_all_mocked=True) as router:
        router.get(f"{FINNHUB}/quote").mock(limited)
        with pytest.raises(Exception, match="HTTP 429; pausing 45 s") as caught:
            await finnhub.quotes(["AAPL"])
    assert caught.value.retry_after == 45


@pytest.mark.anyio
async def test_500_quotes_stay_within_60_a_minute(finnhub, clock):
    times: list[datetime] = []

    def serve(request: httpx.Request) -> httpx.Response:
        times.append(clock.now())
        return ok("finnhub", "quote_AAPL.json")

    with respx.mock(assert_all_mocked=True) as router:
        router.get(f"{FINNHUB}/quote").mock(side_effect=serve)
        await finnhub.quotes([f"S{i}" for i in range(500)])
    assert len(times) == 500
    for i in range(60, 500):
        assert (times[i] - times[i - 60]).total_seconds() >= 62  # 2 s of margin on 60
    # Bursts of 60 per 62 s: the 500th call goes out 8 windows after the first.
    assert (times[-1] - times[0]).total_seconds() == 8 * 62
