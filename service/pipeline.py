"""One cycle's steps as plain async functions: providers -> market data -> engine -> store.

Nothing here schedules: `daemon.py` decides when each step runs, and `earnwatch run
--once`, the demo and the tests call them directly with `now`. A provider fault is logged
once, counted, and survived: it changes no data, so it can never cause an alert.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import date, datetime, timedelta

from service.engine import RuleState, evaluate
from service.errors import (
    ProviderAuthError,
    ProviderDataError,
    ProviderError,
    ProviderRateLimited,
    ProviderUnsupported,
)
from service.market import NEW_YORK, PRICE_VARS, TARGET_VARS
from service.marketdata import MarketData, SnapshotView
from service.metrics import Metrics, PollKind, ProviderErrorKind
from service.notify.render import render
from service.providers.base import PartialQuotes, Provider
from service.rules import RuleSet
from service.schedule import earnings_due
from service.store import Store
from service.web import HealthState

log = logging.getLogger(__name__)

#: Variables that need a quote (the report move needs the price too).
QUOTE_VARS = PRICE_VARS | {"move_since_report_pct", "price_at_report"}
#: Symbols per quote request batch handed to the provider: a provider without batch
#: quotes (Finnhub: one call per symbol, 60 a minute) takes ~25 s per chunk, and each
#: chunk is evaluated as it arrives instead of after the whole list.
QUOTE_CHUNK = 25
CALENDAR_DAYS_BACK = 1
CALENDAR_DAYS_AHEAD = 90


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
    ) -> None:
        self.provider = provider
        self.store = store
        self.data = data
        self.states = states
        self.rules = rules
        self.metrics = metrics
        self.health = health
        self.on_alerts = on_alerts
        self.earnings_polled: dict[str, datetime] = {}
        self._evaluating = asyncio.Lock()

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

    async def poll_quotes(
        self,
        now: Callable[[], datetime],
        *,
        stop: asyncio.Event | None = None,
    ) -> set[str]:
        """Quotes of every symbol whose rules read a price, chunk by chunk; each chunk's
        changes are evaluated at once. Stops between chunks when `stop` is set."""
        symbols = symbols_needing(self.rules(), QUOTE_VARS)
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
        transaction, then wake delivery. Returns the ids of alerts newly stored."""
        async with self._evaluating:
            ruleset = self.rules()
            started = time.perf_counter()
            view = SnapshotView(self.data, ruleset.symbols)
            result = evaluate(ruleset, view, self.states, now, changed=changed)
            self.metrics.observe_evaluation(time.perf_counter() - started)
            if not result.alerts and not result.states:
                return []
            batch = [
                (
                    alert,
                    render,
                    [
                        (c, ruleset.channels[c].kind)
                        for c in alert.channels
                        if c in ruleset.channels
                    ],
                )
                for alert in result.alerts
            ]
            inserted = await asyncio.to_thread(self.store.record, batch, result.states, now)
            self.states.update(result.states)  # only once the store has them
            for alert in result.alerts:
                self.metrics.alert_fired(alert.rule)
                log.info("alert %s %s: %s", alert.rule, alert.symbol, alert.text)
            if inserted:
                self.on_alerts()
            return inserted
