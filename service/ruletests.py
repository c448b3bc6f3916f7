"""Rule unit tests (`earnwatch test`): the real engine on a simulated clock.

Each test's data reaches the engine the way provider data does in the daemon: at every
step the earnings rows go through `MarketData.apply_events` (a row shows its actuals
from its `published_at` on), the quote figures through `apply_quotes` (a step whose
price is `_` sends no quote, so the last price stays, as when a provider returns none)
and the targets through `apply_targets`; then every rule is evaluated with
`engine.plan`/`evaluate_work` at the step's time, so `for`, `cooldown`, `clear_when`
and once-per-report behave as in the daemon, and the digest rules' firings due by then
are sent as the daemon's pass sends them (`digest.due_alerts`: a test starts as a daemon
does, so a firing up to an hour before `start` is sent at the first step). No network,
no database, nothing is sent.

Pure: the caller reads the files and loads the rule files (`service/commands.py`).
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from service.digest import due_alerts
from service.engine import AlertKind, RuleError, RuleState, evaluate_work, plan
from service.errors import Problem
from service.market import PriceTargets, Quote
from service.marketdata import MarketData, SnapshotView
from service.rules import RuleSet
from service.rules.series import format_offset
from service.rules.testfile import QUOTE_FIELDS, TARGET_FIELDS, Expected, RuleTest, RuleTestFile


@dataclass(frozen=True, slots=True)
class Fired:
    """One alert the engine produced during a test."""

    step: int
    rule: str
    symbol: str
    text: str
    kind: AlertKind = "fired"


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one test found: the expectations that fired, those that did not, and the
    alerts nobody expected (and rule errors, shown with a failure)."""

    name: str
    missing: tuple[Expected, ...]  # expected, never fired
    unexpected: tuple[Fired, ...]  # fired, never expected
    matched: tuple[tuple[Expected, Fired], ...]
    test: RuleTest
    errors: tuple[tuple[int, RuleError], ...] = field(default=())

    @property
    def passed(self) -> bool:
        return not self.missing and not self.unexpected


def unknown_rules(tests: RuleTestFile, rulesets: Sequence[RuleSet]) -> list[Problem]:
    """Expectations that name a rule no rule file defines (a typo would only fail)."""
    names = {rule.name for ruleset in rulesets for rule in ruleset.rules}
    names |= {digest.name for ruleset in rulesets for digest in ruleset.digests}
    disabled = {name for ruleset in rulesets for name in ruleset.disabled}
    problems = []
    for test in tests.tests:
        for item in test.expect:
            if item.rule in names:
                continue
            if item.rule in disabled:
                message = f"rule {item.rule!r} is disabled (enabled: false): it never fires"
            else:
                hint = difflib.get_close_matches(item.rule, sorted(names), n=1)
                message = f"no rule {item.rule!r} in the rule files" + (
                    f" (did you mean {hint[0]!r}?)" if hint else ""
                )
            problems.append(Problem(item.line, item.col, "expect", message))
    return problems


def run_test(test: RuleTest, rulesets: Sequence[RuleSet]) -> Outcome:
    """Evaluate every rule set at each step of `test`; compare what fired with `expect`."""
    data = MarketData()
    states: list[dict[tuple[str, str], RuleState]] = [{} for _ in rulesets]
    digests_checked: list[dict[str, datetime]] = [{} for _ in rulesets]
    fired: list[Fired] = []
    errors: list[tuple[int, RuleError]] = []
    for step in range(test.steps):
        now = test.moment(step)
        if test.earnings:
            events = [row.at(now) for rows in test.earnings.values() for row in rows]
            data.apply_events(events, test.earnings, date.min, date.max)
        data.apply_quotes(_quotes(test, step, now), now)
        data.apply_targets(_targets(test, step))
        for ruleset, state, checked in zip(rulesets, states, digests_checked, strict=True):
            view = SnapshotView(data, ruleset.symbols)
            result = evaluate_work(plan(ruleset, state), view, state, now)
            state.update(result.states)
            digests = due_alerts(ruleset.digests, checked, data, now)
            fired += [
                Fired(step, a.rule, a.symbol, a.text, a.kind) for a in (*result.alerts, *digests)
            ]
            errors += [(step, e) for e in result.errors]
    return _compare(test, fired, errors)


def _quotes(test: RuleTest, step: int, now: datetime) -> dict[str, Quote]:
    quotes = {}
    for symbol in test.series:
        price, prev_close, high, low, opened = (test.value(symbol, f, step) for f in QUOTE_FIELDS)
        if price is not None:
            quotes[symbol] = Quote(symbol, price, prev_close, high, low, time=now, open=opened)
    return quotes


def _targets(test: RuleTest, step: int) -> dict[str, PriceTargets | None]:
    targets: dict[str, PriceTargets | None] = {}
    for symbol in test.series:
        median, mean, high, low = (test.value(symbol, f, step) for f in TARGET_FIELDS)
        if (median, mean, high, low) != (None, None, None, None):
            targets[symbol] = PriceTargets(symbol, median, mean, high, low)
    return targets


def _compare(test: RuleTest, fired: list[Fired], errors: list[tuple[int, RuleError]]) -> Outcome:
    left = list(fired)
    matched: list[tuple[Expected, Fired]] = []
    missing: list[Expected] = []
    for item in test.expect:
        found = next(
            (
                f
                for f in left
                if (f.step, f.rule, f.symbol) == (item.step, item.rule, item.symbol)
                and (item.kind is None or item.kind == f.kind)
                and (item.message is None or item.message == f.text)
            ),
            None,
        )
        if found is None:
            missing.append(item)
        else:
            left.remove(found)
            matched.append((item, found))
    return Outcome(
        name=test.name,
        missing=tuple(missing),
        unexpected=tuple(left),
        matched=tuple(matched),
        test=test,
        errors=tuple(errors),
    )


def report_lines(result: Outcome) -> list[str]:
    """`ok    NAME`, or `FAIL  NAME` and the diff: `- expected` what did not fire, `+ got`
    what fired unexpected, and, for context, what matched."""
    if result.passed:
        return [f"ok    {result.name}"]
    interval = result.test.interval
    rows: list[tuple[int, int, str]] = []
    for item in result.missing:
        cells = _cells(item.step, item.rule, item.symbol, interval, item.kind)
        text = f" {_quoted(item.message)}" if item.message is not None else ""
        rows.append((item.step, 0, f"- expected  {cells}{text}"))
    for got in result.unexpected:
        cells = _cells(got.step, got.rule, got.symbol, interval, _shown_kind(got.kind))
        rows.append((got.step, 1, f"+ got       {cells} {_quoted(got.text)}"))
    for _, got in result.matched:
        cells = _cells(got.step, got.rule, got.symbol, interval, _shown_kind(got.kind))
        rows.append((got.step, 2, f"  matched   {cells}"))
    lines = [f"FAIL  {result.name}"]
    lines += ["      " + row for _, _, row in sorted(rows)]
    seen: set[tuple[str, str, str]] = set()
    for step, error in result.errors:
        if (error.rule, error.symbol, error.kind) in seen:
            continue
        seen.add((error.rule, error.symbol, error.kind))
        what = "its condition raised" if error.kind == "condition" else "its message failed:"
        at = format_offset(step * interval)
        lines.append(
            f"      note: {at}: rule {error.rule!r} for {error.symbol}: {what} {error.exc_type}"
        )
    return lines


def _cells(
    step: int, rule: str, symbol: str, interval: timedelta, kind: AlertKind | None = None
) -> str:
    """`   5m  RULE  SYMBOL`, and the kind when it is named (`  amended`)."""
    shown = f"  {kind}" if kind is not None else ""
    return f"{format_offset(step * interval):>5}  {rule}  {symbol}{shown}"


def _shown_kind(kind: AlertKind) -> AlertKind | None:
    """An alert's kind as a diff shows it: a firing plainly, a resolved or amended one
    named (it comes from the same rule and symbol)."""
    return None if kind == "fired" else kind


def _quoted(text: str) -> str:
    """A message on one line: quoted, with newlines and quotes escaped as in JSON."""
    return json.dumps(text, ensure_ascii=False)
