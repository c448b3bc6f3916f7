"""The rule file: text in, a compiled RuleSet out, or RuleFileError listing every problem.

`load_rules` never reads files, the environment or the clock: callers pass the text and
the variables `${VAR}` may use, and the channel option models of the notifiers (the rule
loader must not import adapters).
"""

from __future__ import annotations

import difflib
import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from service.errors import Problem, RuleFileError
from service.market import EARNINGS_VARS, TIME_VARS, Value
from service.rules.expr import Compiled, ExprError, compile_condition
from service.rules.model import SYMBOL, DefaultsModel, FileModel, RuleModel
from service.rules.templates import (
    MessageTemplate,
    TemplateProblem,
    cap_message,
    default_message,
    make_environment,
)
from service.rules.yamlpos import Document, Path, format_path, parse

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


@dataclass(frozen=True, slots=True)
class RuleSet:
    """A validated, compiled rule file."""

    rules: tuple[CompiledRule, ...]
    channels: Mapping[str, Channel]
    groups: Mapping[str, tuple[str, ...]]
    disabled: tuple[str, ...] = ()
    by_symbol: Mapping[str, tuple[CompiledRule, ...]] = field(default_factory=dict)

    @property
    def symbols(self) -> frozenset[str]:
        return frozenset(self.by_symbol)

    def rule(self, name: str) -> CompiledRule | None:
        return next((r for r in self.rules if r.name == name), None)

    def summary(self) -> str:
        parts = [
            _count(len(self.rules), "rule"),
            _count(len(self.symbols), "symbol"),
            _count(len(self.channels), "channel"),
        ]
        if self.disabled:
            parts.append(f"{len(self.disabled)} disabled")
        return ", ".join(parts)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def load_rules(
    text: str,
    *,
    source: str,
    env: Mapping[str, str],
    channel_configs: Mapping[str, type[BaseModel]],
    channel_check: ChannelCheck | None = None,
) -> RuleSet:
    """Validate and compile a rule file, or raise RuleFileError with every problem.

    `channel_check(kind, config)` may add problems about a valid channel's options (the
    caller's SSRF guard, say) as (field, message) pairs."""
    loader = _Loader(text, env, channel_configs, channel_check)
    ruleset = loader.load()
    if loader.problems or ruleset is None:
        raise RuleFileError(source, loader.problems)
    return ruleset


class _Loader:
    def __init__(
        self,
        text: str,
        env: Mapping[str, str],
        channel_configs: Mapping[str, type[BaseModel]],
        channel_check: ChannelCheck | None = None,
    ) -> None:
        self.channel_check = channel_check
        self.lines = text.splitlines()
        self.doc: Document = parse(text, env)
        self.problems: list[Problem] = list(self.doc.problems)
        self.channel_configs = channel_configs
        self.jinja = make_environment()

    # --- reporting -------------------------------------------------------------------
    def problem(self, path: Path, message: str, *, key: bool = False) -> None:
        pos = self.doc.where(path, key=key)
        self.problems.append(Problem(pos.line, pos.col, format_path(path), message))

    def pydantic_problems(self, exc: ValidationError, prefix: Path) -> None:
        for error in exc.errors(include_input=False, include_url=False):
            path = (*prefix, *error["loc"])
            kind = error["type"]
            self.problem(path, _pydantic_message(error), key=kind == "extra_forbidden")

    # --- the steps -------------------------------------------------------------------
    def load(self) -> RuleSet | None:
        if any(p.message.startswith("YAML") for p in self.problems):
            return None
        data = self.doc.data
        if not isinstance(data, dict):
            self.problem((), "the rule file must be a mapping with `rules:` at the top")
            return None
        try:
            top = FileModel.model_validate(data)
        except ValidationError as exc:
            self.pydantic_problems(exc, ())
            return None
        channels = self.channels(top.channels)
        groups = self.groups(top.groups)
        defaults = top.defaults
        self.check_notify(defaults.notify, ("defaults", "notify"), channels)
        compiled: list[CompiledRule] = []
        disabled: list[str] = []
        seen: dict[str, int] = {}
        for index, raw in enumerate(top.rules):
            rule = self.rule(index, raw, defaults, channels, groups)
            if rule is None:
                continue
            model, built = rule
            if model.name in seen:
                self.problem(
                    ("rules", index, "name"),
                    f"duplicate rule name {model.name!r} (first used by rules[{seen[model.name]}])",
                )
                continue
            seen[model.name] = index
            if not model.enabled:
                disabled.append(model.name)
            elif built is not None:
                compiled.append(built)
        if self.problems:
            return None
        by_symbol: dict[str, list[CompiledRule]] = {}
        for built in compiled:
            for symbol in built.symbols:
                by_symbol.setdefault(symbol, []).append(built)
        return RuleSet(
            rules=tuple(compiled),
            channels=channels,
            groups=groups,
            disabled=tuple(disabled),
            by_symbol={s: tuple(rs) for s, rs in by_symbol.items()},
        )

    def channels(self, raw: Mapping[str, Any]) -> dict[str, Channel]:
        out: dict[str, Channel] = {}
        for name, options in raw.items():
            path: Path = ("channels", name)
            if not isinstance(options, dict) or "type" not in options:
                self.problem(path, "a channel needs `type:` (one of " + self.kinds() + ")")
                continue
            kind = options["type"]
            model = self.channel_configs.get(kind) if isinstance(kind, str) else None
            if model is None:
                self.problem((*path, "type"), f"unknown channel type {kind!r}; use {self.kinds()}")
                continue
            try:
                config = model.model_validate({k: v for k, v in options.items() if k != "type"})
            except ValidationError as exc:
                self.pydantic_problems(exc, path)
                continue
            for field_name, message in (
                self.channel_check(kind, config) if self.channel_check else ()
            ):
                self.problem((*path, field_name), message)
            out[name] = Channel(name=name, kind=kind, config=config)
        return out

    def kinds(self) -> str:
        return ", ".join(sorted(self.channel_configs)) or "none available"

    def groups(self, raw: Mapping[str, list[str]]) -> dict[str, tuple[str, ...]]:
        out: dict[str, tuple[str, ...]] = {}
        for name, members in raw.items():
            symbols = [self.symbol(m, ("groups", name, i)) for i, m in enumerate(members)]
            out[name] = tuple(dict.fromkeys(s for s in symbols if s))
        return out

    def symbol(self, text: str, path: Path, groups: Mapping[str, Any] | None = None) -> str | None:
        symbol = str(text).strip().upper()
        if groups is not None and text != symbol:
            hint = difflib.get_close_matches(text, list(groups), n=1)
            if hint:
                self.problem(path, f"unknown group {text!r} (did you mean {hint[0]!r}?)")
                return None
        if not SYMBOL.match(symbol):
            extra = f"; groups are {', '.join(groups)}" if groups else ""
            self.problem(
                path, f"{text!r} is not a symbol (1-10 characters of A-Z 0-9 . -) or a group{extra}"
            )
            return None
        return symbol

    def check_notify(
        self, names: list[str] | None, path: Path, channels: Mapping[str, Any]
    ) -> None:
        raw_channels = self.doc.data.get("channels") or {}
        for i, name in enumerate(names or []):
            if name in channels or name in raw_channels:
                continue
            hint = difflib.get_close_matches(name, list(raw_channels), n=1)
            suffix = f" (did you mean {hint[0]!r}?)" if hint else ""
            known = f"; defined: {', '.join(raw_channels)}" if raw_channels else ""
            self.problem((*path, i), f"undefined channel {name!r}{suffix}{known}")

    def rule(
        self,
        index: int,
        raw: Any,
        defaults: DefaultsModel,
        channels: Mapping[str, Channel],
        groups: Mapping[str, tuple[str, ...]],
    ) -> tuple[RuleModel, CompiledRule | None] | None:
        path: Path = ("rules", index)
        if not isinstance(raw, dict):
            self.problem(path, "a rule must be a mapping with name, symbols and when")
            return None
        before = len(self.problems)
        try:
            model = RuleModel.model_validate(raw)
        except ValidationError as exc:
            self.pydantic_problems(exc, path)
            # Check the rest of the rule too, so one run names every mistake.
            bad = {e["loc"][0] for e in exc.errors() if e["loc"]}
            try:
                model = RuleModel.model_validate({k: v for k, v in raw.items() if k not in bad})
            except ValidationError:
                return None
        symbols: list[str] = []
        for i, item in enumerate(model.symbols):
            if item in groups:
                symbols.extend(groups[item])
            else:
                symbol = self.symbol(item, (*path, "symbols", i), groups)
                if symbol:
                    symbols.append(symbol)
        notify = model.notify if model.notify is not None else defaults.notify
        self.check_notify(model.notify, (*path, "notify"), channels)
        when = self.condition(model.when, (*path, "when"))
        clear = (
            self.condition(model.clear_when, (*path, "clear_when")) if model.clear_when else None
        )
        message = model.message if model.message is not None else defaults.message
        template = self.template(
            message, (*path, "message") if model.message else ("defaults", "message")
        )
        if len(self.problems) > before or when is None:
            return model, None
        hold = model.for_ if model.for_ is not None else defaults.for_
        cooldown = model.cooldown if model.cooldown is not None else defaults.cooldown
        names = when.names | (clear.names if clear else frozenset())
        return model, CompiledRule(
            name=model.name,
            symbols=tuple(dict.fromkeys(symbols)),
            when=when,
            clear_when=clear,
            hold=hold or None,
            cooldown=cooldown or None,
            channels=tuple(notify or ()),
            template=template,
            fingerprint=_fingerprint(when, clear, hold, cooldown),
            uses_earnings=bool(names & EARNINGS_VARS),
            time_dependent=bool(names & TIME_VARS),
            line=self.doc.where(path).line,
        )

    def condition(self, text: str, path: Path) -> Compiled | None:
        try:
            return compile_condition(text)
        except ExprError as exc:
            line, col = self.locate(path, text, exc)
            self.problems.append(Problem(line, col, format_path(path), exc.message))
            return None

    def locate(self, path: Path, text: str, exc: ExprError) -> tuple[int, int]:
        """The file position of a mistake inside an expression."""
        pos = self.doc.where(path)
        stripped_lead = len(text) - len(text.lstrip())
        if pos.single_line and pos.style in (None, '"', "'"):
            quote = 1 if pos.style else 0
            return pos.line, pos.col + quote + stripped_lead + exc.col
        # A block or multi-line scalar: find the offending text in the lines that follow.
        body = text.strip().splitlines()
        snippet = body[exc.line - 1][exc.col :][:24].strip() if exc.line <= len(body) else ""
        for number in range(pos.line - 1, min(len(self.lines), pos.line + 40)):
            found = self.lines[number].find(snippet) if snippet else -1
            if found >= 0:
                return number + 1, found + 1
        return pos.line, pos.col

    def template(self, text: str | None, path: Path) -> MessageTemplate | None:
        if text is None:
            return None
        try:
            return MessageTemplate(self.jinja, text)
        except TemplateProblem as exc:
            pos = self.doc.where(path)
            line = pos.line + (exc.line - 1 if pos.single_line else exc.line)
            if pos.style in ("|", ">") or not pos.single_line:
                line = pos.line + exc.line if pos.style in ("|", ">") else pos.line + exc.line - 1
            self.problems.append(Problem(line, pos.col, format_path(path), exc.message))
            return None


def _pydantic_message(error: ErrorDetails) -> str:
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


def _fingerprint(
    when: Compiled, clear: Compiled | None, hold: timedelta | None, cooldown: timedelta | None
) -> str:
    key = json.dumps(
        [
            when.source,
            clear.source if clear else None,
            hold.total_seconds() if hold else 0,
            cooldown.total_seconds() if cooldown else 0,
        ]
    )
    return hashlib.sha256(key.encode()).hexdigest()[:16]
