"""Recorded calendar and price data served on a simulated clock: the demo, replays of past
events, and tests.

A scenario is a JSON file (see `service/data/replay/lumn-q4-2025.json`) holding, per
symbol, a price path, calendar rows and price targets. `ReplayProvider` answers as the
world looked at `clock.now()`: the last price point at or before it, calendar rows with
their actuals hidden (None) until their `published_at` and each row's `changes` applied
from their `at` on (a moved date, a flipped time, a revised consensus, corrected actuals),
and targets once `updated`. A row may carry a `second` block: the figures a second provider
reads for that report, served by `SecondReplayProvider` (`replay-b`, earnings only) on the
same clock, so that a scenario can show two providers disagreeing (EARNWATCH_CONFIRM=2).
The format is documented in the README ("The scenario format"). It makes no network call
and never fails for lack of a key.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import ClassVar, Final

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, model_validator

from service.clock import Clock, SystemClock
from service.config import Settings
from service.errors import ConfigError, ProviderUnsupported
from service.market import EarningsEvent, PriceTargets, Quote, ReportTime
from service.providers import base
from service.providers.plugin import Capability, ProviderType

DEFAULT_SCENARIO = "lumn-q4-2025.json"
#: The rule file each bundled scenario ships with, under `service/data/demo/`.
BUNDLED_RULES: Final[Mapping[str, str]] = {
    "lumn-q4-2025": "rules.yaml",
    "synthetic-moves": "synthetic-moves.rules.yaml",
}


class _Model(BaseModel):
    # Built when a scenario is first read, not when the provider registry is imported
    # (every command that reads settings imports it: ~12 ms).
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False, defer_build=True)


class PricePoint(_Model):
    """The quote as it stood from `at` until the next point."""

    at: AwareDatetime
    price: float = Field(gt=0)
    prev_close: float | None = Field(None, gt=0)
    day_high: float | None = Field(None, gt=0)
    day_low: float | None = Field(None, gt=0)
    open: float | None = Field(None, gt=0)  # the session's open, for price_at_open
    note: str = ""  # where the figure comes from, or "filled in"


_Date = date


class RowChange(_Model):
    """From `at` on, the calendar row reads these fields instead (those left out keep
    their value): a date that moves, a time that flips, a revised consensus, corrected
    actuals. Actuals still show only from the row's `published_at` on."""

    at: AwareDatetime
    date: _Date | None = None  # (`date` is this field's name inside the class)
    time: ReportTime | None = None
    eps_estimate: float | None = None
    eps_actual: float | None = None
    revenue_estimate: float | None = None
    revenue_actual: float | None = None
    note: str = ""


_CHANGEABLE: Final = (
    "date",
    "time",
    "eps_estimate",
    "eps_actual",
    "revenue_estimate",
    "revenue_actual",
)


#: What a second provider's view of a row may differ in: the figures, not the date or time.
_FIGURES: Final = ("eps_estimate", "eps_actual", "revenue_estimate", "revenue_actual")


def _changes_problem(changes: Sequence[RowChange], fields: Sequence[str]) -> str | None:
    for i, change in enumerate(changes):
        if all(getattr(change, name) is None for name in fields):
            return f"changes[{i}] changes nothing: give one of {', '.join(fields)}"
    return None


class SecondView(_Model):
    """How the second provider (`replay-b`) reads a calendar row: each figure given here
    replaces the row's, `published_at` (when given) is when it shows the actuals, and its
    `changes` apply after the row's own (at the same `at`, they win). The row's changes
    apply to both providers (a correction both see); the date and time are the row's."""

    published_at: AwareDatetime | None = None
    eps_estimate: float | None = None
    eps_actual: float | None = None
    revenue_estimate: float | None = None
    revenue_actual: float | None = None
    changes: tuple[RowChange, ...] = ()
    note: str = ""

    @model_validator(mode="after")
    def _figures_only(self) -> SecondView:
        for i, change in enumerate(self.changes):
            if change.date is not None or change.time is not None:
                raise ValueError(
                    f"changes[{i}]: a second provider's changes give figures only "
                    f"({', '.join(_FIGURES)}); the date and time are the row's"
                )
        if (problem := _changes_problem(self.changes, _FIGURES)) is not None:
            raise ValueError(problem)
        return self


class CalendarRow(_Model):
    """One report; its actuals are reported from `published_at` on, and `changes` change
    its fields at given times."""

    date: date
    time: ReportTime = ReportTime.UNKNOWN
    fiscal_year: int | None = None
    fiscal_quarter: int | None = Field(None, ge=1, le=4)
    eps_estimate: float | None = None
    eps_actual: float | None = None
    revenue_estimate: float | None = None
    revenue_actual: float | None = None
    published_at: AwareDatetime | None = None
    changes: tuple[RowChange, ...] = ()
    #: The second provider's figures of this report (None: it reads the row as it is).
    second: SecondView | None = None
    note: str = ""

    @model_validator(mode="after")
    def _changes_change(self) -> CalendarRow:
        if (problem := _changes_problem(self.changes, _CHANGEABLE)) is not None:
            raise ValueError(problem)
        return self

    def seen_by_second(self) -> CalendarRow:
        """The row as the second provider reads it: its `second` block's figures and
        `published_at` in place of the row's, its changes after the row's."""
        view = self.second
        if view is None:
            return self
        update: dict[str, object] = {
            n: getattr(view, n) for n in _FIGURES if getattr(view, n) is not None
        }
        if view.published_at is not None:
            update["published_at"] = view.published_at
        update["changes"] = self.changes + view.changes
        update["second"] = None
        return self.model_copy(update=update)

    def as_of(self, now: datetime) -> CalendarRow:
        """The row as it reads at `now`: every change made at or before it applied, in
        the order of their times."""
        update: dict[str, object] = {}
        for change in sorted(self.changes, key=lambda c: c.at):
            if change.at > now:
                break
            update.update(
                {n: getattr(change, n) for n in _CHANGEABLE if getattr(change, n) is not None}
            )
        return self.model_copy(update=update) if update else self


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
    """A recorded scenario: `start`..`end` is the span its data covers. `synthetic`: the
    whole scenario is invented (to show behaviour), not a recording."""

    name: str
    description: str = ""
    synthetic: bool = False
    start: AwareDatetime
    end: AwareDatetime
    notes: tuple[str, ...] = ()
    symbols: dict[str, SymbolData]

    @model_validator(mode="after")
    def _span(self) -> Scenario:
        if self.end <= self.start:
            raise ValueError("end must be after start")
        return self

    @property
    def has_second(self) -> bool:
        """Whether a calendar row carries a second provider's figures (`second`): then
        `demo` and `replay` run it with `replay,replay-b` and EARNWATCH_CONFIRM=2."""
        return any(
            row.second is not None for data in self.symbols.values() for row in data.calendar
        )


def _field(loc: tuple[int | str, ...]) -> str:
    """A pydantic error location as a path: `symbols.LUMN.prices[3].price`."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def scenario_problems(exc: ValidationError) -> list[str]:
    """One `FIELD: what is wrong` per problem pydantic found."""
    lines = []
    for error in exc.errors(include_url=False, include_input=False):
        where = _field(tuple(error["loc"]))
        lines.append(f"{where}: {error['msg']}" if where else str(error["msg"]))
    return lines


def load_scenario(path: str | Path) -> Scenario:
    """Read and validate a scenario file. ConfigError on any problem, one line that names
    the file and the field (`FILE: symbols.LUMN.prices[3].price: Input should be greater
    than 0`), with how many more problems there are."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the scenario: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: the scenario is not UTF-8 text") from None
    try:
        return Scenario.model_validate_json(text)
    except ValidationError as exc:
        problems = scenario_problems(exc)
        more = f" (and {len(problems) - 1} more problem(s))" if len(problems) > 1 else ""
        raise ConfigError(f"{path}: {problems[0]}{more}") from None


def _bundled(file: str) -> Traversable:
    return resources.files("service") / "data" / "replay" / file


def bundled_scenarios() -> tuple[str, ...]:
    """The names of the scenarios shipped with Earnwatch."""
    folder = resources.files("service") / "data" / "replay"
    return tuple(
        sorted(
            entry.name.removesuffix(".json")
            for entry in folder.iterdir()
            if entry.name.endswith(".json")
        )
    )


def bundled_scenario(name: str) -> Scenario:
    """A shipped scenario by name (`lumn-q4-2025`); ConfigError names the ones there are."""
    if name not in bundled_scenarios():
        raise ConfigError(
            f"no bundled scenario {name!r} (bundled: {', '.join(bundled_scenarios())})"
        )
    return Scenario.model_validate_json(_bundled(f"{name}.json").read_text(encoding="utf-8"))


def bundled_rules(name: str) -> str | None:
    """The rule file shipped for a bundled scenario (its `${DEMO_WEBHOOK_URL}` still to
    be filled in), or None when it has none."""
    file = BUNDLED_RULES.get(name)
    if file is None:
        return None
    return (resources.files("service") / "data" / "demo" / file).read_text(encoding="utf-8")


def default_scenario() -> Scenario:
    """The shipped scenario: LUMN's Q4 2025 report (after the close on 2026-02-03)."""
    return bundled_scenario(DEFAULT_SCENARIO.removesuffix(".json"))


def _build(settings: Settings, clock: Clock | None) -> ReplayProvider:
    return ReplayProvider(default_scenario(), clock or SystemClock())


def _build_second(settings: Settings, clock: Clock | None) -> SecondReplayProvider:
    return SecondReplayProvider(default_scenario(), clock or SystemClock())


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

    def _row(self, recorded: CalendarRow) -> CalendarRow:
        return recorded

    async def earnings(self, start: date, end: date, symbols: Sequence[str]) -> list[EarningsEvent]:
        now = self._clock.now()
        keep = frozenset(base.wanted(symbols)) or frozenset(s.upper() for s in self._paths)
        events: list[EarningsEvent] = []
        for symbol in sorted(keep):
            data = self._data(symbol)
            for recorded in data.calendar if data else ():
                row = self._row(recorded).as_of(now)
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


SECOND_PROVIDER: Final = ProviderType(
    name="replay-b",
    factory=_build_second,
    capabilities=frozenset({Capability.EARNINGS}),
    max_batch=10_000,
)


class SecondReplayProvider(ReplayProvider):
    """A second provider of the same scenario, for cross-provider confirmation: the
    calendar rows as their `second` blocks say (a row without one reads the same to both);
    no quotes and no price targets (it declares earnings only)."""

    name: ClassVar[str] = SECOND_PROVIDER.name
    max_batch: ClassVar[int] = SECOND_PROVIDER.max_batch

    def _row(self, recorded: CalendarRow) -> CalendarRow:
        return recorded.seen_by_second()

    async def quotes(self, symbols: Sequence[str]) -> dict[str, Quote]:
        raise ProviderUnsupported(self.name, "serves earnings only")

    async def price_targets(self, symbol: str) -> PriceTargets | None:
        raise ProviderUnsupported(self.name, "serves earnings only")
