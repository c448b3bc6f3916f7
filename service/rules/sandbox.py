"""The bounded Jinja sandbox message templates run in: no value, loop or output a template
builds can grow past a fixed size, and a render that takes too many steps or too much CPU
time stops with TemplateLimitError.

Python cannot interrupt CPU-bound code from outside, so the bounds are enforced from inside:
every operator that allocates (`*`, `**`, `+`, `%`), every call, attribute access, loop
item and output chunk passes through this environment, which checks sizes *before* the
allocation and counts the work against the render's Budget. The checks also run when Jinja
folds constants while compiling, so loading a template is bounded the same way.
"""

from __future__ import annotations

import re
import string
import time
import types
from collections.abc import Callable, Iterable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Final

from jinja2 import Template
from jinja2.runtime import Context, LoopContext
from jinja2.sandbox import (
    ImmutableSandboxedEnvironment,
    SandboxedEscapeFormatter,
    SandboxedFormatter,
)
from markupsafe import Markup

#: The largest value a template may build: characters of a string, or items of a list,
#: tuple or dict counted deep (a list of 100 strings of 100 characters weighs 10,100).
MAX_SIZE: Final = 20_000
#: The largest integer, in bits (about 1,200 decimal digits).
MAX_INT_BITS: Final = 4096
#: Operations (calls, operators, attribute lookups, loop items, outputs) in one render.
MAX_STEPS: Final = 100_000
#: Characters written by one render, including those of macros and `{% set %}` blocks.
MAX_OUTPUT: Final = 100_000
#: CPU seconds one render may take.
MAX_SECONDS: Final = 0.5
#: Decimal places of `pct`, and widths of `%` / `{}` format specs.
MAX_PLACES: Final = 20


class TemplateLimitError(Exception):
    """A template went over one of the bounds above."""


@dataclass(slots=True)
class Budget:
    """The work one render (or one load-time evaluation) may still do."""

    steps: int = 0
    output: int = 0
    deadline: float = field(default_factory=lambda: time.thread_time() + MAX_SECONDS)

    def tick(self) -> None:
        self.steps += 1
        if self.steps > MAX_STEPS:
            raise TemplateLimitError(f"the template takes more than {MAX_STEPS:,} steps")
        # thread_time is CPU time: a busy machine does not make a quick template fail.
        if not self.steps & 63 and time.thread_time() > self.deadline:
            raise TemplateLimitError(f"the template takes more than {MAX_SECONDS:g} s")

    def write(self, size: int) -> None:
        self.output += size
        if self.output > MAX_OUTPUT:
            raise TemplateLimitError(f"the template writes more than {MAX_OUTPUT:,} characters")


_BUDGET: ContextVar[Budget | None] = ContextVar("earnwatch_template_budget", default=None)


def budget() -> Budget:
    """The budget of the render running in this context; outside one (Jinja folding
    constants while compiling, say) a fresh one, so each operation is still bounded."""
    current = _BUDGET.get()
    return Budget() if current is None else current


def run_bounded(fn: Callable[[], Any]) -> Any:
    """Call `fn` with a fresh Budget for everything the sandbox does inside it."""
    token = _BUDGET.set(Budget())
    try:
        return fn()
    finally:
        _BUDGET.reset(token)


# --- sizes ----------------------------------------------------------------------------
def weight(value: object, limit: int = MAX_SIZE) -> int:
    """The deep size of a value; stops counting once past `limit` (so it costs O(limit))."""
    total = 0
    stack = [value]
    while stack and total <= limit:
        item = stack.pop()
        if isinstance(item, str | bytes):
            total += len(item)
        elif isinstance(item, bool | float) or item is None:
            total += 1
        elif isinstance(item, int):
            total += item.bit_length() // 64 + 1
        elif isinstance(item, list | tuple | set | frozenset):
            total += len(item)
            if total <= limit:
                stack.extend(item)
        elif isinstance(item, dict):
            total += len(item)
            if total <= limit:
                stack.extend(item.keys())
                stack.extend(item.values())
        else:
            total += 1
    return total


def check(value: Any) -> Any:
    """`value`, or TemplateLimitError when it is larger than a template may build."""
    if isinstance(value, int) and value.bit_length() > MAX_INT_BITS:
        raise TemplateLimitError(f"a number would have more than {MAX_INT_BITS} bits")
    if weight(value) > MAX_SIZE:
        raise TemplateLimitError(f"a value would be larger than {MAX_SIZE:,} characters or items")
    return value


def limit(size: int, what: str = "a value") -> None:
    if size > MAX_SIZE:
        raise TemplateLimitError(
            f"{what} would be larger than {MAX_SIZE:,} characters or items ({size:,})"
        )


def counted_items(value: Iterable[Any]) -> Iterator[Any]:
    """Iterate, refusing once the items seen together weigh more than MAX_SIZE: a
    generator (`map`, `select`) cannot be sized before a filter materialises it."""
    total = 0
    for item in value:
        total += weight(item) + 1
        limit(total, "a sequence")
        yield item


# --- formats --------------------------------------------------------------------------
_PERCENT: Final = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?[hlL]?(.)", re.S)
_DIGITS: Final = re.compile(r"\d+")


def check_percent_format(fmt: str) -> None:
    """Refuse a `%` format whose widths would allocate more than a template may build."""
    for match in _PERCENT.finditer(fmt):
        width, places, _kind = match.groups()
        if "*" in (width, places):
            raise TemplateLimitError("a `*` width in a % format is not allowed")
        limit(int(width or 0), "a % format width")
        if int(places or 0) > MAX_PLACES:
            raise TemplateLimitError(f"a % format asks for more than {MAX_PLACES} places")


def check_format_spec(spec: str) -> None:
    """Refuse a `{:spec}` whose width or precision is too large."""
    for number in _DIGITS.findall(spec):
        limit(int(number), "a format width")


def check_brace_format(fmt: str) -> None:
    """The static part of `check_format_spec` for every field of a `{}` format string."""
    for _text, _name, spec, _conv in string.Formatter().parse(fmt):
        if spec and "{" not in spec:
            check_format_spec(spec)


class _SpecCheck(SandboxedFormatter):
    def format_field(self, value: Any, format_spec: str) -> Any:
        check_format_spec(format_spec)
        return super().format_field(value, format_spec)


class _EscapeSpecCheck(_SpecCheck, SandboxedEscapeFormatter):
    pass


# --- the environment ------------------------------------------------------------------
_Check = Callable[..., None]


class BoundedEnvironment(ImmutableSandboxedEnvironment):
    """ImmutableSandboxedEnvironment (no list.append, dict.update...) with every bound
    above enforced. `method_checks` maps a str/bytes/int method name to a check of its
    arguments, called as check(receiver, *args, **kwargs) before the method runs."""

    intercepted_binops = frozenset({"*", "**", "+", "%"})
    method_checks: dict[str, _Check] = {}  # noqa: RUF012 (filled in by templates.py)
    #: Compiled templates by source: a file's rules often share one `defaults.message`.
    compiled: dict[str, Template]

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        budget().tick()
        if operator == "*":
            _check_repeat(left, right)
        elif operator == "**":
            _check_power(left, right)
        elif operator == "+" and not isinstance(left, int | float):
            limit(weight(left) + weight(right))
        elif operator == "%" and isinstance(left, str | bytes):
            check_percent_format(left if isinstance(left, str) else left.decode("latin-1"))
        return check(self.binop_table[operator](left, right))

    def call(self, context: Context, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        budget().tick()
        receiver = getattr(obj, "__self__", None)
        if isinstance(receiver, str | bytes | int) and not isinstance(receiver, bool):
            name = getattr(obj, "__name__", "")
            if name == "join" and args and isinstance(args[0], Iterator):
                args = (list(counted_items(args[0])), *args[1:])  # sized, to be checked
            method_check = self.method_checks.get(name)
            if method_check is not None:
                method_check(receiver, *args, **kwargs)
        if isinstance(obj, LoopContext) and args:  # `loop(children)` in a recursive loop
            args = (self.bounded_iter(args[0]), *args[1:])
        return check(super().call(context, obj, *args, **kwargs))

    def getattr(self, obj: Any, attribute: str) -> Any:
        budget().tick()
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        budget().tick()
        return super().getitem(obj, argument)

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        """The sandbox's own wrapper of str.format, with width checks on every field."""
        if not isinstance(value, types.MethodType | types.BuiltinMethodType) or (
            value.__name__ not in ("format", "format_map")
        ):
            return None
        fmt: Any = value.__self__
        if not isinstance(fmt, str):
            return None
        formatter: SandboxedFormatter = (
            _EscapeSpecCheck(self, escape=fmt.escape)
            if isinstance(fmt, Markup)
            else _SpecCheck(self)
        )
        is_map = value.__name__ == "format_map"

        def wrapper(*args: Any, **kwargs: Any) -> str:
            if is_map:
                if kwargs or len(args) != 1:
                    raise TypeError("format_map() takes exactly one argument")
                kwargs, args = args[0], ()
            return type(fmt)(check(formatter.vformat(fmt, args, kwargs)))

        return wrapper

    # --- called from the compiled template (see templates._Bounds) --------------------
    def bounded_iter(self, iterable: Iterable[Any]) -> Iterator[Any]:
        """A loop's items, each one a counted step."""
        tick = budget().tick
        for item in iterable:
            tick()
            yield item

    def bounded_concat(self, *parts: Any) -> str:
        """`a ~ b ~ c`, refused before it is longer than MAX_SIZE."""
        texts = []
        total = 0
        for part in parts:
            text = str(part)
            total += len(text)
            limit(total, "a string")
            texts.append(text)
        return "".join(texts)

    def counted_output(self, value: Any) -> Any:
        """A value about to be written, counted against MAX_OUTPUT."""
        budget().write(len(value) if isinstance(value, str) else len(str(value)))
        return value


def _check_repeat(left: Any, right: Any) -> None:
    if isinstance(left, int) and isinstance(right, int):
        if left.bit_length() + right.bit_length() > MAX_INT_BITS:
            raise TemplateLimitError(f"a number would have more than {MAX_INT_BITS} bits")
        return
    seq, times = (left, right) if isinstance(right, int) else (right, left)
    if isinstance(seq, str | bytes | list | tuple) and isinstance(times, int):
        limit(weight(seq) * max(times, 0), "a repetition")


def _check_power(left: Any, right: Any) -> None:
    big = isinstance(left, int) and isinstance(right, int) and right > 0 and abs(left) > 1
    if big and left.bit_length() * right > MAX_INT_BITS:
        raise TemplateLimitError(f"a number would have more than {MAX_INT_BITS} bits")
