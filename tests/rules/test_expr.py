"""The `when` language: whitelist, types, positions, three-valued logic."""

from datetime import date

import pytest

from service.rules.expr import ExprError, compile_condition


def error_of(text: str) -> ExprError:
    with pytest.raises(ExprError) as info:
        compile_condition(text)
    return info.value


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("__import__('os')", "calling '__import__' is not allowed"),
        ("price.real > 1", "attribute access (a.b) is not allowed"),
        ("(lambda: 1)() > 0", "calling 'lambda: 1' is not allowed"),
        ("[p for p in x] == 1", "comprehensions are not allowed"),
        ("{1: 2} == 1", "dictionaries are not allowed"),
        ("open('x') == 1", "calling 'open' is not allowed"),
        ("price[0] > 1", "indexing (a[b]) is not allowed"),
        ("(x := 1) > 0", "assignment (:=) is not allowed"),
    ],
)
def test_the_compiler_refuses_what_is_not_in_the_language(text: str, message: str) -> None:
    assert message in error_of(text).message


def test_an_unknown_name_is_refused_with_a_suggestion_and_its_column() -> None:
    err = error_of("reported and eps_actul < eps_estimate")
    assert err.message == "unknown name 'eps_actul' (did you mean 'eps_actual'?)"
    assert err.col == len("reported and ")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("price", "a condition must be true or false, but this is a number"),
        ("price > 'high'", "cannot compare a number with a string"),
        ("earnings_time > 'bmo'", "a string can only be compared with == or !="),
        ("earnings_date == '2026-02-03'", "cannot compare a date with a string"),
        ("price + reported > 1", "arithmetic needs numbers, but this is a true/false"),
        ("date('2026-13-01') == earnings_date", "is not a date: use YYYY-MM-DD"),
        ("abs(price, 1) > 0", "abs() takes exactly one number"),
        ("price = 5", "compare with ==, not ="),
        ("price > 1 && reported", "write `and` / `or`"),
        ("", "the condition is empty"),
    ],
)
def test_type_and_syntax_mistakes_are_refused_at_load_time(text: str, message: str) -> None:
    assert message in error_of(text).message


K = {"price": 8.0, "prev_close": 7.0, "reported": True, "eps_actual": 0.23, "eps_estimate": -0.21}
U = {**K, "price": None, "eps_estimate": None}


@pytest.mark.parametrize(
    ("text", "known", "unknown"),
    [
        ("price > 7.56", True, None),
        ("price < 7.56", False, None),
        ("not price > 7.56", False, None),
        ("price > 7.56 and reported", True, None),
        ("price < 7.56 and reported", False, None),
        ("price > 100 and reported", False, None),
        ("reported and price > 100", False, None),
        ("price > 7.56 or reported", True, True),
        ("price < 7.56 or not reported", False, None),
        ("7 < price < 9", True, None),
        ("abs(price - prev_close) >= 1", True, None),
        ("max(price, prev_close) == 8", True, None),
        ("price / 0 > 1", None, None),
        ("eps_actual < eps_estimate", False, None),
        ("-price < 0", True, None),
    ],
)
def test_three_valued_logic(text: str, known: object, unknown: object) -> None:
    compiled = compile_condition(text)
    assert compiled(K) is known
    assert compiled(U) is unknown


def test_in_lists_and_dates_and_true_false() -> None:
    when = compile_condition(
        'earnings_time in ["bmo", "amc"] and earnings_date == date("2026-02-03") '
        "and reported == true"
    )
    values = {"earnings_time": "amc", "earnings_date": date(2026, 2, 3), "reported": True}
    assert when(values) is True
    assert when({**values, "earnings_time": "dmh"}) is False
    assert when({**values, "earnings_time": None}) is None
    assert when.names == {"earnings_time", "earnings_date", "reported"}


def test_compiled_conditions_record_the_names_they_read() -> None:
    assert compile_condition("price > target_median").names == {"price", "target_median"}


def test_in_cannot_be_chained_with_another_comparison() -> None:
    # Python would read this as (x in [...]) and ([...] == x): never what a user meant.
    assert "`in` cannot be chained" in error_of('earnings_time in ["bmo"] == earnings_time').message
    assert "`in` cannot be chained" in error_of("1 < 2 in [2]").message
