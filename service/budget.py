"""What a rule set costs each provider, against its free tier: `earnwatch check --budget`.

Pure arithmetic over the settings, the rule set's symbol counts and the providers'
declarations (`ProviderType.rates`, `max_batch`, `calendar_calls`, capabilities). A day is
counted as a trading day: 6.5 hours of quotes every EARNWATCH_PRICE_POLL, the other 17.5
hours every EARNWATCH_OFF_HOURS_POLL, the calendar (yesterday to 90 days out) and the price
targets every EARNWATCH_CALENDAR_REFRESH. The report-window polls come on top, in a line
of their own: one calendar read every EARNWATCH_EARNINGS_POLL while a report's window is
open and its figures are not out, up to the whole window when they never come.
Each provider listed is costed as if it served every call (the failover providers serve
only while the first fails, but then they serve everything). With EARNWATCH_CONFIRM=2 a
line more counts the second provider's confirmation calls, per report.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Final

from service.config import Settings
from service.market import PRICE_VARS, TARGET_VARS, ReportTime
from service.providers import PROVIDERS, earnings_providers, quote_refresh_period
from service.providers.plugin import Capability, ProviderType
from service.rules import RuleSet
from service.schedule import window_length

REGULAR_SECONDS: Final = 6.5 * 3600
DAY_SECONDS: Final = 86_400.0
#: The calendar read at each refresh: yesterday to 90 days out.
CALENDAR_DAYS: Final = 92
#: The variables that need a quote: pipeline.QUOTE_VARS (not imported: `check` must not
#: load the store; a test keeps the two equal).
QUOTE_VARS: Final = PRICE_VARS | {
    "move_since_report_pct",
    "price_at_report",
    "price_at_open",
    "gap_pct",
}


@dataclass(frozen=True, slots=True)
class Counts:
    """What the rule set watches: every symbol (the calendar), those whose rules read a
    price (quotes), those whose rules read a price target."""

    symbols: int
    price_symbols: int
    target_symbols: int


def counts_of(ruleset: RuleSet) -> Counts:
    def reading(names: frozenset[str]) -> int:
        return len(
            {
                symbol
                for rule in ruleset.rules
                if (rule.when.names | (rule.clear_when.names if rule.clear_when else frozenset()))
                & names
                for symbol in rule.symbols
            }
        )

    return Counts(len(ruleset.symbols), reading(QUOTE_VARS), reading(TARGET_VARS))


@dataclass(frozen=True, slots=True)
class ProviderBudget:
    name: str
    failover: bool  # listed after the first: serves only while those before it fail
    per_minute: float  # calls a minute the quotes need while NYSE is open
    per_day: int  # calls a trading day needs
    minute_limit: float | None  # the free tier's long-run pace (None: no limit declared)
    day_limit: float | None
    refresh: timedelta  # how often each polled price can really be refreshed
    advice: str | None  # which setting to change when a daily limit is exceeded

    @property
    def over_day_limit(self) -> bool:
        return self.day_limit is not None and self.per_day > self.day_limit

    def line(self) -> str:
        minute = f"{_count(self.per_minute)}/min"
        if self.minute_limit is not None:
            minute += f" of {_count(self.minute_limit)}/min"
        day = f"{self.per_day}/day"
        if self.day_limit is not None:
            day += f" of {_count(self.day_limit)}/day"
        who = f"{self.name} (failover, if it served every call)" if self.failover else self.name
        text = f"{who}: {minute} at the open, {day}"
        if self.over_day_limit:
            text += f": OVER the daily limit; {self.advice}"
        elif self.minute_limit is not None and self.per_minute > self.minute_limit:
            text += f" (paced: each price refreshed every {_duration(self.refresh)})"
        return text


@dataclass(frozen=True, slots=True)
class ConfirmationCost:
    """The calls EARNWATCH_CONFIRM=2 makes of the second provider for one report: one
    calendar read (the report's date, a day either side) per EARNWATCH_EARNINGS_POLL."""

    first: str
    second: str
    per_poll: int
    agreed: int  # the second agrees at its first answer
    alone: int  # the second has no figures: asked until EARNWATCH_CONFIRM_WAIT ends
    disagreed: int  # the two disagree: asked for SUSPECT_POLLING
    wait: timedelta
    poll: timedelta

    def line(self) -> str:
        from service.confirm import SUSPECT_POLLING

        return (
            f"confirmation (EARNWATCH_CONFIRM=2): {self.second} is asked {self.agreed} "
            f"call(s) per report when it agrees at once, up to {self.alone} while only "
            f"{self.first} has figures (EARNWATCH_CONFIRM_WAIT {_duration(self.wait)}), up to "
            f"{self.disagreed} while they disagree ({_duration(SUSPECT_POLLING)}); one read "
            f"every EARNWATCH_EARNINGS_POLL ({_duration(self.poll)}), on top of the figures above"
        )


def confirmation_cost(settings: Settings) -> ConfirmationCost | None:
    """The confirmation calls per report (None: EARNWATCH_CONFIRM off, or no second
    provider carrying earnings figures)."""
    wait, carrying = settings.confirm_wait_if_on, earnings_providers(settings)
    if wait is None or len(carrying) < 2:
        return None
    from service.confirm import SUSPECT_POLLING  # only with EARNWATCH_CONFIRM on

    ptype = PROVIDERS[carrying[1]]
    per_poll = ptype.calendar_calls(3, 1) if ptype.calendar_calls else 1
    poll = settings.earnings_poll

    def polls(span: timedelta) -> int:
        return max(1, math.ceil(span / poll))

    return ConfirmationCost(
        first=carrying[0],
        second=carrying[1],
        per_poll=per_poll,
        agreed=per_poll,
        alone=per_poll * polls(wait),
        disagreed=per_poll * polls(SUSPECT_POLLING),
        wait=wait,
        poll=poll,
    )


#: The days each report-window poll reads: two before today to tomorrow (pipeline.py).
WINDOW_POLL_DAYS: Final = 4


@dataclass(frozen=True, slots=True)
class WindowCost:
    """The report windows' calendar reads (`service/schedule.py`), by the first provider
    carrying earnings figures: `per_poll` calls every EARNWATCH_EARNINGS_POLL while a
    watched report's window is open and its figures are not out (one read serves every
    symbol in a window), for a bmo and an amc window whose figures never come."""

    provider: str
    per_poll: int
    poll: timedelta
    bmo: int
    amc: int
    room: float | None  # what the daily limit leaves beside a trading day's other calls

    def line(self) -> str:
        text = (
            f"report windows ({self.provider}): {self.per_poll} call(s) every "
            f"EARNWATCH_EARNINGS_POLL ({_duration(self.poll)}) while a watched report's window "
            f"is open and its figures are not out: up to {self.bmo} for a bmo report "
            f"(06:00-12:00 New York), {self.amc} for an amc one (15:30 to 10:00 the next day)"
        )
        if self.room is not None and self.amc > self.room:
            if self.room < 1:
                return text + f"; no room left in {self.provider}'s daily limit"
            amc = window_length(ReportTime.AMC).total_seconds()
            poll = timedelta(seconds=math.ceil(amc * self.per_poll / self.room))
            text += (
                f"; OVER {self.provider}'s daily limit beside the calls above (room for "
                f"{self.room:.0f}) if the figures come late: set EARNWATCH_EARNINGS_POLL to at "
                f"least {_duration(poll)}"
            )
        return text


def window_cost(settings: Settings, budgets: Sequence[ProviderBudget]) -> WindowCost | None:
    """The report windows' cost, or None when no listed provider carries earnings."""
    carrying = earnings_providers(settings)
    if not carrying:
        return None
    ptype = PROVIDERS[carrying[0]]
    per_poll = ptype.calendar_calls(WINDOW_POLL_DAYS, 1) if ptype.calendar_calls else 1
    poll = settings.earnings_poll

    def calls(report_time: ReportTime) -> int:
        return per_poll * math.ceil(window_length(report_time) / poll)

    first = next((b for b in budgets if b.name == ptype.name), None)
    room = None
    if first is not None and first.day_limit is not None:
        room = max(0.0, first.day_limit - first.per_day)
    return WindowCost(
        provider=ptype.name,
        per_poll=per_poll,
        poll=poll,
        bmo=calls(ReportTime.BMO),
        amc=calls(ReportTime.AMC),
        room=room,
    )


@dataclass(frozen=True, slots=True)
class Budget:
    providers: tuple[ProviderBudget, ...]
    counts: Counts
    streamed: int  # symbols on the trade stream
    stream_limit: int
    polled_age: timedelta  # the worst price age of a polled symbol (README: the bound)
    confirmation: ConfirmationCost | None = None
    windows: WindowCost | None = None

    def lines(self) -> list[str]:
        """`check --budget`: one line per provider (and the confirmation calls), then the
        price ages."""
        out = [p.line() for p in self.providers]
        if self.windows is not None and self.counts.symbols:
            out.append(self.windows.line())
        if self.confirmation is not None:
            out.append(self.confirmation.line())
        polled = self.counts.price_symbols - self.streamed
        out.append(
            f"prices: {self.counts.price_symbols} symbol(s) read a price; {self.streamed} "
            f"stream (EARNWATCH_STREAM_SYMBOLS {self.stream_limit}), {polled} polled only"
        )
        if self.streamed:
            out.append(
                "worst price age, streamed: as traded (REST covers while the stream is down: "
                f"up to {_duration(self.polled_age)})"
            )
        if self.counts.price_symbols:
            out.append(f"worst price age, polled: {_duration(self.polled_age)}")
        return out

    def summary(self) -> str:
        """The one line `check` prints: the first provider's cost and the price ages."""
        first = self.providers[0].line() if self.providers else "no provider"
        return (
            f"budget: {first}; {self.streamed} symbol(s) stream, prices polled at most "
            f"{_duration(self.polled_age)} old (earnwatch check --budget for more)"
        )


def provider_budget(
    ptype: ProviderType, settings: Settings, counts: Counts, *, failover: bool = False
) -> ProviderBudget:
    """The calls one provider would make for `counts` with these settings."""
    price_poll = settings.price_poll.total_seconds()
    off_hours = settings.off_hours_poll.total_seconds()
    refresh = settings.calendar_refresh.total_seconds()
    per_pass = math.ceil(counts.price_symbols / max(1, ptype.max_batch))
    off_hours_seconds = DAY_SECONDS - REGULAR_SECONDS
    quotes_day = per_pass * (REGULAR_SECONDS / price_poll + off_hours_seconds / off_hours)
    cost = ptype.calendar_calls
    calendar = 0
    if counts.symbols:
        calendar = cost(CALENDAR_DAYS, counts.symbols) if cost else counts.symbols
    targets = counts.target_symbols if Capability.PRICE_TARGETS in ptype.capabilities else 0
    refreshes = DAY_SECONDS / refresh
    per_day = math.ceil(quotes_day + (calendar + targets) * refreshes)
    # The pace a minute is held to (a daily budget is not spread as a per-minute limit).
    minute_limit = min((r.calls * 60 / r.per for r in ptype.rates if r.per <= 120), default=None)
    day_limit = min((r.calls * DAY_SECONDS / r.per for r in ptype.rates), default=None)
    advice = None
    if day_limit is not None and per_day > day_limit:
        advice = _advice(ptype, settings, day_limit, per_pass, calendar + targets)
    return ProviderBudget(
        name=ptype.name,
        failover=failover,
        per_minute=per_pass * 60 / price_poll,
        per_day=per_day,
        minute_limit=minute_limit,
        day_limit=day_limit,
        refresh=quote_refresh_period([ptype.name], counts.price_symbols, settings.price_poll),
        advice=advice,
    )


def _advice(
    ptype: ProviderType, settings: Settings, day_limit: float, per_pass: int, per_refresh: int
) -> str:
    """Which setting to change so a trading day fits `day_limit`."""
    refreshes = DAY_SECONDS / settings.calendar_refresh.total_seconds()
    off_hours = per_pass * (DAY_SECONDS - REGULAR_SECONDS) / settings.off_hours_poll.total_seconds()
    left = day_limit - per_refresh * refreshes - off_hours
    if per_pass and left > 0:
        poll = math.ceil(per_pass * REGULAR_SECONDS / left)
        return f"set EARNWATCH_PRICE_POLL to at least {_duration(timedelta(seconds=poll))}"
    return (
        "raise EARNWATCH_OFF_HOURS_POLL and EARNWATCH_CALENDAR_REFRESH, or list another "
        f"provider before {ptype.name} in EARNWATCH_PROVIDERS"
    )


def rule_budget(settings: Settings, counts: Counts) -> Budget:
    """The budget of every listed provider (unknown names are left out: `check` does not
    build providers, `run` refuses them)."""
    names = [n for n in dict.fromkeys(settings.provider_names) if n in PROVIDERS]
    streamed = min(counts.price_symbols, settings.stream_symbols) if settings.stream_provider else 0
    budgets = tuple(
        provider_budget(PROVIDERS[n], settings, counts, failover=i > 0) for i, n in enumerate(names)
    )
    return Budget(
        providers=budgets,
        counts=counts,
        streamed=streamed,
        stream_limit=settings.stream_symbols,
        # A pass polls every symbol, but the urgency order may move one from the front
        # of a pass to the back of the next: two refresh periods, plus a call's deadline.
        polled_age=2 * quote_refresh_period(names, counts.price_symbols, settings.price_poll)
        + settings.http_timeout,
        confirmation=confirmation_cost(settings),
        windows=window_cost(settings, budgets),
    )


def _count(value: float) -> str:
    return f"{value:.0f}" if value >= 10 or value == int(value) else f"{value:.2g}"


def _duration(value: timedelta) -> str:
    seconds = value.total_seconds()
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"
