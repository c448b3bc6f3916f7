"""The constant price levels a rule compares with, for the replay chart.

`price < 7.5`, `day_high >= 10`, `8 > price_at_report`: a variable that is a price in
dollars compared with a number. Read from the condition's text with Python's `ast` (the
text `compile_condition` accepted); conditions on percentages (`change_pct <= -5`) or on
other variables (`price < target_median`) have no constant price level.
"""

from __future__ import annotations

import ast
import itertools
from typing import Final

from service.rules.expr import Compiled

#: The variables whose value is a price, in dollars.
PRICE_LEVEL_VARS: Final = frozenset(
    {"price", "prev_close", "day_high", "day_low", "price_at_report", "price_at_open"}
)


def _number(node: ast.expr) -> float | None:
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        inner = _number(node.operand)
        if inner is None:
            return None
        return -inner if isinstance(node.op, ast.USub) else inner
    if (
        isinstance(node, ast.Constant)
        and isinstance(node.value, int | float)
        and not isinstance(node.value, bool)
    ):
        return float(node.value)
    return None


def _is_price(node: ast.expr) -> bool:
    return isinstance(node, ast.Name) and node.id in PRICE_LEVEL_VARS


def price_levels(condition: Compiled | None) -> tuple[float, ...]:
    """Every number a price variable of `condition` is compared with, in order, once."""
    if condition is None:
        return ()
    tree = ast.parse(condition.source, mode="eval")
    found: list[float] = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Compare):
            continue
        operands = [node.left, *node.comparators]
        for left, right in itertools.pairwise(operands):
            for var, other in ((left, right), (right, left)):
                value = _number(other)
                if _is_price(var) and value is not None and value not in found:
                    found.append(value)
    return tuple(found)
