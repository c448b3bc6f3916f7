"""The NYSE trading calendar: which days trade, and when a session opens and closes.

DOMAIN: pure, no IO; stdlib, `zoneinfo` and the `holidays` package (data only). Every
function takes the day or the moment it is asked about; nothing reads the clock.

- Regular session 09:30-16:00 America/New_York, Monday to Friday; returned as UTC, so
  the open is 14:30 UTC under EST and 13:30 UTC under EDT.
- Full-day closures and 13:00 early closes come from the maintained `holidays` package
  (`holidays.financial_holidays("NYSE")`, its "public" and "half_day" categories), not
  from rules kept here: it has the observance rules (a Saturday holiday on the Friday
  before, a Sunday one on the Monday after, no Friday closure for a Saturday New Year's
  Day), the rules as they changed over time (MLK Day from 1998, Juneteenth from 2022),
  the early closes (July 3, the day after Thanksgiving, December 24, and the historical
  ones), and the closures NYSE announced (September 11 2001, hurricane Sandy, days of
  mourning such as January 9 2025). A closure announced after the installed release is
  not known: keep the package current (a new release is needed, e.g., for a future day
  of mourning).
- Only NYSE's module of the package is loaded (`_nyse`): the package's `financial`
  namespace imports every exchange and, through them, every country (some 340 modules,
  12 MiB resident) for one calendar.
"""

from __future__ import annotations

import importlib.util
from datetime import UTC, date, datetime, time, timedelta
from functools import cache, lru_cache
from pathlib import Path
from typing import Any, Final
from zoneinfo import ZoneInfo

NEW_YORK: Final = ZoneInfo("America/New_York")
REGULAR_OPEN: Final = time(9, 30)
REGULAR_CLOSE: Final = time(16, 0)
EARLY_CLOSE: Final = time(13, 0)
#: Extended hours: pre-market from 04:00 to the open, after-hours for four hours after
#: the close (to 20:00, or 17:00 after a 13:00 early close).
PRE_MARKET_OPEN: Final = time(4, 0)
AFTER_HOURS: Final = timedelta(hours=4)

_SEARCH_DAYS: Final = 30  # far more than the longest run of closed days (six, in 2001)


@cache
def _nyse() -> Any:
    """The holidays package's NYSE calendar class, loaded from its own module file alone
    (NYSE's module imports only the package's base classes); the package's registry
    (`financial_holidays`, which imports every exchange) if that file is not there."""
    import holidays as calendars

    path = Path(calendars.__file__).parent / "financial" / "ny_stock_exchange.py"
    spec = importlib.util.spec_from_file_location("service._nyse_holidays", path)
    if spec is not None and spec.loader is not None and path.is_file():
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module.NewYorkStockExchange
    return lambda **kwargs: calendars.financial_holidays("NYSE", **kwargs)


@lru_cache(maxsize=256)
def holidays(year: int) -> frozenset[date]:
    """Every day of `year` on which NYSE is closed all day for a holiday (observed date)
    or an announced closure; weekends are closed too but not listed."""
    return frozenset(_nyse()(years=year))


@lru_cache(maxsize=256)
def early_closes(year: int) -> frozenset[date]:
    """Every day of `year` on which NYSE closes at 13:00 ET."""
    half_days = _nyse()(years=year, categories=("half_day",))
    return frozenset(half_days)


def is_trading_day(d: date) -> bool:
    """True when NYSE holds a session on `d`: a weekday that is not a closure."""
    return d.weekday() < 5 and d not in holidays(d.year)


def is_early_close(d: date) -> bool:
    """True when `d` is a trading day on which NYSE closes at 13:00 ET."""
    return is_trading_day(d) and d in early_closes(d.year)


def trading_day_on_or_after(d: date) -> date:
    """`d` when NYSE trades on it, else the first trading day after it."""
    for _ in range(_SEARCH_DAYS):
        if is_trading_day(d):
            return d
        d += timedelta(days=1)
    raise ValueError(f"no NYSE session within {_SEARCH_DAYS} days of {d.isoformat()}")


def next_trading_day(d: date) -> date:
    """The first trading day after `d` (the session after an after-the-close report)."""
    return trading_day_on_or_after(d + timedelta(days=1))


def session(d: date) -> tuple[datetime, datetime] | None:
    """The (open, close) of the session on `d` as UTC datetimes, or None when closed."""
    if not is_trading_day(d):
        return None
    close = EARLY_CLOSE if is_early_close(d) else REGULAR_CLOSE
    opens = datetime.combine(d, REGULAR_OPEN, tzinfo=NEW_YORK).astimezone(UTC)
    closes = datetime.combine(d, close, tzinfo=NEW_YORK).astimezone(UTC)
    return opens, closes


def _require_aware(now: datetime) -> None:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("a timezone-aware datetime is needed")


def is_market_open(now: datetime) -> bool:
    """True when `now` (timezone-aware) falls inside a session: open <= now < close."""
    _require_aware(now)
    hours = session(now.astimezone(NEW_YORK).date())
    return hours is not None and hours[0] <= now < hours[1]


def next_open(now: datetime) -> datetime:
    """The first session open at or after `now` (timezone-aware), in UTC. During a session
    this is the next day's open, since the current one opened before `now`."""
    _require_aware(now)
    day = now.astimezone(NEW_YORK).date()
    for _ in range(_SEARCH_DAYS):
        hours = session(day)
        if hours is not None and hours[0] >= now:
            return hours[0]
        day += timedelta(days=1)
    raise ValueError(f"no NYSE session within {_SEARCH_DAYS} days of {now.isoformat()}")


def session_name(now: datetime) -> str:
    """Which part of the NYSE day `now` (timezone-aware) falls in: "pre" (04:00 New York
    to the open), "regular" (open <= now < close), "post" (the close to four hours later:
    20:00, or 17:00 on an early-close day) or "closed" (nights, weekends, holidays)."""
    _require_aware(now)
    day = now.astimezone(NEW_YORK).date()
    hours = session(day)
    if hours is None:
        return "closed"
    opens, closes = hours
    pre = datetime.combine(day, PRE_MARKET_OPEN, tzinfo=NEW_YORK).astimezone(UTC)
    if pre <= now < opens:
        return "pre"
    if opens <= now < closes:
        return "regular"
    if closes <= now < closes + AFTER_HOURS:
        return "post"
    return "closed"
