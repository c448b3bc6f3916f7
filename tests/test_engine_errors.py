"""The engine: one rule's failure is that rule's failure (issue #10.1)."""

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from service.engine import RuleError, evaluate
from service.market import Quote, Snapshot
from service.rules import RuleSet
from tests.rules.conftest import load

T0 = datetime(2026, 2, 3, 15, 0, tzinfo=UTC)
#: Stands for a condition that raises: the language itself no longer can (numbers too big
#: for a float are refused at load, overflow is unknown), so the raise is injected below.
OVERFLOW = "price > 1"
GOOD = "  - name: good\n    symbols: [LUMN, AAPL]\n    when: price > 5\n"


class _Raising:
    """A compiled condition that raises OverflowError, as one did before the language was
    bounded (`price * 1` followed by 400 zeros)."""

    def __init__(self, inner: Any) -> None:
        self.source, self.names = inner.source, inner.names

    def __call__(self, values: Any) -> Any:
        raise OverflowError("int too large to convert to float")


def rules(body: str, poison: str = "when") -> RuleSet:
    """The rules; every condition written as OVERFLOW (in `when` or `clear_when`) raises."""
    ruleset = load("rules:\n" + body)

    def poisoned(rule: Any) -> Any:
        condition = getattr(rule, poison)
        if condition is None or condition.source != OVERFLOW:
            return rule
        return replace(rule, **{poison: _Raising(condition)})

    built = tuple(poisoned(r) for r in ruleset.rules)
    by_name = {r.name: r for r in built}
    by_symbol = {s: tuple(by_name[r.name] for r in rs) for s, rs in ruleset.by_symbol.items()}
    return replace(ruleset, rules=built, by_symbol=by_symbol)


def prices(**by_symbol: float | None) -> dict[str, Snapshot]:
    return {s: Snapshot(s, quote=Quote(s, p)) for s, p in by_symbol.items()}


def test_a_condition_that_raises_is_unknown_for_its_rule_and_the_others_fire() -> None:
    ruleset = rules(f"  - name: poison\n    symbols: [LUMN, AAPL]\n    when: {OVERFLOW}\n" + GOOD)
    result = evaluate(ruleset, prices(LUMN=8.0, AAPL=9.0), {}, T0)
    assert sorted((a.rule, a.symbol) for a in result.alerts) == [
        ("good", "AAPL"),
        ("good", "LUMN"),
    ]
    assert sorted(result.errors, key=lambda e: e.symbol) == [
        RuleError("poison", "AAPL", "condition", "OverflowError", 2),
        RuleError("poison", "LUMN", "condition", "OverflowError", 2),
    ]
    # Unknown: the poisoned rule neither fired nor moved (it stays armed, with no state).
    assert all(not s.fired for (rule, _), s in result.states.items() if rule == "poison")


def test_a_clear_when_that_raises_never_re_arms() -> None:
    ruleset = rules(
        f"  - name: r\n    symbols: [LUMN]\n    when: price > 5\n    clear_when: {OVERFLOW}\n",
        poison="clear_when",
    )
    states: dict = {}
    fired = []
    for i, price in enumerate([8.0, 4.0, 8.0]):
        result = evaluate(ruleset, prices(LUMN=price), states, T0 + timedelta(minutes=i))
        states.update(result.states)
        fired.append(len(result.alerts))
        if i:
            assert [e.kind for e in result.errors] == ["condition"]
    assert fired == [1, 0, 0]


@pytest.mark.parametrize(
    "template",
    [
        "{{ symbol|truncate(1) }}",  # an AssertionError inside Jinja's filter
        "{{ [].pop() }}",
        "{{ '%(x)s' % {} }}",
        "{{ symbol.encode('x') }}",
        "{% macro m() %}{{ m() }}{% endmacro %}{{ m() }}",  # RecursionError
    ],
)
def test_a_message_that_fails_to_render_sends_the_default_with_a_note(template: str) -> None:
    ruleset = rules(
        f'  - name: loud\n    symbols: [LUMN]\n    when: price > 5\n    message: "{template}"\n'
        + GOOD
    )
    result = evaluate(ruleset, prices(LUMN=8.0), {}, T0)
    texts = {a.rule: a.text for a in result.alerts}
    assert texts["loud"].startswith("LUMN: loud (price > 5): price 8")
    assert "message template failed" in texts["loud"]
    assert texts["good"] == "LUMN: good (price > 5): price 8"
    assert [(e.rule, e.kind) for e in result.errors] == [("loud", "render")]


def test_an_edited_then_reverted_condition_fires_under_a_new_dedup_key() -> None:
    """#10.2: the state restarts on each edit, so the firing count alone repeats."""
    at_75 = rules("  - name: r\n    symbols: [LUMN]\n    when: price > 7.5\n")
    at_80 = rules("  - name: r\n    symbols: [LUMN]\n    when: price > 8.0\n")
    states: dict = {}
    keys = []
    for i, (ruleset, price) in enumerate(
        [(at_75, 8.0), (at_75, 7.0), (at_80, 7.0), (at_75, 7.0), (at_75, 7.8)]
    ):
        result = evaluate(ruleset, prices(LUMN=price), states, T0 + timedelta(minutes=i))
        states.update(result.states)
        keys += [a.dedup_key for a in result.alerts]
    assert len(keys) == 2 and len(set(keys)) == 2, keys
