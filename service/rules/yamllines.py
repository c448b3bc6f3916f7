"""The data of a rule file written in the plainest block YAML, read line by line (issue #16).

A big rule file is thousands of lines like `  - name: r1` / `    when: price > 5`: libyaml
spends more time making a Python event of each of its values than this module spends on a
whole line. It reads only what it can read exactly as YAML does, and gives up (None) on
anything else, for `yamlpos._fast_parse` and the full parse to read and judge:

- printable ASCII (no tab, no carriage return), without `#` outside whole-line comments;
- block mappings of plain keys (`name:`), block sequences (`- item`, `- key: value`), one
  value per line, each nested block more indented than its parent;
- plain scalars that start with a letter, a digit or one of `_ ( ~ $ + .` (or `-` before a
  digit or a point) and hold no `: ` and do not end with `:`; quoted scalars without
  escapes (`"..."` without `"` or `\\`, `'...'` without `'`); flow sequences of such
  scalars (`[a, "b", c]`, no `:` or `?` in an item).

Scalars are resolved, built and `${VAR}`-substituted as `yamlpos` does, and the shallow
lines (`Document.lines`) are those of libyaml's marks. A test compares it with the full
parse on generated files.
"""

from __future__ import annotations

import re
import string
from collections.abc import Collection, Iterator, Mapping
from typing import Any, Final

import yaml
from yaml.resolver import Resolver

from service.rules.yamlpos import Document, Path, substitute

_STANDARD: Final = "tag:yaml.org,2002:"
_STR: Final = _STANDARD + "str"
_BUILT: Final = frozenset(
    _STANDARD + t for t in ("null", "bool", "int", "float", "timestamp")
)  # the non-text tags a plain scalar may have here
#: The tags of a plain key the fast parse takes (as written: `on:` is the key "on").
_KEY_TAGS: Final = frozenset(_STANDARD + t for t in ("str", "null", "bool", "int", "float"))
_RESOLVERS: Final = Resolver.yaml_implicit_resolvers
#: A value: a plain scalar (no `#`, no `:` before a space or the end), a quoted one without
#: escapes, or a flow sequence of plain or quoted items without `:` or `?`.
_VALUE: Final = (
    r"(?:[A-Za-z0-9_(~$+.]|-[0-9.])[^#:\n]*(?::(?! |$)[^#:\n]*)*"
    r"|\"[^\"\\\n]*\"|'[^'\n]*'"
    r"|\[[^\[\]{}#:?\n]*\]"
)
#: One line: `indent [- ]key:[ value]` (groups 1-4), `indent - value` (5-6), blank or a
#: comment (no group), or anything else (7: give up). `findall` gives one row a line.
_LINE: Final = re.compile(
    rf"^(?:( *)(- +)?([A-Za-z_][A-Za-z0-9_.\-]*):(?: +({_VALUE}))? *"
    rf"|( *)- +({_VALUE}) *"
    r"| *(?:#.*)?"
    r"|(.+))$",
    re.MULTILINE,
)
_FLOW_ITEM: Final = re.compile(r"(?:[A-Za-z0-9_(~$+.]|-[0-9.])[^,\"']*|\"[^\"\\]*\"|'[^']*'")
#: What the text may hold only outside this reader: not printable ASCII, and tabs and CRs.
_NOT_PRINTABLE: Final = re.compile(r"[^\x20-\x7e\n]")
#: Deeper than any rule file: the full parse's business (and its limit's).
_MAX_DEPTH: Final = 8


#: The first characters of a plain scalar that YAML reads as text whatever follows.
_VERBATIM: Final = frozenset(string.ascii_letters + "_(") - frozenset(_RESOLVERS)


#: Characters of text `_rows` reads at a time (its rows of a whole big file at once would
#: cost more memory than the file's rules).
_CHUNK: Final = 1 << 16


def _rows(text: str) -> Iterator[tuple[str, ...]]:
    """`_LINE.findall(text)`, a chunk of whole lines at a time: one row a line."""
    start, size = 0, len(text)
    while True:
        end = text.find("\n", start + _CHUNK)
        if end == -1:
            end = size
        yield from _LINE.findall(text, start, end)
        if end >= size:
            return
        start = end + 1


class _GiveUp(Exception):
    """Something this reader does not read: the other parsers do."""


def read(
    text: str, env: Mapping[str, str] | None, reserved: Collection[str] = ()
) -> Document | None:
    """The Document `yamlpos._fast_parse` makes of `text` (data, plain texts, shallow
    lines, no position table), or None when `text` is not of the plainest kind."""
    if _NOT_PRINTABLE.search(text) is not None:
        return None
    try:
        return _Reader(env, reserved).run(text)
    except _GiveUp:
        return None


class _Frame:
    __slots__ = ("container", "indent", "is_dict", "path")

    def __init__(self, container: Any, indent: int, path: Path) -> None:
        self.container = container
        self.indent = indent
        self.is_dict = type(container) is dict
        self.path = path


class _Reader:
    def __init__(self, env: Mapping[str, str] | None, reserved: Collection[str]) -> None:
        self.env = env
        self.reserved = reserved
        self.resolver = Resolver()
        self.constructor = yaml.constructor.SafeConstructor()
        self.tags: dict[str, str] = {}
        self.keys: set[str] = set()  # the keys found plain so far
        self.doc = Document(data=None)

    def run(self, text: str) -> Document:
        doc = self.doc
        lines = doc.lines
        stack: list[_Frame] = []
        #: The open block (`top`) and its fields, kept in locals: the loop runs per line.
        top = _Frame({}, -1, ())
        container, at, is_dict, deep = top.container, -1, True, False
        #: `key:` with nothing after it, awaiting a nested block: (frame, key, its line).
        pending: tuple[_Frame, str, int] | None = None
        value_of, keys, verbatim = self.value, self.keys, _VERBATIM
        number = 0
        for spaces, dash, key, value, item_spaces, item, bad in _rows(text):
            number += 1
            if not key:
                if bad:
                    raise _GiveUp
                if not item:
                    continue  # blank, or a comment
                spaces, dash = item_spaces, "- "
            indent = len(spaces)
            if pending is not None or indent != at or dash or not is_dict:
                # Anything but one more `key: value` of the open mapping.
                if pending is not None:
                    frame, name, line_of_key = pending
                    pending = None
                    if indent > frame.indent:  # the key's nested block
                        path = (*frame.path, name)
                        if len(path) >= _MAX_DEPTH:
                            raise _GiveUp
                        new: Any = [] if dash else {}
                        frame.container[name] = new
                        if len(path) <= 2:
                            lines[path] = number
                        stack.append(_Frame(new, indent, path))
                    else:
                        self.null(frame, name, line_of_key)  # `key:` and nothing
                        if indent == frame.indent and dash and frame.is_dict:
                            raise _GiveUp  # a sequence at its key's indentation
                elif not stack:
                    if indent != 0:
                        raise _GiveUp
                    root: dict[str, Any] = {}
                    doc.data = root
                    lines[()] = number
                    stack.append(_Frame(root, 0, ()))
                while indent < stack[-1].indent:
                    stack.pop()
                    if not stack:
                        raise _GiveUp
                top = stack[-1]
                if indent != top.indent:
                    raise _GiveUp  # a continuation line, or a block where none opens
                if dash:
                    if top.is_dict:
                        raise _GiveUp
                    sequence = top.container
                    path = (*top.path, len(sequence))
                    if not key:  # `- value`
                        sequence.append(value_of(item.rstrip(" "), path, number))
                        container, at, is_dict = sequence, indent, False
                        continue
                    # `- key: value`: a mapping, its keys below at the key's column.
                    if len(path) >= _MAX_DEPTH:
                        raise _GiveUp
                    mapping: dict[str, Any] = {}
                    sequence.append(mapping)
                    if len(path) <= 2:
                        lines[path] = number
                    top = _Frame(mapping, indent + len(dash), path)
                    stack.append(top)
                container, at, is_dict = top.container, top.indent, top.is_dict
                deep = len(top.path) >= 2
                if not is_dict:
                    raise _GiveUp
            if key in container or (key not in keys and not self.plain_key(key)):
                raise _GiveUp
            if not value:
                container[key] = None
                pending = (top, key, number)
                continue
            if value[-1] == " ":
                value = value.rstrip(" ")  # a plain scalar's trailing spaces are not its
            if deep and value[0] in verbatim and "$" not in value:
                container[key] = value  # text as written: the commonest value by far
                continue
            container[key] = value_of(value, (*top.path, key), number)
        if pending is not None:
            self.null(*pending)
        if doc.data is None:
            raise _GiveUp  # nothing but comments: the full parse's (cheap) business
        return doc

    def null(self, frame: _Frame, key: str, number: int) -> None:
        """`key:` with nothing after it: null, an empty plain scalar on the key's line."""
        path = (*frame.path, key)
        frame.container[key] = None
        self.doc.plain[path] = ""
        if len(path) <= 2:
            self.doc.lines[path] = number

    def plain_key(self, key: str) -> bool:
        """Whether `key` is a key the fast parse takes as written (not a date, say)."""
        if key[0] in _RESOLVERS and self.tag(key) not in _KEY_TAGS:
            return False
        self.keys.add(key)
        return True

    def tag(self, value: str) -> str:
        tag = self.tags.get(value)
        if tag is None:
            tag = self.tags[value] = self.resolver.resolve(  # type: ignore[no-untyped-call]
                yaml.ScalarNode, value, (True, False)
            )
        return tag

    def value(self, text: str, path: Path, number: int) -> Any:
        """The value written `text` (as `_VALUE` matched it) on line `number` at `path`."""
        if len(path) <= 2:
            self.doc.lines[path] = number
        if text[0] != "[":
            return self.scalar(text, path)
        inner = text[1:-1].strip(" ")
        if not inner:
            return []
        out = []
        deep = len(path) >= 2
        for i, item in enumerate(inner.split(",")):
            item = item.strip(" ")
            if (
                deep
                and item
                and item[0] in _VERBATIM
                and "$" not in item
                and '"' not in item
                and "'" not in item
            ):
                out.append(item)  # text as written (as `_FLOW_ITEM` would take it)
                continue
            if _FLOW_ITEM.fullmatch(item) is None:
                raise _GiveUp
            if len(path) < 2:
                self.doc.lines[(*path, i)] = number
            out.append(self.scalar(item, (*path, i)))
        return out

    def scalar(self, text: str, path: Path) -> Any:
        """A plain or simply quoted scalar (already checked), resolved and built."""
        first = text[0]
        if first == '"' or first == "'":
            return self.text(text[1:-1])
        if first not in _RESOLVERS:
            return self.text(text)
        tag = self.tag(text)
        if tag == _STR:
            return self.text(text)
        if tag not in _BUILT:
            raise _GiveUp  # `=` (YAML's value tag), `<<`: the other parsers'
        self.doc.plain[path] = text
        node = yaml.ScalarNode(tag, text)
        try:
            return self.constructor.yaml_constructors[tag](self.constructor, node)
        except Exception:
            raise _GiveUp from None  # a bad date, say: the full parse reports it

    def text(self, value: str) -> str:
        if self.env is None or "$" not in value:
            return value
        value, missing, refused = substitute(value, self.env, self.reserved)
        if missing or refused:
            raise _GiveUp  # a problem to report where it is
        return value
