"""The rule file: text in, a compiled RuleSet out, or RuleFileError listing every problem.

`load_rules` never reads files, the environment or the clock: callers pass the text and
the variables `${VAR}` may use, and the channel option models of the notifiers (the rule
loader must not import adapters). The loading itself is in `loader.py`.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from pydantic import BaseModel

from service.errors import Problem, RuleFileError
from service.market import Value
from service.rules.expr import Compiled
from service.rules.messages import cap_message, default_message

if TYPE_CHECKING:  # Jinja2 is imported only by a file with a `message:` (the loader)
    from service.rules.templates import MessageTemplate

#: Checks a valid channel's options beyond their model: (kind, config) -> [(field, message)].
ChannelCheck = Callable[[str, BaseModel], list[tuple[str, str]]]


@dataclass(frozen=True, slots=True)
class Channel:
    """A channel defined in the file: its kind and its validated options."""

    name: str
    kind: str
    config: BaseModel


@dataclass(frozen=True, slots=True, eq=False)
class CompiledRule:
    """A rule ready for the engine. `fingerprint` changes only when what decides firing
    changes (conditions, for, cooldown), so editing a message keeps the rule's state."""

    name: str
    symbols: tuple[str, ...]
    when: Compiled
    clear_when: Compiled | None
    hold: timedelta | None
    cooldown: timedelta | None
    channels: tuple[str, ...]
    template: MessageTemplate | None
    fingerprint: str
    uses_earnings: bool
    time_dependent: bool
    line: int
    urgent: bool = False  # ignores the channels' quiet hours (service/quiet.py)
    #: `notify_resolved: true`: a resolved message when it re-arms after firing. Not part
    #: of the fingerprint: turning it on keeps the state, so a standing alert resolves.
    notify_resolved: bool = False
    #: `notify_amended: true`: a message when a report it fired on has its actuals
    #: corrected. Not part of the fingerprint either.
    notify_amended: bool = False

    def render(self, values: Mapping[str, Value], symbol: str, now: datetime) -> str:
        """The alert text (see render_checked)."""
        return self.render_checked(values, symbol, now)[0]

    def render_checked(
        self, values: Mapping[str, Value], symbol: str, now: datetime
    ) -> tuple[str, str | None]:
        """The alert text and, when the template failed, the kind of failure (the
        exception's name, e.g. "KeyError" or "TemplateLimitError"); never raises. A
        template that fails sends the default message with a note, so an alert is never
        lost to a template."""
        failure: str | None = None
        if self.template is not None:
            try:
                return self.template.render(values, rule=self.name, symbol=symbol, now=now), None
            except Exception as exc:  # anything the template's code raises: see the docstring
                failure = type(exc).__name__
        try:
            text = default_message(self.name, symbol, self.when.source, values, self.when.names)
        except Exception:  # a value the default message cannot format: say what fired
            text = f"{symbol}: {self.name}"
        if failure is not None:
            text += f" (message template failed: {failure})"
        return cap_message(text), failure


class SymbolRules(tuple[CompiledRule, ...]):
    """The rules of one symbol, as `RuleSet.by_symbol` holds them: a tuple that also gives
    the (rule name, symbol) key of each of its pairs, built once (`keys`, `whens`). An evaluation
    pass looks every pair's state and wake up by its key: the same tuple each pass, so
    none is built and each lookup in a dict these keys filled matches by identity."""

    symbol: str

    def __new__(cls, symbol: str, rules: Iterable[CompiledRule]) -> SymbolRules:
        made = super().__new__(cls, rules)
        made.symbol = symbol
        return made

    def __getnewargs__(self) -> tuple[str, tuple[CompiledRule, ...]]:
        return self.symbol, tuple(self)  # a copy or a pickle makes it again

    @cached_property
    def keys(self) -> tuple[tuple[str, str], ...]:
        """`(rule.name, symbol)` of each rule, in order, built at its first use."""
        symbol = self.symbol
        return tuple([(rule.name, symbol) for rule in self])

    @cached_property
    def whens(self) -> tuple[Callable[..., Any], ...]:
        """What evaluates each rule's `when`, in order: a compiled condition's function
        itself (`Compiled.__call__` calls no more), a stand-in condition (tests) as it is."""
        return tuple(
            [rule.when.fn if rule.when.__class__ is Compiled else rule.when for rule in self]
        )


@dataclass(frozen=True, slots=True, eq=False)
class DigestRule:
    """A digest rule (`digest:`), kept apart from the engine's condition rules: `cron` is
    its APScheduler CronTrigger, in `tz` (see `service/digest.py`)."""

    name: str
    symbols: tuple[str, ...]
    expression: str
    tz: ZoneInfo
    window: timedelta
    channels: tuple[str, ...]
    line: int
    cron: Any
    urgent: bool = False


@dataclass(frozen=True, slots=True)
class RuleSet:
    """A validated, compiled rule file."""

    rules: tuple[CompiledRule, ...]
    channels: Mapping[str, Channel]
    groups: Mapping[str, tuple[str, ...]]
    disabled: tuple[str, ...] = ()
    by_symbol: Mapping[str, tuple[CompiledRule, ...]] = field(default_factory=dict)
    #: What is valid but probably not meant (`rules: []`), for `check` to print.
    warnings: tuple[Problem, ...] = ()
    #: Digest rules: not in `rules` or `by_symbol` (the engine never sees them), but their
    #: symbols are watched (the calendar).
    digests: tuple[DigestRule, ...] = ()

    @property
    def symbols(self) -> frozenset[str]:
        if not self.digests:
            return frozenset(self.by_symbol)
        return frozenset(self.by_symbol).union(*(d.symbols for d in self.digests))

    def rule(self, name: str) -> CompiledRule | None:
        return next((r for r in self.rules if r.name == name), None)

    def digest(self, name: str) -> DigestRule | None:
        return next((d for d in self.digests if d.name == name), None)

    def summary(self) -> str:
        parts = [
            _count(len(self.rules) + len(self.digests), "rule"),
            _count(len(self.symbols), "symbol"),
            _count(len(self.channels), "channel"),
        ]
        if self.disabled:
            parts.append(f"{len(self.disabled)} disabled")
        return ", ".join(parts)

    def warning_lines(self, source: str) -> list[str]:
        """Every warning as `PATH:LINE:COL: warning: message`."""
        return [
            f"{source}:{w.line}:{w.col}: warning: {w.path + ': ' if w.path else ''}{w.message}"
            for w in self.warnings
        ]


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def load_rules(
    text: str,
    *,
    source: str,
    env: Mapping[str, str],
    channel_configs: Mapping[str, type[BaseModel]],
    channel_check: ChannelCheck | None = None,
    reserved_env: Collection[str] = (),
) -> RuleSet:
    """Validate and compile a rule file, or raise RuleFileError with every problem.

    `channel_check(kind, config)` may add problems about a valid channel's options (the
    caller's SSRF guard, say) as (field, message) pairs. `${NAME}` of a name in
    `reserved_env` (Earnwatch's own secrets) is a problem wherever it is written.
    Whatever the text holds, the outcome is a RuleSet or RuleFileError, never another
    exception."""
    from service.rules.loader import Loader  # it builds the types above

    # The load builds millions of objects and no reference cycle: the cyclic collector
    # would walk them all again and again (a fifth of the time of 100,000 rules).
    collecting = gc.isenabled()
    gc.disable()
    try:
        loader = Loader(text, env, channel_configs, channel_check, reserved_env)
        try:
            ruleset = loader.load()
        except Exception as exc:  # a bug must not crash `check`, a start or a reload
            problem = Problem(
                0, 0, "", f"the rule file could not be validated ({type(exc).__name__})"
            )
            raise RuleFileError(source, [*loader.problems, problem]) from None
    finally:
        if collecting:
            gc.enable()
    if loader.problems or ruleset is None:
        raise RuleFileError(source, loader.problems)
    return ruleset
