"""The stages between the engine's decisions and the outbox: what becomes of an alert on
one channel before it is stored.

    engine fires an Alert -> for each of its channels, the stages in order -> a Decision
    -> the outbox records it: `send` (pending), `mute` (kept, never sent) or `defer`
       (sent once its time comes, with its original `fired_at`)

A stage is a small object with one method, `decide(alert, channel, now)`, answering
`SEND` (no objection), `Decision.mute(reason)` or `Decision.defer(until, reason)`. The
first mute ends the walk (Alertmanager's MuteStage: nothing after a mute can send it); a
defer waits for the latest time any stage asks for, and a later stage may still mute.
The list a process runs is built in one place, `service/app.py` (`stages_for`), so a
reader sees every stage and its order there. A muted or deferred outcome is recorded with
its reason, never dropped: `earnwatch history` shows it.

Pure: no IO, no clock reads (`now` is handed in), so stages are tested with plain values.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Literal, Protocol, runtime_checkable

if TYPE_CHECKING:  # annotations only: the channel registry imports this module via quiet hours
    from service.engine import Alert
    from service.rules import Channel

Action = Literal["send", "mute", "defer"]
#: How the outbox records a mute: `silenced` for a silence, `muted` for any other stage.
MuteStatus = Literal["muted", "silenced"]


@dataclass(frozen=True, slots=True)
class Decision:
    """What the stages decided for one alert on one channel."""

    action: Action = "send"
    reason: str | None = None  # which stage, and why: shown by `history`
    until: datetime | None = None  # for `defer`: not sent before this moment
    status: MuteStatus = "muted"  # for `mute`: the delivery's status in the outbox

    @classmethod
    def mute(cls, reason: str, *, status: MuteStatus = "muted") -> Decision:
        return cls("mute", reason, status=status)

    @classmethod
    def defer(cls, until: datetime, reason: str) -> Decision:
        if until.tzinfo is None:
            raise ValueError("a deferral needs a timezone-aware time")
        return cls("defer", reason, until)


SEND = Decision()


class Stage(Protocol):
    """One decision about an alert on one channel."""

    name: str

    def decide(self, alert: Alert, channel: Channel, now: datetime) -> Decision: ...


@runtime_checkable
class PreparedStage(Stage, Protocol):
    """A stage that decides from what it reads first (the silences in the store): the
    pipeline awaits `prepare(now)` before routing a pass's alerts, and only when the pass
    fired any, so a stage costs nothing while nothing fires. `decide` stays pure."""

    async def prepare(self, now: datetime) -> None: ...


def route(stages: Iterable[Stage], alert: Alert, channel: Channel, now: datetime) -> Decision:
    """The stages' decision for `alert` on `channel`, in order: the first mute wins; of the
    deferrals, the latest; otherwise SEND."""
    deferred: Decision | None = None
    for stage in stages:
        decision = stage.decide(alert, channel, now)
        if decision.action == "mute":
            return decision
        if decision.action == "defer" and _later(decision, deferred):
            deferred = decision
    return deferred or SEND


def _later(decision: Decision, than: Decision | None) -> bool:
    if than is None or than.until is None:
        return True
    return decision.until is not None and decision.until > than.until
