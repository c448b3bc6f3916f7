"""What the one-shot commands do (`history`, `test-notify`, `calendar`), kept out of
`cli.py` so it stays argument parsing and printing. Each returns text to print."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from service.config import Settings
from service.errors import ConfigError, DeliveryError, ProviderError, StoreError, UnsafeTargetError
from service.figures import format_pct, format_value
from service.market import NEW_YORK, EarningsEvent, ReportHistory, judged_consensus, pct_change
from service.marketdata import MarketData
from service.notify.base import ChannelConfig, Message
from service.parts import notifiers_for, providers_for
from service.rules import RuleSet

if TYPE_CHECKING:
    from service.store.types import DeliverySummary, HistoryEntry


def format_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Columns aligned; numbers right-aligned."""
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]

    def line(cells: Sequence[str]) -> str:
        out = []
        for cell, width in zip(cells, widths, strict=True):
            numeric = cell[:1].isdigit() or (cell[:1] in "-+$" and cell[1:2].isdigit())
            out.append(cell.rjust(width) if numeric else cell.ljust(width))
        return "  ".join(out).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths]), *map(line, rows)])


def show_history(
    settings: Settings, *, limit: int, rule: str | None, status: str | None, as_json: bool
) -> tuple[int, str]:
    """(exit code, text): 1 with one line when the database cannot be opened."""
    from service.parts import store_for

    try:
        store = store_for(settings)
    except StoreError as exc:
        return 1, f"history: {exc}"
    try:
        entries = store.history(limit=limit, rule=rule, status=status)  # type: ignore[arg-type]
    finally:
        store.close()
    if as_json:
        return 0, json.dumps([entry_json(e) for e in entries], indent=2)
    if not entries:
        return 0, "no alerts yet"
    rows = []
    for e in entries:
        fired = e.fired_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
        deliveries = e.deliveries or ()
        if not deliveries:
            rows.append([fired, e.rule, e.symbol, "-", "-", "0", "", _short(e.message.text)])
        for i, d in enumerate(deliveries):
            rows.append(
                [
                    fired if i == 0 else "",
                    e.rule if i == 0 else "",
                    e.symbol if i == 0 else "",
                    f"{d.channel} ({d.kind})",
                    d.status,
                    str(d.attempts),
                    _short(delivery_note(d), 40),
                    _short(e.message.text) if i == 0 else "",
                ]
            )
    headers = ["FIRED", "RULE", "SYMBOL", "CHANNEL", "STATUS", "ATTEMPTS", "LAST ERROR", "MESSAGE"]
    return 0, format_table(headers, rows)


def entry_json(e: HistoryEntry) -> dict[str, Any]:
    """One alert of `history --json` (and of the status page's `/api/status`, which adds
    each delivery's `note`): its deliveries' errors as stored, already masked."""
    return {
        "alert_id": e.alert_id,
        "rule": e.rule,
        "symbol": e.symbol,
        "fired_at": e.fired_at.isoformat(),
        "report": e.report_key,
        "message": e.message.text,
        "kind": e.message.kind,
        "resolves": e.message.resolves,
        "amends": e.message.amends,
        "deliveries": [
            {
                "channel": d.channel,
                "kind": d.kind,
                "status": d.status,
                "attempts": d.attempts,
                "last_error": d.last_error,
                "hold_reason": d.hold_reason,
                "next_attempt_at": d.next_attempt_at.isoformat(),
                "delivered_at": d.delivered_at.isoformat() if d.delivered_at else None,
            }
            for d in e.deliveries
        ],
    }


def delivery_note(delivery: DeliverySummary) -> str:
    """The LAST ERROR cell: the error, or for a muted or deferred delivery the stage's
    reason (and when a deferred one goes)."""
    if delivery.status == "deferred":
        when = delivery.next_attempt_at.astimezone(UTC).strftime("%Y-%m-%d %H:%MZ")
        return f"until {when}: {delivery.hold_reason or 'deferred'}"
    if delivery.status in ("muted", "silenced"):
        return delivery.hold_reason or delivery.status
    return delivery.last_error or ""


def _short(text: str, width: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


async def send_test(settings: Settings, ruleset: RuleSet, name: str) -> tuple[bool, str]:
    """One attempt through one channel, as the daemon would send it."""
    channel = ruleset.channels.get(name)
    if channel is None:
        known = ", ".join(ruleset.channels) or "none"
        return False, f"test-notify: no channel {name!r} in the rule file (defined: {known})"
    now = datetime.now(UTC)
    delivery_id = uuid.uuid4().hex
    message = Message(
        id=delivery_id,
        rule="test-notify",
        symbol="TEST",
        title=f"TEST · earnwatch test-notify ({name})",
        text=f"Earnwatch test message to channel {name!r}: alerts will reach you here.",
        fired_at=now,
        values={"price": 7.56},
    )
    notifiers = notifiers_for(settings)
    try:
        notifier = notifiers[channel.kind]
        config = channel.config
        assert isinstance(config, ChannelConfig)
        async with asyncio.timeout(notifier.deadline):  # the daemon's deadline, too
            await notifier.send(message, config, delivery_id=delivery_id)
    except DeliveryError as exc:
        kind = "permanent" if exc.permanent else "retryable"
        return False, f"{name} ({channel.kind}): failed ({kind}): {exc}"
    except TimeoutError:
        late = f"no complete reply within {notifier.deadline:g} s"
        return False, f"{name} ({channel.kind}): failed (retryable): {late}"
    except (UnsafeTargetError, ConfigError) as exc:
        return False, f"{name} ({channel.kind}): refused: {exc}"
    finally:
        for n in notifiers.values():
            await n.aclose()
    return True, f"{name} ({channel.kind}): delivered"


async def show_calendar(
    settings: Settings, ruleset: RuleSet, *, days: int, as_json: bool
) -> tuple[int, str]:
    symbols = sorted(ruleset.symbols)
    if not symbols:
        return 0, "no symbols are watched by the rule file"
    today = datetime.now(NEW_YORK).date()
    try:
        provider = providers_for(settings)
    except ConfigError as exc:
        return 2, f"calendar: {exc}"
    try:
        events = await provider.earnings(
            today - timedelta(days=7), today + timedelta(days=days), symbols
        )
    except ProviderError as exc:
        return 1, f"calendar: {exc}"
    finally:
        await provider.aclose()
    events = sorted(events, key=lambda e: (e.date, e.symbol))
    seen = _seen_reports(
        settings, events, symbols, today - timedelta(days=7), today + timedelta(days=days)
    )
    shown = [_frozen(e, seen.get((e.symbol, e.report_key))) for e in events]
    if as_json:
        return 0, json.dumps([_event_json(*e) for e in shown], indent=2)
    if not events:
        return 0, f"no reports for {len(symbols)} watched symbol(s) in the next {days} days"
    headers = [
        "DATE",
        "TIME",
        "SYMBOL",
        "PERIOD",
        "EPS EST",
        "EPS ACT",
        "EPS SURP",
        "REV EST",
        "REV ACT",
        "REV SURP",
        "EPS LATEST",
        "MOVED FROM",
    ]
    rows = [
        [
            e.date.isoformat(),
            e.time.value,
            e.symbol,
            e.fiscal_period or "",
            format_value(e.eps_estimate),
            format_value(e.eps_actual) if e.reported else "",
            _pct(pct_change(e.eps_actual, e.eps_estimate)),
            format_value(e.revenue_estimate),
            format_value(e.revenue_actual) if e.reported else "",
            _pct(pct_change(e.revenue_actual, e.revenue_estimate)),
            format_value(latest) if latest != e.eps_estimate else "",
            _moved_from(e, h),
        ]
        for e, latest, h in shown
    ]
    return 0, format_table(headers, rows)


def _moved_from(e: EarningsEvent, h: ReportHistory | None) -> str:
    if h is None or h.date_previous is None or e.date == h.first_date:
        return ""
    return h.date_previous.isoformat()


def _pct(value: float | None) -> str:
    return "" if value is None else format_pct(value)


def _seen_reports(
    settings: Settings,
    events: list[EarningsEvent],
    symbols: list[str],
    start: date,
    end: date,
) -> dict[tuple[str, str], ReportHistory]:
    """What the daemon saw of each report (its stored last known data), updated by the
    rows just fetched (in memory: nothing is saved). No store (or one that fails, or an
    SQLite file that does not exist yet) means only the fetched rows."""
    data = MarketData()
    url = settings.database_url
    local = url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).exists()
    if not local:
        from service.parts import store_for

        try:
            store = store_for(settings)
            try:
                saved = store.load_market_data("market")
            finally:
                store.close()
            if saved is not None:
                data = MarketData.from_json(saved.data_json)
        except (StoreError, ValueError, KeyError, TypeError):
            data = MarketData()
    data.apply_events(events, symbols, start, end)
    return {(s, k): h for s, hs in data.reports.items() for k, h in hs.items()}


def _frozen(
    e: EarningsEvent, history: ReportHistory | None
) -> tuple[EarningsEvent, float | None, ReportHistory | None]:
    """The row with its frozen consensus (once reported), the latest EPS consensus, and
    its history."""
    eps, revenue = judged_consensus(e, history)
    return replace(e, eps_estimate=eps, revenue_estimate=revenue), e.eps_estimate, history


def _event_json(
    e: EarningsEvent, latest: float | None, history: ReportHistory | None
) -> dict[str, object]:
    moved = history is not None and e.date != history.first_date
    return {
        "symbol": e.symbol,
        "date": e.date.isoformat(),
        "time": e.time.value,
        "fiscal_period": e.fiscal_period,
        "eps_estimate": e.eps_estimate,
        "eps_actual": e.eps_actual,
        "eps_surprise_pct": pct_change(e.eps_actual, e.eps_estimate),
        "revenue_estimate": e.revenue_estimate,
        "revenue_actual": e.revenue_actual,
        "revenue_surprise_pct": pct_change(e.revenue_actual, e.revenue_estimate),
        "eps_estimate_latest": latest,
        "consensus_frozen": bool(history and history.frozen) if e.reported else False,
        "earnings_date_changed": moved,
        "earnings_date_previous": (
            history.date_previous.isoformat()
            if moved and history and history.date_previous
            else None
        ),
    }
