"""Domain types of market data, and the variables a rule sees for one symbol.

`None` means unknown everywhere: a provider that gets a zero price for an unknown symbol,
a null estimate or a figure not yet reported hands `None` on, and every rule treats it as
unknown. Nothing in this module does IO or reads the clock.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from functools import lru_cache
from typing import Final, TypeAlias
from zoneinfo import ZoneInfo

from service.hours import EARLY_CLOSE, is_early_close, next_open, session_name

NEW_YORK: Final = ZoneInfo("America/New_York")

#: A value a rule can see: a number, a flag, a string, a date, or unknown.
Value: TypeAlias = float | int | bool | str | date | None

#: How long after its date a reported event stays the one rules see.
REPORTED_WINDOW: Final = timedelta(days=30)
#: How long after its date an unreported event stays "scheduled" (figures can be late).
PENDING_GRACE: Final = timedelta(days=3)


class ReportTime(StrEnum):
    """When in the US trading day a report is published."""

    BMO = "bmo"  # before market open
    AMC = "amc"  # after market close
    DMH = "dmh"  # during market hours
    UNKNOWN = "unknown"


#: The moment (New York time) a report of each kind counts as published, for
#: `hours_to_earnings` and `price_at_report`. Unknown counts as early as bmo: a reminder
#: then comes too early rather than too late.
REPORT_CLOCK: Final[Mapping[ReportTime, time]] = {
    ReportTime.BMO: time(9, 30),
    ReportTime.AMC: time(16, 0),
    ReportTime.DMH: time(12, 0),
    ReportTime.UNKNOWN: time(9, 30),
}


def real(value: object) -> float | None:
    """`value` as a finite float, or None: NaN, infinities, bools and non-numbers are unknown."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def positive(value: object) -> float | None:
    """A price: finite and above zero, else unknown (providers send 0 for unknown symbols)."""
    number = real(value)
    return number if number is not None and number > 0 else None


@dataclass(frozen=True, slots=True)
class Quote:
    """The latest trade of one symbol. Any field may be unknown."""

    symbol: str
    price: float | None
    prev_close: float | None = None
    day_high: float | None = None
    day_low: float | None = None
    time: datetime | None = None  # when the price was traded (UTC), if the provider says
    open: float | None = None  # the open of the regular session the quote belongs to


@dataclass(frozen=True, slots=True)
class PriceTargets:
    """Analysts' consensus price targets for one symbol."""

    symbol: str
    median: float | None = None
    mean: float | None = None
    high: float | None = None
    low: float | None = None
    updated: datetime | None = None


@lru_cache(maxsize=4096)
def _published_at(day: date, when: ReportTime) -> datetime:
    """See EarningsEvent.published_at (a pure function of the two: every evaluation pass
    asks it of every symbol)."""
    local = datetime.combine(day, REPORT_CLOCK[when], tzinfo=NEW_YORK)
    if when is ReportTime.AMC and is_early_close(day):
        local = datetime.combine(day, EARLY_CLOSE, tzinfo=NEW_YORK)
    return local.astimezone(UTC)


@lru_cache(maxsize=8)
def _session_at(now: datetime) -> str:
    """session_name(now), asked of every symbol of one evaluation pass with one `now`."""
    return session_name(now)


@dataclass(frozen=True, slots=True)
class EarningsEvent:
    """One scheduled or published earnings report.

    `fiscal_year`/`fiscal_quarter` are the company's fiscal period (NVDA's Nov 2026 report
    is 2027Q3). Actuals are None until reported.
    """

    symbol: str
    date: date
    time: ReportTime = ReportTime.UNKNOWN
    fiscal_year: int | None = None
    fiscal_quarter: int | None = None
    eps_estimate: float | None = None
    eps_actual: float | None = None
    revenue_estimate: float | None = None
    revenue_actual: float | None = None

    @property
    def fiscal_period(self) -> str | None:
        if self.fiscal_year is None or self.fiscal_quarter is None:
            return None
        return f"{self.fiscal_year}Q{self.fiscal_quarter}"

    @property
    def report_key(self) -> str:
        """What makes two rows the same report: the fiscal period, else the date."""
        return self.fiscal_period or self.date.isoformat()

    @property
    def reported(self) -> bool:
        return self.eps_actual is not None or self.revenue_actual is not None

    @property
    def published_at(self) -> datetime:
        """The moment the report counts as published (UTC), from its date and time of day;
        an amc report on an early-close day (13:00) counts from that close."""
        return _published_at(self.date, self.time)

    @property
    def first_open(self) -> datetime:
        """The first NYSE regular-session open at or after publication (UTC): the next
        trading day's open after an amc or dmh report, the report day's own open for a bmo
        (or unknown-time) one; weekends and holidays skipped. `price_at_open` is its open."""
        return next_open(self.published_at)


@dataclass(frozen=True, slots=True)
class ReportHistory:
    """What Earnwatch saw of one report (symbol + fiscal period) over time (issue #13).

    `first_date`/`first_time`: the schedule first seen; `last_date`/`last_time`: the latest
    seen, and
    `date_previous`/`time_previous` what each was before its last change (None if it never
    changed). `eps_estimate`/`revenue_estimate`: the consensus as last seen before the
    actuals appeared, frozen from then on; `frozen` is None until actuals are seen, then
    True when frozen before publication, False when the report was first seen with its
    actuals already out (the estimates are then the first ones seen).
    """

    first_date: date
    first_time: ReportTime
    last_date: date
    last_time: ReportTime
    date_previous: date | None = None
    time_previous: ReportTime | None = None
    eps_estimate: float | None = None
    revenue_estimate: float | None = None
    frozen: bool | None = None
    #: Cross-provider confirmation (EARNWATCH_CONFIRM=2; `service/confirm.py`): when the
    #: first provider's actuals were first seen, by which provider (`source`), the second
    #: provider's name and figures once it has any, and the verdict last reached.
    actuals_seen: datetime | None = None
    source: str | None = None
    second: str | None = None
    second_eps: float | None = None
    second_revenue: float | None = None
    confirmed_by: int | None = None
    suspect: bool = False
    confirmed: bool = False


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything known about one symbol at one moment.

    `report_prices` maps an event's `report_key` to the last price seen before it was
    published; the pipeline records it, since one quote alone cannot tell.
    """

    symbol: str
    quote: Quote | None = None
    events: tuple[EarningsEvent, ...] = ()
    targets: PriceTargets | None = None
    report_prices: Mapping[str, float] = field(default_factory=dict)
    #: `report_key` -> what was seen of that report over time (frozen consensus, dates).
    reports: Mapping[str, ReportHistory] = field(default_factory=dict)
    #: report_key -> the open of the event's first regular session after publication.
    open_prices: Mapping[str, float] = field(default_factory=dict)
    #: EARNWATCH_CONFIRM=2: `reported` waits for the providers' verdict (see `variables`).
    confirming: bool = False


PRICE_VARS: Final = frozenset({"price", "prev_close", "change_pct", "day_high", "day_low"})
TARGET_VARS: Final = frozenset({"target_median", "target_mean", "target_high", "target_low"})
#: Variables that depend on an earnings report: a rule that reads one fires at most once
#: per report.
EARNINGS_VARS: Final = frozenset(
    {
        "earnings_date",
        "earnings_time",
        "hours_to_earnings",
        "days_to_earnings",
        "reported",
        "eps_estimate",
        "eps_actual",
        "eps_surprise_pct",
        "revenue_estimate",
        "revenue_actual",
        "revenue_surprise_pct",
        "price_at_report",
        "move_since_report_pct",
        "fiscal_period",
        "eps_estimate_latest",
        "revenue_estimate_latest",
        "consensus_frozen",
        "earnings_date_previous",
        "earnings_date_changed",
        "earnings_time_previous",
        "earnings_time_changed",
        "price_at_open",
        "gap_pct",
        "confirmed_by",
        "data_suspect",
        "figures_from",
    }
)
#: Variables of a report's schedule changes: a rule that reads one fires once per change
#: (its event key carries the new date or time of day; see engine.event_key).
DATE_CHANGE_VARS: Final = frozenset({"earnings_date_changed"})
TIME_CHANGE_VARS: Final = frozenset({"earnings_time_changed"})
#: Variables whose value moves with the clock even when no new data arrives. (Which
#: report a rule sees also moves with the clock, but by the day: the daemon runs a full
#: pass at each calendar refresh for that.)
TIME_VARS: Final = frozenset({"hours_to_earnings", "days_to_earnings", "session"})
#: Variables of the clock alone: the NYSE session ("pre", "regular", "post", "closed").
CLOCK_VARS: Final = frozenset({"session"})
VARIABLES: Final = PRICE_VARS | TARGET_VARS | EARNINGS_VARS | CLOCK_VARS


def pct_change(new: float | None, base: float | None) -> float | None:
    """(new - base) / |base| * 100, or unknown when either is unknown or base is zero, or
    when the result is not finite (an estimate of 1e-320 overflows to infinity)."""
    if new is None or base is None or base == 0:
        return None
    change = (new - base) / abs(base) * 100.0
    if change.__class__ is float:  # what `real` gives a float, without its checks
        return change if math.isfinite(change) else None
    return real(change)


def _known(value: Value) -> Value:
    # Whatever the source (a provider, a restored snapshot, arithmetic), a float that is
    # NaN or infinite is no number a rule may compare or a receiver may parse: unknown.
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def select_event(events: tuple[EarningsEvent, ...], now: datetime) -> EarningsEvent | None:
    """The report a rule sees: the latest reported one until 30 days after its date,
    otherwise the next scheduled one (an unreported one stays scheduled for 3 days past its
    date, since figures can arrive late)."""
    return _select(events, _today_at(now))


@lru_cache(maxsize=8)
def _today_at(now: datetime) -> date:
    """The New York date at `now`, asked of every symbol of one evaluation pass."""
    return now.astimezone(NEW_YORK).date()


def _select(events: tuple[EarningsEvent, ...], today: date) -> EarningsEvent | None:
    """`select_event` on New York's date `today`: in one walk, the first latest reported
    event (as `max` keeps the first of equals) and the first earliest pending one."""
    latest: EarningsEvent | None = None
    pending: EarningsEvent | None = None
    for e in events:
        if e.eps_actual is not None or e.revenue_actual is not None:  # e.reported
            if e.date <= today and (latest is None or e.date > latest.date):
                latest = e
        elif today - e.date <= PENDING_GRACE and (pending is None or e.date < pending.date):
            pending = e
    if latest is not None and today - latest.date <= REPORTED_WINDOW:
        return latest
    return pending


def judged_consensus(
    event: EarningsEvent, history: ReportHistory | None
) -> tuple[float | None, float | None]:
    """The EPS and revenue consensus a report is judged against: once it has actuals, the
    consensus as frozen before they appeared (its history's), else the provider's latest."""
    if event.reported and history is not None and history.frozen is not None:
        return history.eps_estimate, history.revenue_estimate
    return event.eps_estimate, event.revenue_estimate


def variables(snapshot: Snapshot, now: datetime) -> dict[str, Value]:
    """The variables of RULES.md for one symbol at `now`; None for every unknown, and for
    every number that is not finite (input or derived).

    Every evaluation pass asks it of every symbol: each property and date it needs is
    taken once, and the values not finite are made unknown in place."""
    quote = snapshot.quote
    targets = snapshot.targets
    if quote is not None:
        price, prev_close = quote.price, quote.prev_close
        day_high, day_low = quote.day_high, quote.day_low
    else:
        price = prev_close = day_high = day_low = None
    if targets is not None:
        median, mean, high, low = targets.median, targets.mean, targets.high, targets.low
    else:
        median = mean = high = low = None
    today = _today_at(now)
    event = _select(snapshot.events, today) if snapshot.events else None
    if event is None:
        out: dict[str, Value] = {
            "price": price,
            "prev_close": prev_close,
            "change_pct": pct_change(price, prev_close) if quote is not None else None,
            "day_high": day_high,
            "day_low": day_low,
            "target_median": median,
            "target_mean": mean,
            "target_high": high,
            "target_low": low,
            "session": _session_at(now),
        }
        out.update(_NO_EARNINGS)
        # Only the numbers taken as they are from the snapshot may not be finite.
        if math.isfinite(
            sum(
                [
                    x
                    for x in (price, prev_close, day_high, day_low, median, mean, high, low)
                    if isinstance(x, float)
                ]
            )
        ):
            return out
        return _all_known(out)
    hours = (event.published_at - now).total_seconds() / 3600.0
    period = event.fiscal_period
    key = period or event.date.isoformat()  # event.report_key
    event_reported = event.eps_actual is not None or event.revenue_actual is not None
    price_at_report = snapshot.report_prices.get(key)
    history = snapshot.reports.get(key)
    eps_estimate, revenue_estimate = judged_consensus(event, history)
    price_at_open = snapshot.open_prices.get(key)
    confirmation: Mapping[str, Value]
    if snapshot.confirming:
        confirmation = _confirmation(event, history, True)
        reported = confirmation.pop("reported") is True
    else:  # what `_confirmation` gives without confirmation
        confirmation = _UNCONFIRMED
        reported = event_reported
    # Figures not confirmed yet are no figures a rule may compare: no beat or miss from them.
    eps_actual = event.eps_actual if reported else None
    revenue_actual = event.revenue_actual if reported else None
    when = event.time
    plain = when.__class__ is ReportTime
    # One literal, in the order the variables were always given in.
    out = {
        "price": price,
        "prev_close": prev_close,
        "change_pct": pct_change(price, prev_close) if quote is not None else None,
        "day_high": day_high,
        "day_low": day_low,
        "target_median": median,
        "target_mean": mean,
        "target_high": high,
        "target_low": low,
        "session": _session_at(now),
        "earnings_date": event.date,
        "earnings_time": _TIME_VALUES[when] if plain else when.value,
        "hours_to_earnings": hours,
        "days_to_earnings": (event.date - today).days,
        "reported": reported,
        "eps_estimate": eps_estimate,
        "eps_actual": eps_actual,
        "eps_surprise_pct": pct_change(eps_actual, eps_estimate),
        "revenue_estimate": revenue_estimate,
        "revenue_actual": revenue_actual,
        "revenue_surprise_pct": pct_change(revenue_actual, revenue_estimate),
        "price_at_report": price_at_report,
        "move_since_report_pct": pct_change(price, price_at_report) if event_reported else None,
        "fiscal_period": period,
        "eps_estimate_latest": event.eps_estimate,
        "revenue_estimate_latest": event.revenue_estimate,
    }
    out.update(_lifecycle(event, history) if history is not None else _NO_LIFECYCLE)
    out["price_at_open"] = price_at_open
    out["gap_pct"] = pct_change(price_at_open, price_at_report)
    out.update(confirmation)
    if history is not None or not plain or confirmation is not _UNCONFIRMED:
        return _all_known(out)
    # Every other value is finite or no float: a number derived here (the percentages
    # and the hours) is, and so is every value of a constant table. Only the numbers
    # taken as they are from the snapshot are checked (the others' walk skipped).
    if math.isfinite(
        sum(
            [
                x
                for x in (
                    price,
                    prev_close,
                    day_high,
                    day_low,
                    median,
                    mean,
                    high,
                    low,
                    eps_estimate,
                    eps_actual,
                    revenue_estimate,
                    revenue_actual,
                    price_at_report,
                    event.eps_estimate,
                    event.revenue_estimate,
                    price_at_open,
                )
                if isinstance(x, float)
            ]
        )
    ):
        return out
    return _all_known(out)


def _all_known(out: dict[str, Value]) -> dict[str, Value]:
    """`out` with `_known` applied to each value, in place (it runs for every variable of
    every symbol of every pass)."""
    isfinite = math.isfinite
    # The floats' sum is finite when each is (a sum that overflows only costs the walk).
    if isfinite(sum([value for value in out.values() if isinstance(value, float)])):
        return out
    for name, value in out.items():
        if isinstance(value, float) and not isfinite(value):
            out[name] = None  # the same key: the walk goes on
    return out


# The three tables below are plain dicts typed read-only: `dict.update` copies a dict in
# one C loop, and a MappingProxyType through its keys one lookup at a time (10 times as
# long: 2 us for the 26 earnings variables), for every symbol of every pass.
#: The earnings variables of a symbol without a report (`dict.fromkeys(EARNINGS_VARS)`).
_NO_EARNINGS: Final[Mapping[str, Value]] = dict.fromkeys(EARNINGS_VARS)
#: Each ReportTime's `.value` (the enum's property is slow).
_TIME_VALUES: Final[Mapping[ReportTime, str]] = {t: t.value for t in ReportTime}
#: `_confirmation` without confirmation, less `reported`; `_lifecycle` without a history.
_UNCONFIRMED: Final[Mapping[str, Value]] = {
    "confirmed_by": None,
    "data_suspect": None,
    "figures_from": None,
}
_NO_LIFECYCLE: Final[Mapping[str, Value]] = {
    "consensus_frozen": None,
    "earnings_date_previous": None,
    "earnings_date_changed": None,
    "earnings_time_previous": None,
    "earnings_time_changed": None,
}


def _confirmation(
    event: EarningsEvent, history: ReportHistory | None, confirming: bool
) -> dict[str, Value]:
    """`reported`, `confirmed_by`, `data_suspect` and `figures_from` of `event`. Without
    confirmation `reported` is whether the provider has actuals and the other three are
    unknown (no second provider is asked; an alert's values stay as they were before
    confirmation existed). With it, `reported` is the providers' verdict
    (`service/confirm.py`), kept in the report's history."""
    if not confirming:
        return {
            "reported": event.reported,
            "confirmed_by": None,
            "data_suspect": None,
            "figures_from": None,
        }
    if not event.reported or history is None or history.confirmed_by is None:
        return {"reported": False, "confirmed_by": 0, "data_suspect": False, "figures_from": None}
    names = [n for n in (history.source, history.second) if n]
    return {
        "reported": history.confirmed,
        "confirmed_by": history.confirmed_by,
        "data_suspect": history.suspect,
        "figures_from": ",".join(names) or None,
    }


def _lifecycle(event: EarningsEvent, history: ReportHistory | None) -> dict[str, Value]:
    """The frozen-consensus and date-lifecycle variables of `event`; unknown without a
    history (data that was never merged by MarketData, e.g. a rule test's fixed events)."""
    if history is None:
        return dict(_NO_LIFECYCLE)
    return {
        "consensus_frozen": history.frozen is True if event.reported else False,
        "earnings_date_previous": history.date_previous,
        "earnings_date_changed": event.date != history.first_date,
        "earnings_time_previous": history.time_previous.value if history.time_previous else None,
        "earnings_time_changed": event.time is not history.first_time,
    }
