"""The filters and str methods a message template may use, each bounded: an argument
that sets a size (a width, a count, a number of places) is checked before the work is
done, and every result is checked after (sandbox.check).

`FILTER_CHECKS` / `METHOD_CHECKS` take the filter's or method's own arguments, value first;
the loader also calls them with `UNKNOWN` as the value, to refuse a constant argument that
breaks a bound (`price|pct(10**8)`) before the rule ever runs.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Final

from jinja2.utils import _PassArg

from service.figures import UNKNOWN_TEXT, format_pct, money
from service.rules.sandbox import (
    MAX_PLACES,
    TemplateLimitError,
    check,
    check_percent_format,
    counted_items,
    limit,
    weight,
)

#: The value of a filter's input when the loader checks its arguments alone.
UNKNOWN: Final[Any] = object()

Check = Callable[..., None]


def _round(value: Any, precision: int = 0, method: str = "common") -> Any:
    if value is None or not isinstance(value, int | float):
        return value
    rounded = round(float(value), precision)
    return rounded if precision else int(rounded)


OWN_FILTERS: Final[Mapping[str, Callable[..., Any]]] = {
    "round": _round,
    "pct": format_pct,  # both take unknown (n/a), as the README promises
    "money": money,
}


# --- argument checks ------------------------------------------------------------------
def _size(number: Any, what: str) -> None:
    if isinstance(number, int):
        limit(number, what)


def _places(value: Any, places: Any = 1) -> None:
    if isinstance(places, int) and places > MAX_PLACES:
        raise TemplateLimitError(f"pct() takes at most {MAX_PLACES} places, not {places:,}")


def _width(value: Any, width: Any = 80, *_args: Any, **_kwargs: Any) -> None:
    _size(width, "a padded string")


def _indent(value: Any, width: Any = 4, first: bool = False, blank: bool = False) -> None:
    per_line = len(width) if isinstance(width, str) else width
    lines = value.count("\n") + 1 if isinstance(value, str) else 1
    if isinstance(per_line, int):
        limit(per_line * lines + (len(value) if isinstance(value, str) else 0), "an indent")


def _wordwrap(value: Any, width: Any = 79, long: bool = True, wrap: Any = None, *_: Any) -> None:
    if isinstance(value, str):
        limit(len(value) * (1 + len(wrap if isinstance(wrap, str) else "\n")), "a wrap")


def _replace(value: Any, old: Any = "", new: Any = "", count: Any = None) -> None:
    if isinstance(value, str | bytes) and isinstance(old, str | bytes):
        found = value.count(old) if old else len(value) + 1  # type: ignore[arg-type]
        if isinstance(count, int) and count >= 0:
            found = min(found, count)
        grow = len(new) - len(old) if isinstance(new, str | bytes) else 0
        limit(len(value) + found * max(grow, 0), "a replace")


def _batch(value: Any, count: Any = 1, fill_with: Any = None) -> None:
    _size(count, "a batch")


def _join(value: Any, sep: Any = "", attribute: Any = None) -> None:
    if isinstance(value, list | tuple) and isinstance(sep, str):
        limit(weight(value) + len(value) * len(sep), "a join")


def _sum(value: Any, attribute: Any = None, start: Any = 0) -> None:
    if not isinstance(start, int | float):
        raise TemplateLimitError("sum() starts from a number only")


def _format(value: Any, *_args: Any, **_kwargs: Any) -> None:
    if isinstance(value, str):
        check_percent_format(value)


def _expandtabs(value: Any, tabsize: Any = 8) -> None:
    if isinstance(tabsize, int):
        tabs = value.count("\t") if isinstance(value, str) else 1
        tabs = value.count(b"\t") if isinstance(value, bytes) else tabs
        limit(tabs * tabsize, "an expandtabs")


def _translate(value: Any, table: Any = None, *_: Any) -> None:
    if isinstance(value, str) and isinstance(table, dict):
        longest = max((len(v) for v in table.values() if isinstance(v, str)), default=1)
        limit(len(value) * longest, "a translate")


def _join_method(sep: Any, items: Any = ()) -> None:
    if isinstance(sep, str | bytes) and isinstance(items, list | tuple | str):
        limit(weight(items) + len(items) * len(sep), "a join")


def _to_bytes(value: Any, length: Any = 1, *_args: Any, **_kwargs: Any) -> None:
    _size(length, "to_bytes()")


FILTER_CHECKS: Final[Mapping[str, Check]] = {
    "pct": _places,
    "center": _width,
    "indent": _indent,
    "wordwrap": _wordwrap,
    "replace": _replace,
    "batch": _batch,
    "slice": _batch,
    "join": _join,
    "sum": _sum,
    "format": _format,
}

METHOD_CHECKS: Final[Mapping[str, Check]] = {
    "center": _width,
    "ljust": _width,
    "rjust": _width,
    "zfill": _width,
    "expandtabs": _expandtabs,
    "replace": _replace,
    "translate": _translate,
    "join": _join_method,
    "to_bytes": _to_bytes,
}


def bounded_filter(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    """`fn` with its argument check before and the size check after."""
    arg_check = FILTER_CHECKS.get(name)
    skip = 0 if _PassArg.from_obj(fn) is None else 1  # context/environment comes first

    @functools.wraps(fn)  # keeps jinja_pass_arg, so Jinja still passes what fn expects
    def bounded(*args: Any, **kwargs: Any) -> Any:
        if len(args) > skip and _is_iterator(args[skip]):
            args = (*args[:skip], counted_items(args[skip]), *args[skip + 1 :])
        if arg_check is not None and len(args) > skip:
            arg_check(*args[skip:], **kwargs)
        return check(fn(*args, **kwargs))

    return bounded


def _is_iterator(value: Any) -> bool:
    return isinstance(value, Iterator)  # not Iterable: StrictUndefined raises on iter()


__all__ = [
    "FILTER_CHECKS",
    "METHOD_CHECKS",
    "OWN_FILTERS",
    "UNKNOWN",
    "UNKNOWN_TEXT",
    "bounded_filter",
    "format_pct",
    "money",
]
