"""The `when` / `clear_when` language: parsed once by Python's `ast`, checked against a
whitelist of node types, names and functions, type-checked, and compiled into a closure.

Evaluation is three-valued: a variable that is unknown (None) makes every comparison and
every arithmetic result it touches unknown; `and`/`or`/`not` follow Kleene's logic
(`false and unknown` is false, `true or unknown` is true). A rule fires only on True.

Bounded: a condition longer than MAX_SOURCE characters, nested deeper than MAX_DEPTH, or
holding a number no float can hold is refused at compile time with its column, so
evaluation never recurses deeply; arithmetic that overflows, divides by zero or gives an
infinite or NaN result is unknown, and so is a variable whose value is not finite.
"""

from __future__ import annotations

import ast
import difflib
import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any, Final

from service.market import VARIABLES, Value
from service.rules.codegen import generated
from service.rules.evaluation import (
    Fn,
    Vars,
    all_known,
    arithmetic,
    compare_variable,
    comparison,
    finite,
    kleene_and,
    kleene_or,
    variable_number,
)

NUM, BOOL, STR, DATE = "number", "true/false", "string", "date"

#: The type of every variable a rule may read.
VARIABLE_TYPES: Final[Mapping[str, str]] = {
    **dict.fromkeys(VARIABLES, NUM),
    "earnings_date": DATE,
    "earnings_time": STR,
    "fiscal_period": STR,
    "session": STR,
    "reported": BOOL,
    "consensus_frozen": BOOL,
    "data_suspect": BOOL,
    "figures_from": STR,
    "earnings_date_previous": DATE,
    "earnings_date_changed": BOOL,
    "earnings_time_previous": STR,
    "earnings_time_changed": BOOL,
}
#: Whether each variable is a number (read through `number`), for `codegen`.
_NUMERIC: Final[Mapping[str, bool]] = {n: kind == NUM for n, kind in VARIABLE_TYPES.items()}
CONSTANTS: Final[Mapping[str, bool]] = {"true": True, "false": False, "True": True, "False": False}
FUNCTIONS: Final = ("date", "abs", "min", "max")
#: The longest condition, in characters, and its deepest nesting of operators and calls.
MAX_SOURCE: Final = 10_000
MAX_DEPTH: Final = 100
_HUGE_NUMBER: Final = re.compile(r"\d{4000,}")
#: A text this short cannot nest MAX_DEPTH deep: each level of an expression spans at least
#: one character more than the one it holds (an operator, a paren, a name), and below the
#: last expression are at most two more nodes (a name's context, a comparison's operator).
_SHALLOW: Final = MAX_DEPTH // 2

_COMPARE: Final[Mapping[type[ast.cmpop], Callable[[Any, Any], bool]]] = {
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
}
_ORDERED: Final = (ast.Lt, ast.LtE, ast.Gt, ast.GtE)
_ARITH: Final[Mapping[type[ast.operator], str]] = {
    ast.Add: "+",
    ast.Sub: "-",
    ast.Mult: "*",
    ast.Div: "/",
}


class ExprError(Exception):
    """A mistake in an expression at a 1-based line and 0-based column of its text."""

    def __init__(self, message: str, line: int = 1, col: int = 0) -> None:
        super().__init__(message)
        self.message = message
        self.line = line
        self.col = col


@dataclass(frozen=True, slots=True)
class Compiled:
    """A compiled condition: call it with the variables of one symbol."""

    source: str
    fn: Fn
    names: frozenset[str]
    #: The constants `hours_to_earnings` is compared with (`hours_to_earnings <= 24`: 24):
    #: its result can change only when the clock crosses one of them (or by the day).
    #: None: a variable of the clock is read some other way (`session`, arithmetic on
    #: the hours, a comparison with another variable): it may change at any moment.
    clock: tuple[float, ...] | None = ()

    def __call__(self, values: Vars) -> Value:
        return self.fn(values)


#: Templates of conditions compiled so far (see `compile_condition`).
Templates = dict[str, tuple["Staged", frozenset[str]]]
#: A plain decimal number of at most 15 digits each side of its point, not part of a name,
#: of another number (`1e5`, `1_000`, `0x1f`, `00.5`) or of an attribute.
_LITERAL: Final = re.compile(r"(?<![\w.])(?:[1-9][0-9]{0,14}|0)(?:\.[0-9]{1,15})?(?![\w.])")
_LITERAL_SPLIT: Final = re.compile(f"({_LITERAL.pattern})")


def compile_condition(source: str, templates: Templates | None = None) -> Compiled:
    """Compile a `when`/`clear_when` text, or raise ExprError at the first mistake.

    With `templates` (one dict for one rule file), a text that differs from one compiled
    before only in its plain numbers (`price > 5` and `price > 7.5`, once neither holds a
    quote, a `#` or a variable of the clock) gets its closure from that one's staged tree,
    without being parsed and checked again: the very closure a compile of it builds."""
    text = source.strip()
    if not text:
        raise ExprError("the condition is empty")
    if len(text) > MAX_SOURCE:
        raise ExprError(f"the condition is longer than {MAX_SOURCE:,} characters")
    key: str | None = None
    literals: list[re.Match[str]] = []
    if templates is not None and '"' not in text and "'" not in text and "#" not in text:
        pieces = _LITERAL_SPLIT.split(text)  # text, number, text, number, ..., text
        key = "#".join(pieces[::2])
        known = templates.get(key)
        if known is not None:
            staged, names = known
            consts = tuple(float(n) if "." in n else int(n) for n in pieces[1::2])
            return Compiled(source=text, fn=staged.get(consts), names=names)
        literals = list(_LITERAL.finditer(text))
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError as exc:
        line, col = exc.lineno or 1, (exc.offset or 1) - 1
        digits = _HUGE_NUMBER.search(text)
        if digits and "integer string conversion" in str(exc.msg):
            line = text.count("\n", 0, digits.start()) + 1
            col = digits.start() - (text.rfind("\n", 0, digits.start()) + 1)
        raise ExprError(_syntax_message(exc, text), line, col) from None
    except (RecursionError, MemoryError):  # Python's own parser gives up on deep nesting
        raise ExprError(f"the condition is nested more than {MAX_DEPTH} levels deep") from None
    except ValueError:  # a NUL character
        raise ExprError("the condition holds a character that is not allowed") from None
    if len(text) > _SHALLOW:
        _check_depth(tree.body)
    params = _params(tree.body, text, literals) if key is not None else None
    compiler = _Compiler(params)
    staged, kind = compiler.node(tree.body)
    if kind != BOOL:
        raise _at(tree.body, f"a condition must be true or false, but this is a {kind}")
    names = frozenset(compiler.names)
    clock = _clock_thresholds(tree.body) if names & _CLOCK else ()
    factory = generated(tree.body, _NUMERIC, CONSTANTS, params)
    if factory is not None:  # one function in place of the closure tree: the same values
        staged = Staged(make=factory)
    consts = tuple(_literal(m.group()) for m in literals)
    if key is not None and params is not None and templates is not None and not names & _CLOCK:
        templates[key] = (staged, names)
    return Compiled(source=text, fn=staged.get(consts), names=names, clock=clock)


def _literal(text: str) -> float | int:
    """The value Python gives the number `text` (a `_LITERAL` match)."""
    return float(text) if "." in text else int(text)


def _params(
    root: ast.expr, text: str, literals: list[re.Match[str]]
) -> dict[tuple[int, int], int] | None:
    """The place of each numeric constant of the tree that is one of `literals` (by line
    and column), to its index among them; None unless every one of them is such a
    constant of the value it reads as (then the text is no template)."""
    if not text.isascii():  # the tree's columns count UTF-8 bytes
        return None
    constants = {
        (node.lineno, node.col_offset): node.value
        for node in ast.walk(root)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, int | float)
        and not isinstance(node.value, bool)
    }
    params: dict[tuple[int, int], int] = {}
    for index, match in enumerate(literals):
        start = match.start()
        line = text.count("\n", 0, start) + 1
        place = (line, start - (text.rfind("\n", 0, start) + 1))
        value = constants.get(place)
        literal = _literal(match.group())
        if value is None or value != literal or type(value) is not type(literal):
            return None
        params[place] = index
    return params


#: Variables that move with the clock between data changes: the hours to the report
#: continuously, the days to it at midnight, the session at its boundaries.
_CLOCK: Final = frozenset({"hours_to_earnings", "days_to_earnings", "session"})


def _clock_thresholds(root: ast.expr) -> tuple[float, ...] | None:
    """What `Compiled.clock` says of a condition that compiled: the constants each
    `hours_to_earnings` is compared with directly, or None when a clock variable is read
    in any other way. `days_to_earnings` changes only at midnight, whatever is done
    with it; `session` at boundaries not computed here."""
    thresholds: list[float] = []
    compared: set[int] = set()  # ids of the Name nodes read as `hours <op> constant`
    for node in ast.walk(root):
        if not isinstance(node, ast.Compare):
            continue
        operands = [node.left, *node.comparators]
        for op, left, right in zip(node.ops, operands, operands[1:], strict=False):
            if isinstance(op, ast.In | ast.NotIn):
                continue
            for name, other in ((left, right), (right, left)):
                if isinstance(name, ast.Name) and name.id == "hours_to_earnings":
                    constant = _number(other)
                    if constant is not None:
                        thresholds.append(constant)
                        compared.add(id(name))
    for node in ast.walk(root):
        if isinstance(node, ast.Name):
            if node.id == "session":
                return None
            if node.id == "hours_to_earnings" and id(node) not in compared:
                return None
    return tuple(sorted(set(thresholds)))


def _number(node: ast.expr) -> float | None:
    """The value of a numeric constant (`24`, `-1.5`), or None."""
    sign = 1.0
    while isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        sign = -sign if isinstance(node.op, ast.USub) else sign
        node = node.operand
    value = node.value if isinstance(node, ast.Constant) else None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return sign * float(value)
    return None


def compile_part(node: ast.expr) -> Fn:
    """The engine's own closure of one part (an operand or a comparison) of a condition
    that `compile_condition` accepted. `rules/trace.py` computes every value it shows with
    it, so a trace cannot read a value differently from the engine."""
    staged, _kind = _Compiler().node(node)
    return staged.get(())


def _check_depth(root: ast.expr) -> None:
    """Refuse nesting deeper than MAX_DEPTH (walked without recursion)."""
    stack: list[tuple[ast.AST, int]] = [(root, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise _at(node, f"the condition is nested more than {MAX_DEPTH} levels deep")
        stack.extend((child, depth + 1) for child in ast.iter_child_nodes(node))


def _syntax_message(exc: SyntaxError, text: str) -> str:
    offset = (exc.offset or 1) - 1
    if "integer string conversion" in str(exc.msg):
        return "the number is too large (a float holds about 308 digits)"
    if "too many nested parentheses" in str(exc.msg):
        return f"the condition is nested more than {MAX_DEPTH} levels deep"
    if "=" in text and "==" not in text and not any(op in text for op in ("<=", ">=", "!=")):
        return "invalid syntax: compare with ==, not ="
    if "&&" in text or "||" in text:
        return "invalid syntax: write `and` / `or`, not && / ||"
    near = text[offset : offset + 10].strip()
    return f"invalid syntax near {near!r}" if near else "invalid syntax at the end"


def _at(node: ast.AST, message: str) -> ExprError:
    return ExprError(message, getattr(node, "lineno", 1), getattr(node, "col_offset", 0))


#: The numeric constants of a condition, in the order they are written (see `Staged`).
Consts = tuple[Value, ...]


class Staged:
    """A compiled part of a condition whose numeric constants may be left open: `get(k)`
    gives its closure with the constants `k` (`fixed`, built once, when it has none).
    Conditions that differ only in their numbers (`price > 5`, `price > 7.5`) share one
    staged tree, and each gets its closure without being parsed or checked again."""

    __slots__ = ("fixed", "make")

    def __init__(self, fixed: Fn | None = None, make: Callable[[Consts], Fn] | None = None):
        self.fixed = fixed
        self.make = make

    def get(self, k: Consts) -> Fn:
        if self.fixed is not None:
            return self.fixed
        assert self.make is not None
        return self.make(k)


def _combine(build: Callable[..., Fn], *parts: Staged) -> Staged:
    """The part `build(*closures of parts)`: fixed when every one of `parts` is."""
    if all(p.fixed is not None for p in parts):
        return Staged(fixed=build(*(p.fixed for p in parts)))
    return Staged(make=lambda k: build(*(p.get(k) for p in parts)))


def _combine_list(build: Callable[[list[Fn]], Fn], parts: list[Staged]) -> Staged:
    """`_combine` of a builder that takes the closures as one list."""
    if all(p.fixed is not None for p in parts):
        return Staged(fixed=build([p.fixed for p in parts]))  # type: ignore[misc]
    return Staged(make=lambda k: build([p.get(k) for p in parts]))


def _constant(value: Value) -> Fn:
    return lambda _v: value


def _variable(name: str) -> Fn:
    return lambda v: v.get(name)


def _open_comparison(
    compare: Callable[[Any, Any], bool], name: str, index: int, negated: bool = False
) -> Callable[[Consts], Fn]:
    """`compare_variable` of the constant at `index` of the constants to come (negated:
    of its negative)."""
    if negated:
        return lambda k: compare_variable(compare, name, -k[index])  # type: ignore[operator]
    return lambda k: compare_variable(compare, name, k[index])


def _not(inner: Fn) -> Fn:
    return lambda v: None if (x := inner(v)) is None else not x


def _negative(inner: Fn) -> Fn:
    return lambda v: None if (x := inner(v)) is None else -x  # type: ignore[operator]


def _absolute(inner: Fn) -> Fn:
    return lambda v: None if (x := inner(v)) is None else abs(x)  # type: ignore[arg-type]


def _member(left: Fn, members: tuple[Value, ...], negate: bool) -> Fn:
    return lambda v: None if (x := left(v)) is None else ((x in members) != negate)


class _Compiler:
    """Type-checks a condition's tree and stages its closures. `params` maps the place
    (line, column) of a numeric constant to its index in the constants `Staged.get` takes:
    those constants are left open (the others are built in)."""

    def __init__(self, params: Mapping[tuple[int, int], int] | None = None) -> None:
        self.names: set[str] = set()
        self.params = params or {}

    def node(self, node: ast.expr) -> tuple[Staged, str]:
        method = getattr(self, "_" + type(node).__name__, None)
        if method is None:
            raise _at(node, _refusal(node))
        result: tuple[Staged, str] = method(node)
        return result

    def param(self, node: ast.expr) -> int | None:
        """The index of the constant `node` when it is left open."""
        if not self.params or not isinstance(node, ast.Constant):
            return None
        return self.params.get((node.lineno, node.col_offset))

    # --- leaves ----------------------------------------------------------------------
    def _Constant(self, node: ast.Constant) -> tuple[Staged, str]:
        value = node.value
        if isinstance(value, bool):
            kind = BOOL
        elif isinstance(value, int | float):
            kind = NUM
            if not finite(value):
                raise _at(node, "the number is too large (a float holds about 308 digits)")
        elif isinstance(value, str):
            kind = STR
        else:
            raise _at(node, f"{value!r} is not allowed here: use numbers, strings, true/false")
        index = self.param(node)
        if index is not None:
            return Staged(make=lambda k: _constant(k[index])), kind
        return Staged(fixed=_constant(value)), kind

    def _Name(self, node: ast.Name) -> tuple[Staged, str]:
        name = node.id
        if name in CONSTANTS:
            return Staged(fixed=_constant(CONSTANTS[name])), BOOL
        if name not in VARIABLE_TYPES:
            if name in FUNCTIONS:
                raise _at(node, f"{name} is a function: call it, like {name}(...)")
            hint = difflib.get_close_matches(name, list(VARIABLE_TYPES), n=1)
            suffix = f" (did you mean {hint[0]!r}?)" if hint else ""
            raise _at(node, f"unknown name {name!r}{suffix}")
        self.names.add(name)
        if VARIABLE_TYPES[name] == NUM:
            return Staged(fixed=variable_number(name)), NUM
        return Staged(fixed=_variable(name)), VARIABLE_TYPES[name]

    # --- logic -----------------------------------------------------------------------
    def _BoolOp(self, node: ast.BoolOp) -> tuple[Staged, str]:
        parts = [self._condition(value, "and/or") for value in node.values]
        if isinstance(node.op, ast.And):
            return _combine_list(kleene_and, parts), BOOL
        return _combine_list(kleene_or, parts), BOOL

    def _UnaryOp(self, node: ast.UnaryOp) -> tuple[Staged, str]:
        if isinstance(node.op, ast.Not):
            inner = self._condition(node.operand, "not")
            return _combine(_not, inner), BOOL
        if isinstance(node.op, ast.USub | ast.UAdd):
            staged, kind = self.node(node.operand)
            if kind != NUM:
                raise _at(node, f"a sign applies to numbers, not to a {kind}")
            if isinstance(node.op, ast.UAdd):
                return staged, NUM
            return _combine(_negative, staged), NUM
        raise _at(node, _refusal(node))

    def _condition(self, node: ast.expr, where: str) -> Staged:
        staged, kind = self.node(node)
        if kind != BOOL:
            raise _at(node, f"{where} needs conditions on both sides, but this is a {kind}")
        return staged

    # --- comparisons -----------------------------------------------------------------
    def _Compare(self, node: ast.Compare) -> tuple[Staged, str]:
        left_fn, left_kind = self.node(node.left)
        left_node: ast.expr = node.left
        if len(node.ops) > 1 and any(isinstance(op, ast.In | ast.NotIn) for op in node.ops):
            raise _at(node, "`in` cannot be chained with other comparisons: join them with `and`")
        links: list[Staged] = []
        for op, right in zip(node.ops, node.comparators, strict=True):
            if isinstance(op, ast.In | ast.NotIn):
                links.append(self._membership(left_fn, left_kind, op, right))
                continue
            right_fn, right_kind = self.node(right)
            compare = _COMPARE.get(type(op))
            if compare is None:
                raise _at(node, _refusal(node))
            if left_kind != right_kind:
                raise _at(right, f"cannot compare a {left_kind} with a {right_kind}")
            if left_kind in (BOOL, STR) and isinstance(op, _ORDERED):
                raise _at(right, f"a {left_kind} can only be compared with == or !=")
            # A number, or a negative one (`change_pct < -5`: its closure is the one
            # `comparison` of the variable and the negated constant gives, in one call).
            negated = isinstance(right, ast.UnaryOp) and isinstance(right.op, ast.USub)
            operand = right.operand if isinstance(right, ast.UnaryOp) and negated else right
            literal = operand if isinstance(operand, ast.Constant) else None
            constant = _number(literal) if literal is not None else None
            if (
                isinstance(left_node, ast.Name)
                and left_kind == NUM
                and literal is not None
                and constant is not None
            ):
                name, index = left_node.id, self.param(literal)
                if index is None:
                    raw: float = literal.value  # type: ignore[assignment]  # a number
                    value = -raw if negated else raw
                    links.append(Staged(fixed=compare_variable(compare, name, value)))
                else:
                    links.append(Staged(make=_open_comparison(compare, name, index, negated)))
            else:
                links.append(
                    _combine(lambda a, b, c=compare: comparison(c, a, b), left_fn, right_fn)
                )
            left_node = right
            left_fn, left_kind = right_fn, right_kind
        if len(links) == 1:
            return links[0], BOOL
        return _combine_list(kleene_and, links), BOOL

    def _membership(self, left: Staged, kind: str, op: ast.cmpop, right: ast.expr) -> Staged:
        if not isinstance(right, ast.List | ast.Tuple):
            raise _at(right, '`in` needs a list of values, like ["bmo", "amc"]')
        items: list[Staged] = []
        for item in right.elts:
            staged, item_kind = self.node(item)
            if not isinstance(item, ast.Constant | ast.Call) or item_kind != kind:
                raise _at(item, f"the list must hold {kind} values")
            items.append(staged)
        negate = isinstance(op, ast.NotIn)

        def build(left_fn: Fn, *choices: Fn) -> Fn:
            return _member(left_fn, tuple(fn({}) for fn in choices), negate)

        return _combine(build, left, *items)

    # --- arithmetic and calls --------------------------------------------------------
    def _BinOp(self, node: ast.BinOp) -> tuple[Staged, str]:
        symbol = _ARITH.get(type(node.op))
        if symbol is None:
            raise _at(node, f"operator not allowed here; use {', '.join(_ARITH.values())}")
        left, left_kind = self.node(node.left)
        right, right_kind = self.node(node.right)
        if left_kind != NUM or right_kind != NUM:
            bad = node.left if left_kind != NUM else node.right
            kind = left_kind if bad is node.left else right_kind
            raise _at(bad, f"arithmetic needs numbers, but this is a {kind}")
        return _combine(lambda a, b: arithmetic(symbol, a, b), left, right), NUM

    def _Call(self, node: ast.Call) -> tuple[Staged, str]:
        if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS:
            what = ast.unparse(node.func)
            raise _at(
                node, f"calling {what!r} is not allowed; the functions are {', '.join(FUNCTIONS)}"
            )
        if node.keywords:
            raise _at(node.keywords[0].value, "functions take no keyword arguments")
        name = node.func.id
        if name == "date":
            return self._date(node)
        args = [self.node(arg) for arg in node.args]
        for arg, (_fn, kind) in zip(node.args, args, strict=True):
            if kind != NUM:
                raise _at(arg, f"{name}() takes numbers, not a {kind}")
        fns = [fn for fn, _kind in args]
        if name == "abs":
            if len(fns) != 1:
                raise _at(node, "abs() takes exactly one number")
            return _combine(_absolute, fns[0]), NUM
        if len(fns) < 2:
            raise _at(node, f"{name}() takes two or more numbers")
        pick = min if name == "min" else max
        return _combine_list(lambda parts: all_known(pick, parts), fns), NUM

    def _date(self, node: ast.Call) -> tuple[Staged, str]:
        arg = node.args[0] if len(node.args) == 1 else None
        if arg is None or not isinstance(arg, ast.Constant) or not isinstance(arg.value, str):
            raise _at(node, 'date() takes one text like date("2026-02-03")')
        try:
            value = date.fromisoformat(arg.value)
        except ValueError:
            raise _at(arg, f"{arg.value!r} is not a date: use YYYY-MM-DD") from None
        return Staged(fixed=_constant(value)), DATE


def _refusal(node: ast.AST) -> str:
    names = {
        "Attribute": "attribute access (a.b) is not allowed",
        "Subscript": "indexing (a[b]) is not allowed",
        "Lambda": "lambda is not allowed",
        "ListComp": "comprehensions are not allowed",
        "SetComp": "comprehensions are not allowed",
        "DictComp": "comprehensions are not allowed",
        "GeneratorExp": "comprehensions are not allowed",
        "IfExp": "`x if c else y` is not allowed",
        "NamedExpr": "assignment (:=) is not allowed",
        "JoinedStr": "f-strings are not allowed",
        "Await": "await is not allowed",
        "Starred": "* is not allowed",
        "Dict": "dictionaries are not allowed",
        "Set": "sets are not allowed",
        "List": "a list is only allowed after `in`",
        "Tuple": "a tuple is only allowed after `in`",
    }
    kind = type(node).__name__
    return names.get(kind, f"{kind} is not allowed in a condition")
