"""The steps of `load_rules`: YAML with positions, the models, cross-references (channels,
groups, notify), conditions and templates, every problem collected with its place."""

from __future__ import annotations

import difflib
import hashlib
import json
from collections.abc import Collection, Mapping
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any, Final
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ValidationError

from service.errors import Problem
from service.market import EARNINGS_VARS, NEW_YORK, TIME_VARS
from service.rules import Channel, ChannelCheck, CompiledRule, DigestRule, RuleSet, SymbolRules
from service.rules.checks import (
    EMPTY_RULES,
    NAME_HINT,
    NO_RULES,
    is_name,
    non_ascii,
    pydantic_message,
    restore_text,
)
from service.rules.expr import Compiled, ExprError, Templates, compile_condition
from service.rules.model import (
    SYMBOL,
    DefaultsModel,
    FileModel,
    RuleFields,
    RuleModel,
    plain_rule,
)
from service.rules.places import in_expression, in_template
from service.rules.yamlpos import Document, Path, format_path, parse

if TYPE_CHECKING:  # imported when a rule needs them: Jinja2 for a `message:`, APScheduler
    # for a `digest:` (a file without either loads without both)
    from service.rules.sandbox import BoundedEnvironment
    from service.rules.templates import MessageTemplate


class Loader:
    """One load of one text; `problems` collects every mistake found."""

    def __init__(
        self,
        text: str,
        env: Mapping[str, str],
        channel_configs: Mapping[str, type[BaseModel]],
        channel_check: ChannelCheck | None = None,
        reserved_env: Collection[str] = (),
    ) -> None:
        self.channel_check = channel_check
        self.text = text
        self.doc: Document = parse(text, env, reserved_env)
        self.problems: list[Problem] = list(self.doc.problems)
        self.channel_configs = channel_configs
        self._jinja: BoundedEnvironment | None = None
        #: Conditions compiled so far, by their text: rules whose `when` reads the same
        #: share one compiled condition (a failed one is compiled again where written,
        #: so each place reports its problem).
        self.compiled: dict[str, Compiled] = {}
        #: Their staged trees, for conditions that differ only in their numbers.
        self.templates: Templates = {}
        self.fingerprints: dict[tuple[str, str | None, Any, Any], str] = {}
        #: The names of a rule's conditions -> (reads an earnings variable, one of the
        #: clock): conditions of one template share their names' set.
        self.reads: dict[frozenset[str], tuple[bool, bool]] = {}
        self.symbols: dict[str, str] = {}  # symbols written as valid, upper-case, text
        #: One tuple of each value of the rules' `symbols` and `channels` (see `shared`).
        self.tuples: dict[tuple[str, ...], tuple[str, ...]] = {}

    def shared(self, value: tuple[str, ...]) -> tuple[str, ...]:
        """The one tuple equal to `value` of this load: rules that notify the same channels
        or watch the same symbols (a group, one symbol) hold one tuple, not one each
        (5,000 rules held 5,000 equal `("hook",)`)."""
        return self.tuples.setdefault(value, value)

    # --- reporting -------------------------------------------------------------------
    @cached_property
    def lines(self) -> list[str]:
        """The text's lines, split only for a condition's problem: a valid file's load
        needs none, and 5,000 rules' lines were 1.2 MiB held through the whole load."""
        return self.text.splitlines()

    def problem(self, path: Path, message: str, *, key: bool = False) -> None:
        pos = self.doc.where(path, key=key)
        self.problems.append(Problem(pos.line, pos.col, format_path(path), message))

    def pydantic_problems(self, exc: ValidationError, prefix: Path) -> None:
        for error in exc.errors(include_input=False, include_url=False):
            path = (*prefix, *error["loc"])
            kind = error["type"]
            self.problem(path, pydantic_message(error), key=kind == "extra_forbidden")

    def validate(self, model: type[BaseModel], data: Any, path: Path) -> Any:
        """`model.model_validate(data)`, or None with the problems; an exception other
        than ValidationError (a validator's OverflowError, say) is a problem too."""
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            self.pydantic_problems(exc, path)
        except Exception as exc:
            self.problem(path, f"invalid value ({type(exc).__name__})")
        return None

    # --- the steps -------------------------------------------------------------------
    def load(self) -> RuleSet | None:
        if self.doc.fatal:
            return None
        data = self.doc.data
        if data is None:  # empty, or only comments: what an editor leaves mid-save
            self.problems.append(Problem(0, 0, "", NO_RULES))
            return None
        if not isinstance(data, dict):
            self.problem((), "the rule file must be a mapping with `rules:` at the top")
            return None
        warnings = self.rules_key(data)
        restore_text(data, self.doc.plain)
        raw_rules = data.get("rules")
        if isinstance(raw_rules, list):
            # Each rule is validated on its own below: one pydantic-core call over a big
            # file's every rule would hold the GIL (and a reloading daemon's loop) for long.
            top = self.validate(FileModel, {**data, "rules": []}, ())
        else:
            top = self.validate(FileModel, data, ())
            raw_rules = []
        if top is None:
            return None
        channels = self.channels(top.channels)
        groups = self.groups(top.groups)
        defaults = top.defaults
        self.check_notify(defaults.notify, ("defaults", "notify"), channels)
        compiled: list[CompiledRule] = []
        digests: list[DigestRule] = []
        disabled: list[str] = []
        seen: dict[str, int] = {}
        for index, raw in enumerate(raw_rules):
            # Dropped from the data once read: what the rule keeps is allocated in the
            # place its raw data leaves, not beside the data of every rule still to come.
            raw_rules[index] = None
            rule = self.rule(index, raw, defaults, channels, groups)
            del raw
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
            elif isinstance(built, DigestRule):
                digests.append(built)
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
            by_symbol={s: SymbolRules(s, rs) for s, rs in by_symbol.items()},
            warnings=warnings,
            digests=tuple(digests),
        )

    def rules_key(self, data: dict[str, Any]) -> tuple[Problem, ...]:
        """A file without rules is a bad edit (truncated mid-save, say), not "0 rules";
        an explicit `rules: []` is valid, with a warning."""
        if data.get("rules") is None:  # no `rules:`, or `rules:` with nothing after it
            if "rules" in data:
                self.problem(("rules",), NO_RULES, key=True)
                del data["rules"]  # said once, not again as "input should be a valid list"
            else:
                self.problems.append(Problem(0, 0, "", NO_RULES))
        elif data["rules"] == []:
            pos = self.doc.where(("rules",), key=True)
            return (Problem(pos.line, pos.col, "rules", EMPTY_RULES),)
        return ()

    def channels(self, raw: Mapping[str, Any]) -> dict[str, Channel]:
        out: dict[str, Channel] = {}
        for name, options in raw.items():
            path: Path = ("channels", name)
            if not is_name(name):
                self.problem(path, f"channel name {name!r}: use {NAME_HINT}", key=True)
                continue
            if not isinstance(options, dict) or "type" not in options:
                self.problem(path, "a channel needs `type:` (one of " + self.kinds() + ")")
                continue
            kind = options["type"]
            model = self.channel_configs.get(kind) if isinstance(kind, str) else None
            if model is None:
                self.problem((*path, "type"), f"unknown channel type {kind!r}; use {self.kinds()}")
                continue
            config = self.validate(model, {k: v for k, v in options.items() if k != "type"}, path)
            if config is None:
                continue
            try:
                found = self.channel_check(kind, config) if self.channel_check else []
            except Exception as exc:
                found = [("", f"cannot be checked ({type(exc).__name__})")]
            for field_name, message in found:
                self.problem((*path, field_name) if field_name else path, message)
            out[name] = Channel(name=name, kind=kind, config=config)
        return out

    def kinds(self) -> str:
        return ", ".join(sorted(self.channel_configs)) or "none available"

    def groups(self, raw: Mapping[str, list[str]]) -> dict[str, tuple[str, ...]]:
        out: dict[str, tuple[str, ...]] = {}
        for name, members in raw.items():
            if non_ascii(name) or name != name.strip():
                self.problem(("groups", name), f"group name {name!r}: use {NAME_HINT}", key=True)
            symbols = [self.symbol(m, ("groups", name, i)) for i, m in enumerate(members)]
            out[name] = self.shared(tuple(dict.fromkeys(s for s in symbols if s)))
        return out

    def symbol(self, text: str, path: Path, groups: Mapping[str, Any] | None = None) -> str | None:
        known = self.symbols.get(text)
        if known is not None:
            return known
        symbol = self.check_symbol(text, path, groups)
        if symbol is not None and symbol == text:
            self.symbols[text] = symbol  # valid as written, whatever the groups
        return symbol

    def check_symbol(
        self, text: str, path: Path, groups: Mapping[str, Any] | None = None
    ) -> str | None:
        if non_ascii(text):  # before upper(): "\u0131bm".upper() is "IBM"
            self.problem(path, f"{text!r} is not a symbol: use A-Z 0-9 . - in ASCII")
            return None
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
            known = f"; defined: {', '.join(map(repr, raw_channels))}" if raw_channels else ""
            self.problem((*path, i), f"undefined channel {name!r}{suffix}{known}")

    def rule(
        self,
        index: int,
        raw: Any,
        defaults: DefaultsModel,
        channels: Mapping[str, Channel],
        groups: Mapping[str, tuple[str, ...]],
    ) -> tuple[RuleFields, CompiledRule | DigestRule | None] | None:
        path: Path = ("rules", index)
        if not isinstance(raw, dict):
            self.problem(path, "a rule must be a mapping with name, symbols and when")
            return None
        before = len(self.problems)
        model = plain_rule(raw) or self.rule_model(raw, path)
        if model is None:
            return None
        symbols: list[str] = []
        for i, item in enumerate(model.symbols):
            if item in groups:
                symbols.extend(groups[item])
            else:
                symbol = self.symbols.get(item) or self.symbol(item, (*path, "symbols", i), groups)
                if symbol:
                    symbols.append(symbol)
        notify = model.notify if model.notify is not None else defaults.notify
        self.check_notify(model.notify, (*path, "notify"), channels)
        if model.digest is not None:
            digest = self.digest(model, path, symbols, notify)
            return model, digest if len(self.problems) == before else None
        for key in ("window", "tz"):
            if getattr(model, key) is not None:
                self.problem((*path, key), f"`{key}:` belongs to a digest rule (`digest:`)")
        if model.when is None:
            self.problem(
                path, "a rule needs `when:` (a condition) or `digest:` (a cron expression)"
            )
            return model, None
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
        names = when.names | clear.names if clear else when.names
        kinds = self.reads.get(names)
        if kinds is None:
            kinds = self.reads[names] = (bool(names & EARNINGS_VARS), bool(names & TIME_VARS))
        if model.notify_amended and not kinds[0]:
            self.problem(
                (*path, "notify_amended"),
                "`notify_amended:` needs a rule that fires on a report: its `when` or "
                "`clear_when` must read an earnings variable (e.g. `reported`, `eps_actual`)",
                key=True,
            )
            return model, None
        return model, CompiledRule(
            name=model.name,
            symbols=self.shared(tuple(dict.fromkeys(symbols))),
            when=when,
            clear_when=clear,
            hold=hold or None,
            cooldown=cooldown or None,
            channels=self.shared(tuple(notify or ())),
            template=template,
            fingerprint=self.fingerprint(when, clear, hold, cooldown),
            uses_earnings=kinds[0],
            time_dependent=kinds[1],
            line=self.doc.line(path),
            urgent=model.urgent,
            notify_resolved=model.notify_resolved,
            notify_amended=model.notify_amended,
        )

    def rule_model(self, raw: dict[str, Any], path: Path) -> RuleFields | None:
        """A rule's fields as RuleModel validates them, its problems reported."""
        try:
            return RuleFields.of(RuleModel.model_validate(raw))
        except ValidationError as exc:
            self.pydantic_problems(exc, path)
            # Check the rest of the rule too, so one run names every mistake.
            bad = {e["loc"][0] for e in exc.errors() if e["loc"]}
            try:
                rest = RuleModel.model_validate({k: v for k, v in raw.items() if k not in bad})
            except Exception:
                return None
            return RuleFields.of(rest)
        except Exception as exc:
            self.problem(path, f"invalid rule ({type(exc).__name__})")
            return None

    def digest(
        self, model: RuleFields, path: Path, symbols: list[str], notify: list[str] | None
    ) -> DigestRule | None:
        """A digest rule: a cron expression in `tz` (New York by default), no condition."""
        assert model.digest is not None
        where: Path = (*path, "digest")
        for key in ("when", "clear_when", "for_", "cooldown", "message"):
            if getattr(model, key) is not None:
                shown = key.rstrip("_")
                self.problem(
                    where,
                    f"a digest rule has no `{shown}:` (it lists the coming reports at each "
                    "firing of `digest:`); use two rules",
                    key=True,
                )
        if model.notify_resolved:
            self.problem(where, "a digest rule has no `notify_resolved:`", key=True)
        if model.notify_amended:
            self.problem(where, "a digest rule has no `notify_amended:`", key=True)
        tz = NEW_YORK
        if model.tz is not None:
            try:
                tz = ZoneInfo(model.tz)
            except Exception:
                self.problem((*path, "tz"), f"unknown time zone {model.tz!r} (e.g. Europe/Berlin)")
                return None
        fields = model.digest.split()
        if len(fields) == 5 and any(c.isdigit() for c in fields[4]):
            # APScheduler counts weekday 0 as Monday, cron as Sunday: `1` would be Tuesday.
            self.problem(
                where,
                f"write the weekday of {model.digest!r} by name (mon, tue, ..., sun, or a "
                "range like mon-fri): a number's meaning differs between cron and APScheduler",
            )
            return None
        from apscheduler.triggers.cron import CronTrigger

        try:
            cron = CronTrigger.from_crontab(model.digest, timezone=tz)
        except Exception as exc:
            self.problem(
                where,
                f"invalid cron expression {model.digest!r} (minute hour day month weekday, "
                f"e.g. '0 8 * * mon'): {exc}",
            )
            return None
        window = model.window if model.window is not None else timedelta(days=7)
        if window <= timedelta(0):
            self.problem((*path, "window"), "the window must be longer than zero")
            return None
        return DigestRule(
            name=model.name,
            symbols=tuple(dict.fromkeys(symbols)),
            expression=model.digest,
            tz=tz,
            window=window,
            channels=tuple(notify or ()),
            line=self.doc.line(path),
            cron=cron,
            urgent=model.urgent,
        )

    def condition(self, text: str, path: Path) -> Compiled | None:
        known = self.compiled.get(text)
        if known is not None:
            return known
        try:
            # Before Python's parser, which NFKC-normalises names (a fullwidth p is p).
            where = non_ascii(text)
            if where:
                raise ExprError("a condition is written in ASCII", *where)
            compiled = self.compiled[text] = compile_condition(text, self.templates)
            return compiled
        except ExprError as exc:
            line, col = in_expression(self.doc.where(path), self.lines, text, exc.line, exc.col)
            self.problems.append(Problem(line, col, format_path(path), exc.message))
        except Exception as exc:  # the compiler's own limits (RecursionError), never a crash
            self.problem(path, f"the condition cannot be compiled ({type(exc).__name__})")
        return None

    def fingerprint(
        self,
        when: Compiled,
        clear: Compiled | None,
        hold: timedelta | None,
        cooldown: timedelta | None,
    ) -> str:
        key = (when.source, clear.source if clear else None, hold, cooldown)
        found = self.fingerprints.get(key)
        if found is None:
            found = self.fingerprints[key] = _fingerprint(when, clear, hold, cooldown)
        return found

    def template(self, text: str | None, path: Path) -> MessageTemplate | None:
        if text is None:
            return None
        from service.rules.templates import MessageTemplate, TemplateProblem, make_environment

        if self._jinja is None:
            self._jinja = make_environment()
        try:
            return MessageTemplate(self._jinja, text)
        except TemplateProblem as exc:
            pos = self.doc.where(path)
            line = in_template(pos, exc.line)
            self.problems.append(Problem(line, pos.col, format_path(path), exc.message))
        except Exception as exc:  # the template compiler's own limits, never a crash
            self.problem(path, f"the message cannot be compiled ({type(exc).__name__})")
        return None


def _fingerprint(
    when: Compiled, clear: Compiled | None, hold: timedelta | None, cooldown: timedelta | None
) -> str:
    # json.dumps([when, clear, hold s, cooldown s]) written out (the load does it for each
    # distinct rule): the same text, so the same fingerprints as before.
    key = (
        f"[{_json_text(when.source)}, {_json_text(clear.source) if clear else 'null'}, "
        f"{hold.total_seconds() if hold else 0!r}, {cooldown.total_seconds() if cooldown else 0!r}]"
    )
    return hashlib.sha256(key.encode()).hexdigest()[:16]


#: json.dumps of a string (ASCII-escaped, quoted), without the encoder's set-up.
_json_text: Final = json.encoder.encode_basestring_ascii
