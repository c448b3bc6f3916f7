"""The cycle: providers -> market data -> engine -> stages -> store, and its policy.

The pipeline owns what runs in each cycle and when it is due: the calendar refresh, the
quotes (every EARNWATCH_PRICE_POLL while NYSE is open, EARNWATCH_OFF_HOURS_POLL
otherwise, in chunks of QUOTE_CHUNK symbols), the report-window polls, the evaluation of
what changed and, every TIME_EVALUATION, of the rules that move with the clock alone, and
resuming from the store after a leadership change. Nothing outside writes its attributes.

Nothing here schedules: `daemon.py` calls the three cycle methods on a timer, and `earnwatch
run --once`, the demo and the tests call them directly with `now`. A provider fault is
logged once, counted, and survived: it changes no data, so it can never cause an alert.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Protocol, runtime_checkable

from service.config import Settings
from service.digest import due_alerts
from service.engine import (
    Alert,
    Evaluation,
    RuleError,
    RuleState,
    Work,
    evaluate_work,
    plan,
    with_rule_keys,
)
from service.errors import (
    ProviderAuthError,
    ProviderDataError,
    ProviderError,
    ProviderRateLimited,
    ProviderUnsupported,
)
from service.health import HealthState
from service.hours import is_market_open
from service.market import NEW_YORK, PRICE_VARS, TARGET_VARS, EarningsEvent
from service.marketdata import MarketData, SnapshotView
from service.metrics import Metrics, PollKind, ProviderErrorKind
from service.providers import prices_stale_after
from service.providers.base import PartialQuotes, Provider
from service.providers.plugin import Capability
from service.recording import Pending, Recorder
from service.rules import RuleSet
from service.schedule import earnings_due, is_due, quote_interval
from service.stages import PreparedStage, Stage, route
from service.store import Store
from service.urgency import rank
from service.wakes import Wakes

log = logging.getLogger(__name__)

#: Variables that need a quote (the report move needs the price too).
QUOTE_VARS = PRICE_VARS | {"move_since_report_pct", "price_at_report", "price_at_open", "gap_pct"}
#: Symbols per quote request batch handed to the provider: a provider without batch
#: quotes (Finnhub: one call per symbol, 60 a minute) takes ~25 s per chunk, and each
#: chunk is evaluated as it arrives instead of after the whole list.
QUOTE_CHUNK = 25
#: Rule evaluations per slice of a pass (a few milliseconds of work each) before the loop
#: gets a turn.
EVALUATION_SLICE = 2_000
CALENDAR_DAYS_BACK = 1
CALENDAR_DAYS_AHEAD = 90
#: With no new data, rules that move with the clock alone (hours_to_earnings, a running
#: `for`) are evaluated this often.
TIME_EVALUATION = timedelta(seconds=10)


@dataclass(frozen=True, slots=True)
class Cadence:
    """How often each poll is due (the settings' defaults; `from_settings` for the real
    ones) and which providers set the pace of quotes."""

    price_poll: timedelta = timedelta(seconds=60)
    off_hours_poll: timedelta = timedelta(minutes=15)
    earnings_poll: timedelta = timedelta(seconds=30)
    call_deadline: timedelta = timedelta(seconds=10)
    provider_names: Sequence[str] = field(default_factory=lambda: ("finnhub",))
    #: EARNWATCH_CONFIRM_WAIT with EARNWATCH_CONFIRM=2; None: confirmation off.
    confirm_wait: timedelta | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> Cadence:
        return cls(
            price_poll=settings.price_poll,
            off_hours_poll=settings.off_hours_poll,
            earnings_poll=settings.earnings_poll,
            call_deadline=settings.http_timeout,
            provider_names=tuple(settings.provider_names),
            confirm_wait=settings.confirm_wait_if_on,
        )


@runtime_checkable
class SecondOpinion(Protocol):
    """The providers as confirmation asks them (`FailoverProvider`): who answered the last
    calendar call, and the calendar of another provider than that one."""

    @property
    def served(self) -> Mapping[Capability, str]: ...

    async def earnings_besides(
        self, source: str, start: date, end: date, symbols: Sequence[str]
    ) -> tuple[str, list[EarningsEvent]]: ...


def second_opinion_of(provider: object) -> SecondOpinion | None:
    """`provider` when it can give a second opinion (a `FailoverProvider` of the settings'
    providers, or a replay scenario's chain with a second provider's figures), else None."""
    return provider if isinstance(provider, SecondOpinion) else None


def symbols_needing(ruleset: RuleSet, names: frozenset[str]) -> list[str]:
    """Symbols with at least one rule that reads one of `names` (spend calls where they matter)."""
    wanted = {
        symbol
        for rule in ruleset.rules
        if (rule.when.names | (rule.clear_when.names if rule.clear_when else frozenset())) & names
        for symbol in rule.symbols
    }
    return sorted(wanted)


def _error_kind(exc: ProviderError) -> ProviderErrorKind:
    if isinstance(exc, ProviderAuthError):
        return "auth"
    if isinstance(exc, ProviderRateLimited):
        return "rate_limited"
    if isinstance(exc, ProviderDataError):
        return "data"
    if isinstance(exc, ProviderUnsupported):
        return "unsupported"
    return "unavailable"


class Pipeline:
    """The steps that move data along: each returns the symbols whose data changed."""

    def __init__(
        self,
        *,
        provider: Provider,
        store: Store,
        data: MarketData,
        states: dict[tuple[str, str], RuleState],
        rules: Callable[[], RuleSet],
        metrics: Metrics,
        health: HealthState,
        on_alerts: Callable[[], None] = lambda: None,
        source: str = "rule file",
        cadence: Cadence = Cadence(),
        stages: Sequence[Stage] = (),
        second_opinion: SecondOpinion | None = None,
    ) -> None:
        """`stages` decide, in order, what becomes of each alert on each channel before it
        is stored (`service/stages.py`); none: every alert is sent. With `second_opinion`
        and `cadence.confirm_wait`, a report's actuals are confirmed by a second provider
        before they count as reported (EARNWATCH_CONFIRM=2, `service/confirm.py`)."""
        self.provider = provider
        self.cadence = cadence
        self.stages = tuple(stages)
        self.store = store
        self.data = data
        self.rules = rules
        self.metrics = metrics
        self.health = health
        self.source = source  # where rules come from, to name the place in a rule error
        self.recorder = Recorder(store, metrics, health, on_alerts)
        #: When each rule that moves with the clock must next be evaluated, so the
        #: TIME_EVALUATION pass evaluates only those whose moment came (`service/wakes.py`).
        self.wakes = Wakes()
        self.states = states
        self.earnings_polled: dict[str, datetime] = {}
        self._last_quotes: datetime | None = None
        self._last_evaluation: datetime | None = None
        #: Per digest rule, up to when its firings were checked (memory only: a firing
        #: recorded before a restart is deduplicated by the store).
        self.digests_checked: dict[str, datetime] = {}
        self._evaluating = asyncio.Lock()
        self._errors_logged: set[tuple[str, str]] = set()
        self._errors_ruleset: RuleSet | None = None
        self.second_opinion = second_opinion if cadence.confirm_wait is not None else None
        self.confirm_polled: dict[str, datetime] = {}
        self.data.confirming = self.second_opinion is not None

    @property
    def states(self) -> dict[tuple[str, str], RuleState]:
        """The rule states the engine goes on from (ahead of the store while it fails)."""
        return self._states

    @states.setter
    def states(self, states: dict[tuple[str, str], RuleState]) -> None:
        # Newer states from the store (a new leader's): the older ones still waiting for
        # the store must not overwrite them. Waiting alerts are stored all the same.
        self._states = states
        self.recorder.forget_states()
        self.wakes.reset()  # the wakes were computed from the states replaced

    # --- the cycle --------------------------------------------------------------------
    async def resume(self) -> None:
        """Go on from the store's rule states and market data: at start, and on becoming
        leader (the previous leader moved them on). Every poll is due again at once."""
        states = await asyncio.to_thread(
            lambda: with_rule_keys(self.rules(), self.store.load_states())
        )
        saved = await asyncio.to_thread(self.store.load_market_data, "market")
        self.states = states
        self.data = MarketData.from_json(saved.data_json) if saved is not None else MarketData()
        self.data.confirming = self.second_opinion is not None
        self.earnings_polled.clear()
        self.confirm_polled.clear()
        self._last_quotes = None

    async def calendar_cycle(self, now: datetime) -> None:
        """The calendar and price targets of every watched symbol, then a full evaluation
        (which report a rule sees moves by the day)."""
        await self.refresh_calendar(now)
        await self.refresh_targets(now)
        await self.evaluate(now, None)
        await self.save_data(now)

    def quote_soon(self) -> None:
        """Quotes are due at the next `quotes_cycle` (new symbols are watched)."""
        self._last_quotes = None

    async def quotes_cycle(
        self, now: Callable[[], datetime], *, stop: asyncio.Event | None = None
    ) -> None:
        """Quotes when due. A cycle of its own: a provider without batch quotes needs
        minutes for hundreds of symbols, and the report-window polls must not wait on it.
        Also tells `/healthz` which prices must stay fresh, and how fresh."""
        moment = now()
        cadence = self.cadence
        interval = quote_interval(
            is_market_open(moment), cadence.price_poll, cadence.off_hours_poll
        )
        symbols = symbols_needing(self.rules(), QUOTE_VARS)
        stale = prices_stale_after(
            cadence.provider_names, len(symbols), interval, cadence.call_deadline
        )
        self.health.watch_prices(symbols, stale, moment)
        if not is_due(self._last_quotes, moment, interval):
            return
        self._last_quotes = moment
        if await self.poll_quotes(now, stop=stop):
            await self.save_data(now())

    async def market_cycle(self, now: datetime) -> int:
        """The report-window calendar polls, then an evaluation of what changed and, every
        TIME_EVALUATION, of the rules that move with the clock alone. Returns how many
        deliveries wait in the outbox."""
        changed = await self.poll_earnings(now, self.cadence.earnings_poll)
        changed |= await self.confirm_reports(now)
        if changed or is_due(self._last_evaluation, now, TIME_EVALUATION):
            self._last_evaluation = now
            await self.evaluate(now, changed)
        await self.send_digests(now)
        pending = await asyncio.to_thread(self.store.pending_count)
        self.metrics.set_outbox_pending(pending)
        if changed:
            await self.save_data(now)
        return pending

    # --- market data ---------------------------------------------------------------------
    def _failed(self, what: str, exc: ProviderError, now: datetime) -> None:
        kind = _error_kind(exc)
        self.metrics.provider_error(exc.provider, kind)
        self.health.mark_provider_failure(now, str(exc))
        log.warning("%s failed: %s", what, exc)

    def _succeeded(self, kind: PollKind, now: datetime) -> None:
        self.metrics.poll(kind)
        self.metrics.provider_success(now)
        self.health.mark_provider_success(now)

    async def refresh_calendar(self, now: datetime) -> set[str]:
        """The calendar of every watched symbol from yesterday to 90 days out."""
        symbols = sorted(self.rules().symbols)
        if not symbols:
            return set()
        today = now.astimezone(NEW_YORK).date()
        start = today - timedelta(days=CALENDAR_DAYS_BACK)
        end = today + timedelta(days=CALENDAR_DAYS_AHEAD)
        return await self._calendar(symbols, start, end, now, "calendar")

    async def poll_earnings(self, now: datetime, interval: timedelta) -> set[str]:
        """The calendar entries of symbols inside their report window, polled fast."""
        due = earnings_due(self.data.events, self.earnings_polled, now, interval)
        watched = self.rules().symbols
        due = [s for s in due if s in watched]
        if not due:
            return set()
        for symbol in due:
            self.earnings_polled[symbol] = now
        today = now.astimezone(NEW_YORK).date()
        return await self._calendar(
            due, today - timedelta(days=2), today + timedelta(days=1), now, "earnings"
        )

    async def _calendar(
        self, symbols: list[str], start: date, end: date, now: datetime, kind: PollKind
    ) -> set[str]:
        try:
            events = await self.provider.earnings(start, end, symbols)
        except ProviderError as exc:
            self._failed(f"{kind} of {len(symbols)} symbol(s)", exc, now)
            return set()
        self._succeeded(kind, now)
        changed = self.data.apply_events(events, symbols, start, end)
        if self.second_opinion is not None and self.cadence.confirm_wait is not None:
            # Who answered the call just awaited: set as it returned, with no await since.
            source = self.second_opinion.served.get(Capability.EARNINGS)
            wait = self.cadence.confirm_wait
            changed |= self.data.settle(now, wait, source=source, symbols=symbols)
        for symbol in sorted(changed):
            for event in self.data.events.get(symbol, ()):
                if start <= event.date <= end:
                    log.info(
                        "calendar %s: %s %s %s%s",
                        symbol,
                        event.date.isoformat(),
                        event.time.value,
                        event.fiscal_period or "",
                        " reported" if event.reported else "",
                    )
        return changed

    async def confirm_reports(self, now: datetime) -> set[str]:
        """EARNWATCH_CONFIRM=2: the verdicts the wait changed, then, every
        EARNWATCH_EARNINGS_POLL, the second provider's calendar for the reports still
        awaiting it. Returns the symbols whose verdict changed."""
        wait, opinion = self.cadence.confirm_wait, self.second_opinion
        if wait is None or opinion is None:
            return set()
        changed = self.data.settle(now, wait)
        awaiting = self.data.awaiting_second(now, wait)
        watched = self.rules().symbols
        interval = self.cadence.earnings_poll
        due = {
            s: events
            for s, events in awaiting.items()
            if s in watched and is_due(self.confirm_polled.get(s), now, interval)
        }
        by_source: dict[str, dict[str, list[EarningsEvent]]] = {}
        for symbol, events in due.items():
            self.confirm_polled[symbol] = now
            for event in events:
                history = self.data.reports[symbol][event.report_key]
                by_source.setdefault(history.source or "", {}).setdefault(symbol, []).append(event)
        for source, reports in by_source.items():
            dates = [e.date for events in reports.values() for e in events]
            start, end = min(dates) - timedelta(days=1), max(dates) + timedelta(days=1)
            symbols = sorted(reports)
            # While two disagree, either may correct itself: the first is re-read too.
            suspect = [
                s
                for s in symbols
                if any(self.data.reports[s][e.report_key].suspect for e in reports[s])
            ]
            if suspect:
                changed |= await self._calendar(suspect, start, end, now, "earnings")
            try:
                name, rows = await opinion.earnings_besides(source, start, end, symbols)
            except ProviderError as exc:
                self._failed(f"confirmation of {len(symbols)} symbol(s)", exc, now)
                continue
            self._succeeded("confirm", now)
            verdicts = self.data.apply_second(name, rows, reports, now, wait)
            for symbol in sorted(verdicts):
                for event in reports[symbol]:
                    h = self.data.reports[symbol][event.report_key]
                    log.info(
                        "confirmation %s %s: %s and %s, confirmed by %d%s",
                        symbol,
                        event.report_key,
                        h.source,
                        h.second or f"{name} (no figures yet)",
                        h.confirmed_by or 0,
                        ", figures disagree" if h.suspect else "",
                    )
            changed |= verdicts
        return changed

    async def poll_quotes(
        self,
        now: Callable[[], datetime],
        *,
        stop: asyncio.Event | None = None,
    ) -> set[str]:
        """Quotes of every symbol whose rules read a price, most urgent first, chunk by
        chunk; each chunk's changes are evaluated at once. Stops between chunks when
        `stop` is set."""
        symbols = self.ranked_prices(now())  # the most urgent are fresh first
        changed: set[str] = set()
        for start in range(0, len(symbols), QUOTE_CHUNK):
            if stop is not None and stop.is_set():
                break
            chunk = symbols[start : start + QUOTE_CHUNK]
            try:
                quotes = await self.provider.quotes(chunk)
            except ProviderError as exc:
                self._failed(f"quotes of {len(chunk)} symbol(s)", exc, now())
                if not isinstance(exc, PartialQuotes):
                    continue
                quotes = exc.quotes  # one stalled symbol must not hold back the others
            moment = now()
            self._succeeded("quotes", moment)
            fresh = self.data.apply_quotes(quotes, moment)
            if fresh:
                await self.evaluate(moment, fresh)
            changed |= fresh
        return changed

    def ranked_prices(self, now: datetime) -> list[str]:
        """Every symbol whose rules read a price (REST polls them all, always), most
        urgent first (`service/urgency.py`): in a report window, near a level, stalest."""
        ruleset = self.rules()
        return rank(symbols_needing(ruleset, QUOTE_VARS), ruleset, self.data, now)

    async def apply_trades(
        self, trades: Mapping[str, tuple[float, datetime]], now: datetime
    ) -> set[str]:
        """Trades from the stream, (price, trade time) per symbol: each newer one becomes
        its symbol's price, and the changed symbols are evaluated at once. REST quotes
        keep bringing the previous close and the day's range. Returns changed symbols."""
        fresh = self.data.apply_trades(trades)
        if fresh:
            self.health.mark_prices(now, fresh)
            await self.evaluate(now, fresh)
        return fresh

    async def refresh_targets(self, now: datetime) -> set[str]:
        changed: set[str] = set()
        for symbol in symbols_needing(self.rules(), TARGET_VARS):
            try:
                target = await self.provider.price_targets(symbol)
            except ProviderError as exc:
                self._failed(f"price targets of {symbol}", exc, now)
                if not exc.retryable:
                    break
                continue
            self._succeeded("targets", now)
            changed |= self.data.apply_targets({symbol: target})
        return changed

    async def save_data(self, now: datetime) -> None:
        await asyncio.to_thread(self.store.save_market_data, "market", self.data.to_json(), now)

    # --- evaluation ----------------------------------------------------------------------
    async def evaluate(self, now: datetime, changed: set[str] | None) -> list[str]:
        """Evaluate (all rules with `changed=None`), store alerts and states in one
        transaction, then wake delivery. Returns the ids of alerts newly stored. Alerts the
        store could not take are kept and stored with the next pass."""
        async with self._evaluating:
            ruleset = self.rules()
            started = time.perf_counter()
            for symbol in changed or ():
                quote = self.data.quotes.get(symbol)
                if quote is not None and quote.time is not None:
                    self.metrics.observe_price_age((now - quote.time).total_seconds())
            view = SnapshotView(self.data, ruleset.symbols)
            # A big pass (a reload of 30,000 rules, say) in slices, yielding to the loop
            # between them, so deliveries, polls and the leader's renewal are not held up.
            # The slices cover disjoint symbols, so their states never overlap.
            parts: list[Evaluation] = []
            work = plan(ruleset, self.states, changed, self.wakes, now)
            for part in _slices(work, EVALUATION_SLICE):
                if parts:
                    await asyncio.sleep(0)
                parts.append(evaluate_work(part, view, self.states, now))
            result = Evaluation(
                alerts=[a for p in parts for a in p.alerts],
                states={k: v for p in parts for k, v in p.states.items()},
                evaluated=sum(p.evaluated for p in parts),
                errors=[e for p in parts for e in p.errors],
                wakes={k: v for p in parts for k, v in p.wakes.items()},
            )
            self.wakes.update(ruleset, result.wakes)
            self.metrics.observe_evaluation(time.perf_counter() - started)
            self.health.mark_evaluated(now)
            self._rule_errors(ruleset, result.errors)
            if not result.alerts and not result.states and not self.recorder.waiting:
                return []
            # The engine goes on from these states even if the store refuses them now:
            # the recorder keeps them, with the alerts, until it takes them, so a crossing
            # is neither lost nor fired twice while the database is unwritable.
            self.states.update(result.states)
            if result.alerts:
                await self._prepare_stages(now)
            pending = self._routed(ruleset, result, now)
            return await self.recorder.record(pending, result.states, now)

    async def send_digests(self, now: datetime) -> list[str]:
        """The digest rules' firings due since the last check (`service/digest.py`), each
        one message through the stages and the outbox like any alert. Returns the ids of
        the alerts newly stored (a firing already recorded is deduplicated by the store)."""
        ruleset = self.rules()
        if not ruleset.digests:
            return []
        alerts = due_alerts(
            ruleset.digests,
            self.digests_checked,
            self.data,
            now,
            empty=lambda rule, firing: log.info(
                "digest %s at %s: no report in its window", rule.name, firing
            ),
        )
        if not alerts:
            return []
        async with self._evaluating:
            await self._prepare_stages(now)
            return await self.recorder.record(self._route(ruleset, alerts, now), {}, now)

    async def record_waiting(self, now: datetime) -> list[str]:
        """On a replica that no longer leads: store the alerts it fired while it led and
        could not store then (the new leader may never see their crossing). Their states
        are dropped, since the leader's states are newer."""
        if not self.recorder.waiting:
            return []
        async with self._evaluating:
            self.recorder.forget_states()
            return await self.recorder.record([], {}, now)

    async def _prepare_stages(self, now: datetime) -> None:
        for stage in self.stages:
            if isinstance(stage, PreparedStage):
                await stage.prepare(now)

    def _routed(self, ruleset: RuleSet, result: Evaluation, now: datetime) -> list[Pending]:
        return self._route(ruleset, result.alerts, now)

    def _route(self, ruleset: RuleSet, alerts: Sequence[Alert], now: datetime) -> list[Pending]:
        """Each alert with, per channel, what the stages decided (send, mute, defer)."""
        return [
            (
                alert,
                tuple(
                    (name, channel.kind, route(self.stages, alert, channel, now))
                    for name in alert.channels
                    if (channel := ruleset.channels.get(name)) is not None
                ),
            )
            for alert in alerts
        ]

    def _rule_errors(self, ruleset: RuleSet, errors: list[RuleError]) -> None:
        """Count every failure; log the first of each rule and kind per rule set."""
        if ruleset is not self._errors_ruleset:
            self._errors_ruleset = ruleset
            self._errors_logged.clear()
        for error in errors:
            self.metrics.rule_error(error.rule, error.kind)
            if (error.rule, error.kind) in self._errors_logged:
                continue
            self._errors_logged.add((error.rule, error.kind))
            if error.kind == "condition":
                log.error(
                    "%s:%d: rule %r: its condition raised %s for %s: it counts as unknown "
                    "(no alert) until fixed; other rules go on (logged once, counted in "
                    "earnwatch_rule_errors_total)",
                    self.source,
                    error.line,
                    error.rule,
                    error.exc_type,
                    error.symbol,
                )
            else:
                log.warning(
                    "%s:%d: rule %r: its message failed to render (%s) for %s: its alerts "
                    "carry the default message until fixed (logged once, counted in "
                    "earnwatch_rule_errors_total)",
                    self.source,
                    error.line,
                    error.rule,
                    error.exc_type,
                    error.symbol,
                )


def _slices(work: list[Work], size: int) -> Iterator[list[Work]]:
    """`work` in consecutive parts of about `size` rule evaluations each."""
    part: list[Work] = []
    count = 0
    for symbol, rules in work:
        if not isinstance(rules, tuple):  # a rule set's own tuple keeps its keys
            rules = tuple(rules)
        part.append((symbol, rules))
        count += len(rules)
        if count >= size:
            yield part
            part, count = [], 0
    if part:
        yield part
