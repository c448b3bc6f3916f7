"""Nasdaq's keyless public API: earnings calendar with EPS and surprise, batch quotes.

Endpoints (base `NASDAQ_BASE_URL`, default https://api.nasdaq.com/api), sent with
browser-like headers (without them requests hang):

- `/calendar/earnings?date=YYYY-MM-DD`: one day a call, so weekends are skipped. Numbers
  are text (`"$0.46"`, `"($0.14)"`, `"N/A"`, `""`), parsed by `base.text_number`. Future
  days lack the `eps`/`surprise` keys; an empty day is `"rows": null`. No revenue and no
  fiscal year or quarter numbers (only `"Sep/2023"`), so those stay unknown.
- `/quote/basic?symbol=aapl|stocks&symbol=msft|stocks`: `data.records[]` with `lastSale`
  and `change` as text; the previous close is `lastSale - change`.
- Every answer is an envelope whose `status.rCode` must be 200 even when HTTP says 200.
Nasdaq has no price targets here: `price_targets()` is unsupported.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any, ClassVar, Final

from service.clock import Clock
from service.config import Settings
from service.errors import ProviderDataError, ProviderUnavailable, ProviderUnsupported
from service.httpclient import build_client
from service.market import EarningsEvent, PriceTargets, Quote, ReportTime
from service.providers import base
from service.providers.limiter import Rate, RateLimiter
from service.providers.plugin import Capability, ProviderType, Setting
from service.providers.wire import fetch

if TYPE_CHECKING:  # httpx loads with the client (build_client), not with the registry
    import httpx

TIMES: Final = {"time-pre-market": ReportTime.BMO, "time-after-hours": ReportTime.AMC}
BROWSER_HEADERS: Final = {
    "Accept": "application/json, text/plain, */*",
    "Accept-Language": "en-US,en;q=0.9",
    "Origin": "https://www.nasdaq.com",
    "Referer": "https://www.nasdaq.com/",
    "User-Agent": (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
        "(KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"
    ),
}


def _build(settings: Settings, clock: Clock | None) -> NasdaqProvider:
    client = build_client(
        timeout=settings.http_timeout.total_seconds(),
        headers=dict(BROWSER_HEADERS),
        base_url=PROVIDER.base_url_of(settings),
    )
    return NasdaqProvider(client, PROVIDER.limiter(clock))


PROVIDER: Final = ProviderType(
    name="nasdaq",
    factory=_build,
    capabilities=frozenset({Capability.QUOTES, Capability.EARNINGS}),
    # Repeated `symbol=` parameters; 25 keep the URL under 1,000 characters.
    max_batch=25,
    base_url=Setting("NASDAQ_BASE_URL", "nasdaq_base_url"),
    # Nasdaq publishes no limit; one call a second keeps us polite.
    rates=(Rate(1, 1.0),),
    # One call per weekday, whatever the symbols.
    calendar_calls=lambda days, symbols: -(-days * 5 // 7),
)


class NasdaqProvider:
    """api.nasdaq.com over one AsyncClient whose base URL is the API root."""

    name: ClassVar[str] = PROVIDER.name
    max_batch: ClassVar[int] = PROVIDER.max_batch

    def __init__(self, client: httpx.AsyncClient, limiter: RateLimiter | None = None) -> None:
        self._client = client
        self._limiter = limiter or PROVIDER.limiter()

    async def aclose(self) -> None:
        await self._client.aclose()

    async def _get(self, endpoint: str, params: list[tuple[str, str]]) -> Any:
        answer = await fetch(
            self._client, self._limiter, self.name, endpoint, params, headers=BROWSER_HEADERS
        )
        if answer.status in (401, 403):
            # Keyless: a refusal is a bot check, which passes with time, not a bad key.
            raise ProviderUnavailable(self.name, f"{endpoint} refused us (HTTP {answer.status})")
        if answer.status != 200:
            raise ProviderDataError(self.name, f"{endpoint} answered HTTP {answer.status}")
        envelope = answer.json(self.name, endpoint)
        if not isinstance(envelope, dict):
            raise ProviderDataError(self.name, f"{endpoint} returned no envelope")
        status = envelope.get("status")
        code = status.get("rCode") if isinstance(status, dict) else None
        if code != 200:
            raise ProviderDataError(self.name, f"{endpoint} returned status rCode {code}")
        return envelope.get("data")

    async def quotes(self, symbols: Sequence[str]) -> dict[str, Quote]:
        """`ceil(n / max_batch)` calls of `/quote/basic`; unknown symbols are absent."""
        out: dict[str, Quote] = {}
        for batch in base.chunks(base.wanted(symbols), self.max_batch):
            params = [("symbol", f"{s.lower()}|stocks") for s in batch]
            data = await self._get("quote/basic", params)
            records = data.get("records") if isinstance(data, dict) else None
            asked = set(batch)
            for record in records if isinstance(records, list) else []:
                quote = _quote(record)
                if quote is not None and quote.symbol in asked:
                    out[quote.symbol] = quote
        return out

    async def earnings(self, start: date, end: date, symbols: Sequence[str]) -> list[EarningsEvent]:
        keep = frozenset(base.wanted(symbols))
        events: list[EarningsEvent] = []
        day = start
        while day <= end:
            if day.weekday() < 5:
                data = await self._get("calendar/earnings", [("date", day.isoformat())])
                rows = data.get("rows") if isinstance(data, dict) else None
                for row in rows if isinstance(rows, list) else []:
                    event = _event(day, row)
                    if event is not None and (not keep or event.symbol in keep):
                        events.append(event)
            day += timedelta(days=1)
        return base.dedupe(events)

    async def price_targets(self, symbol: str) -> PriceTargets | None:
        raise ProviderUnsupported(self.name, "price targets are not provided")


def _quote(record: object) -> Quote | None:
    if not isinstance(record, dict):
        return None
    ticker = record.get("ticker")
    key = record.get("key")
    if isinstance(ticker, list) and ticker and isinstance(ticker[0], str):
        symbol = ticker[0]
    elif isinstance(key, str):
        symbol = key.split("|", 1)[0]
    else:
        return None
    price = base.price(base.text_number(record.get("lastSale")))
    if price is None:
        return None
    change = base.text_number(record.get("change"))
    prev_close = base.price(round(price - change, 6)) if change is not None else None
    return Quote(symbol=symbol.upper(), price=price, prev_close=prev_close)


def _event(day: date, row: object) -> EarningsEvent | None:
    if not isinstance(row, dict) or not isinstance(row.get("symbol"), str) or not row["symbol"]:
        return None
    return EarningsEvent(
        symbol=row["symbol"].upper(),
        date=day,
        time=base.report_time(row.get("time"), TIMES),
        eps_estimate=base.text_number(row.get("epsForecast")),
        eps_actual=base.text_number(row.get("eps")),
    )
