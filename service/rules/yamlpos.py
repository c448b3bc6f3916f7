"""YAML to plain data, keeping the position of every node, with `${VAR}` substitution.

`yamlcompose` composes the node tree within limits; we build the data ourselves so that every
key path keeps its 1-based line and column, duplicate keys are reported (PyYAML keeps
the last one silently), and `${VAR}` / `${VAR:-default}` are replaced inside string
scalars only, after parsing, so an environment value can never inject YAML.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from typing import Any, Final

import yaml
from yaml.resolver import Resolver

from service.errors import Problem
from service.rules.yamlcompose import (
    MAX_DEPTH,
    AliasNode,
    LimitExceeded,
    compose,
    event_parser,
    reader_error_position,
)

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
    #: The line of shallow paths (the top level, each rule), when the position tables are
    #: built only on demand (`positions`): a valid file needs no other position.
    lines: dict[Path, int] = field(default_factory=dict)
    #: Builds the position tables (`values`, `keys`) by parsing the text again: set by the
    #: fast parse, called at the first `where` (a problem to report), then cleared.
    positions: Callable[[], Document] | None = None

    def stop(self, problem: Problem) -> Document:
        self.problems.append(problem)
        self.fatal = True
        return self

    def line(self, path: Path) -> int:
        """The line of `path` (see `where`), without building the position tables when a
        shallow path's line is known."""
        found = self.lines.get(path)
        return found if found is not None else self.where(path).line

    def where(self, path: Path, *, key: bool = False) -> Position:
        """The position of `path`, or of its nearest ancestor that has one."""
        if self.positions is not None:
            full, self.positions = self.positions(), None
            self.values, self.keys = full.values, full.keys
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
    `env` None, strings are taken as written (no `${VAR}` substitution: a rule test file).

    A plain file (no anchor, alias, tag, merge key, duplicate key or problem) is read by
    `yamllines.read` when it is of the plainest kind, else by `_fast_parse`; neither keeps
    a position table: the tables are built by parsing again
    (`parse_with_positions`) only when a position is asked for, i.e. a problem found
    later. Anything else is read by `parse_with_positions` at once."""
    from service.rules.yamllines import read  # it builds on this module's types

    fast = read(text, env, reserved) or _fast_parse(text, env, reserved)
    if fast is not None:
        fast.positions = lambda: parse_with_positions(text, env, reserved)
        return fast
    return parse_with_positions(text, env, reserved)


def parse_with_positions(
    text: str, env: Mapping[str, str] | None, reserved: Collection[str] = ()
) -> Document:
    """`parse`, keeping the position of every value and key (bounded by `yamlcompose`)."""
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
#: YAML 1.1's implicit types by the first character of a plain scalar (PyYAML's table).
_RESOLVERS: Final = Resolver.yaml_implicit_resolvers


class _Bail(Exception):
    """The fast parse met something it leaves to `parse_with_positions`."""


def _fast_parse(
    text: str, env: Mapping[str, str] | None, reserved: Collection[str]
) -> Document | None:
    """The data of a plain rule file straight from libyaml's events, with no node tree
    and no position table: None when the text holds anything `parse_with_positions` must
    judge or report (an anchor or alias, a tag, a merge key, a duplicate or non-scalar
    key, nesting past MAX_DEPTH, an unset `${VAR}`, a value that cannot be built, invalid
    YAML, more than one document). Where it returns data, it is the data
    `parse_with_positions` builds."""
    parser = event_parser(text)
    if parser is None or None in _RESOLVERS:
        return None
    try:
        return _FastBuilder(env, reserved).run(parser.get_event)
    except Exception:  # _Bail, or any YAML error: the full parse says what it is
        return None
    finally:
        parser.dispose()


class _FastBuilder:
    def __init__(self, env: Mapping[str, str] | None, reserved: Collection[str]) -> None:
        self.env = env
        self.reserved = reserved
        self.constructor = yaml.constructor.SafeConstructor()
        self.resolver = Resolver()
        self.tags: dict[str, str] = {}  # plain scalar text -> its resolved tag
        self.doc = Document(data=None)

    def run(self, next_event: Callable[[], Any]) -> Document:
        doc = self.doc
        lines = doc.lines
        if type(next_event()) is not yaml.StreamStartEvent:
            raise _Bail
        if type(next_event()) is not yaml.DocumentStartEvent:
            raise _Bail  # no document: the full parse's (cheap) business
        scalar_event, mapping_start, sequence_start = (
            yaml.ScalarEvent,
            yaml.MappingStartEvent,
            yaml.SequenceStartEvent,
        )
        mapping_end, sequence_end = yaml.MappingEndEvent, yaml.SequenceEndEvent
        env = self.env
        # The open collection, whether it is a mapping, the key awaiting its value, its
        # path; the collections it is in, outermost first.
        container: Any = None
        is_dict = False
        key: str | None = None
        path: Path = ()
        stack: list[tuple[Any, bool, Path]] = []
        root: Any = None
        inner: Path
        while True:
            event = next_event()
            kind = type(event)
            if kind is scalar_event:
                if event.anchor is not None or event.tag is not None or container is None:
                    raise _Bail  # a root scalar too: not a rule file, the full parse says so
                value = event.value
                typed = event.implicit[0] and value[:1] in _RESOLVERS
                if is_dict and key is None:
                    if value in container or (typed and self.tag(event) not in _SCALARS):
                        raise _Bail  # a duplicate, `<<` or a key YAML reads as a date
                    key = value
                    continue
                slot: str | int = key if is_dict and key is not None else len(container)
                if typed:
                    value = self.typed(event, (*path, slot))
                elif env is not None and "$" in value:
                    value = self.text(value)
                if len(path) < 2:
                    lines[(*path, slot)] = event.start_mark.line + 1
                if is_dict:
                    container[key] = value
                    key = None
                else:
                    container.append(value)
            elif kind is mapping_start or kind is sequence_start:
                if event.anchor is not None or event.tag is not None:
                    raise _Bail
                new: Any = {} if kind is mapping_start else []
                if container is None:
                    if root is not None:
                        raise _Bail
                    root, inner = new, ()
                else:
                    slot = key if is_dict and key is not None else len(container)
                    inner = (*path, slot)
                    if is_dict:
                        container[key] = new
                        key = None
                    else:
                        container.append(new)
                    stack.append((container, is_dict, path))
                if len(inner) + 1 >= MAX_DEPTH:
                    raise _Bail  # its items would pass the limit: the full parse says where
                if len(inner) <= 2:
                    lines[inner] = event.start_mark.line + 1
                container, is_dict, key, path = new, kind is mapping_start, None, inner
            elif kind is mapping_end or kind is sequence_end:
                if not stack:
                    break
                container, is_dict, path = stack.pop()
            else:
                raise _Bail  # an alias, or an event no plain document holds here
        if type(next_event()) is not yaml.DocumentEndEvent:
            raise _Bail
        if type(next_event()) is not yaml.StreamEndEvent:
            raise _Bail  # a second document: the full parse refuses it
        doc.data = root
        return doc

    def tag(self, event: Any) -> str:
        # Only a plain scalar comes here, so its tag depends on its text alone.
        tag = self.tags.get(event.value)
        if tag is None:
            tag = self.tags[event.value] = self.resolver.resolve(  # type: ignore[no-untyped-call]
                yaml.ScalarNode, event.value, event.implicit
            )
        return tag

    def text(self, value: str) -> str:
        assert self.env is not None
        value, missing, refused = substitute(value, self.env, self.reserved)
        if missing or refused:
            raise _Bail  # a problem to report where it is
        return value

    def typed(self, event: Any, path: Path) -> Any:
        """A plain scalar whose first character may start something other than text."""
        tag = self.tag(event)
        value = event.value
        if tag == _STR:
            return self.text(value) if self.env is not None and "$" in value else value
        if tag == _MERGE:
            return value
        if tag not in _SCALARS and tag != _TIMESTAMP:
            raise _Bail
        self.doc.plain[path] = value
        node = yaml.ScalarNode(tag, value, event.start_mark, event.end_mark, event.style)
        # What construct_object calls, without its cache of every node built.
        return self.constructor.yaml_constructors[tag](self.constructor, node)


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
