"""YAML text to a node tree whose cost is bounded by limits, not by the text's aliases.

PyYAML composes an alias (`*name`) as the very node of its anchor, so ten lines of
`&b [*a, *a, ...]` (the "billion laughs") compose in microseconds and then cost billions of
nodes to whoever walks the tree. This composer counts, while it composes, how many nodes
a full walk of the tree would visit, and stops at the alias that would pass a limit no
hand-written rule file comes near. It also marks each alias with its own position (the
builder reports values reached through an alias there), refuses an alias into its own
anchor (a cycle) and nesting deeper than any rule file needs (the walk is recursive).

libyaml's parser is used when PyYAML was built with it (about 10x faster than PyYAML's
own); only the composing, which is the cheap part, runs in Python.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

import yaml
from yaml.composer import Composer
from yaml.resolver import Resolver

#: Limits far above any hand-written rule file (the README's example has no alias).
MAX_ALIASES: Final = 100
MAX_NODES: Final = 100_000
MAX_DEPTH: Final = 64


class LimitExceeded(Exception):
    """The text breaks a limit; `mark` is where (0-based line and column)."""

    def __init__(self, mark: Any, message: str) -> None:
        super().__init__(message)
        self.line = int(mark.line) + 1 if mark is not None else 1
        self.col = int(mark.column) + 1 if mark is not None else 1
        self.message = message


class AliasNode(yaml.Node):
    """An alias as written: the node of its anchor (`target`) and the alias's own marks."""

    id = "alias"

    def __init__(self, target: yaml.Node, start_mark: Any, end_mark: Any) -> None:
        super().__init__(target.tag, target.value, start_mark, end_mark)
        self.target = target


class _BoundedComposer(Composer):
    peek_event: Callable[[], Any]  # from the parser it is mixed with

    def __init__(self) -> None:
        Composer.__init__(self)
        self.aliases = 0
        self.expanded = 0  # nodes a full walk of the tree composed so far visits
        self.repeated = 0  # of which reached through an alias: what aliases add
        self.depth = 0
        self.sizes: dict[int, int] = {}  # id(node) -> nodes a walk of it visits
        self.open_anchors: set[str] = set()

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            return self._alias(event)
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise LimitExceeded(
                event.start_mark, f"YAML nesting deeper than {MAX_DEPTH} levels is refused"
            )
        before = self.expanded
        anchor = getattr(event, "anchor", None)
        if anchor is not None:
            self.open_anchors.add(anchor)
        node = Composer.compose_node(self, parent, index)
        if anchor is not None:
            self.open_anchors.discard(anchor)
        self.depth -= 1
        self.expanded += 1
        self.sizes[id(node)] = self.expanded - before
        return node

    def _alias(self, event: Any) -> AliasNode:
        self.aliases += 1
        if self.aliases > MAX_ALIASES:
            raise LimitExceeded(
                event.start_mark,
                f"YAML aliases: more than {MAX_ALIASES} aliases (*name) in one file are refused",
            )
        if event.anchor in self.open_anchors:
            raise LimitExceeded(
                event.start_mark, f"YAML alias *{event.anchor} refers to itself (a cycle)"
            )
        target = Composer.compose_node(self, None, 0)  # raises for an undefined alias
        assert target is not None
        size = self.sizes.get(id(target), 1)
        self.expanded += size
        self.repeated += size
        if self.repeated > MAX_NODES:
            raise LimitExceeded(
                event.start_mark,
                f"YAML aliases: *{event.anchor} expands the file past {MAX_NODES:,} values; "
                f"aliases may repeat at most {MAX_NODES:,} values in all",
            )
        return AliasNode(target, event.start_mark, event.end_mark)


_CParser: Any = getattr(yaml, "cyaml", None) and getattr(yaml.cyaml, "CParser", None)

if _CParser is not None:

    class _Loader(_BoundedComposer, _CParser, Resolver):  # type: ignore[misc]
        def __init__(self, text: str) -> None:
            _CParser.__init__(self, text)
            _BoundedComposer.__init__(self)
            Resolver.__init__(self)

else:  # pragma: no cover - PyYAML built without libyaml

    class _Loader(  # type: ignore[no-redef]
        yaml.reader.Reader,
        yaml.scanner.Scanner,
        yaml.parser.Parser,
        _BoundedComposer,
        Resolver,
    ):
        def __init__(self, text: str) -> None:
            yaml.reader.Reader.__init__(self, text)
            yaml.scanner.Scanner.__init__(self)
            yaml.parser.Parser.__init__(self)
            _BoundedComposer.__init__(self)
            Resolver.__init__(self)


def compose(text: str) -> yaml.Node | None:
    """The node tree of a single-document `text` (None when it holds no document).

    Raises yaml.YAMLError for invalid YAML and LimitExceeded for a text past a limit."""
    loader = _Loader(text)
    try:
        return _BoundedComposer.get_single_node(loader)
    finally:
        loader.dispose()


def event_parser(text: str) -> Any:
    """libyaml's event parser of `text` (its `get_event()` gives the events one by one;
    `dispose()` when done), or None when PyYAML was built without libyaml. No limit of
    this module applies to it: its reader (`yamlpos._fast_parse`) refuses aliases and
    nesting past MAX_DEPTH itself."""
    return _CParser(text) if _CParser is not None else None


def reader_error_position(text: str, exc: yaml.reader.ReaderError) -> tuple[int, int]:
    """The 1-based line and column of a character the YAML reader refused. libyaml counts
    the offset in UTF-8 bytes, PyYAML's own reader in characters."""
    offset = int(exc.position)
    if _CParser is not None:
        offset = len(text.encode("utf-8", "surrogatepass")[:offset].decode("utf-8", "ignore"))
    before = text[:offset]
    return before.count("\n") + 1, offset - (before.rfind("\n") + 1) + 1
