"""One suite for every HTTP provider: the same calls against each vendor's recorded payloads
give the same domain values, the same unknowns and the same error classes."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx

from service.clock import FakeClock
from service.errors import (
    ProviderAuthError,
    ProviderDataError,
    ProviderError,
    ProviderRateLimited,
    ProviderUnavailable,
)
from service.market import ReportTime
from tests.providers.conftest import (
    FINNHUB,
    FIXTURES,
    FMP,
    KEY,
    NASDAQ,
    fixture_json,
    make_finnhub,
    make_fmp,
    make_nasdaq,
    ok,
)

LUMN_DAY = date(2026, 2, 3)


def serve_finnhub(request: httpx.Request) -> httpx.Response:
    path, params = request.url.path, request.url.params
    if path.endswith("/quote"):
        name = f"quote_{params['symbol']}.json"
        exists = (FIXTURES / "finnhub" / name).exists()
        return ok("finnhub", name if exists else "quote_unknown.json")
    if path.endswith("/calendar/earnings"):
        symbol = params.get("symbol")
        first, last = date.fromisoformat(params["from"]), date.fromisoformat(params["to"])
        hit = first <= LUMN_DAY <= last and symbol in (None, "LUMN")
        return ok("finnhub", "calendar_LUMN.json" if hit else "calendar_empty.json")
    if path.endswith("/stock/price-target"):
        return ok("finnhub", "price_target.json")
    return httpx.Response(404)


def serve_fmp(request: httpx.Request) -> httpx.Response:
    path, params = request.url.path, request.url.params
    if path.endswith("/batch-quote"):
        asked = params["symbols"].split(",")
        rows = fixture_json("fmp", "batch_quote.json")
        return httpx.Response(200, json=[r for r in rows if r["symbol"] in asked])
    if path.endswith("/earnings-calendar"):
        if params["page"] != "0":
            return httpx.Response(200, json=[])
        first, last = params["from"], params["to"]
        rows = fixture_json("fmp", "earnings_calendar.json")
        return httpx.Response(200, json=[r for r in rows if first <= r["date"] <= last])
    return httpx.Response(404)


def serve_nasdaq(request: httpx.Request) -> httpx.Response:
    path, params = request.url.path, request.url.params
    if path.endswith("/quote/basic"):
        asked = {s.split("|")[0].upper() for s in params.get_list("symbol")}
        body = fixture_json("nasdaq", "quote_basic.json")
        body["data"]["records"] = [r for r in body["data"]["records"] if r["ticker"][0] in asked]
        return httpx.Response(200, json=body)
    if path.endswith("/calendar/earnings"):
        name = (
            "calendar_2026-02-03.json" if params["date"] == "2026-02-03" else "calendar_empty.json"
        )
        return ok("nasdaq", name)
    return httpx.Response(404)


@dataclass(frozen=True)
class Vendor:
    name: str
    base: str
    make: Callable[[FakeClock], Any]
    serve: Callable[[httpx.Request], httpx.Response]
    unauthorized: httpx.Response
    unauthorized_error: type[ProviderError]
    error_note: httpx.Response  # HTTP 200 that carries an error, not data
    error_note_error: type[ProviderError]
    nan_quote: str  # AAPL with a NaN or infinite price, as the vendor would write it
    has_revenue: bool = True
    has_time: bool = True


VENDORS = [
    Vendor(
        "finnhub",
        FINNHUB,
        make_finnhub,
        serve_finnhub,
        httpx.Response(401, json=fixture_json("finnhub", "error_invalid_key.json")),
        ProviderAuthError,
        httpx.Response(200, json={"error": "Something went wrong."}),
        ProviderDataError,
        '{"c":NaN,"d":null,"dp":null,"h":Infinity,"l":0,"o":0,"pc":266.18,"t":1771965875}',
    ),
    Vendor(
        "fmp",
        FMP,
        make_fmp,
        serve_fmp,
        httpx.Response(401, json=fixture_json("fmp", "error_invalid_key.json")),
        ProviderAuthError,
        httpx.Response(200, json=fixture_json("fmp", "error_limit.json")),
        ProviderRateLimited,
        '[{"symbol":"AAPL","price":1e999,"previousClose":266.18,"timestamp":1771965875}]',
    ),
    Vendor(
        "nasdaq",
        NASDAQ,
        make_nasdaq,
        serve_nasdaq,
        httpx.Response(403, text="<html>Access Denied</html>"),
        ProviderUnavailable,  # keyless: a refusal is a bot check that passes, not a bad key
        httpx.Response(200, json=fixture_json("nasdaq", "error.json")),
        ProviderDataError,
        '{"data":{"records":[{"key":"AAPL|STOCKS","ticker":["AAPL","Apple"],'
        '"lastSale":"NaN","change":"N/A"}]},"status":{"rCode":200}}',
        has_revenue=False,
    ),
]


@pytest.fixture(params=VENDORS, ids=lambda v: v.name)
def vendor(request: pytest.FixtureRequest) -> Vendor:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
async def provider(vendor: Vendor, clock: FakeClock) -> Any:
    built = vendor.make(clock)
    yield built
    await built.aclose()


@pytest.mark.anyio
async def test_quotes_are_domain_values_and_unknown_symbols_are_absent(vendor, provider):
    with respx.mock(assert_all_mocked=True) as router:
        router.route(url__startswith=vendor.base).mock(side_effect=vendor.serve)
        quotes = await provider.quotes(["AAPL", "msft", "ZZZZ"])
    assert set(quotes) == {"AAPL", "MSFT"}
    aapl = quotes["AAPL"]
    assert (aapl.symbol, aapl.price, aapl.prev_close) == ("AAPL", 272.11, 266.18)
    assert quotes["MSFT"].price == 496.37
    if vendor.name != "nasdaq":  # Nasdaq's batch quote has no range and no timestamp
        assert (aapl.day_high, aapl.day_low) == (274.89, 267.74)
        assert aapl.time == datetime.fromtimestamp(1771965875, UTC)


@pytest.mark.anyio
async def test_earnings_give_one_reported_lumn_event(vendor, provider):
    with respx.mock(assert_all_mocked=True) as router:
        router.route(url__startswith=vendor.base).mock(side_effect=vendor.serve)
        events = await provider.earnings(date(2026, 2, 2), date(2026, 2, 6), ["LUMN"])
    assert len(events) == 1
    event = events[0]
    assert (event.symbol, event.date, event.time) == ("LUMN", LUMN_DAY, ReportTime.AMC)
    assert (event.eps_estimate, event.eps_actual) == (-0.21, 0.23)
    assert event.reported
    if vendor.has_revenue:
        assert (event.revenue_estimate, event.revenue_actual) == (3_080_000_000, 3_041_000_000)
        assert event.fiscal_period == "2025Q4"
    else:
        assert event.revenue_actual is None and event.fiscal_period is None


FAULTS: list[tuple[str, Any, type[ProviderError]]] = [
    (
        "429",
        httpx.Response(429, headers={"Retry-After": "2"}, json={"error": "limit"}),
        ProviderRateLimited,
    ),
    ("500", httpx.Response(500, text="Internal Server Error"), ProviderUnavailable),
    ("502", httpx.Response(502, text="<html>Bad Gateway</html>"), ProviderUnavailable),
    ("503", httpx.Response(503, headers={"Retry-After": "7"}), ProviderUnavailable),
    ("not-json", httpx.Response(200, text="not json"), ProviderDataError),
    ("truncated", httpx.Response(200, text='{"c": 272.1'), ProviderDataError),
    ("html", httpx.Response(200, text="<!doctype html><html></html>"), ProviderDataError),
    ("connect-timeout", httpx.ConnectTimeout, ProviderUnavailable),
    ("read-timeout", httpx.ReadTimeout, ProviderUnavailable),
    ("connect-error", httpx.ConnectError, ProviderUnavailable),
    ("protocol-error", httpx.RemoteProtocolError, ProviderUnavailable),
]


@pytest.mark.anyio
@pytest.mark.parametrize(("fault", "effect", "error"), FAULTS, ids=[f[0] for f in FAULTS])
async def test_each_fault_is_one_typed_error_and_never_a_quote(
    vendor, provider, fault, effect, error
):
    with respx.mock(assert_all_mocked=True) as router:
        route = router.route(url__startswith=vendor.base)
        route.mock(side_effect=effect) if isinstance(effect, type) else route.mock(effect)
        with pytest.raises(error) as caught:
            await provider.quotes(["AAPL"])
    assert caught.value.provider == vendor.name
    assert str(caught.value).startswith(f"{vendor.name}: ")
    if fault == "429":
        assert caught.value.retry_after == 2


@pytest.mark.anyio
async def test_a_refused_key_is_one_clear_error(vendor, provider):
    with respx.mock(assert_all_mocked=True) as router:
        router.route(url__startswith=vendor.base).mock(vendor.unauthorized)
        with pytest.raises(vendor.unauthorized_error) as caught:
            await provider.quotes(["AAPL"])
    if vendor.unauthorized_error is ProviderAuthError:
        variable = f"{vendor.name.upper()}_API_KEY"
        assert str(caught.value) == (
            f"{vendor.name}: the API key was refused (HTTP 401); set {variable} to a valid key"
        )
        assert not caught.value.retryable


@pytest.mark.anyio
async def test_http_200_with_an_error_note_is_an_error_not_data(vendor, provider):
    with respx.mock(assert_all_mocked=True) as router:
        router.route(url__startswith=vendor.base).mock(vendor.error_note)
        with pytest.raises(vendor.error_note_error):
            await provider.quotes(["AAPL"])


@pytest.mark.anyio
async def test_nan_and_infinite_prices_are_unknown(vendor, provider):
    with respx.mock(assert_all_mocked=True) as router:
        router.route(url__startswith=vendor.base).mock(httpx.Response(200, text=vendor.nan_quote))
        quotes = await provider.quotes(["AAPL"])
    assert "AAPL" not in quotes
    assert all(q.price is not None and math.isfinite(q.price) for q in quotes.values())


@pytest.mark.anyio
async def test_500_symbols_cost_the_fewest_requests_the_provider_allows(vendor, provider):
    symbols = [f"S{i:03d}" for i in range(500)]
    with respx.mock(assert_all_mocked=True) as router:
        route = router.route(url__startswith=vendor.base).mock(side_effect=vendor.serve)
        await provider.quotes(symbols)
    assert route.call_count == math.ceil(500 / provider.max_batch)
    assert {"finnhub": 500, "fmp": 5, "nasdaq": 20}[vendor.name] == route.call_count
    assert max(len(str(call.request.url)) for call in route.calls) < 2000


@pytest.mark.anyio
async def test_the_key_goes_only_where_the_provider_expects_it(vendor, provider, caplog):
    caplog.set_level(logging.DEBUG)
    errors: list[str] = []
    with respx.mock(assert_all_mocked=True) as router:
        route = router.route(url__startswith=vendor.base).mock(side_effect=vendor.serve)
        await provider.quotes(["AAPL", "MSFT"])
        await provider.earnings(date(2026, 2, 2), date(2026, 2, 4), ["LUMN"])
        for effect in (vendor.unauthorized, httpx.Response(500), httpx.ReadTimeout):
            route.mock(side_effect=effect)
            try:
                await provider.quotes(["AAPL"])
            except ProviderError as exc:
                errors.append(str(exc))
                errors.append(repr(exc))
    assert len(errors) == 6
    for call in route.calls:
        url = call.request.url
        params = url.params
        without_key = url.copy_remove_param("apikey") if vendor.name == "fmp" else url
        assert KEY not in str(without_key)
        if vendor.name == "fmp":
            assert params["apikey"] == KEY
        other_headers = {k: v for k, v in call.request.headers.items() if k != "x-finnhub-token"}
        assert KEY not in str(other_headers)
        if vendor.name == "finnhub":
            assert call.request.headers["X-Finnhub-Token"] == KEY
    assert not any(KEY in text for text in errors)
    assert KEY not in caplog.text


def test_every_fixture_is_used_by_a_test():
    names = {p.name for p in (FIXTURES).glob("*/*")}
    sources = "".join(p.read_text() for p in Path(__file__).parent.glob("test_*.py"))
    missing = sorted(n for n in names if n not in sources and not n.startswith("quote_"))
    assert missing == []
