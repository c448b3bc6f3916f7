"""The last known market data of every watched symbol, and how new data merges into it.

Pure and in memory: the pipeline feeds provider results in and gets back which symbols
changed; the daemon persists `to_json()` in the store so a restart starts from what was
known. Merging is defensive: a figure once reported is never taken back by a later row
that lacks it, and a failed call changes nothing.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

from service.confirm import Figures, Verdict, asks_second, revised, verdict
from service.hours import next_trading_day, trading_day_on_or_after
from service.market import (
    NEW_YORK,
    EarningsEvent,
    PriceTargets,
    Quote,
    ReportHistory,
    ReportTime,
    Snapshot,
)

_ACTUALS = ("eps_actual", "revenue_actual")


@dataclass
class MarketData:
    """Quotes, calendar events, price targets and report prices by symbol."""

    quotes: dict[str, Quote] = field(default_factory=dict)
    events: dict[str, tuple[EarningsEvent, ...]] = field(default_factory=dict)
    targets: dict[str, PriceTargets] = field(default_factory=dict)
    report_prices: dict[str, dict[str, float]] = field(default_factory=dict)
    #: symbol -> report_key -> what was seen of that report over time (issue #13).
    reports: dict[str, dict[str, ReportHistory]] = field(default_factory=dict)
    #: symbol -> report_key -> (the day of the session it opened, its open).
    open_prices: dict[str, dict[str, tuple[date, float]]] = field(default_factory=dict)
    #: EARNWATCH_CONFIRM=2 is on (set by the pipeline; not saved: it is a setting).
    confirming: bool = False

    def snapshot(self, symbol: str) -> Snapshot:
        return Snapshot(
            symbol=symbol,
            quote=self.quotes.get(symbol),
            events=self.events.get(symbol, ()),
            targets=self.targets.get(symbol),
            report_prices=self.report_prices.get(symbol, {}),
            reports=self.reports.get(symbol, {}),
            open_prices=self._open_prices(symbol),
            confirming=self.confirming,
        )

    def _open_prices(self, symbol: str) -> dict[str, float]:
        """The opens of `symbol`'s reports, each only while it is the open of the report's
        first session as now dated (a report whose date moved has no open until then)."""
        stored = self.open_prices.get(symbol)
        if not stored:
            return {}
        out: dict[str, float] = {}
        for event in self.events.get(symbol, ()):
            kept = stored.get(event.report_key)
            if kept is not None and kept[0] == event.first_open.astimezone(NEW_YORK).date():
                out[event.report_key] = kept[1]
        return out

    def snapshots(self, symbols: Iterable[str]) -> dict[str, Snapshot]:
        return {s: self.snapshot(s) for s in symbols}

    # --- merging -------------------------------------------------------------------------
    def apply_quotes(self, quotes: Mapping[str, Quote], now: datetime) -> set[str]:
        """Take new quotes; a quote without a price keeps the old one, and so does a quote
        traded before the one known (a trade from the stream may be newer than a REST
        quote): it brings its previous close and day range only. Returns changed symbols."""
        changed: set[str] = set()
        for symbol, quote in quotes.items():
            known = self.quotes.get(symbol)
            if known is not None and _older(quote, known):
                quote = replace(
                    known,
                    prev_close=quote.prev_close or known.prev_close,
                    day_high=quote.day_high or known.day_high,
                    day_low=quote.day_low or known.day_low,
                )
            if quote.price is None or quote == known:
                continue
            self.quotes[symbol] = quote
            self._capture_report_price(symbol, quote, now)
            self._capture_open_price(symbol, quote, now)
            changed.add(symbol)
        return changed

    def apply_trades(self, trades: Mapping[str, tuple[float, datetime]]) -> set[str]:
        """Take the latest trade (price, time) of each symbol as its price; a trade older
        than the price known is dropped (it arrived late). The REST quote's previous close
        and day range stay. Returns changed symbols."""
        changed: set[str] = set()
        for symbol, (price, traded) in trades.items():
            known = self.quotes.get(symbol) or Quote(symbol=symbol, price=None)
            if known.time is not None and traded < known.time:
                continue
            if known.price == price and known.time == traded:
                continue
            quote = replace(known, price=price, time=traded)
            self.quotes[symbol] = quote
            self._capture_report_price(symbol, quote, traded)
            changed.add(symbol)
        return changed

    def apply_events(
        self, events: Sequence[EarningsEvent], symbols: Iterable[str], start: date, end: date
    ) -> set[str]:
        """Replace what is known of `symbols` between `start` and `end` (inclusive) by
        `events`. Rows of one report (same fiscal period, or re-dated) collapse into one;
        an actual already known is kept when a newer row lacks it."""
        by_symbol: dict[str, list[EarningsEvent]] = {s: [] for s in symbols}
        for event in events:
            if event.symbol in by_symbol:
                by_symbol[event.symbol].append(event)
        changed: set[str] = set()
        for symbol, fresh in by_symbol.items():
            old = self.events.get(symbol, ())
            known = {e.report_key: e for e in old}
            fresh_keys = {e.report_key for e in fresh}
            kept = [
                e for e in old if not (start <= e.date <= end) and e.report_key not in fresh_keys
            ]
            merged = [_keep_actuals(e, known.get(e.report_key)) for e in fresh]
            histories = self.reports.setdefault(symbol, {})
            for event in merged:
                histories[event.report_key] = _seen(event, histories.get(event.report_key))
            result = tuple(sorted(kept + merged, key=lambda e: (e.date, e.report_key)))
            if result != old:
                self.events[symbol] = result
                changed.add(symbol)
        return changed

    def apply_targets(self, targets: Mapping[str, PriceTargets | None]) -> set[str]:
        changed: set[str] = set()
        for symbol, target in targets.items():
            if target is not None and target != self.targets.get(symbol):
                self.targets[symbol] = target
                changed.add(symbol)
        return changed

    def _capture_report_price(self, symbol: str, quote: Quote, now: datetime) -> None:
        """Remember the last price before each report of `symbol` was published.

        A quote traded before publication is that price (later ones overwrite it until
        publication). Failing that, the first quote of the session after publication
        carries it as its previous close (the close before an amc report, or before a
        bmo report's open)."""
        assert quote.price is not None
        traded = quote.time or now
        prices = self.report_prices.setdefault(symbol, {})
        for event in self.events.get(symbol, ()):
            published = event.published_at
            if traded <= published:
                if published - traded <= timedelta(days=4):
                    prices[event.report_key] = quote.price
            elif (
                event.report_key not in prices
                and quote.prev_close is not None
                and _first_session_after(event, traded)
            ):
                prices[event.report_key] = quote.prev_close

    def _capture_open_price(self, symbol: str, quote: Quote, now: datetime) -> None:
        """Remember, per report of `symbol`, the open of its first regular session after
        publication (`EarningsEvent.first_open`): the `open` of the first quote traded in
        that session, on that day. A quote from before the open (pre-market, whose `open`
        is still the previous session's) or from a later day sets nothing; the first one
        set is kept, until the report's date moves to another session."""
        if quote.open is None:
            return
        traded = quote.time or now
        day = traded.astimezone(NEW_YORK).date()
        for event in self.events.get(symbol, ()):
            opens = event.first_open
            if opens <= traded and day == opens.astimezone(NEW_YORK).date():
                prices = self.open_prices.setdefault(symbol, {})
                kept = prices.get(event.report_key)
                if kept is None or kept[0] != day:
                    prices[event.report_key] = (day, quote.open)

    # --- cross-provider confirmation (service/confirm.py) --------------------------------
    def settle(
        self,
        now: datetime,
        wait: timedelta,
        *,
        source: str | None = None,
        symbols: Iterable[str] | None = None,
    ) -> set[str]:
        """Reach the verdict on every report with actuals (of `symbols`, else all) at `now`;
        returns the symbols whose verdict changed. With `source` (the provider whose rows
        were just merged) a report's actuals seen for the first time are dated `now` and
        credited to it; without, only reports already dated are judged (the wait ending)."""
        changed: set[str] = set()
        for symbol in self.events if symbols is None else symbols:
            histories = self.reports.get(symbol, {})
            for event in self.events.get(symbol, ()):
                history = histories.get(event.report_key)
                if history is None or not event.reported:
                    continue
                if history.actuals_seen is None:
                    if source is None:
                        continue
                    history = replace(history, actuals_seen=now, source=source)
                new = _judged(event, history, now, wait)
                if revised(_verdict_of(history), _verdict_of(new)):
                    history = replace(
                        history, actuals_seen=now, second=None, second_eps=None, second_revenue=None
                    )
                    new = _judged(event, history, now, wait)
                if new != histories[event.report_key]:
                    if _verdict_of(new) != _verdict_of(histories[event.report_key]):
                        changed.add(symbol)
                    histories[event.report_key] = new
        return changed

    def awaiting_second(self, now: datetime, wait: timedelta) -> dict[str, list[EarningsEvent]]:
        """By symbol, the reports whose second provider is still to be asked at `now`."""
        out: dict[str, list[EarningsEvent]] = {}
        for symbol, events in self.events.items():
            histories = self.reports.get(symbol, {})
            for event in events:
                history = histories.get(event.report_key)
                if history is None or not event.reported or history.confirmed_by is None:
                    continue
                found = _verdict_of(history)
                if asks_second(found, history.actuals_seen, now, wait):
                    out.setdefault(symbol, []).append(event)
        return out

    def apply_second(
        self,
        provider: str,
        rows: Sequence[EarningsEvent],
        awaiting: Mapping[str, Sequence[EarningsEvent]],
        now: datetime,
        wait: timedelta,
    ) -> set[str]:
        """Take the second provider's rows for the `awaiting` reports (`awaiting_second`):
        each report's counterpart (same symbol, dated within a day: providers label fiscal
        periods differently, and FMP re-dates some rows a day forward) brings its actuals;
        a counterpart without actuals keeps those already seen. Returns the symbols whose
        verdict changed."""
        by_symbol: dict[str, list[EarningsEvent]] = {}
        for row in rows:
            by_symbol.setdefault(row.symbol, []).append(row)
        for symbol, events in awaiting.items():
            histories = self.reports.get(symbol, {})
            for event in events:
                history = histories.get(event.report_key)
                match = _counterpart(event, by_symbol.get(symbol, []))
                if history is None or match is None or not match.reported:
                    continue
                histories[event.report_key] = replace(
                    history,
                    second=provider,
                    second_eps=match.eps_actual,
                    second_revenue=match.revenue_actual,
                )
        return self.settle(now, wait, symbols=list(awaiting))

    # --- persistence ---------------------------------------------------------------------
    def to_json(self) -> str:
        return json.dumps(
            {
                "quotes": [_dump(asdict(q)) for q in self.quotes.values()],
                "events": [_dump(asdict(e)) for es in self.events.values() for e in es],
                "targets": [_dump(asdict(t)) for t in self.targets.values()],
                "report_prices": self.report_prices,
                "reports": {
                    s: {k: _dump(asdict(h)) for k, h in hs.items()}
                    for s, hs in self.reports.items()
                },
                "open_prices": {
                    symbol: {key: [day.isoformat(), price] for key, (day, price) in opens.items()}
                    for symbol, opens in self.open_prices.items()
                },
            },
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, raw: str) -> MarketData:
        data = json.loads(raw)
        out = cls(
            report_prices={k: dict(v) for k, v in data.get("report_prices", {}).items()},
            open_prices={
                symbol: {key: (date.fromisoformat(day), price) for key, (day, price) in v.items()}
                for symbol, v in data.get("open_prices", {}).items()
            },
        )
        for q in data.get("quotes", []):
            out.quotes[q["symbol"]] = Quote(**{**q, "time": _when(q.get("time"))})
        events: dict[str, list[EarningsEvent]] = {}
        for e in data.get("events", []):
            event = EarningsEvent(
                **{**e, "date": date.fromisoformat(e["date"]), "time": ReportTime(e["time"])}
            )
            events.setdefault(event.symbol, []).append(event)
        out.events = {s: tuple(es) for s, es in events.items()}
        for t in data.get("targets", []):
            out.targets[t["symbol"]] = PriceTargets(**{**t, "updated": _when(t.get("updated"))})
        for symbol, histories in data.get("reports", {}).items():  # absent before issue #13
            out.reports[symbol] = {k: _history(h) for k, h in histories.items()}
        return out


def _older(new: Quote, known: Quote) -> bool:
    return new.time is not None and known.time is not None and new.time < known.time


def _keep_actuals(new: EarningsEvent, old: EarningsEvent | None) -> EarningsEvent:
    if old is None:
        return new
    missing = {f: getattr(old, f) for f in _ACTUALS if getattr(new, f) is None}
    kept = {f: v for f, v in missing.items() if v is not None}
    return replace(new, **kept) if kept else new


def _seen(event: EarningsEvent, old: ReportHistory | None) -> ReportHistory:
    """The history of `event`'s report after seeing `event` (actuals already merged).

    The consensus follows the provider's (a null estimate keeps the last one known) until
    the actuals first appear, then stays frozen. A report first seen with its actuals
    freezes the estimates it arrives with (`frozen` False: not frozen before publication).
    """
    if old is None:
        return ReportHistory(
            first_date=event.date,
            first_time=event.time,
            last_date=event.date,
            last_time=event.time,
            eps_estimate=event.eps_estimate,
            revenue_estimate=event.revenue_estimate,
            frozen=False if event.reported else None,
        )
    new = old
    if event.date != old.last_date:
        new = replace(new, last_date=event.date, date_previous=old.last_date)
    if event.time is not old.last_time:
        new = replace(new, last_time=event.time, time_previous=old.last_time)
    if old.frozen is None:
        eps = event.eps_estimate if event.eps_estimate is not None else old.eps_estimate
        revenue = (
            event.revenue_estimate if event.revenue_estimate is not None else old.revenue_estimate
        )
        if event.reported:  # frozen at what was last seen before the actuals
            eps = old.eps_estimate if old.eps_estimate is not None else event.eps_estimate
            revenue = (
                old.revenue_estimate if old.revenue_estimate is not None else event.revenue_estimate
            )
        new = replace(
            new, eps_estimate=eps, revenue_estimate=revenue, frozen=True if event.reported else None
        )
    return new


def _judged(
    event: EarningsEvent, history: ReportHistory, now: datetime, wait: timedelta
) -> ReportHistory:
    second = None
    if history.second is not None:
        second = Figures(history.second_eps, history.second_revenue)
    found = verdict(
        Figures(event.eps_actual, event.revenue_actual), second, history.actuals_seen, now, wait
    )
    return replace(
        history, confirmed_by=found.confirmed_by, suspect=found.suspect, confirmed=found.reported
    )


def _verdict_of(history: ReportHistory) -> Verdict:
    return Verdict(history.confirmed_by or 0, history.suspect, history.confirmed)


def _counterpart(event: EarningsEvent, rows: Sequence[EarningsEvent]) -> EarningsEvent | None:
    """The row of `rows` that is `event`'s report: dated within a day of it, the nearest
    date first, a row with actuals before one without."""
    near = [r for r in rows if abs((r.date - event.date).days) <= 1]
    near.sort(key=lambda r: (abs((r.date - event.date).days), not r.reported))
    return near[0] if near else None


def _history(raw: dict[str, Any]) -> ReportHistory:
    def day(value: str | None) -> date | None:
        return date.fromisoformat(value) if value else None

    def clock(value: str | None) -> ReportTime | None:
        return ReportTime(value) if value else None

    return ReportHistory(
        first_date=date.fromisoformat(raw["first_date"]),
        first_time=ReportTime(raw["first_time"]),
        last_date=date.fromisoformat(raw["last_date"]),
        last_time=ReportTime(raw["last_time"]),
        date_previous=day(raw.get("date_previous")),
        time_previous=clock(raw.get("time_previous")),
        eps_estimate=raw.get("eps_estimate"),
        revenue_estimate=raw.get("revenue_estimate"),
        frozen=raw.get("frozen"),
        actuals_seen=_when(raw.get("actuals_seen")),
        source=raw.get("source"),
        second=raw.get("second"),
        second_eps=raw.get("second_eps"),
        second_revenue=raw.get("second_revenue"),
        confirmed_by=raw.get("confirmed_by"),
        suspect=bool(raw.get("suspect", False)),
        confirmed=bool(raw.get("confirmed", False)),
    )


def _first_session_after(event: EarningsEvent, traded: datetime) -> bool:
    """Whether `traded` falls on the first NYSE session that follows the report: the next
    trading day after an amc report (weekends, holidays such as Good Friday skipped), the
    report day itself otherwise (or the next trading day when the report is dated on a
    closed day). A later session's previous close is not the price before the report."""
    day = traded.astimezone(NEW_YORK).date()
    if event.time is ReportTime.AMC:
        return day == next_trading_day(event.date)
    return day == trading_day_on_or_after(event.date)


def _dump(row: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.isoformat() if isinstance(v, date | datetime) else v) for k, v in row.items()}


def _when(value: str | None) -> datetime | None:
    if value is None:
        return None
    moment = datetime.fromisoformat(value)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class SnapshotView(Mapping[str, Snapshot]):
    """Snapshots built on demand: the engine asks only for the symbols it evaluates."""

    def __init__(self, data: MarketData, symbols: frozenset[str]) -> None:
        self._data = data
        self._symbols = symbols

    def __getitem__(self, symbol: str) -> Snapshot:
        if symbol not in self._symbols:
            raise KeyError(symbol)
        return self._data.snapshot(symbol)

    def __iter__(self) -> Iterator[str]:
        return iter(self._symbols)

    def __len__(self) -> int:
        return len(self._symbols)
