"""`service/rules/trace.py`: each comparison's text, sides and value, which steps decide
the whole, and agreement with the engine's own evaluation on generated conditions."""

from __future__ import annotations

from datetime import date
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from service.market import Value
from service.rules.expr import compile_condition
from service.rules.trace import trace

LUMN = {
    "price": 7.20,
    "prev_close": 8.46,
    "target_median": 7.56,
    "reported": True,
    "eps_actual": None,
    "eps_estimate": -0.21,
    "earnings_time": "amc",
    "earnings_date": date(2026, 2, 3),
}


def test_an_unknown_value_names_itself_and_makes_the_whole_unknown() -> None:
    result = trace(compile_condition("reported and eps_actual < eps_estimate"), LUMN)
    assert result.value is None and result.error is None
    assert result.unknown == ("eps_actual",)
    flag, miss = result.steps
    assert (flag.text, flag.op, flag.left, flag.value) == ("reported", None, True, True)
    assert (miss.text, miss.op, miss.left, miss.right, miss.value) == (
        "eps_actual < eps_estimate",
        "<",
        None,
        -0.21,
        None,
    )
    assert result.deciding == (1,)


def test_a_false_comparison_shows_both_sides() -> None:
    result = trace(compile_condition("price > target_median * 1.02"), LUMN)
    assert result.value is False and result.unknown == ()
    (step,) = result.steps
    assert step.text == "price > target_median * 1.02"
    assert step.left == 7.20 and step.right == 7.56 * 1.02 and step.value is False


def test_false_and_unknown_is_false_decided_by_the_false_part() -> None:
    result = trace(compile_condition("price > 7.56 and eps_actual < 0"), LUMN)
    assert result.value is False and result.deciding == (0,)


def test_true_or_unknown_is_true() -> None:
    result = trace(compile_condition("eps_actual < 0 or price < 7.56"), LUMN)
    assert result.value is True and result.deciding == (1,) and result.unknown == ()


def test_a_chained_comparison_is_one_step_per_link() -> None:
    result = trace(compile_condition("0 < price <= 7"), LUMN)
    assert [s.text for s in result.steps] == ["0 < price", "price <= 7"]
    assert [s.value for s in result.steps] == [True, False] and result.value is False


def test_membership_shows_the_list_and_not_flips_the_value() -> None:
    result = trace(compile_condition('not earnings_time in ["bmo", "amc"]'), LUMN)
    (step,) = result.steps
    assert step.op == "in" and step.right == ("bmo", "amc") and step.value is True
    assert result.value is False and result.deciding == (0,)


def test_an_unknown_result_of_known_values_names_the_side() -> None:
    result = trace(compile_condition("price / (prev_close - prev_close) > 1"), LUMN)
    assert result.value is None
    assert result.unknown == ("price / (prev_close - prev_close)",)


def test_a_value_that_is_not_finite_is_unknown_as_for_the_engine() -> None:
    result = trace(compile_condition("price > 1"), {**LUMN, "price": float("inf")})
    assert result.value is None and result.unknown == ("price",)


def test_a_part_that_raises_makes_it_unknown_with_the_error() -> None:
    values = {**LUMN, "price": "7.20"}  # a value of the wrong type (never from the pipeline)
    result = trace(compile_condition("reported and price > 1"), values)
    assert result.value is None and result.error == "TypeError"
    assert trace(compile_condition("not reported and price > 1"), values).value is False


def test_constants_are_no_steps() -> None:
    result = trace(compile_condition("true and price < 10"), LUMN)
    assert len(result.steps) == 1 and result.value is True


# --- agreement with the engine ---------------------------------------------------------

NUMBER_VARS = ("price", "prev_close", "eps_actual", "eps_estimate", "target_median")
numbers = st.one_of(
    st.none(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, 1.0, -1.0, 7.56, 1e308]),
    st.integers(-3, 3),
)


def _values() -> st.SearchStrategy[dict[str, Value]]:
    return st.fixed_dictionaries(
        {
            **{name: numbers for name in NUMBER_VARS},
            "reported": st.one_of(st.none(), st.booleans()),
            "earnings_time": st.one_of(st.none(), st.sampled_from(["bmo", "amc", "dmh"])),
            "earnings_date": st.one_of(st.none(), st.dates(date(2026, 1, 1), date(2026, 3, 1))),
            "fiscal_period": st.one_of(st.none(), st.sampled_from(["2025Q4", "2026Q1"])),
        }
    )


number_atoms = st.one_of(st.sampled_from(NUMBER_VARS), st.sampled_from(["0", "1", "-2.5", "7.56"]))
number_exprs = st.recursive(
    number_atoms,
    lambda inner: st.one_of(
        st.builds(lambda a, op, b: f"({a} {op} {b})", inner, st.sampled_from("+-*/"), inner),
        st.builds(lambda a: f"-{a}", inner),
        st.builds(lambda a: f"abs({a})", inner),
        st.builds(lambda f, a, b: f"{f}({a}, {b})", st.sampled_from(["min", "max"]), inner, inner),
    ),
    max_leaves=4,
)
ops = st.sampled_from(["<", "<=", ">", ">=", "==", "!="])
bool_atoms = st.one_of(
    st.sampled_from(
        [
            "reported",
            "true",
            "false",
            'earnings_time == "bmo"',
            'earnings_time in ["bmo", "amc"]',
            'earnings_time not in ["dmh"]',
            'earnings_date >= date("2026-02-03")',
            'fiscal_period != "2025Q4"',
            "reported == false",
        ]
    ),
    st.builds(lambda a, op, b: f"{a} {op} {b}", number_exprs, ops, number_exprs),
    st.builds(
        lambda a, o1, b, o2, c: f"{a} {o1} {b} {o2} {c}",
        number_exprs,
        ops,
        number_exprs,
        ops,
        number_exprs,
    ),
)
conditions = st.recursive(
    bool_atoms,
    lambda inner: st.one_of(
        st.builds(lambda a, b: f"({a}) and ({b})", inner, inner),
        st.builds(lambda a, b, c: f"({a}) or ({b}) or ({c})", inner, inner, inner),
        st.builds(lambda a: f"not ({a})", inner),
    ),
    max_leaves=6,
)


def _engine(source: str, values: dict[str, Any]) -> Value:
    """The engine's reading of a condition: its value, unknown when it raises."""
    try:
        return compile_condition(source)(values)
    except Exception:
        return None


def _check(source: str, values: dict[str, Any]) -> None:
    result = trace(compile_condition(source), values)
    assert result.value is _engine(source, values), (source, values, result)
    for step in result.steps:
        assert step.value in (True, False, None)
        assert (step.value is None) == bool(step.unknown)
    if result.value is None and result.error is None:
        assert result.unknown, (source, values, result)
        assert all(result.steps[i].value is None for i in result.deciding)
    if result.value is not None:
        assert result.deciding or not result.steps or "true" in source or "false" in source


@settings(max_examples=600, deadline=None)
@given(conditions, _values())
def test_the_trace_agrees_with_the_engine(source: str, values: dict[str, Any]) -> None:
    _check(source, values)


@settings(max_examples=200, deadline=None)
@given(conditions, _values(), st.sampled_from(NUMBER_VARS))
def test_the_trace_agrees_with_the_engine_when_a_part_raises(
    source: str, values: dict[str, Any], broken: str
) -> None:
    _check(source, {**values, broken: "not a number"})
