"""The status snapshot behind the status page (`/`) and `/api/status`: one plain, JSON-able
dict of what this process watches, in what state each rule is for each symbol, what is
coming and what was sent.

`status_snapshot()` is pure: the caller hands in the rule set, the rule states and market
data the pipeline goes on from, the active silences, the newest alerts (as `earnwatch
history` reads them), the health, the budget, the stream and leadership, and `now`. The
HTML page and the JSON render the same dict. `read_status(app)` gathers those from a
running App (the store is read in a thread).

A rule's state for a symbol is one of `silenced`, `pending` (its `for` runs), `cooldown`,
`fired` (not armed again yet), `unknown` (armed, but its condition cannot be decided from
the data known) and `armed`, in that order of precedence; `detail` says it in words, as
`earnwatch explain` does.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields, replace
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

from service.budget import Budget
from service.engine import RuleState
from service.explain import Explanation, SilenceLike, explain, moment, span, state_text
from service.figures import format_pct, format_value
from service.market import EarningsEvent, judged_consensus, pct_change
from service.marketdata import MarketData
from service.rules import RuleSet
from service.schedule import earnings_window

if TYPE_CHECKING:
    from service.app import App
    from service.store.types import HistoryEntry

#: How many alerts, and upcoming and past reports, the page shows.
LAST_ALERTS: Final = 20
REPORTS_SHOWN: Final = 20
#: Past reports older than this are not "last reports" any more.
PAST_REPORTS: Final = timedelta(days=30)

STATES: Final = ("silenced", "pending", "cooldown", "fired", "unknown", "armed")


@dataclass(frozen=True, slots=True)
class Replica:
    """What the page says about this process besides its rules: health, leadership, the
    stream (None when there is none) and the budget of its rules."""

    healthy: bool
    health: str
    leading: bool
    last_success: datetime | None = None
    last_failure: datetime | None = None
    last_error: str | None = None
    consecutive_failures: int = 0
    stale_prices: tuple[str, ...] = ()
    stream: Mapping[str, Any] | None = None
    budget: Budget | None = None


def _iso(value: datetime | date | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    return value.isoformat()


def rule_state(e: Explanation) -> str:
    """The one word for `e`'s state (see the module docstring)."""
    if e.silences:
        return "silenced"
    if e.state.pending_since is not None and e.hold is not None:
        return "pending"
    if e.cooldown_until is not None:
        return "cooldown"
    if not e.state.armed:
        return "fired"
    if e.when.value is None:
        return "unknown"
    return "armed"


def _headline(e: Explanation, state: str) -> str:
    """The state in a few words, with its time: `fired at 2026-02-04 16:34Z`."""
    if state == "silenced":
        return f"silenced until {moment(max(s.ends_at for s in e.silences))}"
    if state == "pending":
        left = e.pending_left or timedelta(0)
        return f"pending: {span(left)} of `for` left"
    if state == "cooldown":
        return f"cooldown until {moment(e.cooldown_until)}"
    if state == "fired":
        return f"fired at {moment(e.state.last_fired)}"
    if state == "unknown":
        missing = ", ".join(e.when.unknown) or "its condition"
        return f"unknown data: {missing}"
    return "armed"


def _symbol_status(e: Explanation) -> dict[str, Any]:
    state = rule_state(e)
    cooldown_until = e.cooldown_until
    return {
        "symbol": e.symbol,
        "state": state,
        "headline": _headline(e, state),
        "detail": state_text(e),
        "verdict": e.verdict,
        "condition": e.when.value,
        "pending_left_seconds": (
            e.pending_left.total_seconds() if state == "pending" and e.pending_left else None
        ),
        "last_fired": _iso(e.state.last_fired),
        "cooldown_until": _iso(cooldown_until),
        "silenced_until": _iso(max(s.ends_at for s in e.silences)) if e.silences else None,
        "values": {
            name: {
                "value": reading.value
                if not isinstance(reading.value, date)
                else reading.value.isoformat(),
                "text": format_value(reading.value),
                "age_seconds": reading.age.total_seconds() if reading.age is not None else None,
            }
            for name, reading in e.values.items()
        },
    }


def _report(e: EarningsEvent) -> dict[str, Any]:
    start, end = earnings_window(e)
    return {
        "symbol": e.symbol,
        "date": e.date.isoformat(),
        "time": e.time.value,
        "fiscal_period": e.fiscal_period,
        "eps_estimate": e.eps_estimate,
        "revenue_estimate": e.revenue_estimate,
        "eps_actual": e.eps_actual,
        "revenue_actual": e.revenue_actual,
        "eps_surprise_pct": pct_change(e.eps_actual, e.eps_estimate),
        "revenue_surprise_pct": pct_change(e.revenue_actual, e.revenue_estimate),
        "window_start": _iso(start),
        "window_end": _iso(end),
        "text": {
            "eps_estimate": format_value(e.eps_estimate),
            "revenue_estimate": format_value(e.revenue_estimate),
            "eps_actual": format_value(e.eps_actual),
            "revenue_actual": format_value(e.revenue_actual),
            "eps_surprise": format_pct(pct_change(e.eps_actual, e.eps_estimate)),
            "revenue_surprise": format_pct(pct_change(e.revenue_actual, e.revenue_estimate)),
            "window": f"{moment(start)} to {moment(end)}",
        },
    }


def _reports(data: MarketData, symbols: frozenset[str], now: datetime) -> dict[str, Any]:
    """The next reports (not reported yet, from today on) and the last ones (reported,
    within PAST_REPORTS), with the consensus as frozen before the actuals appeared."""
    today = now.astimezone(UTC).date()
    upcoming: list[EarningsEvent] = []
    past: list[EarningsEvent] = []
    for symbol in sorted(symbols):
        for event in data.events.get(symbol, ()):
            if event.reported:
                if event.published_at >= now - PAST_REPORTS:
                    history = data.reports.get(symbol, {}).get(event.report_key)
                    eps, revenue = judged_consensus(event, history)
                    past.append(replace(event, eps_estimate=eps, revenue_estimate=revenue))
            elif event.date >= today - timedelta(days=1):
                upcoming.append(event)
    upcoming.sort(key=lambda e: (e.published_at, e.symbol))
    past.sort(key=lambda e: (e.published_at, e.symbol), reverse=True)
    return {
        "next": [_report(e) for e in upcoming[:REPORTS_SHOWN]],
        "last": [_report(e) for e in past[:REPORTS_SHOWN]],
    }


def _alerts(entries: Sequence[HistoryEntry]) -> list[dict[str, Any]]:
    """The alerts as `history --json` gives them, each delivery with the LAST ERROR text
    of `earnwatch history` as `note` (errors are stored already masked)."""
    from service.commands import delivery_note, entry_json

    alerts = []
    for e in entries:
        alert = entry_json(e)
        for shown, d in zip(alert["deliveries"], e.deliveries, strict=True):
            shown["note"] = delivery_note(d)
        alerts.append(alert)
    return alerts


def _budget(budget: Budget | None) -> dict[str, Any] | None:
    if budget is None:
        return None
    return {
        "lines": budget.lines(),
        "providers": [
            {
                "name": p.name,
                "failover": p.failover,
                "per_minute": p.per_minute,
                "minute_limit": p.minute_limit,
                "per_day": p.per_day,
                "day_limit": p.day_limit,
                "over_day_limit": p.over_day_limit,
            }
            for p in budget.providers
        ],
        "streamed_symbols": budget.streamed,
        "price_symbols": budget.counts.price_symbols,
    }


def status_snapshot(
    *,
    ruleset: RuleSet,
    states: Mapping[tuple[str, str], RuleState],
    data: MarketData,
    silences: Sequence[SilenceLike],
    alerts: Sequence[HistoryEntry],
    replica: Replica,
    now: datetime,
    source: str = "",
    store_error: str | None = None,
) -> dict[str, Any]:
    """Everything the status page shows, as plain data (see the module docstring)."""
    rules = []
    counts = dict.fromkeys(STATES, 0)
    for rule in ruleset.rules:
        symbols = [
            _symbol_status(
                explain(rule, s, data, states.get((rule.name, s)), now, silences=silences)
            )
            for s in rule.symbols
        ]
        for row in symbols:
            counts[row["state"]] += 1
        rules.append(
            {
                "name": rule.name,
                "when": rule.when.source,
                "clear_when": rule.clear_when.source if rule.clear_when else None,
                "for": span(rule.hold) if rule.hold else None,
                "cooldown": span(rule.cooldown) if rule.cooldown else None,
                "channels": list(rule.channels),
                "urgent": rule.urgent,
                "line": rule.line,
                "symbols": symbols,
            }
        )
    return {
        "generated_at": _iso(now),
        "rule_file": source,
        "store_error": store_error,
        "summary": ruleset.summary(),
        "states": counts,
        "rules": rules,
        "digests": [d.name for d in ruleset.digests],
        "disabled": list(ruleset.disabled),
        "reports": _reports(data, ruleset.symbols, now),
        "alerts": _alerts(alerts),
        "replica": {
            "leading": replica.leading,
            "healthy": replica.healthy,
            "health": replica.health,
            "last_success": _iso(replica.last_success),
            "last_failure": _iso(replica.last_failure),
            "last_error": replica.last_error,
            "consecutive_failures": replica.consecutive_failures,
            "stale_prices": list(replica.stale_prices),
        },
        "stream": dict(replica.stream) if replica.stream is not None else None,
        "budget": _budget(replica.budget),
    }


async def read_status(app: App) -> dict[str, Any]:
    """The snapshot of a running App: memory for what the pipeline goes on from, the store
    (in a thread) for silences and the last alerts. A store that fails shows no silences
    and no alerts, with the error named, rather than no page."""
    from service.budget import counts_of, rule_budget
    from service.errors import StoreError

    now = app.clock.now()
    ruleset = app.rules()
    store_error: str | None = None

    def from_store() -> tuple[list[SilenceLike], list[HistoryEntry]]:
        from service.explain_command import active_silences

        return active_silences(app.store, now), app.store.history(limit=LAST_ALERTS)

    try:
        silences, alerts = await asyncio.to_thread(from_store)
    except StoreError as exc:
        silences, alerts, store_error = [], [], str(exc)
    health = app.health
    healthy, reason = health.check(now)
    stream = None
    if app.stream is not None:
        stream = {
            "url": app.stream.shown_url,
            "connected": app.stream.connected,
            "failed_attempts": app.stream.attempts,
            "down_since": _iso(health.stream_down_since),
        }
    replica = Replica(
        healthy=healthy,
        health=reason,
        leading=app.is_leading(),
        last_success=health.last_success,
        last_failure=health.last_failure,
        last_error=health.last_error,
        consecutive_failures=health.consecutive_failures,
        stale_prices=tuple(health.stale_prices(now)),
        stream=stream,
        budget=rule_budget(app.settings, counts_of(ruleset)),
    )
    # The snapshot of a large rule file takes a while (bench/status_page.py): it is built in
    # a thread, from copies taken here on the loop, so the daemon goes on meanwhile.
    return await asyncio.to_thread(
        functools.partial(
            status_snapshot,
            ruleset=ruleset,
            states=dict(app.pipeline.states),
            data=_copy(app.pipeline.data),
            silences=silences,
            alerts=alerts,
            replica=replica,
            now=now,
            source=str(app.rule_file.path),
            store_error=store_error,
        )
    )


def _copy(data: MarketData) -> MarketData:
    """A copy the loop's later merges cannot change: every field's dict, and the dicts in
    it, copied (the values themselves are frozen)."""
    copied: dict[str, Any] = {}
    for f in fields(data):
        value = getattr(data, f.name)
        if isinstance(value, dict):
            value = {k: dict(v) if isinstance(v, dict) else v for k, v in value.items()}
        copied[f.name] = value
    return MarketData(**copied)
