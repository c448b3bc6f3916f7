"""The provider contract, and the parsing rules every vendor module applies the same way.

A provider turns one vendor's wire format into `service.market` types and nothing else.
What it cannot read as a real number is unknown (`None`): NaN, infinities, strings where
numbers belong, a zero or negative price. Failures are `ProviderError` subclasses with the
provider's name; nothing from httpx leaves a provider module.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import ClassVar, Final, Protocol

from service.errors import ProviderUnavailable
from service.market import EarningsEvent, PriceTargets, Quote, ReportTime, positive, real


class Provider(Protocol):
    """Market data from one source (or several, for `FailoverProvider`)."""

    name: ClassVar[str]  # used in logs, metrics and every ProviderError
    max_batch: ClassVar[int]  # symbols per quote request; `quotes()` chunks by itself

    async def quotes(self, symbols: Sequence[str]) -> dict[str, Quote]:
        """The latest quote of each symbol; a symbol without a real quote is absent."""
        ...

    async def earnings(self, start: date, end: date, symbols: Sequence[str]) -> list[EarningsEvent]:
        """Reports dated `start`..`end` (inclusive) of `symbols` (all symbols when empty),
        one event per symbol and report, sorted by date and symbol."""
        ...

    async def price_targets(self, symbol: str) -> PriceTargets | None:
        """Analysts' consensus targets, None when the provider knows none for `symbol`.
        Raises ProviderUnsupported when the provider has no such data at all."""
        ...

    async def aclose(self) -> None:
        """Release the HTTP client."""
        ...


class PartialQuotes(ProviderUnavailable):
    """Some symbols of a `quotes()` call failed (a deadline, a dropped connection) while the
    others were answered: `quotes` holds those answers, `missing` the symbols that failed.
    A retryable failure, so a failover tries the next provider with every symbol; whoever
    gets it last may still use `quotes` (one stalled symbol must not cost all the others)."""

    def __init__(
        self, provider: str, message: str, quotes: Mapping[str, Quote], missing: Sequence[str]
    ) -> None:
        super().__init__(provider, message)
        self.quotes = dict(quotes)
        self.missing = tuple(missing)


_NUMBER: Final = re.compile(r"[0-9]{1,3}(?:,[0-9]{3})+(?:\.[0-9]+)?|[0-9]+(?:\.[0-9]+)?|\.[0-9]+")


def price(value: object) -> float | None:
    """A price from a JSON number: unknown unless finite and above zero."""
    return positive(value)


def number(value: object) -> float | None:
    """A figure from a JSON number (an estimate, an actual): unknown unless finite."""
    return real(value)


def text_number(value: object) -> float | None:
    """A number written as text, the Nasdaq way: `"$0.46"`, `"($0.14)"`, `"$(0.12)"`,
    `"-366.67"`, `"+5.93"`, `"$71,008,400,000"`, `"0.54%"`. `"N/A"`, `""` and anything
    else are unknown. JSON numbers pass through `number()`."""
    if not isinstance(value, str):
        return number(value)
    text = value.strip()
    negative = text.startswith("-")
    text = text.removeprefix("-").removeprefix("+").removeprefix("$")
    if text.startswith("(") and text.endswith(")"):
        negative = True
        text = text[1:-1].removeprefix("$")
    text = text.removesuffix("%")
    if not _NUMBER.fullmatch(text):
        return None
    parsed = float(text.replace(",", ""))
    return real(-parsed if negative else parsed)


def epoch(value: object) -> datetime | None:
    """A UTC datetime from Unix seconds; 0, negatives and non-numbers are unknown."""
    seconds = real(value)
    if seconds is None or seconds <= 0:
        return None
    try:
        return datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError):
        return None


def timestamp(value: object) -> datetime | None:
    """A UTC datetime from an ISO text (`2026-01-30 00:00:00`, naive means UTC), or None."""
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def iso_date(value: object) -> date | None:
    """A `YYYY-MM-DD` date, or None."""
    if not isinstance(value, str):
        return None
    try:
        return date.fromisoformat(value[:10])
    except ValueError:
        return None


def whole(value: object) -> int | None:
    """An int from a JSON integer (a fiscal year or quarter), or None."""
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value


def report_time(value: object, vocabulary: Mapping[str, ReportTime]) -> ReportTime:
    """The vendor's time-of-day word as a ReportTime; anything unrecognised is UNKNOWN."""
    if not isinstance(value, str):
        return ReportTime.UNKNOWN
    return vocabulary.get(value.strip().lower(), ReportTime.UNKNOWN)


def _rank(event: EarningsEvent) -> tuple[bool, bool, int]:
    figures = (event.eps_estimate, event.eps_actual, event.revenue_estimate, event.revenue_actual)
    known = sum(f is not None for f in figures)
    return (event.time is not ReportTime.UNKNOWN, event.reported, known)


def _period(event: EarningsEvent) -> tuple[int, int] | None:
    if event.fiscal_year is None or event.fiscal_quarter is None:
        return None
    return (event.fiscal_year, event.fiscal_quarter)


def _same_day(rows: list[EarningsEvent]) -> EarningsEvent:
    """The one report behind several rows of one symbol and date.

    A company never publishes an older quarter after a newer one, so when the rows name
    different fiscal periods the latest period is the report of that day (Finnhub's CHPT
    2022-03-02: 2021Q4 with `hour: "amc"` next to 2022Q4 with `hour: ""` and the actual).
    Among rows of that period (or when no row names one) the known time of day, then
    actuals, then the most figures win; on a tie, the first seen. A time of day known only
    on another row of the day is taken from it: it describes the same publication, whereas
    its figures belong to another quarter and are never mixed in.
    """
    periods = [p for r in rows if (p := _period(r)) is not None]
    latest = max(periods) if periods else None
    candidates = [r for r in rows if latest is None or _period(r) == latest]
    best = candidates[0]
    for row in candidates[1:]:
        if _rank(row) > _rank(best):
            best = row
    if best.time is ReportTime.UNKNOWN:
        known = [r.time for r in rows if r.time is not ReportTime.UNKNOWN]
        if known:
            best = replace(best, time=known[0])
    return best


def _best(
    events: Iterable[EarningsEvent], key: Callable[[EarningsEvent], Hashable]
) -> list[EarningsEvent]:
    chosen: dict[Hashable, EarningsEvent] = {}
    for event in events:
        k = key(event)
        if k not in chosen or _rank(event) > _rank(chosen[k]):
            chosen[k] = event
    return list(chosen.values())


def dedupe(events: Iterable[EarningsEvent]) -> list[EarningsEvent]:
    """One event per symbol and report, sorted by (date, symbol).

    Rows on the same (symbol, date) are one report (Finnhub sends duplicates with different
    fiscal years): see `_same_day` for which one is kept. Rows of the same (symbol, fiscal
    period) on different dates (a moved or re-dated report) are one report too: the row
    kept has a known time of day, then actuals, then the most figures; on a tie, the first
    seen.
    """
    days: dict[tuple[str, date], list[EarningsEvent]] = {}
    for event in events:
        days.setdefault((event.symbol, event.date), []).append(event)
    by_day = [_same_day(rows) for rows in days.values()]
    by_period = _best(by_day, lambda e: (e.symbol, e.fiscal_period or e.date.isoformat()))
    return sorted(by_period, key=lambda e: (e.date, e.symbol))


def windows(start: date, end: date, days: int) -> list[tuple[date, date]]:
    """`start`..`end` (inclusive) cut into consecutive windows of at most `days` days."""
    out: list[tuple[date, date]] = []
    cursor = start
    while cursor <= end:
        last = min(end, cursor + timedelta(days=days - 1))
        out.append((cursor, last))
        cursor = last + timedelta(days=1)
    return out


def chunks(items: Sequence[str], size: int) -> list[list[str]]:
    """`items` in order, in lists of at most `size`."""
    return [list(items[i : i + size]) for i in range(0, len(items), size)]


def wanted(symbols: Sequence[str]) -> list[str]:
    """Symbols upper-cased, stripped, without duplicates or blanks, in the caller's order."""
    return list(dict.fromkeys(s.strip().upper() for s in symbols if s.strip()))


def in_range(event: EarningsEvent, start: date, end: date, symbols: frozenset[str]) -> bool:
    """Whether a parsed row belongs in the answer to `earnings(start, end, symbols)`."""
    return start <= event.date <= end and (not symbols or event.symbol in symbols)
