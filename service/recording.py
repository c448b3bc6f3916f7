"""Writing each evaluation pass to the store, so that no alert is lost on the way.

Promises:
- An alert the engine fired is stored, or kept in memory (with the rule states of its
  pass) and tried again with every following pass until the store takes it: a database
  that cannot be written at the moment of a crossing delays the alert, never loses it,
  even when the price has reverted by the next pass. While recording fails, `/healthz`
  says so (`HealthState.mark_recording_failure`) and one line is logged per change.
- An alert the store drops as a duplicate (its dedup key already stored) is logged and
  counted as such, never logged as a new alert, and never sent again.
- Only alerts actually inserted are logged as `alert ...`, counted in
  `earnwatch_alerts_fired_total` (resolved messages in `earnwatch_alerts_resolved_total`)
  and wake delivery.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Final

from service.engine import Alert, RuleState
from service.errors import StoreError
from service.health import HealthState
from service.metrics import Metrics
from service.notify.base import Message
from service.notify.render import render
from service.stages import Decision
from service.store import Store

log = logging.getLogger(__name__)

#: Alerts held in memory at most while the database cannot be written. Rules are
#: edge-triggered, so this is thousands of crossings; past it the oldest are dropped,
#: loudly, rather than letting memory grow without bound.
MAX_UNRECORDED: Final = 10_000

#: One alert waiting to be stored: the alert, and per channel (channel, kind, what the
#: stages decided) at firing time.
Pending = tuple[Alert, tuple[tuple[str, str, Decision], ...]]


class Recorder:
    """Stores alerts and rule states, keeping what the store refused for the next pass."""

    def __init__(
        self,
        store: Store,
        metrics: Metrics,
        health: HealthState,
        on_alerts: Callable[[], None] = lambda: None,
    ) -> None:
        self.store = store
        self.metrics = metrics
        self.health = health
        self.on_alerts = on_alerts
        self.pending: list[Pending] = []
        self.pending_states: dict[tuple[str, str], RuleState] = {}
        self._failing: str | None = None  # the first recording error of this outage
        self._reasons: set[str] = set()  # the errors this outage has logged

    @property
    def waiting(self) -> bool:
        """Alerts or states are waiting for the store."""
        return bool(self.pending or self.pending_states)

    def forget_states(self) -> None:
        """Drop the states waiting to be stored (the caller reloaded newer ones from the
        store, e.g. on becoming leader); waiting alerts are still stored."""
        self.pending_states.clear()

    async def record(
        self,
        alerts: Sequence[Pending],
        states: Mapping[tuple[str, str], RuleState],
        now: datetime,
    ) -> list[str]:
        """Store `alerts` and `states` after whatever earlier passes left waiting, in one
        transaction. Returns the ids of the alerts newly stored; on StoreError keeps
        everything for the next call and returns []."""
        self.pending.extend(alerts)
        self.pending_states.update(states)
        self._cap()
        if not self.waiting:
            return []
        batch = list(self.pending)
        tried: dict[str, Alert] = {}

        def tracked(alert: Alert, alert_id: str) -> Message:
            tried[alert_id] = alert  # which id the store gave which alert
            return render(alert, alert_id)

        try:
            inserted = await asyncio.to_thread(
                self.store.record,
                [(alert, tracked, channels) for alert, channels in batch],
                dict(self.pending_states),
                now,
            )
        except StoreError as exc:
            self._failed(exc, now)
            return []
        del self.pending[: len(batch)]
        self.pending_states.clear()
        self._recovered(now, len(batch))
        stored = {id(tried[alert_id]) for alert_id in inserted if alert_id in tried}
        for alert, channels in batch:
            if id(alert) in stored:
                if alert.kind == "resolved":
                    self.metrics.alert_resolved(alert.rule)
                elif alert.kind == "amended":
                    self.metrics.alert_amended(alert.rule)
                else:
                    self.metrics.alert_fired(alert.rule)
                log.info("alert %s %s: %s", alert.rule, alert.symbol, alert.text)
                self._held(alert, channels)
            else:
                self.metrics.alert_deduplicated(alert.rule)
                # A re-arm after an edge the cooldown or the report consumed derives the
                # key of a resolved message already sent, and a correction seen again
                # (figures flipping back and forth) its amended message's: expected.
                log.log(
                    logging.INFO if alert.kind != "fired" else logging.WARNING,
                    "alert %s for %s already recorded (dedup key %s): not sent again",
                    alert.rule,
                    alert.symbol,
                    alert.dedup_key,
                )
        if inserted:
            self.on_alerts()
        return inserted

    def _held(self, alert: Alert, channels: tuple[tuple[str, str, Decision], ...]) -> None:
        """Log and count each channel a stage muted or deferred (recorded, not dropped),
        and count the alert once as silenced when a silence stopped any of its channels."""
        silenced = False
        for channel, _, decision in channels:
            if decision.action == "send":
                continue
            self.metrics.delivery_held(decision.action)
            silenced = silenced or (decision.action == "mute" and decision.status == "silenced")
            when = f" until {decision.until.isoformat()}" if decision.until else ""
            log.info(
                "alert %s %s on %s: %s%s (%s)",
                alert.rule,
                alert.symbol,
                channel,
                decision.status if decision.action == "mute" else "deferred",
                when,
                decision.reason,
            )
        if silenced:
            self.metrics.alert_silenced(alert.rule)

    def _cap(self) -> None:
        excess = len(self.pending) - MAX_UNRECORDED
        if excess > 0:
            dropped = self.pending[:excess]
            del self.pending[:excess]
            log.error(
                "%d alert(s) dropped: the database has refused writes for too long and at "
                "most %d alerts are kept in memory (oldest dropped: %s %s at %s)",
                excess,
                MAX_UNRECORDED,
                dropped[0][0].rule,
                dropped[0][0].symbol,
                dropped[0][0].fired_at.isoformat(),
            )
        self.metrics.set_unrecorded(len(self.pending))

    def _failed(self, exc: StoreError, now: datetime) -> None:
        reason = str(exc)
        self.metrics.recording_failed()
        self.health.mark_recording_failure(now, reason)
        # One error line an outage, and one line for each other reason it gives (SQLite
        # under a read-only lock alternates "disk I/O error" and "readonly database": two
        # lines, not one a pass).
        if self._failing is None:
            self._failing = reason
            self._reasons = {reason}
            log.error(
                "recording failed: %s; %d alert(s) kept in memory, retried at every "
                "evaluation until stored",
                reason,
                len(self.pending),
            )
        elif reason not in self._reasons:
            self._reasons.add(reason)
            log.warning("recording still failing, now with: %s", reason)

    def _recovered(self, now: datetime, count: int) -> None:
        self.health.mark_recording_success(now)
        self.metrics.set_unrecorded(len(self.pending))
        if self._failing is not None:
            self._failing = None
            log.warning("recording works again: %d alert(s) kept in memory now stored", count)
