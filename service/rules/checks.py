"""Checks of the rule file's text that come before the models: what YAML 1.1 misreads,
names and symbols that are not plain ASCII, and a file that holds no rules.

These run before any upper-casing or Unicode normalisation, so what is checked is what
the user typed: `"\u0131bm"` (a dotless i) is refused, not turned into IBM.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, Final

from pydantic_core import ErrorDetails

from service.rules.yamlpos import Path

NO_RULES: Final = (
    'the rule file has no rules (an empty or truncated file?); write "rules: []" to run with none'
)
EMPTY_RULES: Final = "the file has no rules (rules: []): Earnwatch runs, but nothing will alert"
NAME_HINT: Final = "letters, digits, _ . - (ASCII, up to 100, starting with a letter or digit)"

_NAME: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}")


def is_text_position(path: Path) -> bool:
    """Where a plain scalar means the text as typed, whatever YAML 1.1 reads it as:
    symbols (`ON`, `NO`, `0700`), names, channel names, conditions, messages and the
    times of quiet hours."""
    match path:
        case ("rules", int(), "symbols" | "notify", int()):
            return True
        case ("rules", int(), "name" | "symbols" | "notify" | "when" | "clear_when"):
            return True
        case ("rules", int(), "message" | "description"):
            return True
        case ("defaults", "notify") | ("defaults", "notify", int()) | ("defaults", "message"):
            return True
        case ("groups", str()) | ("groups", str(), int()):
            return True
        case ("channels", str(), "quiet_hours", "from" | "to"):  # 22:00 is 1320 in YAML 1.1
            return True
    return False


def restore_text(
    data: Any, plain: dict[Path, str], is_text: Callable[[Path], bool] = is_text_position
) -> None:
    """Put back, in place, the source text of plain scalars in text positions (`is_text`:
    the rule file's, unless another file's are given)."""
    for path, text in plain.items():
        if not is_text(path):
            continue
        parent = data
        for part in path[:-1]:
            parent = _child(parent, part)
        last = path[-1]
        in_dict = isinstance(parent, dict) and isinstance(last, str) and last in parent
        in_list = isinstance(parent, list) and isinstance(last, int) and last < len(parent)
        if in_dict or in_list:
            parent[last] = text


def _child(node: Any, part: str | int) -> Any:
    if isinstance(node, dict) and isinstance(part, str):
        return node.get(part)
    if isinstance(node, list) and isinstance(part, int) and part < len(node):
        return node[part]
    return None


def is_name(text: str) -> bool:
    """A rule or channel name: NAME of model.py, in ASCII (no newline can forge a log line)."""
    return _NAME.fullmatch(text) is not None


def non_ascii(text: str) -> tuple[int, int] | None:
    """The 1-based line and 0-based column in the stripped `text` of its first character
    that is not printable ASCII, or None."""
    if text.isascii() and text.isprintable():  # the common case, at C speed
        return None
    stripped = text.strip()
    for offset, char in enumerate(stripped):
        if not char.isascii() or (not char.isprintable() and char not in "\n\t"):
            before = stripped[:offset]
            return before.count("\n") + 1, offset - (before.rfind("\n") + 1)
    return None


def pydantic_message(error: ErrorDetails) -> str:
    kind, msg = error["type"], error["msg"]
    if kind == "extra_forbidden":
        return f"unknown key {error['loc'][-1]!r}"
    if kind == "missing":
        return f"missing required key {error['loc'][-1]!r}"
    if kind == "value_error":
        return msg.removeprefix("Value error, ")
    if kind == "string_pattern_mismatch" and error["loc"][-1] == "name":
        return "a rule name uses letters, digits, _ . - (up to 100)"
    return msg[:1].lower() + msg[1:]
