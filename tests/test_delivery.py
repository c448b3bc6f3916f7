"""The delivery worker and its backoff, against a fake receiver we own.

No test here measures wall-clock speed: time that matters comes from a FakeClock, and the
crash tests stop the worker at points the fake receiver makes explicit.
"""

from __future__ import annotations

import asyncio
import itertools
import random
from collections.abc import Sequence
from datetime import timedelta
from typing import Any, ClassVar

import pytest
from hypothesis import given
from hypothesis import strategies as st

from service.backoff import compute_backoff
from service.clock import FakeClock
from service.delivery import DeliveryWorker
from service.errors import DeliveryError
from service.notify.base import ChannelConfig, Message
from service.retry_after import RETRY_AFTER_CAP
from service.store import DeliverySummary, Store, open_store
from tests.store.helpers import T0, make_alert, render

pytestmark = pytest.mark.anyio
LEASE = timedelta(seconds=60)


class HookConfig(ChannelConfig):
    url: str = "https://hooks.example/secret-token"


class Receiver:
    """What the far side saw: one (delivery id, body) per acknowledged request."""

    def __init__(self) -> None:
        self.receipts: list[tuple[str, str]] = []

    def ids(self) -> list[str]:
        return [delivery_id for delivery_id, _ in self.receipts]


class FakeNotifier:
    """A webhook-like notifier with scripted outcomes and explicit crash points.

    Call n (1-based, in arrival order) raises `script[n - 1]` when it is an exception;
    otherwise the receiver acknowledges it (appends a receipt) and the call returns.
    - `freeze_after=k`: once k receipts exist, a new call blocks *before* reaching the
      receiver (nothing on the wire) and never returns.
    - `hang_after_ack={n}`: call n is acknowledged, then never returns (the process dies
      between the receiver's 2xx and our commit).
    """

    kind: ClassVar[str] = "webhook"
    Config: ClassVar[type[ChannelConfig]] = HookConfig
    deadline: float = 10.0

    def destination(self, config: ChannelConfig) -> str:
        assert isinstance(config, HookConfig)
        return config.url.split("/")[2]

    def __init__(
        self,
        receiver: Receiver | None = None,
        script: list[Exception | None] | None = None,
        *,
        freeze_after: int | None = None,
        hang_after_ack: frozenset[int] = frozenset(),
    ) -> None:
        self.receiver = receiver or Receiver()
        self.script = list(script or [])
        self.freeze_after = freeze_after
        self.hang_after_ack = hang_after_ack
        self.calls: list[str] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.blocked = 0
        self._never = asyncio.Event()

    async def send(self, message: Message, config: ChannelConfig, *, delivery_id: str) -> None:
        assert isinstance(config, HookConfig)
        self.calls.append(delivery_id)
        number = len(self.calls)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            for _ in range(3):
                await asyncio.sleep(0)  # let other sends start
            if self.freeze_after is not None and len(self.receiver.receipts) >= self.freeze_after:
                self.blocked += 1
                await self._never.wait()
            outcome = self.script[number - 1] if number <= len(self.script) else None
            if outcome is not None:
                raise outcome
            self.receiver.receipts.append((delivery_id, message.to_json()))
            if number in self.hang_after_ack:
                self.blocked += 1
                await self._never.wait()
        finally:
            self.in_flight -= 1

    async def aclose(self) -> None:
        return None


def http_error(
    status: int, *, permanent: bool = False, retry_after: float | None = None
) -> DeliveryError:
    return DeliveryError(
        f"HTTP {status}", permanent=permanent, retry_after=retry_after, status=status
    )


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


def make_worker(
    store: Store, notifier: FakeNotifier, clock: FakeClock, **kw: Any
) -> DeliveryWorker:
    kw.setdefault("lease", LEASE)
    kw.setdefault("idle_wait", 0.02)
    channels = kw.pop("channels", lambda: {"hook": HookConfig()})
    return DeliveryWorker(
        store,
        {"webhook": notifier},
        channels,
        clock=clock,
        rng=random.Random(7),
        **kw,
    )


def record(
    store: Store, count: int = 1, channels: Sequence[tuple[str, str]] = (("hook", "webhook"),)
) -> list[str]:
    return store.record([(make_alert(i), render, list(channels)) for i in range(count)], {}, T0)


async def drain(store: Store, worker: DeliveryWorker, clock: FakeClock) -> list[float]:
    """Run the worker until nothing is pending, jumping the clock to each due time.
    Returns the clock offsets (s) at which deliveries were claimed."""
    claimed_at: list[float] = []
    for _ in range(100):
        if await worker.run_once(limit=50):
            claimed_at.append((clock.now() - T0).total_seconds())
            continue
        due = store.next_due()
        if due is None:
            return claimed_at
        clock.set(due)
    raise AssertionError("the worker did not drain the outbox")


def only_delivery(store: Store) -> DeliverySummary:
    [entry] = store.history()
    [delivery] = entry.deliveries
    return delivery


# --- compute_backoff -------------------------------------------------------------------


def test_backoff_doubles_from_the_base_within_half_jitter() -> None:
    rng = random.Random(1)
    for attempts, nominal in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (8, 128.0)]:
        delay = compute_backoff(attempts, retry_after=None, rng=rng)
        assert 0.5 * nominal <= delay <= 1.5 * nominal


@given(
    attempts=st.integers(min_value=-3, max_value=100_000),
    seed=st.integers(min_value=0, max_value=2**32),
    retry_after=st.none() | st.floats(allow_nan=True, allow_infinity=True),
)
def test_backoff_stays_within_the_cap_and_honours_retry_after_up_to_300_s(
    attempts: int, seed: int, retry_after: float | None
) -> None:
    delay = compute_backoff(attempts, retry_after=retry_after, rng=random.Random(seed), cap=60.0)
    assert 0.5 <= delay <= max(60.0, RETRY_AFTER_CAP)
    if retry_after is not None and 0 < retry_after < float("inf"):
        assert delay >= min(retry_after, RETRY_AFTER_CAP)
    else:
        assert delay <= 60.0


def test_backoff_grows_with_attempts_on_average() -> None:
    def mean(attempts: int) -> float:
        rng = random.Random(42)
        return sum(compute_backoff(attempts, retry_after=None, rng=rng) for _ in range(200)) / 200

    means = [mean(n) for n in range(1, 10)]
    assert means == sorted(means)
    assert compute_backoff(50, retry_after=None, rng=random.Random(3)) <= 300.0


def test_backoff_is_reproducible_with_a_seeded_rng() -> None:
    first = [compute_backoff(n, retry_after=None, rng=random.Random(9)) for n in range(1, 6)]
    again = [compute_backoff(n, retry_after=None, rng=random.Random(9)) for n in range(1, 6)]
    assert first == again


# --- the worker ------------------------------------------------------------------------


async def test_receiver_500_three_times_then_ok_gives_four_attempts_and_one_delivery(
    store: Store, clock: FakeClock
) -> None:
    record(store)
    notifier = FakeNotifier(script=[http_error(500)] * 3)
    claimed_at = await drain(store, make_worker(store, notifier, clock), clock)

    delivery = only_delivery(store)
    assert (delivery.status, delivery.attempts) == ("delivered", 4)
    attempts = store.attempts(delivery.id)
    assert [(a.number, a.outcome, a.status_code) for a in attempts] == [
        (1, "retry", 500),
        (2, "retry", 500),
        (3, "retry", 500),
        (4, "ok", None),
    ]
    assert all(a.error == "HTTP 500" for a in attempts[:3])
    assert notifier.receiver.ids() == [delivery.id]  # delivered once
    assert set(notifier.calls) == {delivery.id}  # the same id on every attempt
    gaps = [later - earlier for earlier, later in itertools.pairwise(claimed_at)]
    assert len(gaps) == 3 and gaps[0] >= 0.5 and gaps[1] >= 1.0 and gaps[2] >= 2.0


async def test_a_permanent_error_is_one_attempt_and_dead(store: Store, clock: FakeClock) -> None:
    record(store)
    notifier = FakeNotifier(script=[http_error(404, permanent=True)])
    await drain(store, make_worker(store, notifier, clock), clock)
    delivery = only_delivery(store)
    assert (delivery.status, delivery.attempts, delivery.last_error) == ("dead", 1, "HTTP 404")
    assert notifier.receiver.receipts == []


async def test_max_attempts_makes_a_failing_delivery_dead(store: Store, clock: FakeClock) -> None:
    record(store)
    notifier = FakeNotifier(script=[http_error(503)] * 10)
    await drain(store, make_worker(store, notifier, clock, max_attempts=4), clock)
    delivery = only_delivery(store)
    assert (delivery.status, delivery.attempts) == ("dead", 4)
    assert "gave up after 4 attempts" in (delivery.last_error or "")
    assert len(notifier.calls) == 4 and store.pending_count() == 0


async def test_max_age_makes_a_failing_delivery_dead(store: Store, clock: FakeClock) -> None:
    record(store)
    notifier = FakeNotifier(script=[http_error(503, retry_after=4.0)] * 10)
    worker = make_worker(store, notifier, clock, max_age=timedelta(seconds=10))
    await drain(store, worker, clock)
    delivery = only_delivery(store)
    assert delivery.status == "dead" and "older than" in (delivery.last_error or "")
    assert 3 <= delivery.attempts <= 4


async def test_retry_after_sets_the_next_attempt_and_is_capped_at_300_s(
    store: Store, clock: FakeClock
) -> None:
    record(store, 2)
    notifier = FakeNotifier(
        script=[http_error(429, retry_after=120.0), http_error(503, retry_after=86_400.0)]
    )
    await make_worker(store, notifier, clock).run_once()
    by_error = {
        e.deliveries[0].last_error: e.deliveries[0].next_attempt_at for e in store.history()
    }
    assert by_error["HTTP 429"] - T0 >= timedelta(seconds=120)
    assert by_error["HTTP 429"] - T0 <= timedelta(seconds=121.5)
    assert by_error["HTTP 503"] - T0 == timedelta(seconds=RETRY_AFTER_CAP)


async def test_a_delivery_whose_channel_left_the_rule_file_waits_for_it_without_attempts(
    store: Store, clock: FakeClock
) -> None:
    # was: dead at once ("channel 'gone' is no longer in the rule file"), and dead for good
    # after the file came back (issue #10.5: an editor's truncate-then-write)
    record(store, channels=[("gone", "webhook")])
    notifier = FakeNotifier()
    channels: dict[str, ChannelConfig] = {}
    worker = make_worker(store, notifier, clock, channels=lambda: channels)
    for _ in range(3):
        await worker.run_once()
        clock.advance(timedelta(minutes=5))
    delivery = only_delivery(store)
    assert (delivery.status, delivery.attempts) == ("pending", 0)  # no attempt burnt
    assert delivery.last_error == "waiting: channel 'gone' is not in the rule file"
    assert store.attempts(delivery.id) == [] and notifier.calls == []

    channels["gone"] = HookConfig()  # the edit is complete: the channel is back
    await drain(store, worker, clock)
    delivery = only_delivery(store)
    assert (delivery.status, delivery.attempts) == ("delivered", 1)
    assert notifier.receiver.ids() == [delivery.id]


async def test_a_waiting_delivery_whose_channel_stays_away_is_given_up_at_max_age(
    store: Store, clock: FakeClock
) -> None:
    record(store, channels=[("gone", "webhook")])
    worker = make_worker(store, FakeNotifier(), clock, channels=dict, max_age=timedelta(hours=1))
    await worker.run_once()
    assert only_delivery(store).status == "pending"
    clock.advance(timedelta(hours=1, seconds=1))
    await worker.run_once()
    delivery = only_delivery(store)
    assert delivery.status == "dead"
    assert delivery.last_error == (
        "channel 'gone' is not in the rule file (gave up: older than 1:00:00)"
    )


async def test_a_waiting_channel_is_skipped_by_claims_until_it_is_looked_at_again(
    store: Store, clock: FakeClock
) -> None:
    record(store, channels=[("gone", "webhook")])
    worker = make_worker(store, FakeNotifier(), clock, channels=dict, channel_recheck=3600.0)
    assert await worker.run_once() == 1  # claimed once, handed back untried
    assert await worker.run_once() == 0  # then skipped: no claim loop
    assert store.next_due(exclude={"gone"}) is None


async def test_an_unexpected_notifier_exception_is_recorded_and_retried(
    store: Store, clock: FakeClock
) -> None:
    record(store)
    notifier = FakeNotifier(script=[KeyError("https://hooks.example/secret-token")])
    await drain(store, make_worker(store, notifier, clock), clock)
    delivery = only_delivery(store)
    assert delivery.status == "delivered"
    first, second = store.attempts(delivery.id)
    assert first.outcome == "error" and second.outcome == "ok"
    assert first.error == "unexpected KeyError in the webhook notifier"  # no URL kept


async def test_no_more_sends_are_in_flight_than_the_concurrency_setting(
    store: Store, clock: FakeClock
) -> None:
    record(store, 50)
    notifier = FakeNotifier()
    assert await make_worker(store, notifier, clock, concurrency=4).run_once(limit=50) == 50
    assert notifier.max_in_flight == 4
    assert len(notifier.receiver.receipts) == 50 and store.pending_count() == 0


async def test_run_delivers_what_is_recorded_after_a_wake_and_stops_gracefully(
    store: Store, clock: FakeClock
) -> None:
    notifier = FakeNotifier()
    worker = make_worker(store, notifier, clock, idle_wait=60.0)
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    await asyncio.sleep(0.01)
    record(store, 30)
    worker.wake()
    async with asyncio.timeout(20):
        while store.pending_count():
            await asyncio.sleep(0.01)
    stop.set()
    async with asyncio.timeout(20):
        await task
    assert sorted(set(notifier.receiver.ids())) == sorted(notifier.receiver.ids())
    assert len(notifier.receiver.receipts) == 30


# --- crashes ---------------------------------------------------------------------------


def delivered_count(store: Store) -> int:
    return sum(d.status == "delivered" for e in store.history(limit=1000) for d in e.deliveries)


async def crash_mid_burst(
    url: str, clock: FakeClock, notifier: FakeNotifier, *, committed: int
) -> None:
    """Start the worker on 200 alerts, wait until all 8 slots are stuck at the notifier's
    crash points and `committed` deliveries are marked delivered, then cancel the worker
    (the crash) and drop its store without any further write."""
    store = open_store(url)
    record(store, 200)
    worker = make_worker(store, notifier, clock, concurrency=8)
    task = asyncio.create_task(worker.run(asyncio.Event()))
    async with asyncio.timeout(30):  # a safety net, not a speed assertion
        while notifier.blocked < 8 or delivered_count(store) < committed:
            await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert delivered_count(store) == committed
    store.close()  # releases file handles only; everything committed is already on disk


async def restart_and_finish(url: str, clock: FakeClock, receiver: Receiver) -> Store:
    store = open_store(url)
    clock.advance(LEASE + timedelta(seconds=1))  # the dead worker's leases run out
    await drain(store, make_worker(store, FakeNotifier(receiver), clock), clock)
    return store


async def test_a_crash_with_no_request_in_flight_delivers_everything_exactly_once(
    sqlite_url: str, clock: FakeClock
) -> None:
    receiver = Receiver()
    notifier = FakeNotifier(receiver, freeze_after=57)
    await crash_mid_burst(sqlite_url, clock, notifier, committed=57)
    assert len(receiver.receipts) == 57  # the 8 frozen sends never reached the receiver

    store = await restart_and_finish(sqlite_url, clock, receiver)
    assert len(set(receiver.ids())) == 200  # 0 lost
    assert len(receiver.receipts) == 200  # 0 duplicated
    assert delivered_count(store) == 200 and store.pending_count() == 0
    store.close()


async def test_a_crash_between_the_receivers_ack_and_our_commit_resends_that_one_only(
    sqlite_url: str, clock: FakeClock
) -> None:
    receiver = Receiver()
    # call 58 is acknowledged, then the process dies before committing it; the 7 other
    # sends in flight are stuck before reaching the receiver
    notifier = FakeNotifier(receiver, freeze_after=58, hang_after_ack=frozenset({58}))
    await crash_mid_burst(sqlite_url, clock, notifier, committed=57)
    assert len(receiver.receipts) == 58
    acked_not_committed = notifier.calls[57]

    store = await restart_and_finish(sqlite_url, clock, receiver)
    assert len(set(receiver.ids())) == 200  # 0 lost
    assert len(receiver.receipts) == 201  # exactly the one allowed duplicate
    duplicates = [r for r in receiver.receipts if r[0] == acked_not_committed]
    assert len(duplicates) == 2 and duplicates[0] == duplicates[1]  # same id, same bytes
    assert delivered_count(store) == 200 and store.pending_count() == 0
    store.close()


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
async def test_two_replicas_sharing_a_database_deliver_each_alert_exactly_once(
    backend: str, request: pytest.FixtureRequest, sqlite_url: str, clock: FakeClock
) -> None:
    url = sqlite_url if backend == "sqlite" else str(request.getfixturevalue("pg_url"))
    stores = [open_store(url) for _ in range(2)]
    record(stores[0], 200)
    receiver = Receiver()
    workers = [make_worker(s, FakeNotifier(receiver), clock, concurrency=8) for s in stores]

    async def replica(worker: DeliveryWorker) -> None:
        while await worker.run_once():
            pass

    await asyncio.gather(*(replica(w) for w in workers))
    assert len(receiver.receipts) == len(set(receiver.ids())) == 200
    assert stores[1].pending_count() == 0
    for store in stores:
        store.close()


async def test_every_finished_attempt_is_reported_for_metrics(
    store: Store, clock: FakeClock
) -> None:
    record(store, 2)
    outcomes: list[tuple[str, str]] = []
    notifier = FakeNotifier(script=[http_error(500), http_error(400, permanent=True)])
    await drain(
        store,
        make_worker(store, notifier, clock, on_outcome=lambda k, r: outcomes.append((k, r))),
        clock,
    )
    assert sorted(outcomes) == [("webhook", "dead"), ("webhook", "delivered"), ("webhook", "retry")]


# --- group commit of finished attempts -------------------------------------------------


def failing_flush(monkeypatch: pytest.MonkeyPatch, *, times: int | None, backend: str) -> list[int]:
    """Make the database fail inside the group commit's transaction, after its statements
    ran (so a rollback must undo them): the first `times` groups (None: every group), with
    the error the backend's driver layer raises (sqlite3's own on SQLite, SQLAlchemy's on
    PostgreSQL). Returns the sizes of the groups that failed."""
    from service.store import outbox

    def error() -> Exception:
        if backend == "sqlite":
            import sqlite3

            return sqlite3.OperationalError("disk I/O error")
        from sqlalchemy.exc import OperationalError

        return OperationalError("COMMIT", {}, Exception("disk I/O error"))

    real = outbox.finish_many
    failed: list[int] = []

    def finish_many(connection: Any, finished: Sequence[Any]) -> list[bool]:
        moved = real(connection, finished)
        if times is None or len(failed) < times:
            failed.append(len(finished))
            raise error()
        return moved

    monkeypatch.setattr(outbox, "finish_many", finish_many)
    return failed


def backend_url(backend: str, request: pytest.FixtureRequest, sqlite_url: str) -> str:
    return sqlite_url if backend == "sqlite" else str(request.getfixturevalue("pg_url"))


BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


async def test_attempts_finishing_together_are_recorded_in_one_transaction(
    store: Store, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    record(store, 8)
    groups: list[int] = []
    real = store.finish_many
    monkeypatch.setattr(
        store, "finish_many", lambda items: groups.append(len(items)) or real(items)
    )
    notifier = FakeNotifier()
    assert await make_worker(store, notifier, clock, concurrency=8, per_host=8).run_once() == 8
    assert sum(groups) == 8 and max(groups) > 1  # grouped, each attempt once
    assert delivered_count(store) == 8


@pytest.mark.parametrize("backend", BACKENDS)
async def test_a_failed_group_commit_loses_no_record_and_records_each_attempt_once(
    backend: str,
    request: pytest.FixtureRequest,
    sqlite_url: str,
    clock: FakeClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store = open_store(backend_url(backend, request, sqlite_url))
    record(store, 20)
    failed = failing_flush(monkeypatch, times=1, backend=backend)
    receiver = Receiver()
    worker = make_worker(store, FakeNotifier(receiver), clock, concurrency=8, per_host=8)
    assert await worker.run_once(limit=20) == 20
    assert failed and failed[0] > 1  # a whole group's transaction failed
    # its records were written again one by one: every delivery delivered, one attempt each
    assert delivered_count(store) == 20 and store.pending_count() == 0
    for entry in store.history(limit=50):
        [delivery] = entry.deliveries
        assert [a.outcome for a in store.attempts(delivery.id)] == ["ok"]
    assert len(receiver.receipts) == len(set(receiver.ids())) == 20
    store.close()


@pytest.mark.parametrize("backend", BACKENDS)
async def test_sends_whose_records_cannot_be_committed_are_resent_with_their_ids_later(
    backend: str,
    request: pytest.FixtureRequest,
    sqlite_url: str,
    clock: FakeClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url = backend_url(backend, request, sqlite_url)
    store = open_store(url)
    record(store, 20)
    failing_flush(monkeypatch, times=None, backend=backend)  # the database takes no record at all
    receiver = Receiver()
    first = FakeNotifier(receiver, script=[http_error(500)] * 5)  # 5 refused, 15 acked
    assert await make_worker(store, first, clock, concurrency=8, per_host=8).run_once(20) == 20
    assert len(receiver.receipts) == 15
    # nothing is marked delivered, nor moved on: all 20 are still claimed, under the lease
    assert delivered_count(store) == 0 and store.pending_count() == 20
    monkeypatch.undo()

    clock.advance(LEASE + timedelta(seconds=1))  # the leases run out: claimed again
    await drain(store, make_worker(store, FakeNotifier(receiver), clock), clock)
    assert delivered_count(store) == 20 and store.pending_count() == 0
    ids = receiver.ids()
    assert len(set(ids)) == 20  # 0 lost; the 15 acked before are resent with the same id
    assert len(ids) == 35 and all(ids.count(i) <= 2 for i in ids)
    refused = set(first.calls[:5])
    assert all(ids.count(i) == 1 for i in refused)  # delivered only after their 2xx
    for entry in store.history(limit=50):
        [delivery] = entry.deliveries
        assert [(a.number, a.outcome) for a in store.attempts(delivery.id)] == [(2, "ok")]
    store.close()
