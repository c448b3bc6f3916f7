"""A condition as one generated Python function: the closures of `expr` in one body.

The closure tree `expr` builds calls one closure per operand, comparison and `and`/`or`
(five to ten calls for `abs(change_pct) >= 7 or price > target_median`), and an
evaluation pass runs one such tree per rule and symbol. For a condition made only of the
parts below, `generated` writes the same evaluation as the statements of one function:
the same reads (`number` of a number variable, the value of any other), the same order,
the same short cuts and the same three-valued results, part for part, as
`service/rules/evaluation.py` gives them. Anything else (`in`, chained comparisons, deep
nesting) keeps its closures. It runs only on a tree `expr` has already checked and typed.

Its numbers are left open as `Staged` leaves them: the factory it returns takes the
constants of a template (`expr.compile_condition`) and gives the function for them, so
conditions that differ only in their numbers share one compiled code object.
"""

from __future__ import annotations

import ast
import math
from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Any, Final

from service.rules.evaluation import Fn, number

#: Node kinds of a condition the generated code covers, by the `expr` closure each stands
#: for: comparisons (`comparison`, `compare_variable`), `kleene_and`/`kleene_or`, `_not`,
#: `_negative`, `abs` (`_absolute`), `min`/`max` (`all_known`), `arithmetic`, constants,
#: `date("...")` and variables (`variable_number` for numbers, `_variable` otherwise).
_OPS: Final[Mapping[type[ast.AST], str]] = {
    ast.Lt: "<",
    ast.LtE: "<=",
    ast.Gt: ">",
    ast.GtE: ">=",
    ast.Eq: "==",
    ast.NotEq: "!=",
    ast.Add: "+",
    ast.Sub: "-",
    ast.Mult: "*",
    ast.Div: "/",
}
#: The deepest nesting of parts and the most nodes a generated function is written for
#: (its blocks nest about as deep as its parts; Python refuses 100 levels).
MAX_NESTING: Final = 12
MAX_NODES: Final = 200
MAX_INDENT: Final = 40

Factory = Callable[[tuple[Any, ...]], Fn]


class _Unsupported(Exception):
    """A part the generated code does not cover: the condition keeps its closures."""


def generated(
    root: ast.expr,
    numeric: Mapping[str, bool],
    constants: Mapping[str, Any],
    params: Mapping[tuple[int, int], int] | None,
) -> Factory | None:
    """The factory of `root`'s function (constants -> function), or None when a part of
    it is not covered. `numeric[name]`: whether variable `name` is a number (read through
    `number`); `constants`: the names of constants (`true`); `params`: the place (line,
    column) of each numeric constant left open, to its index in the factory's argument
    (other constants are written in)."""
    if sum(1 for _ in ast.walk(root)) > MAX_NODES:
        return None
    if (
        isinstance(root, ast.Compare)
        and len(root.ops) == 1
        and isinstance(root.left, ast.Name)
        and _is_number(root.comparators[0])
    ):
        return None  # `price > 5`: one closure already (`compare_variable`), as fast
    writer = _Writer(numeric, constants, params or {})
    try:
        result = writer.node(root, 1, 0)
    except _Unsupported:
        return None
    body = [f"    {line}" for line in writer.lines]
    opens = [f"  k{index} = k[{index}]" for index in sorted(writer.opened)]
    opens += [f"  m{index} = -k[{index}]" for index in sorted(writer.negated)]
    fixed = [f"  c{index} = c[{index}]" for index in range(len(writer.fixed))]
    source = "\n".join(
        [
            "def make(k, c):",
            *opens,
            *fixed,
            "  def condition(v):",
            *body,
            f"    return {result}",
            "  return condition",
        ]
    )
    make = _maker(source)
    constants_in = tuple(writer.fixed)
    return lambda k: make(k, constants_in)


@lru_cache(maxsize=1024)
def _maker(source: str) -> Callable[[tuple[Any, ...], tuple[Any, ...]], Fn]:
    """The `make(k, c)` function `source` defines. Its text holds no constant (they are
    `k` and `c`), so conditions of one shape share it: compiling is most of the cost of
    generating (300 us), and a rule file repeats few shapes."""
    namespace: dict[str, Any] = {"number": number, "isfinite": math.isfinite}
    exec(compile(source, "<condition>", "exec"), namespace)  # our own text
    # Taken out of its namespace, which it keeps as its globals: no reference cycle, so
    # one dropped from the cache is freed at once (even frozen by a reload's gc.freeze()).
    made: Callable[[tuple[Any, ...], tuple[Any, ...]], Fn] = namespace.pop("make")
    return made


class _Writer:
    """Writes the statements of one condition; each part's value ends in a local."""

    def __init__(
        self,
        numeric: Mapping[str, bool],
        constants: Mapping[str, Any],
        params: Mapping[tuple[int, int], int],
    ) -> None:
        self.numeric = numeric
        self.constants = constants
        self.params = params
        self.lines: list[str] = []
        self.fixed: list[Any] = []  # constants written in, as c0, c1, ...
        self.opened: set[int] = set()  # indexes of the open constants read, as k0, k1, ...
        self.negated: set[int] = set()  # ... and of those read negated, as m0, m1, ...
        self.known: set[str] = set()  # the names that hold a constant (never unknown)
        self.count = 0

    def temp(self) -> str:
        self.count += 1
        return f"t{self.count}"

    def emit(self, indent: int, line: str) -> None:
        if indent > MAX_INDENT:
            raise _Unsupported
        self.lines.append("  " * indent + line)

    def node(self, node: ast.expr, depth: int, indent: int) -> str:
        """Write `node`'s evaluation at `indent`; the name of the local holding its value
        (or a constant's name)."""
        if depth > MAX_NESTING:
            raise _Unsupported
        method = getattr(self, "_" + type(node).__name__, None)
        if method is None:
            raise _Unsupported
        name: str = method(node, depth, indent)
        return name

    # --- leaves: `_constant`, `_variable`, `variable_number` --------------------------
    def constant(self, value: Any) -> str:
        self.fixed.append(value)
        name = f"c{len(self.fixed) - 1}"
        self.known.add(name)
        return name

    def _Constant(self, node: ast.Constant, depth: int, indent: int, negate: bool = False) -> str:
        index = self.params.get((node.lineno, node.col_offset))
        if index is not None and isinstance(node.value, int | float):
            (self.negated if negate else self.opened).add(index)
            name = f"{'m' if negate else 'k'}{index}"
            self.known.add(name)
            return name
        value: Any = node.value
        return self.constant(-value if negate else value)

    def _Name(self, node: ast.Name, depth: int, indent: int) -> str:
        if node.id in self.constants:
            return self.constant(self.constants[node.id])
        if node.id not in self.numeric:
            raise _Unsupported
        t = self.temp()
        self.emit(indent, f"{t} = v.get({node.id!r})")
        if self.numeric[node.id]:  # variable_number: a finite float first, else number()
            self.emit(indent, f"if {t}.__class__ is float:")
            self.emit(indent + 1, f"if not isfinite({t}):")
            self.emit(indent + 2, f"{t} = None")
            self.emit(indent, f"elif {t} is not None:")
            self.emit(indent + 1, f"{t} = number({t})")
        return t

    def _Call(self, node: ast.Call, depth: int, indent: int) -> str:
        if not isinstance(node.func, ast.Name) or node.keywords:
            raise _Unsupported
        name = node.func.id
        if name == "date":  # its one text, checked by `expr`: a constant
            raise _Unsupported  # (rare; its closure stays)
        if name == "abs" and len(node.args) == 1:  # _absolute
            x = self.node(node.args[0], depth + 1, indent)
            t = self.temp()
            self.emit(indent, f"{t} = None if {x} is None else abs({x})")
            return t
        if name in ("min", "max") and len(node.args) >= 2:  # all_known: every one read
            parts = [self.node(arg, depth + 1, indent) for arg in node.args]
            t = self.temp()
            unknown = " or ".join(f"{p} is None" for p in parts)
            self.emit(indent, f"{t} = None if {unknown} else {name}([{', '.join(parts)}])")
            return t
        raise _Unsupported

    # --- operators: `_not`, `_negative`, `arithmetic`, `comparison` -----------------------
    def _UnaryOp(self, node: ast.UnaryOp, depth: int, indent: int) -> str:
        if isinstance(node.op, ast.UAdd):
            return self.node(node.operand, depth + 1, indent)
        operand = node.operand
        if (
            isinstance(node.op, ast.USub)
            and isinstance(operand, ast.Constant)
            and isinstance(operand.value, int | float)
            and not isinstance(operand.value, bool)
        ):
            return self._Constant(operand, depth, indent, negate=True)
        x = self.node(operand, depth + 1, indent)
        t = self.temp()
        if isinstance(node.op, ast.Not):
            self.emit(indent, f"{t} = None if {x} is None else not {x}")
        elif isinstance(node.op, ast.USub):
            self.emit(indent, f"{t} = None if {x} is None else -{x}")
        else:
            raise _Unsupported
        return t

    def _BinOp(self, node: ast.BinOp, depth: int, indent: int) -> str:
        op = _OPS.get(type(node.op))
        if op is None:
            raise _Unsupported
        a = self.node(node.left, depth + 1, indent)
        b = self.node(node.right, depth + 1, indent)
        t = self.temp()
        self.emit(indent, f"if {a} is None or {b} is None:")
        self.emit(indent + 1, f"{t} = None")
        self.emit(indent, "else:")
        self.emit(indent + 1, "try:")
        self.emit(indent + 2, f"{t} = {a} {op} {b}")
        self.emit(indent + 1, "except (OverflowError, ZeroDivisionError):")
        self.emit(indent + 2, f"{t} = None")
        self.emit(indent + 1, "else:")
        self.emit(indent + 2, f"{t} = number({t})")
        return t

    def _Compare(self, node: ast.Compare, depth: int, indent: int) -> str:
        if len(node.ops) != 1:  # chained: its closures stay
            raise _Unsupported
        op = _OPS.get(type(node.ops[0]))
        if op is None:  # `in`
            raise _Unsupported
        right = node.comparators[0]
        left = node.left
        if isinstance(left, ast.Name) and self.numeric.get(left.id) and _is_number(right):
            # compare_variable: `price > 5`, `change_pct < -5`
            b = self.node(right, depth + 1, indent)
            t = self.temp()
            self.emit(indent, f"{t} = v.get({left.id!r})")
            self.emit(indent, f"if {t} is not None:")
            self.emit(indent + 1, f"if {t}.__class__ is float:")
            self.emit(indent + 2, f"{t} = {t} {op} {b} if isfinite({t}) else None")
            self.emit(indent + 1, "else:")
            self.emit(indent + 2, f"{t} = number({t})")
            self.emit(indent + 2, f"if {t} is not None:")
            self.emit(indent + 3, f"{t} = {t} {op} {b}")
            return t
        a = self.node(left, depth + 1, indent)
        t = self.temp()
        if a in self.known:
            b = self.node(right, depth + 1, indent)
        else:
            self.emit(indent, f"if {a} is None:")  # the right side is not read then
            self.emit(indent + 1, f"{t} = None")
            self.emit(indent, "else:")
            indent += 1
            b = self.node(right, depth + 1, indent)
        if b in self.known:
            self.emit(indent, f"{t} = {a} {op} {b}")
        else:
            self.emit(indent, f"{t} = None if {b} is None else {a} {op} {b}")
        return t

    # --- logic: `kleene_and`, `kleene_or` ----------------------------------------------
    def _BoolOp(self, node: ast.BoolOp, depth: int, indent: int) -> str:
        stop = "False" if isinstance(node.op, ast.And) else "True"
        end = "True" if stop == "False" else "False"
        t = self.temp()
        if len(node.values) == 2:  # `both` / `either`
            x = self.node(node.values[0], depth + 1, indent)
            self.emit(indent, f"if {x} is {stop}:")
            self.emit(indent + 1, f"{t} = {stop}")
            self.emit(indent, "else:")
            y = self.node(node.values[1], depth + 1, indent + 1)
            self.emit(indent + 1, f"if {y} is {stop}:")
            self.emit(indent + 2, f"{t} = {stop}")
            self.emit(indent + 1, "else:")
            self.emit(indent + 2, f"{t} = None if {x} is None or {y} is None else {end}")
            return t
        unknown = self.temp()
        self.emit(indent, f"{unknown} = False")
        level = indent
        for part in node.values:
            x = self.node(part, depth + 1, level)
            self.emit(level, f"if {x} is {stop}:")
            self.emit(level + 1, f"{t} = {stop}")
            self.emit(level, "else:")
            level += 1
            self.emit(level, f"if {x} is None:")
            self.emit(level + 1, f"{unknown} = True")
        self.emit(level, f"{t} = None if {unknown} else {end}")
        return t


def _is_number(node: ast.expr) -> bool:
    """A numeric constant, or a negated one (`5`, `-5`): what `compare_variable` takes."""
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        node = node.operand
    return (
        isinstance(node, ast.Constant)
        and isinstance(node.value, int | float)
        and not isinstance(node.value, bool)
    )
