"""The outbox worker: claim due deliveries, send each once, record the attempt, decide.

Promises:
- Retry policy lives here, once: notifiers make one attempt and report. `compute_backoff` is
  pure (exponential, ±50 % jitter, capped; never sooner than the receiver's Retry-After,
  itself capped at 300 s).
- Every attempt is recorded with its time, outcome, HTTP status and error, together with
  the delivery's new state, in one transaction. The error is scrubbed of the channel's
  secrets (its URL's path and query too: a 404 body may quote them) and passed through the
  process's secret mask before it is stored or logged. A delivery becomes `delivered`
  only after the notifier returned, `dead` on a permanent error, after `max_attempts`, or
  past `max_age`.
- Every send has a total deadline, the notifier's `deadline` (connect, request and the
  whole reply): a receiver that drips its reply cannot hold a send longer. A miss is a
  retryable attempt. The lease is always longer than the longest deadline (raised, with
  a warning, if set lower) and is renewed every third of it while the send (or its wait
  for a host slot) goes on, so a delivery this process still works on is never claimed
  again, here or by another replica; if this process dies, the lease runs out.
- At most `per_host` sends in flight per destination host (see `delivery_slots.py`): one
  slow host cannot take every slot, and its surplus is left unclaimed in the database.
- A delivery whose channel is missing from the rule file (an edit in progress, a bad
  edit) waits for it: handed back untried, no attempt counted, the channel skipped by
  claims and looked at again each `channel_recheck`, until `max_age`.
- Channel configs (which hold the secrets) are looked up by name at send time, never stored.
- An unexpected exception from a notifier is recorded as `error` and retried; it never stops
  the worker. Database work runs in threads (`asyncio.to_thread`), sends run under a
  semaphore of `concurrency`.
- Cancelling `run()` or `run_once()` is how a crash looks: in-flight sends are abandoned,
  their rows stay `sending` and are sent again once the lease runs out. Setting the `stop`
  event is the graceful way: no new claims, in-flight sends finish (within their
  deadline) and are recorded.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import datetime, timedelta
from typing import Literal

from service.clock import Clock
from service.delivery_slots import Claims
from service.errors import DeliveryError, StoreError
from service.notify.base import ChannelConfig, Notifier
from service.notify.http import scrub
from service.store import AttemptRecord, ClaimedDelivery, Outcome, Status, Store

logger = logging.getLogger(__name__)

#: A receiver's Retry-After is honoured up to this many seconds.
RETRY_AFTER_CAP = 300.0
#: The lease exceeds the longest send deadline by at least this much (time to record).
LEASE_MARGIN = timedelta(seconds=5)


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
        per_host: int = 4,
        max_attempts: int = 12,
        max_age: timedelta = timedelta(hours=24),
        lease: timedelta = timedelta(minutes=2),
        backoff_base: float = 1.0,
        backoff_factor: float = 2.0,
        backoff_cap: float = 300.0,
        idle_wait: float = 5.0,
        channel_recheck: float = 60.0,
        mask: Callable[[str], str] | None = None,
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
        self._lease = self._lease_over_deadlines(lease, notifiers)
        self._backoff = (backoff_base, backoff_factor, backoff_cap)
        self._idle_wait = idle_wait
        self._mask = mask or (lambda text: text)
        self._on_outcome = on_outcome  # (channel kind, delivered|retry|dead), for metrics
        self._semaphore = asyncio.Semaphore(concurrency)
        self._wake = asyncio.Event()
        # the recheck runs on our clock, so a FakeClock drives it in tests
        self._claims = Claims(
            per_host, recheck=channel_recheck, monotonic=lambda: clock.now().timestamp()
        )

    @staticmethod
    def _lease_over_deadlines(lease: timedelta, notifiers: Mapping[str, Notifier]) -> timedelta:
        longest = max((n.deadline for n in notifiers.values()), default=0.0)
        floor = timedelta(seconds=longest) + LEASE_MARGIN
        if lease < floor:
            logger.warning(
                "delivery: EARNWATCH_DELIVERY_LEASE %.0f s is not above the longest send "
                "deadline (%.0f s) plus %.0f s; using %.0f s",
                lease.total_seconds(),
                longest,
                LEASE_MARGIN.total_seconds(),
                floor.total_seconds(),
            )
            return floor
        return lease

    @property
    def lease(self) -> timedelta:
        """The lease each claim takes (at least the longest send deadline plus a margin)."""
        return self._lease

    def wake(self) -> None:
        """New deliveries were recorded: look for due work now rather than at the next tick."""
        self._wake.set()

    async def run_once(self, limit: int | None = None) -> int:
        """Claim up to `limit` (default: `concurrency`) due deliveries, send them with at
        most `concurrency` in flight, record every outcome. Returns how many were claimed."""
        claimed = await self._claim(limit or self._concurrency)
        if claimed:
            async with self._renewing():
                await asyncio.gather(*(self._deliver(delivery) for delivery in claimed))
        return len(claimed)

    async def run(self, stop: asyncio.Event) -> None:
        """Keep up to `concurrency` sends in flight until `stop` is set, then let the
        in-flight sends finish. Sleeps until woken, a send ends, or the next due time."""
        inflight: set[asyncio.Task[None]] = set()
        stop_wait = asyncio.ensure_future(stop.wait())
        try:
            async with self._renewing():
                while not stop.is_set():
                    self._wake.clear()  # a wake() from here on is not lost
                    # deliveries waiting for a host slot hold no worker slot
                    free = self._concurrency - (len(inflight) - self._claims.waiting())
                    timeout: float | None = None
                    if free > 0:
                        try:
                            for delivery in await self._claim(free):
                                inflight.add(asyncio.create_task(self._deliver(delivery)))
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

    # --- claims, leases and host slots ---------------------------------------------------

    def _destinations(self) -> dict[str, str | None]:
        """Each channel of the rule file, and where its sends go."""
        by_config = {n.Config: n for n in self._notifiers.values()}
        out: dict[str, str | None] = {}
        for name, config in self._channels().items():
            notifier = by_config.get(type(config))
            out[name] = None if notifier is None else self._destination(notifier, config, name)
        return out

    @staticmethod
    def _destination(notifier: Notifier, config: ChannelConfig, channel: str) -> str:
        try:
            return notifier.destination(config)
        except Exception:  # a bad config is refused later, at send time
            return f"channel:{channel}"

    async def _claim(self, limit: int) -> list[ClaimedDelivery]:
        skip, back = self._claims.excluded(self._destinations())
        for name in back:
            logger.info("delivery: channel %r is back in the rule file; sending", name)
        claimed = await asyncio.to_thread(
            self._store.claim_excluding, self._clock.now(), limit, self._lease, skip
        )
        channels = self._channels()
        for delivery in claimed:
            notifier = self._notifiers.get(delivery.kind)
            config = channels.get(delivery.channel)
            where = None
            if notifier is not None and isinstance(config, notifier.Config):
                where = self._destination(notifier, config, delivery.channel)
            self._claims.bind(delivery, where)
        return claimed

    async def _seconds_until_due(self) -> float:
        skip, _ = self._claims.excluded(self._destinations())
        due = await asyncio.to_thread(self._store.next_due_excluding, skip)
        if due is None:
            return self._idle_wait
        wait = (due - self._clock.now()).total_seconds()
        return min(self._idle_wait, max(0.01, wait))

    @contextlib.asynccontextmanager
    async def _renewing(self) -> AsyncIterator[None]:
        """Renew the leases of every delivery held, every third of a lease, meanwhile."""
        task = asyncio.create_task(self._keep_leases())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _keep_leases(self) -> None:
        every = self._lease.total_seconds() / 3
        while True:
            await asyncio.sleep(every)
            ids = self._claims.ids()
            if not ids:
                continue
            try:
                await asyncio.to_thread(self._store.renew, ids, self._clock.now() + self._lease)
            except StoreError as exc:  # the sends end within their deadline, inside the lease
                logger.error("delivery: cannot renew %d leases: %s", len(ids), exc)

    # --- one delivery ----------------------------------------------------------------

    async def _deliver(self, delivery: ClaimedDelivery) -> None:
        try:
            gate = self._claims.gate(delivery)
            # the host's slot first: a delivery waiting for it holds no worker slot
            async with gate if gate is not None else contextlib.nullcontext(), self._semaphore:
                await self._attempt(delivery)
        except StoreError as exc:
            # the send may have happened; the lease will bring the row back
            logger.error("delivery %s: cannot record the attempt: %s", delivery.id, exc)
        except Exception:
            logger.exception("delivery %s: internal error; retried after the lease", delivery.id)
        finally:
            self._claims.unbind(delivery)

    async def _attempt(self, delivery: ClaimedDelivery) -> None:
        started = self._clock.now()
        if delivery.channel not in self._channels():
            await self._wait_for_channel(delivery, started)
            return
        refusal = self._refusal(delivery)
        if refusal is not None:
            await self._finish(delivery, started, "permanent", None, refusal, retry_after=None)
            return
        notifier = self._notifiers[delivery.kind]
        config = self._channels()[delivery.channel]
        try:
            async with asyncio.timeout(notifier.deadline):
                await notifier.send(delivery.message, config, delivery_id=delivery.id)
        except DeliveryError as exc:
            outcome: Outcome = "permanent" if exc.permanent else "retry"
            error = scrub(str(exc), config)
            await self._finish(
                delivery, started, outcome, exc.status, error, retry_after=exc.retry_after
            )
        except TimeoutError:
            error = (
                f"channel {delivery.channel!r}: no complete reply within {notifier.deadline:g} s "
                "(the send deadline)"
            )
            await self._finish(delivery, started, "retry", None, error, retry_after=None)
        except Exception as exc:  # a notifier bug; its message may hold a URL, so not kept
            error = f"unexpected {type(exc).__name__} in the {delivery.kind} notifier"
            await self._finish(delivery, started, "error", None, error, retry_after=None)
        else:
            await self._finish(delivery, started, "ok", None, None, retry_after=None)

    async def _wait_for_channel(self, delivery: ClaimedDelivery, started: datetime) -> None:
        """The channel is not in the rule file (now): hand the claim back untried, or give
        up once the delivery is older than `max_age`."""
        reason = f"channel {delivery.channel!r} is not in the rule file"
        if started - delivery.created_at > self._max_age:
            error = f"{reason} (gave up: older than {self._max_age})"
            await self._finish(delivery, started, "permanent", None, error, retry_after=None)
            return
        if self._claims.channel_missing(delivery.channel):
            logger.warning(
                "delivery: %s; its deliveries wait for it to come back (at most "
                "EARNWATCH_DELIVERY_MAX_AGE, %s)",
                reason,
                self._max_age,
            )
        await asyncio.to_thread(
            self._store.release,
            delivery.id,
            delivery.attempts,
            started,
            f"waiting: {reason}",
        )

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
        if error is not None:
            error = self._mask(error)  # a receiver may echo any secret the process knows
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
