"""Where, in the file, a mistake inside a scalar is: a condition's column, a template's
line. The compilers count within the scalar's text; the file has quotes, indentation
and folded lines around it."""

from __future__ import annotations

from collections.abc import Sequence

from service.rules.yamlpos import Position


def in_expression(
    pos: Position, lines: Sequence[str], text: str, line: int, col: int
) -> tuple[int, int]:
    """The file's line and column of `line` (1-based) and `col` (0-based) of the stripped
    `text`, a scalar that starts at `pos`."""
    stripped_lead = len(text) - len(text.lstrip())
    if pos.single_line and pos.style in (None, '"', "'"):
        quote = 1 if pos.style else 0
        return pos.line, pos.col + quote + stripped_lead + col
    # A block or multi-line scalar: find the offending text in the lines that follow.
    body = text.strip().splitlines()
    snippet = body[line - 1][col:][:24].strip() if line <= len(body) else ""
    for number in range(pos.line - 1, min(len(lines), pos.line + 40)):
        found = lines[number].find(snippet) if snippet else -1
        if found >= 0:
            return number + 1, found + 1
    return pos.line, pos.col


def in_template(pos: Position, line: int) -> int:
    """The file's line of `line` (1-based) of a template scalar that starts at `pos`."""
    if pos.style in ("|", ">"):
        return pos.line + line  # the text starts on the line after `|` or `>`
    return pos.line + line - 1
