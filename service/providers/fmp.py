"""Financial Modeling Prep, stable API: earnings calendar and batch quotes.

Endpoints (base `FMP_BASE_URL`, default https://financialmodelingprep.com/stable). FMP takes
the key only as the `apikey` query parameter; `fmp_client()` adds it in the transport, so
the URLs httpx logs and our errors name never hold it.

- `/earnings-calendar?from&to&page&includeReportTimes=true`: at most 4,000 rows a page,
  silently truncated from the front of the range, so windows are 7 days and pages are
  read until one comes back short. Field names are `epsEstimated`/`revenueEstimated`;
  `time` is bmo/amc/null; `fiscalPeriod` is `Q1`..`Q4`. The calendar is global: rows are
  filtered to the symbols asked for (or, when none are, to symbols without a `.` suffix).
- `/batch-quote?symbols=A,B`: up to `max_batch` symbols a call.
- 402 with a plain-text body (a paywalled symbol or endpoint): ProviderUnsupported.
- Errors also arrive as `{"Error Message": ...}` with HTTP 200 (older behaviour).
FMP has no price targets on the free tier here: `price_targets()` is unsupported.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import date
from typing import TYPE_CHECKING, Any, ClassVar, Final

from pydantic import SecretStr

from service.clock import Clock
from service.config import Settings
from service.errors import (
    ProviderDataError,
    ProviderError,
    ProviderRateLimited,
    ProviderUnsupported,
)
from service.httpclient import build_client
from service.market import EarningsEvent, PriceTargets, Quote, ReportTime
from service.providers import base
from service.providers.limiter import Rate, RateLimiter
from service.providers.plugin import Capability, ProviderType, Setting
from service.providers.wire import auth_error, fetch

if TYPE_CHECKING:  # httpx loads with the client (build_client), not with the registry
    import httpx

TIMES: Final = {"bmo": ReportTime.BMO, "amc": ReportTime.AMC}
#: Rows per calendar page; a full page means there may be more.
PAGE_ROWS: Final = 4000
WINDOW_DAYS: Final = 7
#: Pages read per window at most (a runaway guard; a week has never needed more than 2).
MAX_PAGES: Final = 5
KEY_VARIABLE: Final = "FMP_API_KEY"
_QUARTER: Final = re.compile(r"^Q([1-4])$")


def _build(settings: Settings, clock: Clock | None) -> FmpProvider:
    key = PROVIDER.api_key(settings)
    client = fmp_client(
        PROVIDER.base_url_of(settings), key, timeout=settings.http_timeout.total_seconds()
    )
    return FmpProvider(client, PROVIDER.limiter(clock))


PROVIDER: Final = ProviderType(
    name="fmp",
    factory=_build,
    capabilities=frozenset({Capability.QUOTES, Capability.EARNINGS}),
    # 100 symbols keep the URL near 600 characters; 500 symbols cost 5 of 250 daily calls.
    max_batch=100,
    key=Setting(KEY_VARIABLE, "fmp_api_key"),
    base_url=Setting("FMP_BASE_URL", "fmp_base_url"),
    # Free tier: 250 calls a day. Never waits: a spent day fails over at once.
    rates=(Rate(250, 86_400.0), Rate(5, 1.0)),
    max_wait=2.0,
    # One page per 7-day window at least (a busy week takes more pages).
    calendar_calls=lambda days, symbols: -(-days // WINDOW_DAYS),
)


class FmpProvider:
    """FMP's stable API over one AsyncClient whose base URL is the API root."""

    name: ClassVar[str] = PROVIDER.name
    max_batch: ClassVar[int] = PROVIDER.max_batch

    def __init__(self, client: httpx.AsyncClient, limiter: RateLimiter | None = None) -> None:
        """`client` comes from `fmp_client()`, which holds the key."""
        self._client = client
        self._limiter = limiter or PROVIDER.limiter()

    async def aclose(self) -> None:
        await self._client.aclose()

    async def _get(self, endpoint: str, params: dict[str, str]) -> Any:
        answer = await fetch(
            self._client,
            self._limiter,
            self.name,
            endpoint,
            params,
        )
        if answer.status in (401, 403):
            raise auth_error(self.name, answer.status, KEY_VARIABLE)
        if answer.status == 402:
            # The body is plain text despite its JSON content type.
            raise ProviderUnsupported(self.name, f"{endpoint} is not in this plan (HTTP 402)")
        if answer.status != 200:
            raise ProviderDataError(self.name, f"{endpoint} answered HTTP {answer.status}")
        data = answer.json(self.name, endpoint)
        if isinstance(data, dict):
            raise self._note(endpoint, data)
        if not isinstance(data, list):
            raise ProviderDataError(self.name, f"{endpoint} returned no list")
        return data

    def _note(self, endpoint: str, data: dict[str, Any]) -> ProviderError:
        note = str(data.get("Error Message") or data.get("error") or "an object, not a list")
        lower = note.lower()
        if "api key" in lower:
            return auth_error(self.name, 200, KEY_VARIABLE)
        if "limit reach" in lower:
            return ProviderRateLimited(self.name, f"{endpoint}: daily limit reached")
        if "legacy" in lower or "subscription" in lower:
            return ProviderUnsupported(self.name, f"{endpoint} is not in this plan")
        return ProviderDataError(self.name, f"{endpoint} returned an error note: {note[:120]}")

    async def quotes(self, symbols: Sequence[str]) -> dict[str, Quote]:
        """`ceil(n / max_batch)` calls of `/batch-quote`; unknown symbols are absent."""
        out: dict[str, Quote] = {}
        for batch in base.chunks(base.wanted(symbols), self.max_batch):
            rows = await self._get("batch-quote", {"symbols": ",".join(batch)})
            asked = set(batch)
            for row in rows:
                quote = _quote(row)
                if quote is not None and quote.symbol in asked:
                    out[quote.symbol] = quote
        return out

    async def earnings(self, start: date, end: date, symbols: Sequence[str]) -> list[EarningsEvent]:
        keep = frozenset(base.wanted(symbols))
        events: list[EarningsEvent] = []
        for first, last in base.windows(start, end, WINDOW_DAYS):
            for page in range(MAX_PAGES):
                rows = await self._get(
                    "earnings-calendar",
                    {
                        "from": first.isoformat(),
                        "to": last.isoformat(),
                        "page": str(page),
                        "includeReportTimes": "true",
                    },
                )
                for row in rows:
                    event = _event(row)
                    if event is None or (not keep and "." in event.symbol):
                        continue
                    # Some rows are re-dated a day past the window they were selected by.
                    if keep and event.symbol not in keep:
                        continue
                    events.append(event)
                if len(rows) < PAGE_ROWS:
                    break
        return base.dedupe(e for e in events if base.in_range(e, start, end, keep))

    async def price_targets(self, symbol: str) -> PriceTargets | None:
        raise ProviderUnsupported(self.name, "price targets are not provided")


def fmp_client(base_url: str, api_key: SecretStr, *, timeout: float = 10.0) -> httpx.AsyncClient:
    """An AsyncClient for FMP whose transport adds `apikey` to every request."""
    import httpx

    from service.httptransport import QueryKeyTransport

    transport = QueryKeyTransport(
        httpx.AsyncHTTPTransport(
            limits=httpx.Limits(max_connections=20, max_keepalive_connections=10)
        ),
        "apikey",
        api_key,
    )
    return build_client(timeout=timeout, base_url=base_url.rstrip("/") + "/", transport=transport)


def _quote(row: object) -> Quote | None:
    if not isinstance(row, dict) or not isinstance(row.get("symbol"), str):
        return None
    price = base.price(row.get("price"))
    if price is None:
        return None
    return Quote(
        symbol=row["symbol"].upper(),
        price=price,
        prev_close=base.price(row.get("previousClose")),
        day_high=base.price(row.get("dayHigh")),
        day_low=base.price(row.get("dayLow")),
        time=base.epoch(row.get("timestamp")),
        open=base.price(row.get("open")),
    )


def _event(row: object) -> EarningsEvent | None:
    if not isinstance(row, dict):
        return None
    symbol, day = row.get("symbol"), base.iso_date(row.get("date"))
    if not isinstance(symbol, str) or not symbol or day is None:
        return None
    period = row.get("fiscalPeriod")
    match = _QUARTER.match(period) if isinstance(period, str) else None
    return EarningsEvent(
        symbol=symbol.upper(),
        date=day,
        time=base.report_time(row.get("time"), TIMES),
        fiscal_year=base.whole(row.get("fiscalYear")) if match else None,
        fiscal_quarter=int(match.group(1)) if match else None,
        eps_estimate=base.number(row.get("epsEstimated")),
        eps_actual=base.number(row.get("epsActual")),
        revenue_estimate=base.number(row.get("revenueEstimated")),
        revenue_actual=base.number(row.get("revenueActual")),
    )
