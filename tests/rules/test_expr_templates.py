"""Conditions that differ only in their numbers share one staged tree (issue #16): each
gets the closure a compile of its own text builds, with the same results on any values."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import date

import pytest

from service.rules.expr import ExprError, Templates, compile_condition

FAMILIES = [
    "price > {}",
    "price < {} and change_pct < -{}",
    "price >= {} or change_pct <= {}",
    "not (price == {}) and {} != change_pct",
    "abs(change_pct) >= {} or price > target_median",
    "{} < price < {}",
    "price * {} + {} > change_pct / {}",
    "min(price, {}) > max(change_pct, {}, -{})",
    "price in [{}, {}, 3] or change_pct not in [{}]",
    "reported and eps_actual < eps_estimate * {}",
    "(price > {} and\n  change_pct < {})",
    "price - {} > 0 and price > 1e3",
    "price > {} and day_high > 1_000",
    "+{} < price",
]
NUMBERS = ["0", "1", "5", "7.5", "0.25", "123.45", "999999999999999", "3.000", "42", "10.0"]


def values(rng: random.Random) -> dict[str, object]:
    def number() -> object:
        return rng.choice([None, 0, 0.0, 5, 7.5, -3.25, 1e300, rng.uniform(-1000, 1000)])

    return {
        "price": number(),
        "change_pct": number(),
        "target_median": number(),
        "day_high": number(),
        "eps_actual": number(),
        "eps_estimate": number(),
        "reported": rng.choice([None, True, False]),
    }


@pytest.mark.parametrize("family", FAMILIES)
def test_a_template_gives_the_closure_of_a_compile_of_the_text(family: str) -> None:
    rng = random.Random(family)
    templates: Templates = {}
    slots = family.count("{}")
    texts = [family.format(*rng.choices(NUMBERS, k=slots)) for _ in range(30)]
    for text in texts:
        shared = compile_condition(text, templates)
        alone = compile_condition(text)
        assert (shared.source, shared.names, shared.clock) == (
            alone.source,
            alone.names,
            alone.clock,
        )
        for _ in range(40):
            v = values(rng)
            assert shared(v) == alone(v), (text, v)
    assert len(templates) == 1  # one staged tree served every text


def test_a_text_of_the_clock_or_with_a_string_is_compiled_on_its_own() -> None:
    templates: Templates = {}
    clock = compile_condition("hours_to_earnings <= 24", templates)
    assert clock.clock == (24.0,) and not templates
    assert compile_condition("hours_to_earnings <= 48", templates).clock == (48.0,)
    compile_condition('earnings_time == "amc" and price > 5', templates)
    assert not templates


def test_a_text_that_fails_is_no_template_and_fails_again() -> None:
    templates: Templates = {}
    with pytest.raises(ExprError):
        compile_condition("price > 5 and", templates)
    assert not templates
    with pytest.raises(ExprError, match="invalid syntax"):
        compile_condition("price > 6 and", templates)
    with pytest.raises(ExprError, match="cannot compare"):
        compile_condition("reported > 5", templates)
    with pytest.raises(ExprError, match="cannot compare"):
        compile_condition("reported > 6", templates)


@pytest.mark.parametrize("op", ["<", "<=", ">", ">=", "==", "!="])
def test_a_number_or_its_negative_reads_as_the_comparison_of_the_variable_with_it(
    op: str,
) -> None:
    """`change_pct < 5` and `change_pct < -5` are one closure each (the comparison
    written in it for an order): the same results as the generic comparison of the
    variable with the constant, or the negated constant (`comparison`), fixed or from a
    template, on any value a rule may see (and the same exception on one it may not)."""
    import math
    import operator

    from service.rules.evaluation import comparison, variable_number

    compare = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}
    compare |= {"==": operator.eq, "!=": operator.ne}
    odd = [None, 0, -5, -5.0, 5, True, False, math.nan, math.inf, -math.inf, 10**400, -0.0]
    rng = random.Random(op)
    templates: Templates = {}
    for sign in ("", "-"):
        for number in [*NUMBERS, "5", "0", "0.0"]:
            constant = float(number) if "." in number else int(number)
            constant = -constant if sign else constant
            reference = comparison(
                compare[op], variable_number("change_pct"), lambda _v, c=constant: c
            )
            text = f"change_pct {op} {sign}{number}"
            for compiled in (compile_condition(text), compile_condition(text, templates)):
                for value in [*odd, *(rng.uniform(-50, 50) for _ in range(20))]:
                    v = {"change_pct": value}
                    assert compiled(v) == reference(v), (text, value)
                    assert type(compiled(v)) is type(reference(v))
                for bad in ("x", date(2026, 2, 3)):
                    assert outcome(compiled, bad) == outcome(reference, bad), (text, bad)


def outcome(fn: Callable[[dict[str, object]], object], value: object) -> object:
    """What `fn` gives of `change_pct` = `value`, or the type of what it raised."""
    try:
        return fn({"change_pct": value})
    except Exception as exc:
        return type(exc)
