"""Recorded calendar and price data served on a simulated clock: the demo, replays of past
events, and tests.

A scenario is a JSON file (see `service/data/replay/lumn-q4-2025.json`) holding, per
symbol, a price path, calendar rows and price targets. `ReplayProvider` answers as the
world looked at `clock.now()`: the last price point at or before it, calendar rows with
their actuals hidden (None) until their `published_at`, and targets once `updated`.
It makes no network call and never fails for lack of a key.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from datetime import date
from importlib import resources
from pathlib import Path
from typing import ClassVar, Final

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from service.clock import Clock, SystemClock
from service.config import Settings
from service.errors import ConfigError
from service.market import EarningsEvent, PriceTargets, Quote, ReportTime
from service.providers import base
from service.providers.plugin import Capability, ProviderType

DEFAULT_SCENARIO = "lumn-q4-2025.json"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class PricePoint(_Model):
    """The quote as it stood from `at` until the next point."""

    at: AwareDatetime
    price: float = Field(gt=0)
    prev_close: float | None = Field(None, gt=0)
    day_high: float | None = Field(None, gt=0)
    day_low: float | None = Field(None, gt=0)
    open: float | None = Field(None, gt=0)  # the session's open, for price_at_open
    note: str = ""  # where the figure comes from, or "filled in"


class CalendarRow(_Model):
    """One report; its actuals are reported from `published_at` on."""

    date: date
    time: ReportTime = ReportTime.UNKNOWN
    fiscal_year: int | None = None
    fiscal_quarter: int | None = Field(None, ge=1, le=4)
    eps_estimate: float | None = None
    eps_actual: float | None = None
    revenue_estimate: float | None = None
    revenue_actual: float | None = None
    published_at: AwareDatetime | None = None
    note: str = ""


class Targets(_Model):
    median: float | None = Field(None, gt=0)
    mean: float | None = Field(None, gt=0)
    high: float | None = Field(None, gt=0)
    low: float | None = Field(None, gt=0)
    updated: AwareDatetime | None = None
    note: str = ""


class SymbolData(_Model):
    illustrative: bool = False  # invented figures, for rules to have something to read
    prices: tuple[PricePoint, ...] = ()
    calendar: tuple[CalendarRow, ...] = ()
    price_targets: Targets | None = None


class Scenario(_Model):
    """A recorded scenario: `start`..`end` is the span its data covers."""

    name: str
    description: str = ""
    start: AwareDatetime
    end: AwareDatetime
    notes: tuple[str, ...] = ()
    symbols: dict[str, SymbolData]


def load_scenario(path: str | Path) -> Scenario:
    """Read and validate a scenario file; ConfigError names the file on any problem."""
    try:
        text = Path(path).read_text(encoding="utf-8")
        return Scenario.model_validate_json(text)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"replay scenario {path}: {type(exc).__name__}") from exc


def default_scenario() -> Scenario:
    """The shipped scenario: LUMN's Q4 2025 report (after the close on 2026-02-03)."""
    source = resources.files("service") / "data" / "replay" / DEFAULT_SCENARIO
    return Scenario.model_validate_json(source.read_text(encoding="utf-8"))


def _build(settings: Settings, clock: Clock | None) -> ReplayProvider:
    return ReplayProvider(default_scenario(), clock or SystemClock())


PROVIDER: Final = ProviderType(
    name="replay",
    factory=_build,
    capabilities=frozenset({Capability.QUOTES, Capability.EARNINGS, Capability.PRICE_TARGETS}),
    max_batch=10_000,  # no network: any number at once
)


class ReplayProvider:
    """Serves a Scenario as of `clock.now()`."""

    name: ClassVar[str] = PROVIDER.name
    max_batch: ClassVar[int] = PROVIDER.max_batch

    def __init__(self, scenario: Scenario, clock: Clock) -> None:
        self.scenario = scenario
        self._clock = clock
        self._paths = {
            symbol.upper(): sorted(data.prices, key=lambda p: p.at)
            for symbol, data in scenario.symbols.items()
        }

    async def aclose(self) -> None:
        return None

    def _data(self, symbol: str) -> SymbolData | None:
        for name, data in self.scenario.symbols.items():
            if name.upper() == symbol:
                return data
        return None

    async def quotes(self, symbols: Sequence[str]) -> dict[str, Quote]:
        now = self._clock.now()
        out: dict[str, Quote] = {}
        for symbol in base.wanted(symbols):
            path = self._paths.get(symbol, [])
            i = bisect.bisect_right([p.at for p in path], now)
            if i == 0:
                continue
            point = path[i - 1]
            out[symbol] = Quote(
                symbol=symbol,
                price=point.price,
                prev_close=point.prev_close,
                day_high=point.day_high,
                day_low=point.day_low,
                time=point.at,
                open=point.open,
            )
        return out

    async def earnings(self, start: date, end: date, symbols: Sequence[str]) -> list[EarningsEvent]:
        now = self._clock.now()
        keep = frozenset(base.wanted(symbols)) or frozenset(s.upper() for s in self._paths)
        events: list[EarningsEvent] = []
        for symbol in sorted(keep):
            data = self._data(symbol)
            for row in data.calendar if data else ():
                if not start <= row.date <= end:
                    continue
                out = row.published_at is not None and row.published_at <= now
                events.append(
                    EarningsEvent(
                        symbol=symbol,
                        date=row.date,
                        time=row.time,
                        fiscal_year=row.fiscal_year,
                        fiscal_quarter=row.fiscal_quarter,
                        eps_estimate=row.eps_estimate,
                        eps_actual=row.eps_actual if out else None,
                        revenue_estimate=row.revenue_estimate,
                        revenue_actual=row.revenue_actual if out else None,
                    )
                )
        return base.dedupe(events)

    async def price_targets(self, symbol: str) -> PriceTargets | None:
        wanted = symbol.strip().upper()
        data = self._data(wanted)
        targets = data.price_targets if data else None
        if targets is None or (targets.updated is not None and targets.updated > self._clock.now()):
            return None
        return PriceTargets(
            symbol=wanted,
            median=targets.median,
            mean=targets.mean,
            high=targets.high,
            low=targets.low,
            updated=targets.updated,
        )
