"""YAML to plain data, keeping the position of every node, with `${VAR}` substitution.

`yamlcompose` composes the node tree within limits; we build the data ourselves so that every
key path keeps its 1-based line and column, duplicate keys are reported (PyYAML keeps
the last one silently), and `${VAR}` / `${VAR:-default}` are replaced inside string
scalars only, after parsing, so an environment value can never inject YAML.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from typing import Any, Final

import yaml

from service.errors import Problem
from service.rules.yamlcompose import AliasNode, LimitExceeded, compose, reader_error_position

Path = tuple[str | int, ...]

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
    #: The source text of plain scalars YAML 1.1 reads as something else (`ON` is True).
    plain: dict[Path, str] = field(default_factory=dict)
    #: The text could not be read as plain YAML: nothing past its problems is checked.
    fatal: bool = False

    def stop(self, problem: Problem) -> Document:
        self.problems.append(problem)
        self.fatal = True
        return self

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
        if isinstance(part, int):
            out += f"[{part}]"
        elif not (part.isascii() and part.isprintable()):  # a key can't forge a log line
            out += f"[{part!a}]"
        else:
            out += f".{part}" if out else part
    return out


def substitute(
    text: str, env: Mapping[str, str], reserved: Collection[str] = ()
) -> tuple[str, list[str], list[str]]:
    """Replace `${VAR}` and `${VAR:-default}`; `$$` is a literal `$`. Returns the text, the
    names of variables that were missing with no default, and the names used that are in
    `reserved` (replaced by nothing: Earnwatch's own secrets never reach a rule file)."""
    missing: list[str] = []
    refused: list[str] = []

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, default = match.group(1), match.group(2)
        if name in reserved:
            refused.append(name)
            return ""
        value = env.get(name)
        if value is None or (value == "" and default is not None):
            if default is not None:
                return default
            missing.append(name)
            return ""
        return value

    return _VAR.sub(replace, text), missing, refused


def parse(text: str, env: Mapping[str, str] | None, reserved: Collection[str] = ()) -> Document:
    """Parse `text`. Invalid YAML, a text past a limit of `yamlcompose`, a tag other than
    YAML's standard ones (`!!python/...`) or a value PyYAML cannot build stop the load
    here (`fatal`). `${NAME}` for a NAME in `reserved` is a problem at its place. With
    `env` None, strings are taken as written (no `${VAR}` substitution: a rule test file)."""
    doc = Document(data=None)
    try:
        root = compose(text)
    except LimitExceeded as exc:
        return doc.stop(Problem(exc.line, exc.col, "", exc.message))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        reason = exc.problem or exc.context or "invalid YAML"
        if exc.problem == "second occurrence" and exc.context and exc.context_mark:
            first = exc.context_mark  # PyYAML's wording is for two marks, not one line
            name = exc.context.removeprefix("found ").removesuffix("; first occurrence")
            reason = f"{name} (first defined at {first.line + 1}:{first.column + 1})"
        elif exc.context and exc.context_mark and exc.problem:
            start = exc.context_mark
            reason += f" ({exc.context} that starts at {start.line + 1}:{start.column + 1})"
        return doc.stop(Problem(line, col, "", f"YAML syntax error: {reason}"))
    except yaml.reader.ReaderError as exc:
        line, col = reader_error_position(text, exc)
        code = exc.character if isinstance(exc.character, int) else ord(exc.character)
        return doc.stop(
            Problem(line, col, "", f"YAML: unacceptable character #x{code:04x} ({exc.reason})")
        )
    except yaml.YAMLError as exc:  # pragma: no cover - every other error is marked
        return doc.stop(Problem(1, 1, "", f"YAML error: {str(exc).splitlines()[0]}"))
    if root is not None:
        doc.data = _Builder(doc, env, reserved).build(root, ())
    return doc


_STANDARD: Final = "tag:yaml.org,2002:"
_STR: Final = _STANDARD + "str"
_MERGE: Final = _STANDARD + "merge"
_SCALARS: Final = frozenset(_STANDARD + t for t in ("str", "null", "bool", "int", "float"))
_TIMESTAMP: Final = _STANDARD + "timestamp"


class _Builder:
    def __init__(
        self, doc: Document, env: Mapping[str, str] | None, reserved: Collection[str]
    ) -> None:
        self.doc = doc
        self.env = env
        self.reserved = reserved
        self.constructor = yaml.constructor.SafeConstructor()
        self.reported: set[Problem] = set()

    def report(self, pos: Position, path: Path, message: str) -> None:
        # A node reached through several aliases is built several times: report it once.
        problem = Problem(pos.line, pos.col, format_path(path), message)
        if problem not in self.reported:
            self.reported.add(problem)
            self.doc.problems.append(problem)

    def build(self, node: yaml.Node, path: Path) -> Any:
        if isinstance(node, AliasNode):
            # A scalar is reported where its text is (columns inside it stay right); a
            # list or mapping where the alias is, its items where they are written.
            target = node.target
            where = target if isinstance(target, yaml.ScalarNode) else node
            self.doc.values[path] = _position(where)
            node = target
        else:
            self.doc.values[path] = _position(node)
        if isinstance(node, yaml.MappingNode):
            self.check_tag(node, path, _STANDARD + "map")
            return self.mapping(node, path, frozenset())
        if isinstance(node, yaml.SequenceNode):
            self.check_tag(node, path, _STANDARD + "seq")
            return [self.build(item, (*path, i)) for i, item in enumerate(node.value)]
        assert isinstance(node, yaml.ScalarNode)
        return self.scalar(node, path)

    def check_tag(self, node: yaml.Node, path: Path, expected: str) -> bool:
        if node.tag == expected:
            return True
        self.doc.fatal = True  # what the value was meant to be is unknown: check no further
        self.report(
            _position(node),
            path,
            f"unsupported YAML tag {_tag_name(node.tag)} (a rule file holds plain strings, "
            "numbers, true/false, lists and mappings)",
        )
        return False

    def scalar(self, node: yaml.ScalarNode, path: Path) -> Any:
        if node.tag == _STR:
            return self.text(node, path)
        if node.tag == _MERGE:  # `<<` anywhere but as a key is just text
            return node.value
        if node.tag not in _SCALARS and node.tag != _TIMESTAMP:
            self.check_tag(node, path, _STR)
            return node.value
        if not node.style:
            self.doc.plain[path] = node.value
        try:
            return self.constructor.construct_object(node, deep=True)
        except Exception:  # a bad date, an int past Python's digit limit: never a traceback
            self.doc.fatal = True
            self.report(
                _position(node),
                path,
                f"cannot read {_short(node.value)} as "
                f"{'a date' if node.tag == _TIMESTAMP else 'a number'}; quote it to write text",
            )
            return node.value

    def text(self, node: yaml.ScalarNode, path: Path) -> str:
        if self.env is None:
            return str(node.value)
        value, missing, refused = substitute(node.value, self.env, self.reserved)
        pos = _position(node)
        for name in refused:
            self.report(
                pos,
                path,
                f"${{{name}}} is one of Earnwatch's own secrets and cannot be used in the "
                "rule file",
            )
        for name in missing:
            self.report(
                pos,
                path,
                f"environment variable {name} is not set "
                f"(set it in the environment or .env, or write ${{{name}:-default}})",
            )
        return value

    def mapping(self, node: yaml.MappingNode, path: Path, skip: AbstractSet[str]) -> dict[str, Any]:
        """A mapping's keys and values; `<<: *base` merges base's keys that the mapping
        does not set itself (YAML's merge key: an earlier source wins over a later one)."""
        pairs = [(_deref(k), v) for k, v in node.value]
        explicit = {k.value for k, _ in pairs if isinstance(k, yaml.ScalarNode) and k.tag != _MERGE}
        out: dict[str, Any] = {}
        for key_node, value_node in pairs:
            pos = _position(key_node)
            if not isinstance(key_node, yaml.ScalarNode):
                self.report(pos, path, "a key must be a plain name")
                continue
            if key_node.tag == _MERGE:
                for source in self.merge_sources(value_node, path):
                    out.update(self.mapping(source, path, skip | explicit | out.keys()))
                continue
            if key_node.tag not in _SCALARS and not self.check_tag(key_node, path, _STR):
                continue
            key = key_node.value  # as written: `on:` is the name "on", not True
            if key in skip:
                continue
            child = (*path, key)
            if key in out:
                self.report(pos, child, f"duplicate key {key!r}")
                continue
            self.doc.keys[child] = pos
            out[key] = self.build(value_node, child)
        return out

    def merge_sources(self, node: yaml.Node, path: Path) -> list[yaml.MappingNode]:
        target = _deref(node)
        if isinstance(target, yaml.MappingNode):
            return [target]
        if isinstance(target, yaml.SequenceNode):
            items = [_deref(item) for item in target.value]
            if all(isinstance(item, yaml.MappingNode) for item in items):
                return items  # type: ignore[return-value]
        self.report(
            _position(node),
            path,
            "`<<` merges a mapping (`<<: *name`) or a list of them (`<<: [*a, *b]`)",
        )
        return []


def _deref(node: yaml.Node) -> yaml.Node:
    return node.target if isinstance(node, AliasNode) else node


def _tag_name(tag: str) -> str:
    return "!!" + tag.removeprefix(_STANDARD) if tag.startswith(_STANDARD) else tag


def _short(text: str) -> str:
    return repr(text if len(text) <= 40 else text[:40] + "...")


def _position(node: yaml.Node) -> Position:
    start, end = node.start_mark, node.end_mark
    style = getattr(node, "style", None) or None  # libyaml writes a plain style as ""
    return Position(start.line + 1, start.column + 1, style, start.line == end.line)
