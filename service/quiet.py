"""Quiet hours of a channel: the rule file's `quiet_hours:` model, the window arithmetic,
and the stage that defers a delivery due inside a window to the window's end.

    channels:
      me:
        type: email
        to: me@example.com
        quiet_hours: {from: "22:00", to: "07:00", tz: America/New_York, days: [mon, tue]}

A window starts at `from` on each listed day (local time in `tz`) and ends at the next
`to`: the next day's when `to` is not after `from` (it crosses midnight). A delivery due
inside a window is deferred to its end, never dropped; a rule with `urgent: true` passes.

Wall-clock times are read as `datetime` reads them (PEP 495, `fold=0`), so a window keeps
its wall-clock ends across a DST change (22:00-07:00 is one hour shorter on the
spring-forward night): a time that night skips (02:30 when clocks jump from 02:00 to
03:00) is read with the offset before the jump, which is 03:30 after it; a time that
occurs twice (01:30 on the fall-back night) is its first occurrence.

DOMAIN: pure; stdlib (`zoneinfo` reads the tz database) and pydantic. `now` is handed in.
"""

from __future__ import annotations

import difflib
import re
import zoneinfo
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import TYPE_CHECKING, Annotated, Any, Final, Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationInfo, field_validator

from service.stages import SEND, Decision

if TYPE_CHECKING:
    from service.engine import Alert
    from service.rules import Channel

Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
#: In `date.weekday()` order.
DAYS: Final[tuple[Day, ...]] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DEFAULT_TZ: Final = "America/New_York"

_CLOCK: Final = re.compile(r"^([01]?[0-9]|2[0-3]):([0-5][0-9])$")
_CLOCK_HINT: Final = 'a time of day is written "HH:MM", from 00:00 to 23:59'


def _clock(value: Any) -> str:
    """`HH:MM` (an hour of one digit is padded). The loader hands over the text as typed,
    also for an unquoted 22:00, which YAML 1.1 reads as the number 1320."""
    if not isinstance(value, str):
        raise ValueError(_CLOCK_HINT)
    found = _CLOCK.match(value)
    if found is None:
        raise ValueError(f"{_CLOCK_HINT}, not {value[:20]!r}")
    return f"{int(found.group(1)):02d}:{found.group(2)}"


def _clock_schema(schema: dict[str, Any]) -> None:
    # A JSON Schema reader of YAML 1.1 (PyYAML, editors) sees an unquoted 22:00 as 1320
    # (sexagesimal), which `check` reads as the text it is: the schema takes both.
    schema.clear()
    schema["anyOf"] = [
        {"type": "string", "pattern": _CLOCK.pattern},
        {"type": "integer", "minimum": 60, "maximum": 23 * 60 + 59},
    ]
    schema["description"] = '"HH:MM", local time in `tz`'


TimeOfDay = Annotated[str, BeforeValidator(_clock), Field(json_schema_extra=_clock_schema)]


class QuietHours(BaseModel):
    """`quiet_hours:` of a channel, as written."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    start: TimeOfDay = Field(alias="from")
    end: TimeOfDay = Field(alias="to")
    tz: str = Field(DEFAULT_TZ, description="IANA time zone of from and to")
    days: tuple[Day, ...] = Field(
        DAYS, min_length=1, description="the days on which a window starts (default: every day)"
    )

    @field_validator("end")
    @classmethod
    def _not_empty(cls, value: str, info: ValidationInfo) -> str:
        if value == info.data.get("start"):
            raise ValueError("`to` must differ from `from` (the window would be empty)")
        return value

    @field_validator("tz")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        if _zone(value) is None:
            hint = difflib.get_close_matches(value, sorted(_zone_names()), n=1)
            suffix = f" (did you mean {hint[0]!r}?)" if hint else ""
            raise ValueError(
                f"unknown time zone {value[:60]!r}{suffix}: use an IANA name such as "
                "America/New_York, Europe/London or UTC"
            )
        return value

    @property
    def zone(self) -> ZoneInfo:
        zone = _zone(self.tz)
        assert zone is not None  # validated
        return zone

    @property
    def starts_at(self) -> time:
        return _time(self.start)

    @property
    def ends_at(self) -> time:
        return _time(self.end)


def window_end(quiet: QuietHours, now: datetime) -> datetime | None:
    """The end (aware, UTC) of the window of `quiet` that contains `now`, or None when
    `now` is outside every window. A window holds from its start (included) to its end
    (excluded); it starts on a listed day, so one that started on a listed evening and
    crosses midnight still holds the next morning, whatever that day is."""
    if now.tzinfo is None:
        raise ValueError("window_end needs a timezone-aware `now`")
    zone, start, end = quiet.zone, quiet.starts_at, quiet.ends_at
    at = now.astimezone(UTC)
    today = now.astimezone(zone).date()
    # A window is shorter than a day, so only one that started today or yesterday can
    # hold now; two windows never overlap (from != to leaves a gap between them).
    for day in (today - timedelta(days=1), today):
        if DAYS[day.weekday()] not in quiet.days:
            continue
        opens = _instant(day, start, zone)
        closes = _instant(day if end > start else day + timedelta(days=1), end, zone)
        if opens <= at < closes:
            return closes
    return None


@dataclass(slots=True)
class QuietHoursStage:
    """Defers a delivery due inside its channel's quiet hours to the window's end; an
    urgent alert, or a channel without quiet hours, passes. Decided once, when the alert
    is routed: a retry after a failed send is not deferred again."""

    name: str = "quiet hours"

    def decide(self, alert: Alert, channel: Channel, now: datetime) -> Decision:
        quiet = getattr(channel.config, "quiet_hours", None)
        if alert.urgent or not isinstance(quiet, QuietHours):
            return SEND
        end = window_end(quiet, now)
        if end is None:
            return SEND
        local = end.astimezone(quiet.zone)
        return Decision.defer(end, f"quiet hours of {channel.name} until {local:%H:%M %Z}")


def _instant(day: date, at: time, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, at, tzinfo=zone).astimezone(UTC)


def _time(text: str) -> time:
    hours, minutes = text.split(":")
    return time(int(hours), int(minutes))


@lru_cache(maxsize=64)
def _zone(name: str) -> ZoneInfo | None:
    if not name or len(name) > 64:
        return None
    try:
        return ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        return None


@lru_cache(maxsize=1)
def _zone_names() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())
