"""Load-time checks of a message template: it parses, names only known variables, filters
and tests, and breaks no bound that can be decided before it runs. Every mistake is a
TemplateProblem at a line of the template, never an exception of Jinja's own.

Decidable here: a constant expression (`'x' * 10**9`, `[1]*10**7`) is evaluated in the
bounded sandbox; a constant size argument of a filter or method (`price|pct(10**8)`,
`symbol.center(10**9)`) is checked; loops nested over constant lists are counted.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from typing import Any, Final, TypeGuard

from jinja2 import Template, meta, nodes
from jinja2.exceptions import TemplateError, TemplateSyntaxError
from jinja2.visitor import NodeTransformer

from service.market import VARIABLES
from service.rules.filters import FILTER_CHECKS, METHOD_CHECKS, UNKNOWN
from service.rules.sandbox import (
    MAX_STEPS,
    BoundedEnvironment,
    TemplateLimitError,
    check_brace_format,
    check_percent_format,
    run_bounded,
)

EXTRA_NAMES: Final = frozenset({"rule", "symbol", "now"})
#: Longest message template, in characters.
MAX_SOURCE: Final = 20_000
#: Jinja's globals, removed from the sandbox (README: any name that is not a variable is an
#: error at load time); named in the error so a user who knows Jinja sees why.
JINJA_GLOBALS: Final = frozenset({"range", "dict", "lipsum", "cycler", "joiner", "namespace"})
_MAX_EVALUATIONS: Final = 100
_LITERALS: Final = (
    nodes.Const,
    nodes.TemplateData,
    nodes.List,
    nodes.Tuple,
    nodes.Dict,
    nodes.Pair,
)
_CONSTANT_KINDS: Final = (
    *_LITERALS,
    nodes.BinExpr,
    nodes.UnaryExpr,
    nodes.Concat,
    nodes.Compare,
    nodes.Operand,
    nodes.CondExpr,
    nodes.Getattr,
    nodes.Getitem,
    nodes.Slice,
    nodes.Filter,
    nodes.Test,
    nodes.Call,
    nodes.Keyword,
)
_NO_LOADER: Final[Mapping[type[nodes.Node], str]] = {
    nodes.Extends: "extends",
    nodes.Include: "include",
    nodes.Import: "import",
    nodes.FromImport: "from ... import",
}


class TemplateProblem(Exception):
    """A mistake in a template at a 1-based line of its text."""

    def __init__(self, message: str, line: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.line = line


def checked_tree(env: BoundedEnvironment, source: str) -> nodes.Template:
    """Parse and check `source`, or raise TemplateProblem."""
    if len(source) > MAX_SOURCE:
        raise TemplateProblem(f"the message is longer than {MAX_SOURCE:,} characters")
    with _as_problem():
        tree = env.parse(source)
    with _as_problem():
        _Checker(env).check(tree)
        unknown = sorted(meta.find_undeclared_variables(tree) - VARIABLES - EXTRA_NAMES)
    if unknown:
        name = unknown[0]
        if name in JINJA_GLOBALS:
            suffix = f" (Jinja's {', '.join(sorted(JINJA_GLOBALS))} are not available here)"
        else:
            hint = difflib.get_close_matches(name, sorted(VARIABLES | EXTRA_NAMES), n=1)
            suffix = f" (did you mean {hint[0]!r}?)" if hint else ""
        raise TemplateProblem(f"unknown name {name!r} in message{suffix}", _line_of(tree, name))
    return tree


def compile_bounded(env: BoundedEnvironment, tree: nodes.Template) -> Template:
    """Compile a checked tree with the sandbox's counters wired into its loops and output."""
    with _as_problem():
        tree = _Bounds().visit(tree)
        tree.set_environment(env)
        code = env.compile(tree)
        return env.template_class.from_code(env, code, env.make_globals(None), None)
    raise AssertionError("unreachable")  # pragma: no cover (_as_problem always raises)


@contextmanager
def _as_problem() -> Iterator[None]:
    """Turn whatever parsing or compiling raises into a TemplateProblem."""
    try:
        yield
    except TemplateProblem:
        raise
    except Exception as exc:
        raise _problem_of(exc) from None


def _problem_of(exc: Exception) -> TemplateProblem:
    if isinstance(exc, TemplateSyntaxError):  # TemplateAssertionError too
        return TemplateProblem(f"template syntax error: {exc.message}", exc.lineno or 1)
    if isinstance(exc, TemplateLimitError):
        return TemplateProblem(f"the message breaks a limit: {exc}")
    if isinstance(exc, RecursionError | MemoryError):
        return TemplateProblem("the message is nested too deeply")
    if isinstance(exc, SyntaxError):
        return TemplateProblem(f"the message is too complex to compile: {exc.msg}")
    if isinstance(exc, ValueError) and "digits" in str(exc):
        return TemplateProblem("a number in the message has too many digits")
    if isinstance(exc, TemplateError):
        return TemplateProblem(f"template error: {exc.message or type(exc).__name__}")
    return TemplateProblem(f"the message cannot be compiled ({type(exc).__name__})")


def _line_of(parsed: nodes.Template, name: str) -> int:
    for node in parsed.find_all(nodes.Name):
        if node.name == name:
            return int(node.lineno)
    return 1


def _problem(node: nodes.Node, message: str) -> TemplateProblem:
    return TemplateProblem(message, int(getattr(node, "lineno", 1) or 1))


class _NotConstant(Exception):
    pass


class _Checker:
    def __init__(self, env: BoundedEnvironment) -> None:
        self.env = env
        self.constant: dict[int, bool] = {}
        self.evaluations = 0

    def check(self, tree: nodes.Template) -> None:
        for node in _walk(tree):
            if isinstance(node, nodes.Filter) and node.name not in self.env.filters:
                raise _problem(node, _unknown("filter", node.name, self.env.filters))
            if isinstance(node, nodes.Test) and node.name not in self.env.tests:
                raise _problem(node, _unknown("test", node.name, self.env.tests))
            if type(node) in _NO_LOADER:
                tag = _NO_LOADER[type(node)]
                raise _problem(node, f"{{% {tag} %}} is not available in a message")
        self._mark_constants(tree)
        self.visit(tree, 1)

    def _mark_constants(self, node: nodes.Node) -> bool:
        children = [self._mark_constants(child) for child in node.iter_child_nodes()]
        constant = isinstance(node, _CONSTANT_KINDS) and all(children)
        if isinstance(node, nodes.Filter) and node.node is None:  # {% filter %} block
            constant = False
        self.constant[id(node)] = constant
        return constant

    def visit(self, node: nodes.Node, loops: int) -> None:
        if self.constant[id(node)] and not isinstance(node, _LITERALS):
            with suppress(_NotConstant):
                self.value(node)  # refuses what breaks a bound; the value is not needed here
            return
        self.arguments(node)
        if isinstance(node, nodes.For):
            self.visit(node.iter, loops)
            inner = loops * self.length(node.iter)
            if inner > MAX_STEPS:
                raise _problem(node, f"the loops run {inner:,} times, more than {MAX_STEPS:,}")
            for child in (*node.body, *node.else_, *([node.test] if node.test else [])):
                self.visit(child, inner)
            return
        for child in node.iter_child_nodes():
            self.visit(child, loops)

    def length(self, node: nodes.Node) -> int:
        if not self.constant[id(node)]:
            return 1  # unknown until it runs: the sandbox counts it then
        try:
            return max(len(self.value(node)), 1)
        except (_NotConstant, TypeError):
            return 1

    def value(self, node: nodes.Node) -> Any:
        """The value of a constant expression, evaluated in the bounded sandbox."""
        if isinstance(node, nodes.Const):
            return node.value
        if not self.constant[id(node)] or self.evaluations >= _MAX_EVALUATIONS:
            raise _NotConstant
        self.evaluations += 1
        body = nodes.Assign(nodes.Name("value", "store"), _clone(node), lineno=1)
        template = compile_bounded(self.env, nodes.Template([body], lineno=1))
        try:
            return run_bounded(lambda: template.make_module({}).value)  # type: ignore[attr-defined]
        except TemplateLimitError as exc:
            raise _problem(node, f"the message breaks a limit: {exc}") from None
        except Exception:  # fails at render time instead, where the rule falls back
            raise _NotConstant from None

    def arguments(self, node: nodes.Node) -> None:
        """Constant size arguments of a filter or method, and constant format strings."""
        try:
            if isinstance(node, nodes.Filter) and node.name in FILTER_CHECKS:
                subject = UNKNOWN
                if node.node is not None and self.constant[id(node.node)]:
                    subject = self.value(node.node)
                self.run(node, FILTER_CHECKS[node.name], subject, node.args, node.kwargs)
            elif isinstance(node, nodes.Call) and isinstance(node.node, nodes.Getattr):
                method, receiver = node.node.attr, node.node.node
                if method in METHOD_CHECKS:
                    self.run(node, METHOD_CHECKS[method], UNKNOWN, node.args, node.kwargs)
                elif method in ("format", "format_map") and _is_text(receiver):
                    check_brace_format(receiver.value)
            elif isinstance(node, nodes.Mod) and _is_text(node.left):
                check_percent_format(node.left.value)
        except TemplateLimitError as exc:
            raise _problem(node, f"the message breaks a limit: {exc}") from None
        except (_NotConstant, ValueError, LookupError):  # malformed: the render decides
            pass

    def run(self, node: nodes.Node, fn: Any, subject: Any, args: Any, kwargs: Any) -> None:
        try:
            values = [self.value(arg) for arg in args]
            named = {kw.key: self.value(kw.value) for kw in kwargs}
        except _NotConstant:
            return
        with suppress(TypeError):  # wrong arguments: the render reports them
            fn(subject, *values, **named)


def _is_text(node: nodes.Node) -> TypeGuard[nodes.Const]:
    return isinstance(node, nodes.Const) and isinstance(node.value, str)


def _clone(node: Any) -> Any:
    """A copy of a syntax tree to compile on its own (compiling rewrites it in place);
    not copy.deepcopy, which would copy the environment each node refers to."""
    if isinstance(node, list):
        return [_clone(item) for item in node]
    if not isinstance(node, nodes.Node):
        return node
    copied = object.__new__(type(node))
    for name in node.fields:
        setattr(copied, name, _clone(getattr(node, name, None)))
    for name in node.attributes:
        setattr(copied, name, getattr(node, name, None))
    return copied


def _walk(node: nodes.Node) -> Iterator[nodes.Node]:
    stack = [node]
    while stack:
        item = stack.pop()
        yield item
        stack.extend(item.iter_child_nodes())


def _unknown(kind: str, name: str, known: Any) -> str:
    hint = difflib.get_close_matches(name, sorted(known), n=1)
    suffix = f" (did you mean {hint[0]!r}?)" if hint else ""
    return f"unknown {kind} {name!r} in message{suffix}"


def _call(name: str, args: list[nodes.Node], lineno: int) -> nodes.Call:
    func = nodes.EnvironmentAttribute(name, lineno=lineno)
    return nodes.Call(func, args, [], None, None, lineno=lineno)


class _Bounds(NodeTransformer):
    """Route loops, `~` and every output through the sandbox's counters."""

    def visit_For(self, node: nodes.For) -> nodes.Node:
        self.generic_visit(node)  # edits `node` in place
        node.iter = _call("bounded_iter", [node.iter], node.lineno)
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        self.generic_visit(node)
        return _call("bounded_concat", list(node.nodes), node.lineno)

    def visit_Output(self, node: nodes.Output) -> nodes.Node:
        self.generic_visit(node)
        node.nodes = [
            _call(
                "counted_output",
                [nodes.Const(c.data, lineno=c.lineno) if isinstance(c, nodes.TemplateData) else c],
                c.lineno,
            )
            for c in node.nodes
        ]
        return node
