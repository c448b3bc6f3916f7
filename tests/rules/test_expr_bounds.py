"""Conditions bounded: deep nesting, huge numbers and long text are refused at load with
PATH:LINE:COL (never RecursionError, MemoryError or OverflowError), and arithmetic during
evaluation is unknown instead of raising or firing on infinity."""

import time
import tracemalloc

import pytest

from service.errors import RuleFileError
from service.rules.expr import compile_condition
from tests.rules.conftest import load

NESTED = "the condition is nested more than 100 levels deep"
TOO_LARGE = "the number is too large (a float holds about 308 digits)"


def problem_of(condition: str) -> str:
    text = f'rules:\n  - name: r\n    symbols: [LUMN]\n    when: "{condition}"\n'
    tracemalloc.start()
    started = time.monotonic()
    try:
        with pytest.raises(RuleFileError) as info:
            load(text)
        elapsed = time.monotonic() - started
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert elapsed < 10, elapsed
    assert peak < 50_000_000, peak
    lines = info.value.lines()
    assert len(lines) == 1, lines
    return lines[0]


# `when: "` puts the condition's first character at column 12 of line 4.
@pytest.mark.parametrize(
    ("condition", "col", "message"),
    [
        ("not " * 2000 + "reported", 12 + 400, NESTED),
        ("-" * 2000 + "price > 0", 12 + 99, NESTED),
        ("-" * 100_000 + "price > 0", 12, "the condition is longer than 10,000 characters"),
        ("-" * 99 + "price > 0", 12 + 99, NESTED),
        ("(" * 300 + "price > 1" + ")" * 300, 12 + 200, NESTED),
        ("price * 1" + "0" * 400 + " > 1", 12 + 8, TOO_LARGE),
        ("price > 1" + "0" * 5000, 12 + 8, TOO_LARGE),
        ("price < 1e400", 12 + 8, TOO_LARGE),
        ("not " * 5000 + "reported", 12, "the condition is longer than 10,000 characters"),
    ],
)
def test_a_hostile_condition_is_one_problem_at_its_place(
    condition: str, col: int, message: str
) -> None:
    assert problem_of(condition) == f"rules.yaml:4:{col}: rules[0].when: {message}"


def test_a_long_chain_of_additions_is_refused_not_a_recursion_error() -> None:
    line = problem_of("price" + " + 1" * 2000 + " > 0")
    assert line.startswith("rules.yaml:4:") and line.endswith(f"rules[0].when: {NESTED}")


def test_nesting_within_the_bound_still_compiles() -> None:
    assert compile_condition("not " * 90 + "reported")({"reported": True}) is True
    assert compile_condition("price" + " + 1" * 90 + " > 0")({"price": 1.0}) is True


@pytest.mark.parametrize(
    ("condition", "values"),
    [
        ("price * 1e308 * 10 > 1", {"price": 5.0}),  # inf: fired before
        ("price - price * 1e308 * 10 < 1", {"price": 5.0}),
        ("price / 0 > 1", {"price": 1.0}),
        ("price / (price - price) > 1", {"price": 1.0}),
        ("eps_surprise_pct > 5", {"eps_surprise_pct": float("inf")}),
        ("eps_surprise_pct < 5", {"eps_surprise_pct": float("-inf")}),
        ("price != 1", {"price": float("nan")}),  # NaN != 1 is True in Python
        ("abs(price) > 1", {"price": float("inf")}),
        ("max(price, 1) > 0", {"price": float("nan")}),
        ("price * 10 > 1", {"price": 10**400}),  # OverflowError converting to float
    ],
)
def test_arithmetic_that_overflows_or_is_not_finite_is_unknown(
    condition: str, values: dict[str, float]
) -> None:
    assert compile_condition(condition)(values) is None
