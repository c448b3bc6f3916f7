"""The rule-test file of `earnwatch test` (RULES.md, "Rule tests"): strict models and
the load of a text into `RuleTestFile`, or RuleFileError with every
problem at its line and column, the way the rule file itself is loaded.

Pure: text in, values out. Reading the files and loading the rule files a test names is
the caller's; running the tests is `service/ruletests.py`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any, Final, Literal, TypeVar

from pydantic import AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from service.durations import parse_duration
from service.engine import AlertKind
from service.errors import Problem, RuleFileError
from service.market import EarningsEvent, ReportTime
from service.rules.checks import pydantic_message, restore_text
from service.rules.model import SYMBOL, Duration, Names
from service.rules.places import in_expression
from service.rules.series import SeriesError, format_offset, parse_series
from service.rules.yamlpos import Document, Path, format_path, parse

#: The variables a series may set: what a quote and the price targets carry. Everything
#: else a rule reads is derived (`change_pct`) or comes from the `earnings` rows.
QUOTE_FIELDS: Final = ("price", "prev_close", "day_high", "day_low", "open")
TARGET_FIELDS: Final = ("target_median", "target_mean", "target_high", "target_low")
SERIES_VARS: Final = QUOTE_FIELDS + TARGET_FIELDS
_PERIOD: Final = re.compile(r"^(\d{4})Q([1-4])$")
_M = TypeVar("_M", bound=BaseModel)


# --- the models ------------------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _at(value: Any) -> Any:
    """`at`: an offset from `start` (`5m`) or a moment (an ISO time with its zone)."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("an ISO time needs its zone, e.g. 2026-02-04T14:35:00Z")
        return value
    if isinstance(value, str):
        try:
            return parse_duration(value)
        except ValueError:
            pass
        try:
            moment = datetime.fromisoformat(value.strip())
        except ValueError:
            moment = None
        if moment is not None and moment.tzinfo is not None:
            return moment
    raise ValueError(
        "write `at` as an offset from start (0m, 90s, 5m, 2h) or an ISO time with its zone"
    )


def _string_schema(schema: dict[str, Any]) -> None:
    schema.clear()
    schema.update(type="string", description="an offset from start (5m) or an ISO time")


At = Annotated[timedelta | datetime, BeforeValidator(_at), Field(json_schema_extra=_string_schema)]


def _text_or_number(schema: dict[str, Any]) -> None:
    """A value written `7.5` is read as the text `7.5` (a series, an env value)."""
    leaf: dict[str, Any] = schema
    while "additionalProperties" in leaf and isinstance(leaf["additionalProperties"], dict):
        leaf = leaf["additionalProperties"]
    leaf.clear()
    leaf.update(type=["string", "number"])


class CorrectionModel(_Strict):
    """A provider's correction of a row's actuals: from `at` on, the row shows these."""

    at: At
    eps_actual: float | None = None
    revenue_actual: float | None = None


class EarningsRowModel(_Strict):
    """One row of a symbol's earnings calendar, as a provider would send it."""

    date: date
    time: Literal["bmo", "amc", "dmh", "unknown"] = "unknown"
    fiscal_period: str | None = Field(None, pattern=_PERIOD.pattern, description="e.g. 2025Q4")
    eps_estimate: float | None = None
    revenue_estimate: float | None = None
    eps_actual: float | None = None
    revenue_actual: float | None = None
    published_at: AwareDatetime | None = Field(
        None,
        description="when the actuals appear (default: the report's date and time of day)",
    )
    corrections: list[CorrectionModel] = Field(
        default_factory=list,
        description="later actuals of this row, each from its `at` on (a provider's correction)",
    )


class ExpectModel(_Strict):
    """One alert that must fire."""

    at: At
    rule: str
    symbol: str = Field(description="a symbol; for a digest, the symbols it lists: LUMN,PLTR")
    kind: AlertKind | None = Field(
        None, description="fired, resolved or amended (default: any of them)"
    )
    message: str | None = Field(None, description="the rendered message, when given")


class CaseModel(_Strict):
    """One test: data on a grid of steps, and the alerts it must produce."""

    name: str = Field(min_length=1)
    start: AwareDatetime
    interval: Duration
    series: dict[str, dict[str, str]] = Field(
        default_factory=dict,
        description="per symbol, per variable: one value per step; _ unknown; 7.5x3",
        json_schema_extra=_text_or_number,
    )
    earnings: dict[str, list[EarningsRowModel]] = Field(default_factory=dict)
    expect: list[ExpectModel] = Field(default_factory=list)


class _TopModel(_Strict):
    """The file's keys, with each test validated on its own (`_TestLoader.case`)."""

    rule_files: Names = Field(min_length=1, description="relative to this file")
    env: dict[str, str] = Field(
        default_factory=dict,
        description="${VAR} values for the rule files (they win over the environment and .env)",
        json_schema_extra=_text_or_number,
    )
    tests: list[Any] = Field(min_length=1)


class TestFileModel(_TopModel):
    """The whole rule-test file."""

    tests: list[CaseModel] = Field(min_length=1)


def rule_test_schema() -> dict[str, Any]:
    """The JSON Schema of the rule-test file, for editors (`earnwatch schema --tests`)."""
    schema = TestFileModel.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "Earnwatch rule tests"
    return schema


# --- what a load gives -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EarningsRow:
    """A calendar row, the moment its actuals become known, and their corrections: (from
    when, the row as corrected), in time order."""

    event: EarningsEvent
    published_at: datetime
    corrections: tuple[tuple[datetime, EarningsEvent], ...] = ()

    def at(self, now: datetime) -> EarningsEvent:
        """The row as the calendar shows it at `now`: without actuals before publication,
        with the last correction made by then after it."""
        if now < self.published_at:
            return replace(self.event, eps_actual=None, revenue_actual=None)
        shown = self.event
        for since, corrected in self.corrections:
            if now < since:
                break
            shown = corrected
        return shown


@dataclass(frozen=True, slots=True)
class Expected:
    step: int
    rule: str
    symbol: str  # for a digest, the symbols it lists: LUMN,PLTR
    message: str | None
    kind: AlertKind | None  # None: any kind
    line: int  # where the expectation is written, for a problem about it
    col: int


@dataclass(frozen=True, slots=True)
class RuleTest:
    name: str
    start: datetime
    interval: timedelta
    steps: int
    series: Mapping[str, Mapping[str, tuple[float | None, ...]]]
    earnings: Mapping[str, tuple[EarningsRow, ...]]
    expect: tuple[Expected, ...]

    def moment(self, step: int) -> datetime:
        return self.start + step * self.interval

    def value(self, symbol: str, variable: str, step: int) -> float | None:
        values = self.series.get(symbol, {}).get(variable, ())
        return values[step] if step < len(values) else None


@dataclass(frozen=True, slots=True)
class RuleTestFile:
    rule_files: tuple[tuple[str, int, int], ...]  # (path as written, line, col)
    env: Mapping[str, str]
    tests: tuple[RuleTest, ...]


def _is_text(path: Path) -> bool:
    """Plain scalars read as typed: `symbol: ON` is a ticker, `price: 7` a series."""
    match path:
        case ("tests", int(), "name") | ("env", str()) | ("rule_files", *_):
            return True
        case ("tests", int(), "series", str(), str()):
            return True
        case ("tests", int(), "expect", int(), "rule" | "symbol" | "message"):
            return True
        case ("tests", int(), "earnings", str(), int(), "fiscal_period"):
            return True
    return False


class _TestLoader:
    def __init__(self, text: str) -> None:
        self.lines = text.splitlines()
        self.doc: Document = parse(text, None)
        self.problems: list[Problem] = list(self.doc.problems)

    def problem(self, path: Path, message: str, *, key: bool = False) -> None:
        pos = self.doc.where(path, key=key)
        self.problems.append(Problem(pos.line, pos.col, format_path(path), message))

    def load(self) -> RuleTestFile | None:
        if self.doc.fatal:
            return None
        data = self.doc.data
        if not isinstance(data, dict):
            self.problem((), "a rule-test file is a mapping with `rule_files:` and `tests:`")
            return None
        restore_text(data, self.doc.plain, _is_text)
        # Each test is validated on its own, so one run names the mistakes of every test.
        top = self.validate(_TopModel, data, ())
        if top is None:
            return None
        files = tuple(
            (name, *self._where(("rule_files", i))) for i, name in enumerate(top.rule_files)
        )
        tests = [self.test(i, raw) for i, raw in enumerate(top.tests)]
        if self.problems:
            return None
        return RuleTestFile(rule_files=files, env=dict(top.env), tests=tuple(t for t in tests if t))

    def _where(self, path: Path) -> tuple[int, int]:
        pos = self.doc.where(path)
        return pos.line, pos.col

    def validate(self, model: type[_M], data: Any, path: Path) -> _M | None:
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            self.record(exc, path)
        return None

    def record(self, exc: ValidationError, path: Path) -> frozenset[str]:
        """Every error of `exc` as a problem at its place; returns the keys at fault."""
        errors = exc.errors(include_input=False, include_url=False)
        for error in errors:
            kind = error["type"]
            where = (*path, *error["loc"])
            self.problem(where, pydantic_message(error), key=kind == "extra_forbidden")
        return frozenset(str(e["loc"][0]) for e in errors if e["loc"])

    def case(self, index: int, raw: Any) -> tuple[CaseModel | None, frozenset[str]]:
        """The test's model and the keys that were refused. A test with a bad key is
        validated again without it (with a stand-in for a bad `name`, `start` or
        `interval`), so its series and expectations are checked in the same run."""
        path: Path = ("tests", index)
        if not isinstance(raw, dict):
            self.problem(path, "a test is a mapping with name, start, interval and expect")
            return None, frozenset()
        try:
            return CaseModel.model_validate(raw), frozenset()
        except ValidationError as exc:
            bad = self.record(exc, path)
        stand_in = {"name": "?", "start": datetime(2000, 1, 3, tzinfo=UTC), "interval": "1m"}
        kept = {k: v for k, v in raw.items() if k not in bad}
        try:
            return CaseModel.model_validate({**stand_in, **kept}), bad
        except ValidationError:
            return None, bad

    def test(self, index: int, raw: Any) -> RuleTest | None:
        model, bad = self.case(index, raw)
        if model is None:
            return None
        path: Path = ("tests", index)
        before = len(self.problems)
        if model.interval <= timedelta(0):
            self.problem((*path, "interval"), "the interval must be longer than 0s")
        series: dict[str, dict[str, tuple[float | None, ...]]] = {}
        grid_known = not bad & {"start", "interval", "series"}
        for symbol_text, variables in model.series.items():
            symbol = self.symbol(symbol_text, (*path, "series", symbol_text))
            for variable, text in variables.items():
                where: Path = (*path, "series", symbol_text, variable)
                if variable not in SERIES_VARS:
                    self.problem(
                        where,
                        f"{variable!r} cannot be given as a series; use "
                        f"{', '.join(SERIES_VARS)} (earnings figures go in `earnings:`)",
                        key=True,
                    )
                    continue
                values = self.series(text, where)
                if values is None:
                    grid_known = False  # how many steps there are is not known
                elif symbol:
                    series.setdefault(symbol, {})[variable] = values
        steps = max((len(v) for vs in series.values() for v in vs.values()), default=1)
        earnings: dict[str, tuple[EarningsRow, ...]] = {}
        for symbol_text, rows in model.earnings.items():
            symbol = self.symbol(symbol_text, (*path, "earnings", symbol_text))
            if symbol:
                earnings[symbol] = tuple(
                    self.row(symbol, row, model.start, (*path, "earnings", symbol_text, j))
                    for j, row in enumerate(rows)
                )
        expect = []
        for j, item in enumerate(model.expect):
            where = (*path, "expect", j)
            step = self.step(item.at, model, steps, (*where, "at")) if grid_known else None
            # a digest's alert names the symbols it lists: `LUMN,PLTR`
            listed = [self.symbol(part, (*where, "symbol")) for part in item.symbol.split(",")]
            symbol = ",".join(s for s in listed if s) if all(listed) else None
            if step is not None and symbol:
                line, col = self._where(where)
                expect.append(Expected(step, item.rule, symbol, item.message, item.kind, line, col))
        if bad or len(self.problems) > before:
            return None
        return RuleTest(
            name=model.name,
            start=model.start,
            interval=model.interval,
            steps=steps,
            series=series,
            earnings=earnings,
            expect=tuple(expect),
        )

    def row(self, symbol: str, model: EarningsRowModel, start: datetime, path: Path) -> EarningsRow:
        """The row, with its corrections checked: each gives a figure, comes after the
        actuals are published and after the one before it."""
        row = _row(symbol, model)
        corrections: list[tuple[datetime, EarningsEvent]] = []
        shown, last = row.event, row.published_at
        for k, correction in enumerate(model.corrections):
            where: Path = (*path, "corrections", k)
            since = start + correction.at if isinstance(correction.at, timedelta) else correction.at
            if correction.eps_actual is None and correction.revenue_actual is None:
                self.problem(where, "a correction gives eps_actual, revenue_actual or both")
                continue
            if since <= last:
                after = (
                    "the actuals are published" if not corrections else "the correction before it"
                )
                self.problem(
                    (*where, "at"),
                    f"a correction comes after {after} ({last.isoformat()}); this one is at "
                    f"{since.isoformat()}",
                )
                continue
            figures = {
                name: value
                for name in ("eps_actual", "revenue_actual")
                if (value := getattr(correction, name)) is not None
            }
            shown = replace(shown, **figures)
            corrections.append((since, shown))
            last = since
        return replace(row, corrections=tuple(corrections))

    def series(self, text: str, path: Path) -> tuple[float | None, ...] | None:
        try:
            return parse_series(text)
        except SeriesError as exc:
            line, col = in_expression(self.doc.where(path), self.lines, text, exc.line, exc.col)
            self.problems.append(Problem(line, col, format_path(path), exc.message))
            return None

    def symbol(self, text: str, path: Path) -> str | None:
        symbol = text.strip().upper()
        if text.isascii() and SYMBOL.match(symbol):
            return symbol
        self.problem(path, f"{text!r} is not a symbol (1-10 characters of A-Z 0-9 . -)")
        return None

    def step(
        self, at: timedelta | datetime, model: CaseModel, steps: int, path: Path
    ) -> int | None:
        offset = at - model.start if isinstance(at, datetime) else at
        if model.interval <= timedelta(0):
            return None
        count, rest = divmod(offset, model.interval)
        last = format_offset(model.interval * (steps - 1))
        if offset < timedelta(0) or rest:
            self.problem(
                path,
                f"{format_offset(offset)} after start is not a step: steps are every "
                f"{format_offset(model.interval)} from 0s to {last}",
            )
            return None
        if count >= steps:
            self.problem(
                path,
                f"{format_offset(offset)} is after the last step ({last}): the longest series has "
                f"{steps} value(s)",
            )
            return None
        return int(count)


def _row(symbol: str, row: EarningsRowModel) -> EarningsRow:
    period = _PERIOD.match(row.fiscal_period) if row.fiscal_period else None
    event = EarningsEvent(
        symbol=symbol,
        date=row.date,
        time=ReportTime(row.time),
        fiscal_year=int(period[1]) if period else None,
        fiscal_quarter=int(period[2]) if period else None,
        eps_estimate=row.eps_estimate,
        eps_actual=row.eps_actual,
        revenue_estimate=row.revenue_estimate,
        revenue_actual=row.revenue_actual,
    )
    return EarningsRow(event, row.published_at or event.published_at)


def load_tests(text: str, *, source: str) -> RuleTestFile:
    """Validate a rule-test file, or raise RuleFileError with every problem."""
    loader = _TestLoader(text)
    try:
        loaded = loader.load()
    except Exception as exc:  # a bug must not print a traceback for a user's file
        problem = Problem(0, 0, "", f"the test file could not be validated ({type(exc).__name__})")
        raise RuleFileError(source, [*loader.problems, problem]) from None
    if loaded is None or loader.problems:
        raise RuleFileError(source, loader.problems or [Problem(0, 0, "", "no tests")])
    return loaded
