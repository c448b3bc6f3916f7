"""The silence stage: an alert that an operator's silence covers is recorded `silenced`
with the silence's id (`earnwatch history` shows `silence s_...`), and never sent.

Silences live in the database (`earnwatch silence add`), so every replica and every
command sees the same ones. The pipeline awaits `prepare(now)` right before it routes a
pass that fired, so a silence added a moment ago holds for the next alert. When the store
cannot be read, the stage keeps the silences it read last (logged once per failure):
a pass never fails and no alert is dropped because of it. A silence that ends re-sends
nothing: the alerts it covered stay `silenced`.

`matching()` is the whole rule, pure: a silence covers an alert when its rule (if set) and
its symbol (if set) are the alert's, and the alert fired in [starts_at, ends_at).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING

from service.engine import Alert
from service.errors import StoreError
from service.rules import Channel
from service.stages import SEND, Decision
from service.store.types import Silence

if TYPE_CHECKING:
    from service.store import Store

log = logging.getLogger(__name__)


def covers(silence: Silence, alert: Alert) -> bool:
    """`silence` covers `alert`: same rule and symbol where it names them, and the alert
    fired while the silence held."""
    return (
        (silence.rule is None or silence.rule == alert.rule)
        and (silence.symbol is None or silence.symbol == alert.symbol)
        and silence.active(alert.fired_at)
    )


def matching(silences: Iterable[Silence], alert: Alert) -> Silence | None:
    """The first of `silences` (the store gives them oldest first) covering `alert`."""
    return next((s for s in silences if covers(s, alert)), None)


class SilenceStage:
    """Mutes, as `silenced`, every channel of an alert a silence covers."""

    name = "silence"

    def __init__(self, store: Store) -> None:
        self._store = store
        self._silences: tuple[Silence, ...] = ()
        self._failing = False

    async def prepare(self, now: datetime) -> None:
        """Read the silences holding at `now`; on StoreError keep the last ones read."""
        try:
            silences = await asyncio.to_thread(self._store.silences, now)
        except StoreError as exc:
            if not self._failing:
                self._failing = True
                log.error(
                    "silences cannot be read: %s; the %d read last still apply",
                    exc,
                    len(self._silences),
                )
            return
        if self._failing:
            self._failing = False
            log.warning("silences can be read again: %d active", len(silences))
        self._silences = tuple(silences)

    def decide(self, alert: Alert, channel: Channel, now: datetime) -> Decision:
        silence = matching(self._silences, alert)
        if silence is None:
            return SEND
        return Decision.mute(f"silence {silence.id}", status="silenced")
