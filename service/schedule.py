"""What is due now: pure decisions the daemon's few fixed jobs ask before calling a
provider. Nothing here reads the clock or does IO.

Around a scheduled report its symbol's calendar entry is polled fast, from the expected
time until the actual figures arrive or the window ends:

| report time | window (New York time) |
| --- | --- |
| bmo | 06:00 to 12:00 on the report day |
| amc | 15:30 (12:30 on an NYSE early-close day) on the report day to 10:00 the next day |
| dmh, unknown | 06:00 on the report day to 10:00 the next day |
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, time, timedelta

from service.hours import is_early_close
from service.market import NEW_YORK, EarningsEvent, ReportTime

_WINDOWS: dict[ReportTime, tuple[time, int, time]] = {
    ReportTime.BMO: (time(6, 0), 0, time(12, 0)),
    ReportTime.AMC: (time(15, 30), 1, time(10, 0)),
    ReportTime.DMH: (time(6, 0), 1, time(10, 0)),
    ReportTime.UNKNOWN: (time(6, 0), 1, time(10, 0)),
}


def earnings_window(event: EarningsEvent) -> tuple[datetime, datetime]:
    """When `event`'s calendar entry is polled fast (timezone-aware). On an early-close
    day an amc window opens 30 minutes before the 13:00 close, not at 15:30."""
    opens, days_after, closes = _WINDOWS[event.time]
    if event.time is ReportTime.AMC and is_early_close(event.date):
        opens = time(12, 30)
    start = datetime.combine(event.date, opens, tzinfo=NEW_YORK)
    end = datetime.combine(event.date + timedelta(days=days_after), closes, tzinfo=NEW_YORK)
    return start, end


def window_length(report_time: ReportTime) -> timedelta:
    """How long a report window of `report_time` stays open (a day without an early close):
    bmo 6 h, amc 18.5 h, dmh and unknown 28 h."""
    opens, days_after, closes = _WINDOWS[report_time]
    clock = timedelta(hours=closes.hour - opens.hour, minutes=closes.minute - opens.minute)
    return timedelta(days=days_after) + clock


def in_earnings_window(event: EarningsEvent, now: datetime) -> bool:
    if event.reported:
        return False
    start, end = earnings_window(event)
    return start <= now < end


def earnings_due(
    events: Mapping[str, Iterable[EarningsEvent]],
    last_polled: Mapping[str, datetime],
    now: datetime,
    interval: timedelta,
) -> list[str]:
    """Symbols whose report window is open and whose entry was not polled for `interval`."""
    due = []
    for symbol, symbol_events in events.items():
        if not any(in_earnings_window(e, now) for e in symbol_events):
            continue
        last = last_polled.get(symbol)
        if last is None or now - last >= interval:
            due.append(symbol)
    return sorted(due)


def is_due(last: datetime | None, now: datetime, interval: timedelta) -> bool:
    """Whether a job last run at `last` is due again at `now`."""
    return last is None or now - last >= interval


def quote_interval(market_open: bool, in_hours: timedelta, off_hours: timedelta) -> timedelta:
    return in_hours if market_open else off_hours
