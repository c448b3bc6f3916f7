"""Why a compiled condition has its value, for `earnwatch explain`: each comparison with
its source text, the values of its two sides and its own value, and which of them decide
the whole.

Every value shown is computed by the engine's own closures (`expr.compile_part`), and the
whole is combined with the same three-valued logic (`evaluation.py`: `and`/`or` are
Kleene's, unknown propagates, a part that raises makes the condition unknown unless an
earlier part already decided it), so a trace never disagrees with what the engine would
do; `tests/rules/test_trace.py` checks that on many generated conditions and inputs.

Pure: plain values in, plain values out.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Final

from service.market import Value
from service.rules.evaluation import Fn
from service.rules.expr import CONSTANTS, VARIABLE_TYPES, Compiled, compile_part

_OPS: Final[Mapping[type[ast.cmpop], str]] = {
    ast.Lt: "<",
    ast.LtE: "<=",
    ast.Gt: ">",
    ast.GtE: ">=",
    ast.Eq: "==",
    ast.NotEq: "!=",
    ast.In: "in",
    ast.NotIn: "not in",
}

#: The right side of an `in` test: its list of values.
Operand = Value | tuple[Value, ...]


@dataclass(frozen=True, slots=True)
class Step:
    """One comparison of a condition (or a true/false variable read on its own, then with
    `op` None and its value as `left`): its text, both sides' values and its own value.
    `unknown` names what made an unknown step unknown: the unknown variables it reads,
    else the sides that are unknown (a division by zero), else its own text."""

    text: str
    op: str | None
    left: Operand
    right: Operand
    value: Value
    unknown: tuple[str, ...] = ()
    error: str | None = None  # the exception's type name, if evaluating it raised
    sides: tuple[str, ...] = ()  # the texts of `left` and `right` (one for a variable)


@dataclass(frozen=True, slots=True)
class Trace:
    """A condition's value (True, False or None for unknown), every step, and which steps
    decide the value (for an unknown condition: the unknown steps it depends on)."""

    source: str
    value: Value
    steps: tuple[Step, ...]
    deciding: tuple[int, ...]
    error: str | None = None

    @property
    def unknown(self) -> tuple[str, ...]:
        """What makes an unknown condition unknown (empty when it is known)."""
        if self.value is not None:
            return ()
        names: dict[str, None] = {}
        for index in self.deciding:
            names.update(dict.fromkeys(self.steps[index].unknown))
        return tuple(names)


def trace(condition: Compiled, values: Mapping[str, Value]) -> Trace:
    """Evaluate `condition` on `values` as the engine does, step by step."""
    plan = _plan(condition.source)
    steps = tuple(step.run(values) for step in plan.steps)
    value, raised = _value(plan.root, steps)
    if raised:
        failed = tuple(i for i, s in enumerate(steps) if s.error is not None)
        return Trace(condition.source, None, steps, failed, steps[failed[0]].error)
    return Trace(condition.source, value, steps, tuple(_deciding(plan.root, steps)))


# --- the plan: the condition's and/or/not structure over its steps -------------------


@dataclass(frozen=True, slots=True)
class _Leaf:
    index: int


@dataclass(frozen=True, slots=True)
class _Const:
    value: bool


@dataclass(frozen=True, slots=True)
class _Not:
    part: _Node


@dataclass(frozen=True, slots=True)
class _Join:
    all: bool  # `and` (a chained comparison too) when true, `or` otherwise
    parts: tuple[_Node, ...]


_Node = _Leaf | _Const | _Not | _Join


@dataclass(frozen=True, slots=True)
class _StepPlan:
    text: str
    op: str | None
    fn: Fn
    left: Fn
    right: Fn | tuple[Value, ...] | None
    names: tuple[tuple[str, Fn], ...]  # each variable a side reads, with its engine reading
    sides: tuple[str, ...]  # the sides' texts

    def run(self, values: Mapping[str, Value]) -> Step:
        value, error = _guarded(self.fn, values)
        left = _guarded(self.left, values)[0]
        if self.right is None or isinstance(self.right, tuple):
            right: Operand = self.right
        else:
            right = _guarded(self.right, values)[0]
        unknown: tuple[str, ...] = ()
        if value is None:
            unknown = tuple(n for n, read in self.names if _guarded(read, values)[0] is None)
            if not unknown:
                known = (left, right)[: len(self.sides)]
                unknown = tuple(t for t, v in zip(self.sides, known, strict=True) if v is None)
            unknown = unknown or (self.text,)
        return Step(self.text, self.op, left, right, value, unknown, error, self.sides)


@dataclass(frozen=True, slots=True)
class _Plan:
    root: _Node
    steps: tuple[_StepPlan, ...]


@lru_cache(maxsize=256)
def _plan(source: str) -> _Plan:
    """The plan of a source `compile_condition` accepted (so it parses and type-checks)."""
    tree = ast.parse(source, mode="eval")
    steps: list[_StepPlan] = []
    root = _Planner(source, steps).node(tree.body)
    return _Plan(root, tuple(steps))


class _Planner:
    def __init__(self, source: str, steps: list[_StepPlan]) -> None:
        self.source = source
        self.steps = steps

    def node(self, node: ast.expr) -> _Node:
        if isinstance(node, ast.BoolOp):
            return _Join(isinstance(node.op, ast.And), tuple(self.node(v) for v in node.values))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            return _Not(self.node(node.operand))
        if isinstance(node, ast.Constant) and isinstance(node.value, bool):
            return _Const(node.value)
        if isinstance(node, ast.Name) and node.id in CONSTANTS:
            return _Const(CONSTANTS[node.id])
        if isinstance(node, ast.Compare):
            lefts = [node.left, *node.comparators[:-1]]
            links = zip(lefts, node.ops, node.comparators, strict=True)
            leaves = [self._link(a, op, b, len(node.ops) == 1, node) for a, op, b in links]
            return leaves[0] if len(leaves) == 1 else _Join(True, tuple(leaves))
        # a true/false variable read on its own (nothing else compiles to true/false)
        fn = compile_part(node)
        text = self._text(node)
        return self._add(_StepPlan(text, None, fn, fn, None, self._names(node), (text,)))

    def _link(
        self, left: ast.expr, op: ast.cmpop, right: ast.expr, alone: bool, whole: ast.Compare
    ) -> _Leaf:
        symbol = _OPS[type(op)]
        link = ast.Compare(left=left, ops=[op], comparators=[right])
        right_fn: Fn | tuple[Value, ...]
        if isinstance(right, ast.List | ast.Tuple):
            right_fn = tuple(compile_part(item)({}) for item in right.elts)
        else:
            right_fn = compile_part(right)
        sides = (self._text(left), self._text(right))
        text = self._text(whole) if alone else f"{sides[0]} {symbol} {sides[1]}"
        names = self._names(left) + self._names(right)
        return self._add(
            _StepPlan(text, symbol, compile_part(link), compile_part(left), right_fn, names, sides)
        )

    def _add(self, step: _StepPlan) -> _Leaf:
        self.steps.append(step)
        return _Leaf(len(self.steps) - 1)

    def _text(self, node: ast.expr) -> str:
        return " ".join((ast.get_source_segment(self.source, node) or ast.unparse(node)).split())

    def _names(self, node: ast.expr) -> tuple[tuple[str, Fn], ...]:
        seen: dict[str, Fn] = {}
        for sub in ast.walk(node):
            if isinstance(sub, ast.Name) and sub.id in VARIABLE_TYPES and sub.id not in seen:
                seen[sub.id] = compile_part(sub)
        return tuple(seen.items())


# --- combining the steps as the engine does -------------------------------------------


def _guarded(fn: Fn, values: Mapping[str, Value]) -> tuple[Value, str | None]:
    try:
        return fn(values), None
    except Exception as exc:  # a part that raises is unknown, as the engine's `_guarded`
        return None, type(exc).__name__


def _value(node: _Node, steps: Sequence[Step]) -> tuple[Value, bool]:
    """(value, raised): the engine's evaluation order, so a part that raises after an
    earlier part decided an `and`/`or` is never reached, as in `kleene_and`/`kleene_or`."""
    if isinstance(node, _Leaf):
        step = steps[node.index]
        return step.value, step.error is not None
    if isinstance(node, _Const):
        return node.value, False
    if isinstance(node, _Not):
        inner, raised = _value(node.part, steps)
        return (None if inner is None else not inner), raised
    decided = not node.all  # `and` stops at False, `or` at True
    unknown = False
    for part in node.parts:
        value, raised = _value(part, steps)
        if raised:
            return None, True
        if value is decided:
            return decided, False
        if value is None:
            unknown = True
    return (None if unknown else not decided), False


def _deciding(node: _Node, steps: Sequence[Step]) -> list[int]:
    """The steps behind `node`'s value: of an `and`/`or`, the parts that have its value (the
    false parts of a false `and`, the unknown parts of an unknown one, ...)."""
    if isinstance(node, _Leaf):
        return [node.index]
    if isinstance(node, _Const):
        return []
    if isinstance(node, _Not):
        return _deciding(node.part, steps)
    value = _value(node, steps)[0]
    out: list[int] = []
    for part in node.parts:
        if _value(part, steps)[0] is value:
            out.extend(i for i in _deciding(part, steps) if i not in out)
    return out
