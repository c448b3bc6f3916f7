"""The generated function of a condition (`service/rules/codegen.py`) gives what its
closure tree gives, value for value, on random conditions and random variables (issue
#16): unknowns, NaN, infinities, huge integers, flags read as numbers."""

from __future__ import annotations

import ast
import math
import random
from typing import Any

import pytest

from service.rules.codegen import generated
from service.rules.expr import (
    _LITERAL,
    _NUMERIC,
    CONSTANTS,
    Templates,
    _Compiler,
    _params,
    compile_condition,
)

NUMBERS = ["price", "change_pct", "target_median", "days_to_earnings", "confirmed_by"]
FLAGS = ["reported", "data_suspect", "earnings_date_changed"]
TEXTS = ["session", "earnings_time"]


def number_expr(rng: random.Random, depth: int) -> str:
    roll = rng.random()
    if depth <= 0 or roll < 0.35:
        return rng.choice(NUMBERS)
    if roll < 0.55:
        return rng.choice(["0", "5", "7.5", "24", "100", "0.001", "1000000"])
    if roll < 0.65:
        return f"-{number_expr(rng, depth - 1)}"
    if roll < 0.75:
        return f"abs({number_expr(rng, depth - 1)})"
    if roll < 0.82:
        args = ", ".join(number_expr(rng, depth - 1) for _ in range(rng.randint(2, 3)))
        return f"{rng.choice(['min', 'max'])}({args})"
    op = rng.choice(["+", "-", "*", "/"])
    return f"({number_expr(rng, depth - 1)} {op} {number_expr(rng, depth - 1)})"


def condition(rng: random.Random, depth: int) -> str:
    roll = rng.random()
    if depth <= 0 or roll < 0.3:
        kind = rng.random()
        if kind < 0.6:
            op = rng.choice(["<", "<=", ">", ">=", "==", "!="])
            return f"{number_expr(rng, 1)} {op} {number_expr(rng, 1)}"
        if kind < 0.75:
            return rng.choice(FLAGS)
        if kind < 0.85:
            return f"{rng.choice(FLAGS)} == {rng.choice(['true', 'false'])}"
        if kind < 0.93:
            return f'{rng.choice(TEXTS)} {rng.choice(["==", "!="])} "pre"'
        return f"{rng.choice(NUMBERS)} < 5 < {rng.choice(NUMBERS)}"  # chained: closures
    if roll < 0.45:
        return f"not ({condition(rng, depth - 1)})"
    op = rng.choice([" and ", " or "])
    return op.join(f"({condition(rng, depth - 1)})" for _ in range(rng.randint(2, 4)))


ODD_NUMBERS = [
    None,
    None,
    0.0,
    -0.0,
    0,
    3,
    -7,
    5.0,
    7.5,
    -5.0,
    24.0,
    1e308,
    -1e308,
    1e-320,
    10**400,
    True,
    False,
    math.nan,
    math.inf,
    -math.inf,
]


def values(rng: random.Random) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in NUMBERS:
        out[name] = rng.choice([*ODD_NUMBERS, rng.uniform(-100, 100)])
    for name in FLAGS:
        out[name] = rng.choice([None, True, False])
    for name in TEXTS:
        out[name] = rng.choice([None, "pre", "regular", "amc"])
    return out


def closures_of(text: str) -> Any:
    """The closure tree `expr` builds for `text` (no generated code)."""
    tree = ast.parse(text, mode="eval")
    staged, _kind = _Compiler().node(tree.body)
    return staged.get(())


def outcome(fn: Any, v: dict[str, Any]) -> tuple[Any, ...]:
    try:
        result = fn(v)
    except Exception as exc:  # both must raise alike, if at all
        return ("raised", type(exc).__name__)
    return (type(result), result)


@pytest.mark.parametrize("seed", range(8))
def test_generated_conditions_give_what_their_closures_give(seed: int) -> None:
    rng = random.Random(seed)
    covered = 0
    for _ in range(250):
        text = condition(rng, 3)
        compiled = compile_condition(text)
        reference = closures_of(text)
        tree = ast.parse(text, mode="eval")
        covered += generated(tree.body, _NUMERIC, CONSTANTS, None) is not None
        for _ in range(12):
            v = values(rng)
            assert outcome(compiled.fn, v) == outcome(reference, v), (text, v)
    assert covered > 100  # most are generated (not those with a chained comparison)


def test_templates_share_one_generated_function_per_shape() -> None:
    """Conditions that differ only in their numbers get the generated code of the first,
    with their own numbers: the values of their own closures."""
    templates: Templates = {}
    rng = random.Random(3)
    shapes = [
        "price > {a} and change_pct < -{b}",
        "abs(change_pct) >= {a} or price > target_median * {b}",
        "not reported and confirmed_by <= {a} or min(price, {b}) > 1",
    ]
    for shape in shapes:
        first = compile_condition(shape.format(a=1, b=2.5), templates)
        for _ in range(40):
            a = rng.choice([0, 3, 7, 12.25, 100])
            b = rng.choice([1, 2.5, 0.001, 50])
            text = shape.format(a=a, b=b)
            shared = compile_condition(text, templates)
            assert shared.fn.__code__ is first.fn.__code__  # one code object per shape
            reference = closures_of(text)
            for _ in range(10):
                v = values(rng)
                assert outcome(shared.fn, v) == outcome(reference, v), (text, v)


def test_what_is_not_covered_keeps_its_closures() -> None:
    kept = ['earnings_time in ["bmo", "amc"]', "0 < price < 5", "price > 5", "price < -5"]
    for text in [*kept, 'session == "pre"', "price > 5 and reported"]:
        tree = ast.parse(text, mode="eval")
        made = generated(tree.body, _NUMERIC, CONSTANTS, None)
        assert (made is None) == (text in kept)
    deep = " and ".join(["(price > 1"] * 14) + ")" * 14
    assert generated(ast.parse(deep, mode="eval").body, _NUMERIC, CONSTANTS, None) is None
    assert compile_condition(deep).fn({"price": 2.0}) is True  # its closures


def test_open_constants_are_the_templates_numbers() -> None:
    text = "price > 5 and change_pct < -2.5"
    literals = list(_LITERAL.finditer(text))
    params = _params(ast.parse(text, mode="eval").body, text, literals)
    assert params is not None
    factory = generated(ast.parse(text, mode="eval").body, _NUMERIC, CONSTANTS, params)
    assert factory is not None
    fn = factory((10, 1.5))  # price > 10 and change_pct < -1.5
    assert fn({"price": 11.0, "change_pct": -2.0}) is True
    assert fn({"price": 9.0, "change_pct": -2.0}) is False
    assert fn({"price": None, "change_pct": -2.0}) is None
