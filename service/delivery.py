"""The outbox worker: claim due deliveries, send each once, record the attempt, decide.

Promises:
- Retry policy lives here, once: notifiers make one attempt and report. The delay is
  `backoff.compute_backoff` (exponential, ±50 % jitter, capped; never sooner than the
  receiver's Retry-After; both capped at `RETRY_AFTER_CAP`, 300 s, by default).
- Every attempt is recorded with its time, outcome, HTTP status and error, together with
  the delivery's new state, in one transaction; the attempts of concurrent deliveries that
  finish within a few milliseconds share that transaction (`delivery_records.py`, a group
  commit: one durable commit for the group). A send keeps its worker slot until its record
  is committed, so a crash resends at most `concurrency` deliveries, with the same id.
  The error is scrubbed of the channel's secrets (its URL's path and query too: a 404
  body may quote them) and passed through the process's secret mask before it is stored
  or logged. A delivery becomes `delivered` only after the notifier returned, `dead` on a
  permanent error, after `max_attempts`, or past `max_age`.
- Every send has a total deadline, the notifier's `deadline` (connect, request and the
  whole reply): a receiver that drips its reply cannot hold a send longer. A miss is a
  retryable attempt. The lease is always longer than the longest deadline (raised, with
  a warning, if set lower) and is renewed every third of it while the send (or its wait
  for a host slot) goes on, so a delivery this process still works on is never claimed
  again, here or by another replica; if this process dies, the lease runs out.
- At most `per_host` sends in flight per destination host (see `delivery_slots.py`): one
  slow host cannot take every slot, and its surplus (beyond `per_host` more claimed
  ahead) is left unclaimed in the database. A host's slot is freed when the send ends,
  before the attempt is recorded.
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
import logging
import random
from collections.abc import Callable, Mapping
from contextlib import AbstractAsyncContextManager
from datetime import datetime, timedelta
from typing import Literal

from service.backoff import RetryPolicy
from service.clock import Clock
from service.delivery_records import MAX_BATCH, MAX_WAIT, GroupCommit
from service.delivery_slots import Claims, Destinations, lease_over_deadlines, renewing
from service.errors import DeliveryError, StoreError
from service.notify.base import ChannelConfig, Notifier
from service.notify.http import scrub
from service.retry_after import RETRY_AFTER_CAP
from service.store import AttemptRecord, ClaimedDelivery, Finished, Outcome, Store

logger = logging.getLogger(__name__)

#: Sends in flight by default (EARNWATCH_DELIVERY_CONCURRENCY's default).
DEFAULT_CONCURRENCY = 16
#: Sends in flight per destination host by default (EARNWATCH_DELIVERY_PER_HOST's). A
#: send holds its slot until its attempt is recorded, so with 4 one receiver got at most
#: 4 / (send + group commit) a second: 462-470/s on PostgreSQL, 763/s on SQLite; with 8,
#: 542-556/s and 1,011/s (bench/delivery.py, BENCHMARKS.md). Half the default concurrency
#: still leaves the other half to the other hosts when one is slow.
DEFAULT_PER_HOST = 8

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
        concurrency: int = DEFAULT_CONCURRENCY,
        per_host: int = DEFAULT_PER_HOST,
        max_attempts: int = 12,
        max_age: timedelta = timedelta(hours=24),
        lease: timedelta = timedelta(minutes=2),
        backoff_base: float = 1.0,
        backoff_factor: float = 2.0,
        backoff_cap: float = RETRY_AFTER_CAP,
        idle_wait: float = 5.0,
        channel_recheck: float = 60.0,
        renew_every: float | None = None,
        mask: Callable[[str], str] | None = None,
        on_outcome: Callable[[str, Result], None] | None = None,
        record_batch: int = MAX_BATCH,
        record_wait: float = MAX_WAIT,
    ) -> None:
        if concurrency < 1 or max_attempts < 1:
            raise ValueError("concurrency and max_attempts must be at least 1")
        self._store = store
        self._notifiers = notifiers
        self._channels = channels
        self._clock = clock
        self._concurrency = concurrency
        self._max_attempts = max_attempts
        self._max_age = max_age
        self._policy = RetryPolicy(
            max_attempts, max_age, backoff_base, backoff_factor, backoff_cap, rng
        )
        self._lease = lease_over_deadlines(lease, notifiers)
        self._renew_every = renew_every or self._lease.total_seconds() / 3
        self._idle_wait = idle_wait
        self._mask = mask or (lambda text: text)
        self._on_outcome = on_outcome  # (channel kind, delivered|retry|dead), for metrics
        self._semaphore = asyncio.Semaphore(concurrency)
        self._host_slots: dict[str, asyncio.Semaphore] = {}  # held while a send runs
        self._records = GroupCommit(store, max_batch=record_batch, max_wait=record_wait)
        self._wake = asyncio.Event()
        # the recheck runs on our clock, so a FakeClock drives it in tests
        self._claims = Claims(
            per_host, recheck=channel_recheck, monotonic=lambda: clock.now().timestamp()
        )
        self._destinations = Destinations(notifiers)

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
        skip = self._skip(self._destinations.of_all(self._channels()))
        claimed, _ = await self._claim(limit or self._concurrency, skip, upcoming=False)
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
                loop = asyncio.get_running_loop()
                claim_now = True  # at the start, after a wake(), at the due time
                saturated = False  # the last claim took all it could: more may be due
                due_at: float | None = None
                while not stop.is_set():
                    self._wake.clear()  # a wake() from here on is not lost
                    # deliveries waiting for a host slot hold no worker slot
                    free = self._concurrency - (len(inflight) - self._claims.waiting())
                    capped = False  # every channel's host is at its cap: nothing to claim
                    if free > 0 and claim_now:
                        targets = self._destinations.of_all(self._channels())
                        skip = self._skip(targets)
                        # a claim would skip every channel: wait for a host's slot (its end
                        # wakes us, `_sent`) rather than claim nothing, once a send ends
                        capped = bool(targets) and skip.issuperset(targets)
                    if free > 0 and claim_now and not capped:
                        claim_now = False
                        try:
                            claimed, upcoming = await self._claim(free, skip)
                            for delivery in claimed:
                                inflight.add(asyncio.create_task(self._deliver(delivery)))
                            # a full claim: more may be due; the next end of a send claims
                            saturated = upcoming is None
                            wait = self._seconds_until(upcoming, targets)
                        except StoreError as exc:
                            logger.error("delivery: cannot claim: %s", exc)
                            wait = self._idle_wait
                        due_at = loop.time() + wait
                    # no free slot: wait for a send to end (or a wake), never spin on a due time
                    timeout = None
                    if due_at is not None and free > 0 and not capped:
                        timeout = max(0.0, due_at - loop.time())
                    wake_wait = asyncio.ensure_future(self._wake.wait())
                    try:
                        done, _ = await asyncio.wait(
                            {*inflight, wake_wait, stop_wait},
                            timeout=timeout,
                            return_when=asyncio.FIRST_COMPLETED,
                        )
                    finally:
                        wake_wait.cancel()
                    ended = any(task in done for task in inflight)
                    inflight = {task for task in inflight if not task.done()}
                    # a send that ends frees a worker slot: worth a claim only if the last
                    # claim was cut short by the slots (else nothing more was due then)
                    claim_now = (
                        claim_now
                        or self._wake.is_set()
                        or (due_at is not None and loop.time() >= due_at)
                        or (ended and saturated)
                    )
                if inflight:
                    await asyncio.gather(*inflight)
        finally:
            stop_wait.cancel()
            crashed = any(not task.done() for task in inflight)
            for task in inflight:
                task.cancel()  # only when run() itself was cancelled: a crash
            if inflight:
                await asyncio.gather(*inflight, return_exceptions=True)
            if crashed:
                self._records.abandon()

    # --- claims, leases and host slots ---------------------------------------------------

    def _skip(self, targets: Mapping[str, str | None]) -> set[str]:
        """The channels the next claim skips (`Claims.excluded`), noting those back."""
        skip, back = self._claims.excluded(targets)
        for name in back:
            logger.info("delivery: channel %r is back in the rule file; sending", name)
        return skip

    async def _claim(
        self, limit: int, skip: set[str], *, upcoming: bool = True
    ) -> tuple[list[ClaimedDelivery], dict[str, datetime] | None]:
        """Claim up to `limit`, skipping the channels in `skip` and what we hold, and bind
        each to its host. With `upcoming`, and unless `limit` were taken, also when each
        channel's next delivery is due (`Store.claim_next`: one transaction, one thread
        hop); else None."""
        held = self._claims.ids()  # never claimed again while we work on them
        now = self._clock.now()
        if upcoming:
            claimed, due = await asyncio.to_thread(
                self._store.claim_next, now, limit, self._lease, skip, held
            )
        else:
            claimed = await asyncio.to_thread(
                self._store.claim, now, limit, self._lease, skip, held
            )
            due = None
        channels = self._channels()
        for delivery in claimed:
            notifier = self._notifiers.get(delivery.kind)
            config = channels.get(delivery.channel)
            where = None
            if notifier is not None and isinstance(config, notifier.Config):
                where = self._destinations.of(notifier, config, delivery.channel)
            self._claims.bind(delivery, where)
        return claimed, due

    def _seconds_until(
        self, upcoming: dict[str, datetime] | None, targets: Mapping[str, str | None]
    ) -> float:
        """How long to sleep before the next claim: until the next delivery a claim
        would consider is due (at most `idle_wait`, at least 10 ms); `idle_wait` after a
        claim that took all it could (`upcoming` None: the next end of a send claims)."""
        if upcoming is None:
            return self._idle_wait
        skip, _ = self._claims.excluded(targets)  # what the claim's binding made full too
        moments = [due for channel, due in upcoming.items() if channel not in skip]
        if not moments:
            return self._idle_wait
        wait = (min(moments) - self._clock.now()).total_seconds()
        return min(self._idle_wait, max(0.01, wait))

    def _renewing(self) -> AbstractAsyncContextManager[None]:
        return renewing(self._store, self._claims, self._lease, self._clock, self._renew_every)

    # --- one delivery ----------------------------------------------------------------

    async def _deliver(self, delivery: ClaimedDelivery) -> None:
        try:
            gate = self._claims.gate(delivery)
            # the host's slot first: a delivery waiting for it holds no worker slot
            if gate is not None:
                await gate.acquire()
                self._host_slots[delivery.id] = gate
            # the worker slot is kept until the attempt is recorded (see the docstring)
            async with self._semaphore:
                await self._attempt(delivery)
        except StoreError as exc:
            # the send may have happened; the lease will bring the row back
            logger.error("delivery %s: cannot record the attempt: %s", delivery.id, exc)
        except Exception:
            logger.exception("delivery %s: internal error; retried after the lease", delivery.id)
        finally:
            self._sent(delivery)
            self._claims.unbind(delivery)

    def _sent(self, delivery: ClaimedDelivery) -> None:
        """The send is over (or never happens): free the host's slot for the next one."""
        gate = self._host_slots.pop(delivery.id, None)
        if gate is not None:
            gate.release()
            if self._claims.sent(delivery):
                self.wake()  # the host was skipped by claims, and no longer is

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
        config = self._channels().get(delivery.channel)  # present: `_attempt` checked
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
        new_status, delay, error = self._policy.decide(
            outcome, delivery.attempts, finished - delivery.created_at, error, retry_after
        )
        next_at = None if delay is None else finished + timedelta(seconds=delay)
        record = AttemptRecord(
            number=delivery.attempts,
            started_at=started,
            finished_at=finished,
            outcome=outcome,
            status_code=status_code,
            error=error,
        )
        self._sent(delivery)
        # recorded with the other attempts finishing now, in one transaction
        moved = await self._records.record(Finished(delivery.id, record, new_status, next_at))
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
