"""Evaluation of a compiled condition: the closures `expr` builds, three-valued.

`None` is unknown: it propagates through arithmetic and comparisons, and `and`/`or`
follow Kleene's logic. Arithmetic never raises: an overflow, a division by zero or a
result that is not finite is unknown, and so is a variable that is not finite.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from service.market import Value

Vars = Mapping[str, Value]
Fn = Callable[[Vars], Value]


def kleene_and(parts: Sequence[Fn]) -> Fn:
    if len(parts) == 2:  # the common case, unrolled (same order, same short cut)
        first, second = parts

        def both(v: Vars) -> Value:
            x = first(v)
            if x is False:
                return False
            y = second(v)
            if y is False:
                return False
            return None if x is None or y is None else True

        return both

    def fn(v: Vars) -> Value:
        unknown = False
        for part in parts:
            x = part(v)
            if x is False:
                return False
            if x is None:
                unknown = True
        return None if unknown else True

    return fn


def kleene_or(parts: Sequence[Fn]) -> Fn:
    if len(parts) == 2:  # the common case, unrolled (same order, same short cut)
        first, second = parts

        def either(v: Vars) -> Value:
            x = first(v)
            if x is True:
                return True
            y = second(v)
            if y is True:
                return True
            return None if x is None or y is None else False

        return either

    def fn(v: Vars) -> Value:
        unknown = False
        for part in parts:
            x = part(v)
            if x is True:
                return True
            if x is None:
                unknown = True
        return None if unknown else False

    return fn


def comparison(compare: Callable[[Any, Any], bool], left: Fn, right: Fn) -> Fn:
    def fn(v: Vars) -> Value:
        a = left(v)
        if a is None:
            return None
        b = right(v)
        if b is None:
            return None
        return compare(a, b)

    return fn


def compare_variable(compare: Callable[[Any, Any], bool], name: str, constant: Value) -> Fn:
    """`comparison(compare, <the number variable name>, <constant>)` as one closure: the
    commonest part of a condition (`price > 5`), read as `number(v.get(name))` reads it.
    An order (`<`, `<=`, `>`, `>=`) is written in its closure (`_ORDERS`): no call of
    `compare` for each value."""
    order = _ORDERS.get(compare)
    if order is not None:
        return order(name, constant)
    isfinite = math.isfinite

    def fn(v: Vars) -> Value:
        a = v.get(name)
        if a is None:
            return None
        if a.__class__ is float:
            return compare(a, constant) if isfinite(a) else None
        a = number(a)
        return None if a is None else compare(a, constant)

    return fn


def _less(name: str, constant: Any) -> Fn:
    isfinite = math.isfinite

    def fn(v: Vars) -> Value:
        a = v.get(name)
        if a is None:
            return None
        if a.__class__ is float:
            return a < constant if isfinite(a) else None
        a = number(a)
        return None if a is None else a < constant

    return fn


def _less_equal(name: str, constant: Any) -> Fn:
    isfinite = math.isfinite

    def fn(v: Vars) -> Value:
        a = v.get(name)
        if a is None:
            return None
        if a.__class__ is float:
            return a <= constant if isfinite(a) else None
        a = number(a)
        return None if a is None else a <= constant

    return fn


def _greater(name: str, constant: Any) -> Fn:
    isfinite = math.isfinite

    def fn(v: Vars) -> Value:
        a = v.get(name)
        if a is None:
            return None
        if a.__class__ is float:
            return a > constant if isfinite(a) else None
        a = number(a)
        return None if a is None else a > constant

    return fn


def _greater_equal(name: str, constant: Any) -> Fn:
    isfinite = math.isfinite

    def fn(v: Vars) -> Value:
        a = v.get(name)
        if a is None:
            return None
        if a.__class__ is float:
            return a >= constant if isfinite(a) else None
        a = number(a)
        return None if a is None else a >= constant

    return fn


#: `compare_variable` of each order, with the comparison written in the closure.
_ORDERS: dict[Callable[[Any, Any], bool], Callable[[str, Any], Fn]] = {
    operator.lt: _less,
    operator.le: _less_equal,
    operator.gt: _greater,
    operator.ge: _greater_equal,
}


def variable_number(name: str) -> Fn:
    """`number(v.get(name))`, with the commonest case (a finite float) first."""
    isfinite = math.isfinite

    def fn(v: Vars) -> Value:
        a = v.get(name)
        if a.__class__ is float:
            return a if isfinite(a) else None
        return number(a)

    return fn


def finite(value: float) -> bool:
    try:
        return math.isfinite(value)
    except OverflowError:  # an int too large for a float
        return False


def number(value: Value) -> Value:
    """A number, or unknown when it is not finite."""
    if isinstance(value, float | int) and not isinstance(value, bool) and not finite(value):
        return None
    return value


def arithmetic(symbol: str, left: Fn, right: Fn) -> Fn:
    def fn(v: Vars) -> Value:
        a, b = left(v), right(v)
        if a is None or b is None:
            return None
        x: float = a  # type: ignore[assignment]
        y: float = b  # type: ignore[assignment]
        try:
            if symbol == "+":
                result = x + y
            elif symbol == "-":
                result = x - y
            elif symbol == "*":
                result = x * y
            else:
                result = x / y
        except (OverflowError, ZeroDivisionError):
            return None
        return number(result)

    return fn


def all_known(pick: Callable[..., Any], fns: Sequence[Fn]) -> Fn:
    def fn(v: Vars) -> Value:
        values = [f(v) for f in fns]
        if any(x is None for x in values):
            return None
        result: Value = pick(values)
        return result

    return fn
