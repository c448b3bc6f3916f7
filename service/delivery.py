"""The outbox worker: claim due deliveries, send each once, record the attempt, decide.

Promises:
- Retry policy lives here, once: notifiers make one attempt and report. `compute_backoff` is
  pure (exponential, ±50 % jitter, capped; never sooner than the receiver's Retry-After,
  itself capped at 300 s).
- Every attempt is recorded with its time, outcome, HTTP status and (already redacted)
  error, together with the delivery's new state, in one transaction. A delivery becomes
  `delivered` only after the notifier returned, `dead` on a permanent error, after
  `max_attempts`, past `max_age`, or when its channel left the rule file.
- Channel configs (which hold the secrets) are looked up by name at send time, never stored.
- An unexpected exception from a notifier is recorded as `error` and retried; it never stops
  the worker. Database work runs in threads (`asyncio.to_thread`), sends run under a
  semaphore of `concurrency`.
- Cancelling `run()` or `run_once()` is how a crash looks: in-flight sends are abandoned,
  their rows stay `sending` and are sent again once the lease runs out. Setting the `stop`
  event is the graceful way: no new claims, in-flight sends finish and are recorded.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Literal

from service.clock import Clock
from service.errors import DeliveryError, StoreError
from service.notify.base import ChannelConfig, Notifier
from service.store import AttemptRecord, ClaimedDelivery, Outcome, Status, Store

logger = logging.getLogger(__name__)

#: A receiver's Retry-After is honoured up to this many seconds.
RETRY_AFTER_CAP = 300.0


def compute_backoff(
    attempts: int,
    *,
    retry_after: float | None,
    rng: random.Random,
    base: float = 1.0,
    factor: float = 2.0,
    cap: float = 300.0,
) -> float:
    """Seconds to wait after failed attempt number `attempts` (1 for the first).

    `base * factor**(attempts - 1)`, capped at `cap`, times a jitter drawn uniformly from
    [0.5, 1.5), capped at `cap` again; then at least `retry_after` (clamped to 300 s) when
    the receiver asked for it. Negative or non-finite `retry_after` values are ignored.
    """
    exponent = max(1, attempts) - 1
    try:
        raw = base * factor**exponent
    except OverflowError:
        raw = cap
    delay = min(cap, min(cap, raw) * rng.uniform(0.5, 1.5))
    if retry_after is not None and math.isfinite(retry_after) and retry_after > 0:
        delay = max(delay, min(retry_after, RETRY_AFTER_CAP))
    return delay


#: What a finished attempt did to its delivery, as metrics count it.
Result = Literal["delivered", "retry", "dead"]


class DeliveryWorker:
    """Sends the outbox. One per process; several processes may share a database."""

    def __init__(
        self,
        store: Store,
        notifiers: Mapping[str, Notifier],
        channels: Callable[[], Mapping[str, ChannelConfig]],
        *,
        clock: Clock,
        rng: random.Random,
        concurrency: int = 8,
        max_attempts: int = 12,
        max_age: timedelta = timedelta(hours=24),
        lease: timedelta = timedelta(minutes=2),
        backoff_base: float = 1.0,
        backoff_factor: float = 2.0,
        backoff_cap: float = 300.0,
        idle_wait: float = 5.0,
        on_outcome: Callable[[str, Result], None] | None = None,
    ) -> None:
        if concurrency < 1 or max_attempts < 1:
            raise ValueError("concurrency and max_attempts must be at least 1")
        self._store = store
        self._notifiers = notifiers
        self._channels = channels
        self._clock = clock
        self._rng = rng
        self._concurrency = concurrency
        self._max_attempts = max_attempts
        self._max_age = max_age
        self._lease = lease
        self._backoff = (backoff_base, backoff_factor, backoff_cap)
        self._idle_wait = idle_wait
        self._on_outcome = on_outcome  # (channel kind, delivered|retry|dead), for metrics
        self._semaphore = asyncio.Semaphore(concurrency)
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """New deliveries were recorded: look for due work now rather than at the next tick."""
        self._wake.set()

    async def run_once(self, limit: int | None = None) -> int:
        """Claim up to `limit` (default: `concurrency`) due deliveries, send them with at
        most `concurrency` in flight, record every outcome. Returns how many were claimed.
        The lease must cover the whole batch: keep `limit` near `concurrency`."""
        claimed = await asyncio.to_thread(
            self._store.claim, self._clock.now(), limit or self._concurrency, self._lease
        )
        if claimed:
            await asyncio.gather(*(self._deliver(delivery) for delivery in claimed))
        return len(claimed)

    async def run(self, stop: asyncio.Event) -> None:
        """Keep up to `concurrency` sends in flight until `stop` is set, then let the
        in-flight sends finish. Sleeps until woken, a send ends, or the next due time."""
        inflight: set[asyncio.Task[None]] = set()
        stop_wait = asyncio.ensure_future(stop.wait())
        try:
            while not stop.is_set():
                self._wake.clear()  # a wake() from here on is not lost
                free = self._concurrency - len(inflight)
                timeout: float | None = None
                if free > 0:
                    try:
                        for delivery in await asyncio.to_thread(
                            self._store.claim, self._clock.now(), free, self._lease
                        ):
                            inflight.add(asyncio.create_task(self._deliver(delivery)))
                        if len(inflight) < self._concurrency:
                            timeout = await self._seconds_until_due()
                    except StoreError as exc:
                        logger.error("delivery: cannot claim: %s", exc)
                        timeout = self._idle_wait
                wake_wait = asyncio.ensure_future(self._wake.wait())
                try:
                    await asyncio.wait(
                        {*inflight, wake_wait, stop_wait},
                        timeout=timeout,
                        return_when=asyncio.FIRST_COMPLETED,
                    )
                finally:
                    wake_wait.cancel()
                inflight = {task for task in inflight if not task.done()}
            if inflight:
                await asyncio.gather(*inflight)
        finally:
            stop_wait.cancel()
            for task in inflight:
                task.cancel()  # only when run() itself was cancelled: a crash
            if inflight:
                await asyncio.gather(*inflight, return_exceptions=True)

    async def _seconds_until_due(self) -> float:
        due = await asyncio.to_thread(self._store.next_due)
        if due is None:
            return self._idle_wait
        wait = (due - self._clock.now()).total_seconds()
        return min(self._idle_wait, max(0.01, wait))

    async def _deliver(self, delivery: ClaimedDelivery) -> None:
        async with self._semaphore:
            try:
                await self._attempt(delivery)
            except StoreError as exc:
                # the send may have happened; the lease will bring the row back
                logger.error("delivery %s: cannot record the attempt: %s", delivery.id, exc)
            except Exception:
                logger.exception(
                    "delivery %s: internal error; retried after the lease", delivery.id
                )

    async def _attempt(self, delivery: ClaimedDelivery) -> None:
        started = self._clock.now()
        refusal = self._refusal(delivery)
        if refusal is not None:
            await self._finish(delivery, started, "permanent", None, refusal, retry_after=None)
            return
        notifier = self._notifiers[delivery.kind]
        config = self._channels()[delivery.channel]
        try:
            await notifier.send(delivery.message, config, delivery_id=delivery.id)
        except DeliveryError as exc:
            outcome: Outcome = "permanent" if exc.permanent else "retry"
            await self._finish(
                delivery, started, outcome, exc.status, str(exc), retry_after=exc.retry_after
            )
        except Exception as exc:  # a notifier bug; its message may hold a URL, so not kept
            error = f"unexpected {type(exc).__name__} in the {delivery.kind} notifier"
            await self._finish(delivery, started, "error", None, error, retry_after=None)
        else:
            await self._finish(delivery, started, "ok", None, None, retry_after=None)

    def _refusal(self, delivery: ClaimedDelivery) -> str | None:
        """Why this delivery cannot be attempted at all, or None."""
        if delivery.attempts > self._max_attempts:
            return f"gave up: attempt {delivery.attempts} after a worker stopped mid-send"
        config = self._channels().get(delivery.channel)
        if config is None:
            return f"channel {delivery.channel!r} is no longer in the rule file"
        notifier = self._notifiers.get(delivery.kind)
        if notifier is None:
            return f"no notifier for channel type {delivery.kind!r}"
        if not isinstance(config, notifier.Config):
            return f"channel {delivery.channel!r} is no longer of type {delivery.kind!r}"
        return None

    async def _finish(
        self,
        delivery: ClaimedDelivery,
        started: datetime,
        outcome: Outcome,
        status_code: int | None,
        error: str | None,
        *,
        retry_after: float | None,
    ) -> None:
        finished = self._clock.now()
        next_at: datetime | None = None
        new_status: Status
        if outcome == "ok":
            new_status = "delivered"
        elif outcome == "permanent":
            new_status = "dead"
        elif delivery.attempts >= self._max_attempts:
            new_status = "dead"
            error = f"{error} (gave up after {delivery.attempts} attempts)"
        elif finished - delivery.created_at > self._max_age:
            new_status = "dead"
            error = f"{error} (gave up: older than {self._max_age})"
        else:
            new_status = "pending"
            if retry_after is not None and retry_after > RETRY_AFTER_CAP:
                logger.warning(
                    "delivery %s: Retry-After %.0f s clamped to %.0f s",
                    delivery.id,
                    retry_after,
                    RETRY_AFTER_CAP,
                )
            base, factor, cap = self._backoff
            delay = compute_backoff(
                delivery.attempts,
                retry_after=retry_after,
                rng=self._rng,
                base=base,
                factor=factor,
                cap=cap,
            )
            next_at = finished + timedelta(seconds=delay)
        record = AttemptRecord(
            number=delivery.attempts,
            started_at=started,
            finished_at=finished,
            outcome=outcome,
            status_code=status_code,
            error=error,
        )
        moved = await asyncio.to_thread(
            self._store.finish, delivery.id, record, new_status, next_at
        )
        if moved and self._on_outcome is not None:
            result: Result = "retry" if new_status == "pending" else new_status
            self._on_outcome(delivery.kind, result)
        logger.log(
            logging.INFO if outcome == "ok" else logging.WARNING,
            "delivery %s channel=%s kind=%s alert=%s attempt=%d outcome=%s status=%s -> %s%s",
            delivery.id,
            delivery.channel,
            delivery.kind,
            delivery.alert_id,
            delivery.attempts,
            outcome,
            status_code,
            new_status if moved else "unchanged (claimed again or already delivered)",
            f" next={next_at.isoformat()}" if next_at else "",
        )
