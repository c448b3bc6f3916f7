"""The rule file's structure as strict pydantic models: a misspelt key is an error, not
ignored. Cross-references (channels, groups) are checked in `rules/__init__.py`."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

from service.durations import parse_duration

SYMBOL: Final = re.compile(r"^[A-Z0-9.\-]{1,10}$")
NAME: Final = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}$"


def _duration(value: Any) -> timedelta:
    if isinstance(value, timedelta):
        return value
    if not isinstance(value, str):
        raise ValueError("a duration is written like 30s, 10m, 4h or 2d")
    return parse_duration(value)


def _one_or_many(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


def one_or_many_schema(schema: dict[str, Any]) -> None:
    """JSON Schema of a field that takes one string or a list (`symbols: ai-infra`), for
    `Field(json_schema_extra=...)`: the list's own schema becomes one branch of anyOf."""
    branch = {k: schema.pop(k) for k in list(schema) if k not in ("title", "description")}
    schema["anyOf"] = [{"type": "string"}, branch]


Duration = Annotated[
    timedelta,
    BeforeValidator(_duration),
    # What parse_duration takes, spaces included; values past its bound fail only `check`.
    Field(json_schema_extra={"type": "string", "pattern": r"^\s*\d+(\.\d+)?\s*[smhd]\s*$"}),
]
Names = Annotated[
    list[str], BeforeValidator(_one_or_many), Field(json_schema_extra=one_or_many_schema)
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class DefaultsModel(_Strict):
    """Values every rule gets unless it sets its own."""

    notify: Names | None = Field(None, description="channel names to notify")
    cooldown: Duration | None = Field(None, description="no second alert sooner, per symbol")
    for_: Duration | None = Field(None, alias="for", description="hold this long before firing")
    message: str | None = Field(None, description="Jinja2 template of the message")


class RuleModel(_Strict):
    """One rule, as written. Built at its first use: the loader's fast path (`plain_rule`)
    reads a plainly written rule without it, so `check` of a plain file never builds it."""

    model_config = ConfigDict(defer_build=True)

    name: str = Field(pattern=NAME, description="unique name of the rule")
    symbols: Names = Field(min_length=1, description="symbols and/or group names")
    when: str | None = Field(
        None, description="condition that fires the rule (edge-triggered); not with digest"
    )
    clear_when: str | None = Field(None, description="condition that re-arms the rule")
    for_: Duration | None = Field(None, alias="for", description="hold this long before firing")
    cooldown: Duration | None = None
    notify: Names | None = None
    message: str | None = None
    notify_resolved: bool = Field(
        False, description="one more message when the rule re-arms after firing"
    )
    notify_amended: bool = Field(
        False, description="one more message when the reported figures are corrected"
    )
    enabled: bool = Field(True, description="false keeps the rule in the file but idle")
    urgent: bool = Field(False, description="true ignores the channels' quiet hours")
    description: str | None = None
    digest: str | None = Field(
        None,
        description="a cron expression (e.g. '0 8 * * mon'): the rule is a digest of its "
        "symbols' coming reports, sent at each firing, instead of a condition",
    )
    window: Duration | None = Field(
        None, description="for a digest: list the reports of this long ahead (default 7d)"
    )
    tz: str | None = Field(
        None, description="for a digest: the cron's time zone (default America/New_York)"
    )

    @field_validator("when", "clear_when")
    @classmethod
    def _not_blank(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("the condition is empty")
        return value


@dataclass(slots=True)
class RuleFields:
    """A valid rule's fields (those of RuleModel), as the loader reads them: what
    `plain_rule` builds without pydantic, or `of` takes from a validated RuleModel."""

    name: str
    symbols: list[str]
    when: str | None = None
    clear_when: str | None = None
    for_: timedelta | None = None
    cooldown: timedelta | None = None
    notify: list[str] | None = None
    message: str | None = None
    notify_resolved: bool = False
    notify_amended: bool = False
    enabled: bool = True
    urgent: bool = False
    description: str | None = None
    digest: str | None = None
    window: timedelta | None = None
    tz: str | None = None

    @classmethod
    def of(cls, model: RuleModel) -> RuleFields:
        return cls(**{name: getattr(model, name) for name in RuleModel.model_fields})


_NAME_TEXT: Final = re.compile(NAME.removeprefix("^").removesuffix("$"))
_CONDITIONS: Final = frozenset({"when", "clear_when"})
_TEXTS: Final = frozenset({"message", "description", "digest", "tz"})
_FLAGS: Final = frozenset({"notify_resolved", "notify_amended", "enabled", "urgent"})
_DURATIONS: Final = {"for": "for_", "cooldown": "cooldown", "window": "window"}


def plain_rule(raw: dict[str, Any]) -> RuleFields | None:
    """The fields of a rule written the plain way (each value of the type its field
    holds: text, true/false, a list of texts, a duration's text), as RuleModel would
    validate them, or None for anything else: RuleModel then validates it (and words
    what is wrong). A file's every rule is checked, so this is the loader's fast path."""
    fields: dict[str, Any] = {}
    for key, value in raw.items():
        if key in _CONDITIONS or key in _TEXTS:
            if value is not None and (
                type(value) is not str or (key in _CONDITIONS and not value.strip())
            ):
                return None
            fields[key] = value
        elif key == "name":
            if type(value) is not str or _NAME_TEXT.fullmatch(value) is None:
                return None
            fields[key] = value
        elif key == "symbols" or key == "notify":
            if type(value) is str:
                fields[key] = [value]
            elif type(value) is list and all(type(item) is str for item in value):
                if key == "symbols" and not value:
                    return None
                fields[key] = list(value)
            elif value is None and key == "notify":
                fields[key] = None
            else:
                return None
        elif key in _FLAGS:
            if type(value) is not bool:
                return None
            fields[key] = value
        elif key in _DURATIONS:
            if value is not None:
                try:
                    value = _duration(value)
                except Exception:
                    return None
            fields[_DURATIONS[key]] = value
        else:
            return None  # unknown (or `for_`, which pydantic also takes)
    if "name" not in fields or "symbols" not in fields:
        return None
    return RuleFields(**fields)


class ChannelModel(BaseModel):
    """A channel: `type` picks the channel kind; its other keys are that kind's options."""

    model_config = ConfigDict(extra="allow", frozen=True, defer_build=True)

    type: str


class FileModel(_Strict):
    """The whole rule file."""

    version: Literal[1] = 1
    channels: dict[str, dict[str, Any]] = Field(default_factory=dict)
    groups: dict[str, Names] = Field(default_factory=dict)
    defaults: DefaultsModel = Field(default_factory=DefaultsModel)
    rules: list[dict[str, Any]] = Field(default_factory=list)
