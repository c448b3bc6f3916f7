"""The NYSE trading calendar: which days trade, and when a session opens and closes.

DOMAIN: pure, no IO, stdlib and `zoneinfo` only. Every function takes the day or the moment
it is asked about; nothing reads the clock.

What is implemented (NYSE Rule 7.2 and the exchange's published holiday and early-close
lists, applied by rule to any year):

- Regular session 09:30-16:00 America/New_York, Monday to Friday; returned as UTC, so
  the open is 14:30 UTC under EST and 13:30 UTC under EDT.
- Full holidays: New Year's Day, Martin Luther King Jr. Day (third Monday of January),
  Washington's Birthday (third Monday of February), Good Friday, Memorial Day (last Monday
  of May), Juneteenth (June 19, from 2022), Independence Day, Labor Day (first Monday of
  September), Thanksgiving (fourth Thursday of November), Christmas.
- Observance: a holiday on Saturday is observed on the Friday before, on Sunday on the
  Monday after. Exception: when January 1 is a Saturday, the Friday before (December 31)
  stays a trading day, because NYSE does not close for a holiday of another year.
- Early close at 13:00 ET on: July 3 when it is a trading day (Monday to Thursday; when
  July 4 is a Saturday, July 3 is the observed holiday and there is no early close); the day
  after Thanksgiving; December 24 when it is a trading day (Monday to Thursday; when
  December 25 is a Saturday, December 24 is the observed holiday). This matches the
  published calendars, e.g. 2025: July 3, November 28, December 24; 2026: November 27,
  December 24 (no July early close, July 3 2026 being the observed Independence Day).
- Unscheduled closures the exchange announced in the past (national days of mourning,
  hurricane Sandy, September 11) are listed in `SPECIAL_CLOSURES`; future ones are not
  known in advance, so a replica must be updated when NYSE announces one.

Not implemented: the rules before 2022 that changed over time (MLK Day was first a market
holiday in 1998, for example) are applied backwards as they are today, so dates far in the
past may be wrong. Replays of recent years are right.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import Final
from zoneinfo import ZoneInfo

NEW_YORK: Final = ZoneInfo("America/New_York")
REGULAR_OPEN: Final = time(9, 30)
REGULAR_CLOSE: Final = time(16, 0)
EARLY_CLOSE: Final = time(13, 0)

SPECIAL_CLOSURES: Final[frozenset[date]] = frozenset(
    {
        date(2001, 9, 11),  # September 11 attacks: closed through September 14
        date(2001, 9, 12),
        date(2001, 9, 13),
        date(2001, 9, 14),
        date(2004, 6, 11),  # national day of mourning, President Reagan
        date(2007, 1, 2),  # national day of mourning, President Ford
        date(2012, 10, 29),  # hurricane Sandy
        date(2012, 10, 30),
        date(2018, 12, 5),  # national day of mourning, President G. H. W. Bush
        date(2025, 1, 9),  # national day of mourning, President Carter
    }
)
"""Days the exchange closed by announcement rather than by rule."""

_SEARCH_DAYS: Final = 30  # far more than the longest run of closed days (six, in 2001)


def _nth_weekday(year: int, month: int, weekday: int, n: int) -> date:
    """The n-th (1-based) `weekday` (Monday=0) of a month."""
    first = date(year, month, 1)
    return first + timedelta(days=(weekday - first.weekday()) % 7 + 7 * (n - 1))


def _last_weekday(year: int, month: int, weekday: int) -> date:
    """The last `weekday` (Monday=0) of a month."""
    next_month = date(year + month // 12, month % 12 + 1, 1)
    last = next_month - timedelta(days=1)
    return last - timedelta(days=(last.weekday() - weekday) % 7)


def easter_sunday(year: int) -> date:
    """Western (Gregorian) Easter Sunday, by the anonymous Gregorian computus."""
    a = year % 19
    b, c = divmod(year, 100)
    d, e = divmod(b, 4)
    f = (b + 8) // 25
    g = (b - f + 1) // 3
    h = (19 * a + b - d - g + 15) % 30
    i, k = divmod(c, 4)
    el = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * el) // 451
    month, day = divmod(h + el - 7 * m + 114, 31)
    return date(year, month, day + 1)


def _observed(day: date) -> date:
    """Saturday holidays move to Friday, Sunday holidays to Monday."""
    if day.weekday() == 5:
        return day - timedelta(days=1)
    if day.weekday() == 6:
        return day + timedelta(days=1)
    return day


@lru_cache(maxsize=256)
def holidays(year: int) -> frozenset[date]:
    """Every full-day NYSE holiday falling in `year`, observed dates, by rule (see module
    docstring); `SPECIAL_CLOSURES` are not included."""
    days: set[date] = set()
    new_year = date(year, 1, 1)
    if new_year.weekday() == 6:
        days.add(new_year + timedelta(days=1))
    elif new_year.weekday() != 5:  # Saturday: not observed on December 31 of the year before
        days.add(new_year)
    days.add(_nth_weekday(year, 1, 0, 3))  # Martin Luther King Jr. Day
    days.add(_nth_weekday(year, 2, 0, 3))  # Washington's Birthday
    days.add(easter_sunday(year) - timedelta(days=2))  # Good Friday
    days.add(_last_weekday(year, 5, 0))  # Memorial Day
    if year >= 2022:
        days.add(_observed(date(year, 6, 19)))  # Juneteenth
    days.add(_observed(date(year, 7, 4)))  # Independence Day
    days.add(_nth_weekday(year, 9, 0, 1))  # Labor Day
    days.add(_nth_weekday(year, 11, 3, 4))  # Thanksgiving
    days.add(_observed(date(year, 12, 25)))  # Christmas
    return frozenset(days)


def is_trading_day(d: date) -> bool:
    """True when NYSE holds a session on `d`: a weekday that is not a holiday."""
    return d.weekday() < 5 and d not in holidays(d.year) and d not in SPECIAL_CLOSURES


def is_early_close(d: date) -> bool:
    """True when `d` is a trading day on which NYSE closes at 13:00 ET."""
    if not is_trading_day(d):
        return False
    day_after_thanksgiving = _nth_weekday(d.year, 11, 3, 4) + timedelta(days=1)
    return d in (date(d.year, 7, 3), day_after_thanksgiving, date(d.year, 12, 24))


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
