"""Which prices matter most now: the order in which symbols stream and REST polls them.

DOMAIN: pure, no IO; takes the rule set, the market data and `now`. When the free tier
cannot refresh every price at EARNWATCH_PRICE_POLL, the calls go where an alert is
nearest. Highest urgency first:

1. symbols inside a report window (`schedule.earnings_window`, reported or not: the
   minutes after a report are when the price moves);
2. then by the distance of the price to the nearest level a price rule compares it with,
   in percent of the price: `price > 7.56`, `price < target_median`,
   `price >= prev_close * 1.05` (a level is any arithmetic of constants and numeric
   variables on the other side of a comparison with `price`);
3. then the stalest price first (never priced: first of all).

Ties keep the alphabetical order. Each poll pass still covers every symbol: the order
decides which prices are fresh first, never which are left out.
"""

from __future__ import annotations

import ast
import itertools
import math
import operator
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Final

from service.market import Snapshot, Value, variables
from service.marketdata import MarketData
from service.rules import RuleSet
from service.schedule import earnings_window


def _divide(a: float, b: float) -> float:
    return a / b if b else math.nan


_ARITHMETIC: Final[dict[type[ast.operator], Callable[[float, float], float]]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: _divide,
}


@dataclass(frozen=True, slots=True)
class Level:
    """One expression `price` is compared with: a number known at parse time, or an
    arithmetic `node` over the variables `names`."""

    constant: float | None
    node: ast.expr
    names: frozenset[str]


@lru_cache(maxsize=4096)
def price_levels(source: str) -> tuple[Level, ...]:
    """The expressions `price` is compared with in a condition (parsed once per text)."""
    try:
        tree = ast.parse(source.strip(), mode="eval")
    except (SyntaxError, ValueError):
        return ()
    levels: list[Level] = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Compare):
            continue
        sides = [node.left, *node.comparators]
        for left, right in itertools.pairwise(sides):
            other = right if _is_price(left) else left if _is_price(right) else None
            if other is None:
                continue
            names = frozenset(n.id for n in ast.walk(other) if isinstance(n, ast.Name))
            constant = _number(other, {}) if not names else None
            if names or constant is not None:
                levels.append(Level(constant, other, names))
    return tuple(levels)


def _is_price(node: ast.expr) -> bool:
    return isinstance(node, ast.Name) and node.id == "price"


def _number(node: ast.expr, values: Mapping[str, Value]) -> float | None:
    """`node` as a number over `values`, or None (not arithmetic, or a value unknown)."""
    if isinstance(node, ast.Constant):
        value: object = node.value
    elif isinstance(node, ast.Name):
        value = values.get(node.id)
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        inner = _number(node.operand, values)
        return None if inner is None else -inner
    elif isinstance(node, ast.BinOp) and type(node.op) in _ARITHMETIC:
        a, b = _number(node.left, values), _number(node.right, values)
        if a is None or b is None:
            return None
        value = _ARITHMETIC[type(node.op)](a, b)
    else:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _values(snapshot: Snapshot, names: frozenset[str], now: datetime) -> Mapping[str, Value]:
    """The variables `names` need: read straight from the quote and the targets when they
    are all there (the common case, and cheap), else every variable."""
    if names <= _DIRECT:
        quote, targets = snapshot.quote, snapshot.targets
        return {
            "prev_close": quote.prev_close if quote else None,
            "day_high": quote.day_high if quote else None,
            "day_low": quote.day_low if quote else None,
            "target_median": targets.median if targets else None,
            "target_mean": targets.mean if targets else None,
            "target_high": targets.high if targets else None,
            "target_low": targets.low if targets else None,
        }
    return variables(snapshot, now)


_DIRECT: Final = frozenset(
    {"prev_close", "day_high", "day_low", "target_median", "target_mean", "target_high"}
    | {"target_low"}
)


def level_distance(ruleset: RuleSet, data: MarketData, symbol: str, now: datetime) -> float | None:
    """How far, in percent of the price, `symbol`'s price is from the nearest level of its
    price rules; None when its price or every level is unknown."""
    quote = data.quotes.get(symbol)
    price = quote.price if quote else None
    if price is None or price <= 0:
        return None
    levels: list[Level] = []
    seen: set[str] = set()
    for rule in ruleset.by_symbol.get(symbol, ()):
        for condition in (rule.when, rule.clear_when):
            if condition is None or "price" not in condition.names:
                continue
            if condition.source not in seen:
                seen.add(condition.source)
                levels.extend(price_levels(condition.source))
    needed = frozenset().union(*(level.names for level in levels))
    values = _values(data.snapshot(symbol), needed, now) if needed else {}
    nearest: float | None = None
    for level in levels:
        value = level.constant if level.constant is not None else _number(level.node, values)
        if value is None:
            continue
        distance = abs(price - value) / price * 100
        nearest = distance if nearest is None else min(nearest, distance)
    return nearest


def in_report_window(data: MarketData, symbol: str, now: datetime) -> bool:
    for event in data.events.get(symbol, ()):
        start, end = earnings_window(event)
        if start <= now < end:
            return True
    return False


def rank(symbols: Iterable[str], ruleset: RuleSet, data: MarketData, now: datetime) -> list[str]:
    """`symbols`, most urgent first (see the module's docstring)."""

    def key(symbol: str) -> tuple[bool, float, float, str]:
        distance = level_distance(ruleset, data, symbol, now)
        quote = data.quotes.get(symbol)
        priced = quote.time if quote is not None and quote.price is not None else None
        age = math.inf if priced is None else (now - priced).total_seconds()
        return (
            not in_report_window(data, symbol, now),
            math.inf if distance is None else distance,
            -age,
            symbol,
        )

    return sorted(symbols, key=key)
