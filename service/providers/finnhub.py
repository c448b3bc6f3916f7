"""Finnhub (the default): earnings calendar with EPS and revenue, quotes, price targets.

Endpoints (base `FINNHUB_BASE_URL`, default https://finnhub.io/api/v1), key in the
`X-Finnhub-Token` header so it never appears in a URL:

- `/calendar/earnings?from&to[&symbol]`: `hour` is bmo/amc/dmh or "" (unknown); rows come
  unsorted and duplicated for one date with different fiscal years (de-duplicated by
  `base.dedupe`); wide windows are truncated near 1,500 rows, so the whole-market calendar
  is read in 3-day windows and a window that comes back full is split in half again.
- `/quote?symbol`: one symbol per call (no batch). `t == 0` and zero prices mean no quote.
- `/stock/price-target?symbol`: HTTP 403 on the free tier, which is a missing capability
  (ProviderUnsupported), not a bad key.

Calendar cost: per-symbol calls cost one call per symbol, windows one call per 3 days
(whatever the symbols); `earnings()` takes whichever is fewer.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any, ClassVar, Final

from pydantic import SecretStr

from service.clock import Clock
from service.config import Settings
from service.errors import (
    ProviderDataError,
    ProviderUnavailable,
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

log = logging.getLogger(__name__)

HOURS: Final = {"bmo": ReportTime.BMO, "amc": ReportTime.AMC, "dmh": ReportTime.DMH}
#: Finnhub truncates a calendar answer near this many rows.
TRUNCATION: Final = 1500
#: Days per whole-market calendar request (one project's measured safe size).
WINDOW_DAYS: Final = 3
KEY_VARIABLE: Final = "FINNHUB_API_KEY"
#: Quote calls failing on the transport in a row after which the rest are not tried.
GIVE_UP_AFTER: Final = 3


def _build(settings: Settings, clock: Clock | None) -> FinnhubProvider:
    key = PROVIDER.api_key(settings)
    client = build_client(
        timeout=settings.http_timeout.total_seconds(), base_url=PROVIDER.base_url_of(settings)
    )
    return FinnhubProvider(client, key, PROVIDER.limiter(clock))


PROVIDER: Final = ProviderType(
    name="finnhub",
    factory=_build,
    # Price targets are a paid endpoint: on the free tier they end in ProviderUnsupported.
    capabilities=frozenset({Capability.QUOTES, Capability.EARNINGS, Capability.PRICE_TARGETS}),
    max_batch=1,  # `/quote` takes one symbol
    key=Setting(KEY_VARIABLE, "finnhub_api_key"),
    base_url=Setting("FINNHUB_BASE_URL", "finnhub_base_url"),
    stream_url=Setting("FINNHUB_STREAM_URL", "finnhub_stream_url"),  # finnhub_stream.py
    # Per symbol or per 3-day window, whichever is fewer (see `earnings`).
    calendar_calls=lambda days, symbols: min(symbols, math.ceil(days / WINDOW_DAYS)),
    # Free tier: 60 calls a minute, and 30 a second on every plan. A call is counted when
    # it takes its slot, before it leaves; the 2 s of margin keep the server's count
    # (which sees arrivals) at 60 in any 60 s even when the event loop is busy.
    rates=(Rate(60, 62.0), Rate(30, 1.0)),
)


class FinnhubProvider:
    """Finnhub over one AsyncClient whose base URL is the API root."""

    name: ClassVar[str] = PROVIDER.name
    max_batch: ClassVar[int] = PROVIDER.max_batch

    def __init__(
        self, client: httpx.AsyncClient, api_key: SecretStr, limiter: RateLimiter | None = None
    ) -> None:
        self._client = client
        self._key = api_key
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
            headers={"X-Finnhub-Token": self._key.get_secret_value()},
        )
        if answer.status == 401:
            raise auth_error(self.name, 401, KEY_VARIABLE)
        if answer.status == 403:
            # The free tier answers 403 for paid endpoints and symbols outside the plan.
            raise ProviderUnsupported(self.name, f"{endpoint} is not in this plan (HTTP 403)")
        if answer.status != 200:
            raise ProviderDataError(self.name, f"{endpoint} answered HTTP {answer.status}")
        data = answer.json(self.name, endpoint)
        if isinstance(data, dict) and "error" in data:
            note = str(data["error"])[:120]
            if "access" in note.lower():
                raise ProviderUnsupported(self.name, f"{endpoint}: {note}")
            raise ProviderDataError(self.name, f"{endpoint} returned an error note: {note}")
        return data

    async def quotes(self, symbols: Sequence[str]) -> dict[str, Quote]:
        """One `/quote` call per symbol (Finnhub has no batch); unknown symbols are absent.
        A symbol outside the plan is skipped. A symbol whose call fails on the transport
        (a missed deadline, a dropped connection, a 5xx) does not stop the others, unless
        `GIVE_UP_AFTER` fail in a row (Finnhub itself is down: fail over now, not after a
        minute of calls); either way the call ends in PartialQuotes with what was
        answered. Any other failure (a refused key, a 429, a malformed answer) fails the
        whole call at once."""
        wanted = base.wanted(symbols)
        out: dict[str, Quote] = {}
        failed: list[str] = []
        in_a_row = 0
        last: ProviderUnavailable | None = None
        for symbol in wanted:
            try:
                data = await self._get("quote", {"symbol": symbol})
            except ProviderUnsupported:
                log.info("finnhub: no access to a quote of %s; skipped", symbol)
                continue
            except ProviderUnavailable as exc:  # not a 429: ProviderRateLimited is apart
                failed.append(symbol)
                last, in_a_row = exc, in_a_row + 1
                if in_a_row >= GIVE_UP_AFTER:
                    break
                continue
            in_a_row = 0
            quote = _quote(symbol, data)
            if quote is not None:
                out[symbol] = quote
        if last is not None:
            shown = ", ".join(failed[:5]) + (", ..." if len(failed) > 5 else "")
            why = str(last).removeprefix(f"{self.name}: ")
            message = f"quotes of {len(failed)} symbol(s) failed ({shown}); last: {why}"
            missing = wanted[wanted.index(failed[-1]) + 1 :] if in_a_row >= GIVE_UP_AFTER else []
            raise base.PartialQuotes(self.name, message, out, failed + missing)
        return out

    async def earnings(self, start: date, end: date, symbols: Sequence[str]) -> list[EarningsEvent]:
        wanted = base.wanted(symbols)
        days = (end - start).days + 1
        if days <= 0:
            return []
        events: list[EarningsEvent] = []
        if wanted and len(wanted) <= math.ceil(days / WINDOW_DAYS):
            for symbol in wanted:
                rows = await self._calendar(start, end, symbol)
                # `symbol=TSM` has come back as 2330.TW: another listing, another currency.
                events += [e for e in rows if e.symbol == symbol]
        else:
            for first, last in base.windows(start, end, WINDOW_DAYS):
                events += await self._calendar_window(first, last)
        keep = frozenset(wanted)
        return base.dedupe(e for e in events if base.in_range(e, start, end, keep))

    async def _calendar_window(self, first: date, last: date) -> list[EarningsEvent]:
        rows = await self._calendar(first, last, None)
        if len(rows) < TRUNCATION or first == last:
            if len(rows) >= TRUNCATION:
                log.warning("finnhub: calendar of %s may be truncated (%d rows)", first, len(rows))
            return rows
        middle = first + timedelta(days=(last - first).days // 2)
        return await self._calendar_window(first, middle) + await self._calendar_window(
            middle + timedelta(days=1), last
        )

    async def _calendar(self, first: date, last: date, symbol: str | None) -> list[EarningsEvent]:
        params = {"from": first.isoformat(), "to": last.isoformat()}
        if symbol:
            params["symbol"] = symbol
        data = await self._get("calendar/earnings", params)
        rows = data.get("earningsCalendar") if isinstance(data, dict) else None
        if not isinstance(rows, list):
            raise ProviderDataError(self.name, "calendar/earnings returned no earningsCalendar")
        return [e for row in rows if (e := _event(row)) is not None]

    async def price_targets(self, symbol: str) -> PriceTargets | None:
        data = await self._get("stock/price-target", {"symbol": symbol.strip().upper()})
        if not isinstance(data, dict):
            raise ProviderDataError(self.name, "stock/price-target returned no object")
        targets = PriceTargets(
            symbol=symbol.strip().upper(),
            median=base.price(data.get("targetMedian")),
            mean=base.price(data.get("targetMean")),
            high=base.price(data.get("targetHigh")),
            low=base.price(data.get("targetLow")),
            updated=base.timestamp(data.get("lastUpdated")),
        )
        if targets.median is None and targets.mean is None and targets.high is None:
            return None
        return targets


def _quote(symbol: str, data: object) -> Quote | None:
    if not isinstance(data, dict):
        raise ProviderDataError("finnhub", "quote returned no object")
    when = base.epoch(data.get("t"))
    price = base.price(data.get("c"))
    if when is None or price is None:
        return None
    return Quote(
        symbol=symbol,
        price=price,
        prev_close=base.price(data.get("pc")),
        day_high=base.price(data.get("h")),
        day_low=base.price(data.get("l")),
        time=when,
        open=base.price(data.get("o")),
    )


def _event(row: object) -> EarningsEvent | None:
    if not isinstance(row, dict):
        return None
    symbol, day = row.get("symbol"), base.iso_date(row.get("date"))
    if not isinstance(symbol, str) or not symbol or day is None:
        return None
    return EarningsEvent(
        symbol=symbol.upper(),
        date=day,
        time=base.report_time(row.get("hour"), HOURS),
        fiscal_year=base.whole(row.get("year")),
        fiscal_quarter=base.whole(row.get("quarter")),
        eps_estimate=base.number(row.get("epsEstimate")),
        eps_actual=base.number(row.get("epsActual")),
        revenue_estimate=base.number(row.get("revenueEstimate")),
        revenue_actual=base.number(row.get("revenueActual")),
    )
