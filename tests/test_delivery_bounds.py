"""The delivery worker's bounds (issue #10.3, #9.9): a total deadline per send, leases
renewed while this process still holds them, a cap of sends per destination host, and
errors scrubbed of the channel's secrets before they are stored.

Time that matters for leases comes from a FakeClock; the deadlines are real but short.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Mapping
from datetime import timedelta
from typing import Any, ClassVar

import pytest
from pydantic import SecretStr

from service.clock import FakeClock
from service.delivery import DeliveryWorker
from service.errors import DeliveryError
from service.notify.base import ChannelConfig, Message
from service.store import Store, open_store
from tests.store.helpers import T0, make_alert, render

pytestmark = pytest.mark.anyio


class UrlConfig(ChannelConfig):
    url: SecretStr


class HostNotifier:
    """Sends to `config.url`'s host: those in `stuck` never answer (until the deadline),
    the others succeed; `raises` maps a host to the DeliveryError it answers with."""

    kind: ClassVar[str] = "webhook"
    Config: ClassVar[type[ChannelConfig]] = UrlConfig

    def __init__(self, deadline: float = 30.0, *, stuck: frozenset[str] = frozenset()) -> None:
        self.deadline = deadline
        self.stuck = set(stuck)
        self.raises: dict[str, DeliveryError] = {}
        self.open: Counter[str] = Counter()
        self.max_open: Counter[str] = Counter()
        self.calls: list[tuple[str, str]] = []
        self.delivered: list[str] = []

    def destination(self, config: ChannelConfig) -> str:
        assert isinstance(config, UrlConfig)
        return config.url.get_secret_value().split("/")[2]

    async def send(self, message: Message, config: ChannelConfig, *, delivery_id: str) -> None:
        host = self.destination(config)
        self.calls.append((host, delivery_id))
        self.open[host] += 1
        self.max_open[host] = max(self.max_open[host], self.open[host])
        try:
            await asyncio.sleep(0.01)
            if host in self.stuck:
                await asyncio.Event().wait()
            if host in self.raises:
                raise self.raises[host]
            self.delivered.append(delivery_id)
        finally:
            self.open[host] -= 1

    async def aclose(self) -> None:
        return None


CHANNELS: Mapping[str, ChannelConfig] = {
    "slow": UrlConfig(url=SecretStr("https://slow.example/hook")),
    "fast": UrlConfig(url=SecretStr("https://fast.example/hook")),
    "slack": UrlConfig(url=SecretStr("https://hooks.example/services/T000/B000/XOXBSECRETTOKEN")),
}


def worker(store: Store, notifier: HostNotifier, clock: FakeClock, **kw: Any) -> DeliveryWorker:
    kw.setdefault("idle_wait", 0.02)
    return DeliveryWorker(
        store, {"webhook": notifier}, lambda: CHANNELS, clock=clock, rng=random.Random(1), **kw
    )


def record(store: Store, channel: str, count: int, start: int = 0) -> None:
    alerts = [(make_alert(start + i), render, [(channel, "webhook")]) for i in range(count)]
    store.record(alerts, {}, T0)


def statuses(store: Store) -> Counter[tuple[str, str]]:
    return Counter((d.channel, d.status) for e in store.history(limit=1000) for d in e.deliveries)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


async def until(condition: Any, what: str, timeout: float = 20.0) -> None:
    async with asyncio.timeout(timeout):  # a safety net, not a speed assertion
        while not condition():
            await asyncio.sleep(0.01)


async def test_a_send_past_its_deadline_is_cut_and_recorded_as_a_retryable_attempt(
    store: Store, clock: FakeClock
) -> None:
    record(store, "slow", 1)
    notifier = HostNotifier(deadline=0.2, stuck=frozenset({"slow.example"}))
    assert await worker(store, notifier, clock).run_once() == 1  # returns: the send was cut
    [entry] = store.history()
    [delivery] = entry.deliveries
    assert (delivery.status, delivery.attempts) == ("pending", 1)
    [attempt] = store.attempts(delivery.id)
    assert attempt.outcome == "retry"
    assert attempt.error == "channel 'slow': no complete reply within 0.2 s (the send deadline)"


async def test_the_lease_is_longer_than_the_longest_deadline(
    store: Store, clock: FakeClock
) -> None:
    notifier = HostNotifier(deadline=30.0)
    assert worker(store, notifier, clock, lease=timedelta(seconds=3)).lease > timedelta(seconds=30)
    assert worker(store, notifier, clock, lease=timedelta(minutes=2)).lease == timedelta(minutes=2)


async def test_leases_of_sends_still_running_or_waiting_are_renewed_not_claimed_again(
    sqlite_url: str, clock: FakeClock
) -> None:
    ours, theirs = open_store(sqlite_url), open_store(sqlite_url)
    record(ours, "slow", 2)
    notifier = HostNotifier(deadline=30.0, stuck=frozenset({"slow.example"}))
    mine = worker(ours, notifier, clock, per_host=1, renew_every=0.05)
    stop = asyncio.Event()
    task = asyncio.create_task(mine.run(stop))
    try:
        await until(lambda: notifier.open["slow.example"] == 1, "the first send")
        for _ in range(3):  # three leases pass while one sends and the other waits
            clock.advance(mine.lease)
            await asyncio.sleep(0.3)  # several renewals
        other = worker(theirs, HostNotifier(), clock)
        assert await other.run_once() == 0  # before: both claimed again, sent twice
        assert statuses(ours) == Counter({("slow", "sending"): 2})
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        ours.close()
        theirs.close()
    assert notifier.calls and len(notifier.calls) == 1  # one at a time to that host


async def test_a_slow_host_at_its_cap_leaves_its_surplus_unclaimed_and_others_go_by(
    store: Store, clock: FakeClock
) -> None:
    record(store, "slow", 6)
    notifier = HostNotifier(deadline=30.0, stuck=frozenset({"slow.example"}))
    mine = worker(store, notifier, clock, concurrency=4, per_host=2)
    stop = asyncio.Event()
    task = asyncio.create_task(mine.run(stop))
    try:
        await until(lambda: notifier.open["slow.example"] == 2, "the slow host at its cap")
        record(store, "fast", 3, start=100)
        mine.wake()
        await until(
            lambda: statuses(store)[("fast", "delivered")] == 3, "the other host's deliveries"
        )
        counts = statuses(store)
        # claimed: the two sending and at most one batch waiting; the rest stay pending,
        # claimable by another replica, and are not claimed in a loop
        assert counts[("slow", "pending")] >= 2
        claims_before = len(notifier.calls)
        await asyncio.sleep(0.3)
        assert len(notifier.calls) == claims_before
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert notifier.max_open["slow.example"] == 2


async def test_a_reply_quoting_the_channels_url_is_stored_without_it_and_masked(
    store: Store, clock: FakeClock
) -> None:
    record(store, "slack", 1)
    notifier = HostNotifier()
    notifier.raises["hooks.example"] = DeliveryError(
        "HTTP 404: Cannot POST /services/T000/B000/XOXBSECRETTOKEN (key FINNHUB-KEY-123)",
        permanent=True,
        status=404,
    )
    mine = worker(store, notifier, clock, mask=lambda text: text.replace("FINNHUB-KEY-123", "***"))
    await mine.run_once()
    [entry] = store.history()
    [delivery] = entry.deliveries
    assert delivery.status == "dead"
    assert delivery.last_error == "HTTP 404: Cannot POST *** (key ***)"
    [attempt] = store.attempts(delivery.id)
    assert attempt.error == delivery.last_error


async def test_a_process_never_claims_again_what_it_still_sends_even_past_its_lease(
    store: Store, clock: FakeClock
) -> None:
    # a fast clock (the demo's) or a stalled renewal: the lease runs out mid-send; before,
    # the same worker claimed the delivery again and sent it a second time
    record(store, "slow", 1)
    notifier = HostNotifier(deadline=30.0, stuck=frozenset({"slow.example"}))
    mine = worker(store, notifier, clock, renew_every=3600.0)
    stop = asyncio.Event()
    task = asyncio.create_task(mine.run(stop))
    try:
        await until(lambda: notifier.open["slow.example"] == 1, "the send")
        for _ in range(5):
            clock.advance(mine.lease * 2)
            mine.wake()
            await asyncio.sleep(0.05)
        assert len(notifier.calls) == 1
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_no_claim_is_made_while_every_channels_host_is_at_its_cap(
    store: Store, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    record(store, "slow", 8)
    notifier = HostNotifier(deadline=0.5, stuck=frozenset({"slow.example"}))
    only = {"slow": CHANNELS["slow"]}
    mine = DeliveryWorker(
        store,
        {"webhook": notifier},
        lambda: only,
        clock=clock,
        rng=random.Random(1),
        concurrency=4,
        per_host=2,
        idle_wait=0.02,
    )
    claims: list[int] = []
    real = store.claim_next
    monkeypatch.setattr(
        store,
        "claim_next",
        lambda *a: claims.append(a[1]) or real(*a),  # type: ignore[func-returns-value]
    )
    stop = asyncio.Event()
    task = asyncio.create_task(mine.run(stop))
    try:
        await until(lambda: notifier.open["slow.example"] == 2, "the host at its cap")
        made = len(claims)
        for _ in range(5):  # wakes (new alerts recorded) and idle ticks: nothing to claim
            mine.wake()
            await asyncio.sleep(0.05)
        assert len(claims) == made  # not even an empty claim
        # the deadline cuts the two sends: the host has slots again, and claims resume
        await until(lambda: len(claims) > made, "a claim once a slot is free")
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert notifier.max_open["slow.example"] == 2


def test_the_settings_defaults_are_the_worker_s() -> None:
    """EARNWATCH_DELIVERY_CONCURRENCY and _PER_HOST default to the worker's own defaults
    (the figures behind them are in service/delivery.py): one number, not two to keep in
    step."""
    from service import delivery
    from service.config import load_settings

    settings = load_settings(env_file=None)
    assert settings.delivery_concurrency == delivery.DEFAULT_CONCURRENCY
    assert settings.delivery_per_host == delivery.DEFAULT_PER_HOST
    assert delivery.DEFAULT_PER_HOST < delivery.DEFAULT_CONCURRENCY  # room for other hosts
