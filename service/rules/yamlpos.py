"""YAML to plain data, keeping the position of every node, with `${VAR}` substitution.

PyYAML's SafeLoader composes the node tree; we build the data ourselves so that every
key path keeps its 1-based line and column, duplicate keys are reported (PyYAML keeps
the last one silently), and `${VAR}` / `${VAR:-default}` are replaced inside string
scalars only, after parsing, so an environment value can never inject YAML.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import yaml

from service.errors import Problem

Path = tuple[str | int, ...]

#: libyaml's parser when PyYAML was built with it (about 10x faster), with the same marks.
_LOADER: Final[Any] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_VAR: Final = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


@dataclass(frozen=True, slots=True)
class Position:
    """Where a node starts (1-based) and how its scalar text was written."""

    line: int
    col: int
    style: str | None = None  # None for plain scalars, '"' / "'" quoted, '|' / '>' block
    single_line: bool = True


@dataclass(slots=True)
class Document:
    """The parsed file: plain data plus the position of every value and key."""

    data: Any
    values: dict[Path, Position] = field(default_factory=dict)
    keys: dict[Path, Position] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)

    def where(self, path: Path, *, key: bool = False) -> Position:
        """The position of `path`, or of its nearest ancestor that has one."""
        table = self.keys if key else self.values
        probe = path
        while probe:
            if probe in table:
                return table[probe]
            if probe in self.values:
                return self.values[probe]
            probe = probe[:-1]
        return self.values.get((), Position(1, 1))


def format_path(path: Path) -> str:
    """`("rules", 2, "when")` -> `rules[2].when`."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


def substitute(text: str, env: Mapping[str, str]) -> tuple[str, list[str]]:
    """Replace `${VAR}` and `${VAR:-default}`; `$$` is a literal `$`. Returns the text and
    the names of variables that were missing with no default."""
    missing: list[str] = []

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, default = match.group(1), match.group(2)
        value = env.get(name)
        if value is None or (value == "" and default is not None):
            if default is not None:
                return default
            missing.append(name)
            return ""
        return value

    return _VAR.sub(replace, text), missing


def parse(text: str, env: Mapping[str, str]) -> Document:
    """Parse `text`; a YAML syntax error is the one problem that stops here."""
    doc = Document(data=None)
    try:
        root = yaml.compose(text, Loader=_LOADER)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        reason = exc.problem or exc.context or "invalid YAML"
        if exc.context and exc.context_mark and exc.problem:
            start = exc.context_mark
            reason += f" ({exc.context} that starts at {start.line + 1}:{start.column + 1})"
        doc.problems.append(Problem(line, col, "", f"YAML syntax error: {reason}"))
        return doc
    except yaml.YAMLError as exc:  # pragma: no cover - composer errors are all marked
        doc.problems.append(Problem(1, 1, "", f"YAML error: {exc}"))
        return doc
    if root is None:
        doc.data = {}
        return doc
    builder = _Builder(doc, env)
    doc.data = builder.build(root, ())
    return doc


class _Builder:
    def __init__(self, doc: Document, env: Mapping[str, str]) -> None:
        self.doc = doc
        self.env = env
        self.constructor = yaml.constructor.SafeConstructor()

    def build(self, node: yaml.Node, path: Path) -> Any:
        self.doc.values[path] = _position(node)
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path)
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, (*path, i)) for i, item in enumerate(node.value)]
        assert isinstance(node, yaml.ScalarNode)
        if node.tag == "tag:yaml.org,2002:str":
            value, missing = substitute(node.value, self.env)
            for name in missing:
                pos = _position(node)
                self.doc.problems.append(
                    Problem(
                        pos.line,
                        pos.col,
                        format_path(path),
                        f"environment variable {name} is not set "
                        f"(set it in the environment or .env, or write ${{{name}:-default}})",
                    )
                )
            return value
        return self.constructor.construct_object(node, deep=True)

    def _mapping(self, node: yaml.MappingNode, path: Path) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                pos = _position(key_node)
                self.doc.problems.append(
                    Problem(pos.line, pos.col, format_path(path), "a key must be a plain name")
                )
                continue
            key = str(self.constructor.construct_object(key_node))
            child = (*path, key)
            if key in out:
                pos = _position(key_node)
                self.doc.problems.append(
                    Problem(pos.line, pos.col, format_path(child), f"duplicate key {key!r}")
                )
                continue
            self.doc.keys[child] = _position(key_node)
            out[key] = self.build(value_node, child)
        return out


def _position(node: yaml.Node) -> Position:
    start, end = node.start_mark, node.end_mark
    style = getattr(node, "style", None)
    return Position(start.line + 1, start.column + 1, style, start.line == end.line)
