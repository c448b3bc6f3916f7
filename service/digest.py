"""Digest rules (`digest: "0 8 * * mon"`): which firings are due, and the one message each
sends, listing the rule's symbols' reports in the coming `window`.

Pure: no IO and no clock reads (`now` is handed in, so a FakeClock replay works). The
cron expression is APScheduler 3's (`CronTrigger.from_crontab`), in the rule's time zone.

- `due_firing(rule, checked, now)`: the latest firing time in (checked, now], or None.
  Only a firing at most MAX_LATE old is sent: a daemon that was down over a firing sends
  the latest missed one if it is that recent, never a backlog of stale digests. With no
  `checked` (a start, a new rule), the look-back is MAX_LATE; the store's dedup key
  (`digest|<rule>|<firing time>`) keeps a firing sent before a restart from going twice.
- `digest_alert(rule, firing, data)`: the Alert of one firing, or None when no report
  falls in the window (a digest with nothing to list sends nothing).
- `due_alerts(digests, checked, data, now)`: both, for every digest rule of a rule set:
  the daemon's pass (`Pipeline.send_digests`) and a rule test (`service/ruletests.py`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Final

from service.engine import Alert
from service.figures import format_value, money
from service.market import EarningsEvent, Value, variables
from service.marketdata import MarketData
from service.rules import DigestRule
from service.rules.messages import cap_message

#: How old a missed firing may be and still be sent (see the module docstring).
MAX_LATE: Final = timedelta(hours=1)
DEFAULT_WINDOW: Final = timedelta(days=7)
#: An upper bound on the firings looked at per check (a cron of every minute over MAX_LATE).
_MAX_STEPS: Final = 200


def due_firing(rule: DigestRule, checked: datetime | None, now: datetime) -> datetime | None:
    """The latest firing in (checked, now] that is at most MAX_LATE old, or None."""
    # get_next_fire_time(None, t) is the first firing at or after t: a firing exactly
    # MAX_LATE old is still sent, one at `checked` was sent by that check.
    moment = now - MAX_LATE
    if checked is not None and checked >= moment:
        moment = checked + timedelta(microseconds=1)
    latest: datetime | None = None
    for _ in range(_MAX_STEPS):
        fire = rule.cron.get_next_fire_time(None, moment)
        if fire is None or fire > now:
            break
        latest = fire
        moment = fire + timedelta(seconds=1)
    return latest


def dedup_key(rule: str, firing: datetime) -> str:
    return f"digest|{rule}|{firing.isoformat()}"


def in_window(rule: DigestRule, data: MarketData, firing: datetime) -> list[EarningsEvent]:
    """The symbols' reports not yet reported whose date falls in [firing, firing + window)
    by date in the rule's time zone, by date then symbol."""
    first = firing.astimezone(rule.tz).date()
    end = (firing + rule.window).astimezone(rule.tz).date()
    found = [
        event
        for symbol in rule.symbols
        for event in data.events.get(symbol, ())
        if first <= event.date < end and not event.reported
    ]
    return sorted(found, key=lambda e: (e.date, e.symbol))


def report_line(event: EarningsEvent, values: Mapping[str, Value]) -> str:
    parts = [
        f"{event.symbol} {event.date.isoformat()} ({event.date.strftime('%a')})",
        event.time.value,
        event.fiscal_period or "period n/a",
        f"EPS est {format_value(event.eps_estimate)}",
        f"revenue est {money(event.revenue_estimate)}",
    ]
    # The date lifecycle's variables (when Earnwatch has them) of this same report.
    previous = values.get("earnings_date_previous")
    if values.get("earnings_date_changed") is True and values.get("earnings_date") == event.date:
        parts.append(f"moved from {format_value(previous)}")
    return ", ".join(parts)


def digest_alert(rule: DigestRule, firing: datetime, data: MarketData) -> Alert | None:
    """The one message of this firing, or None when no report is in the window."""
    events = in_window(rule, data, firing)
    if not events:
        return None
    lines = [
        f"{rule.name}: {len(events)} report{'s' if len(events) != 1 else ''} "
        f"in the {format_window(rule.window)} from {firing.astimezone(rule.tz):%Y-%m-%d %H:%M %Z}"
    ]
    for event in events:
        values = variables(data.snapshot(event.symbol), firing)
        lines.append(report_line(event, values))
    listed = tuple(dict.fromkeys(e.symbol for e in events))
    symbol = ",".join(listed)
    if len(symbol) > 100:
        symbol = symbol[:99] + "…"
    return Alert(
        rule=rule.name,
        symbol=symbol,
        dedup_key=dedup_key(rule.name, firing),
        fired_at=firing,
        text=cap_message("\n".join(lines)),
        channels=rule.channels,
        values={"reports": len(events), "symbols": ",".join(listed)},
        urgent=rule.urgent,
    )


def due_alerts(
    digests: Sequence[DigestRule],
    checked: dict[str, datetime],
    data: MarketData,
    now: datetime,
    *,
    empty: Callable[[DigestRule, datetime], None] | None = None,
) -> list[Alert]:
    """The alerts of the digests' firings due since each was last `checked` (updated to
    `now`): one per firing with a report in its window; `empty(rule, firing)` is told of
    a firing that had none. What the daemon's pass sends and a rule test expects."""
    alerts = []
    for rule in digests:
        firing = due_firing(rule, checked.get(rule.name), now)
        checked[rule.name] = now
        if firing is None:
            continue
        alert = digest_alert(rule, firing, data)
        if alert is not None:
            alerts.append(alert)
        elif empty is not None:
            empty(rule, firing)
    return alerts


def format_window(window: timedelta) -> str:
    days, rest = divmod(int(window.total_seconds()), 86_400)
    if not rest:
        return f"{days} day{'s' if days != 1 else ''}"
    return f"{window.total_seconds() / 3600:g} hours"
