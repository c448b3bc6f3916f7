"""The delivery worker's book of claims: where each claimed delivery goes, the cap of
sends in flight per destination host, and which channels the next claim must skip.

Promises:
- A claimed delivery is *bound* to its destination (`host:port`, from its notifier) until
  its send ends. At most `per_host` bound deliveries of one destination send at a time;
  the others wait for that host's slot, still claimed (their lease is renewed with the
  rest), and hold no worker slot, so `waiting()` is not counted against `concurrency`.
- A delivery stops counting against its host when its send ends (`sent()`), before its
  attempt is recorded: the host's next send need not wait for our commit.
- `excluded()` names the channels the next claim skips: those whose destination already
  has more than `per_host` deliveries bound (each slot sending, and at least one claimed
  ahead, waiting for a slot: claims come in batches, not one per finished send), so a
  host at its cap stays unclaimed in the database, never claimed in a loop; and the
  channels recently found missing from the rule file (their deliveries wait for the
  channel; each is looked at again after `recheck` seconds, so one that outlives its max
  age is still given up).
- `renewing()` renews the lease of every delivery held, every third of a lease, for as
  long as its block runs.
- Not thread-safe: used from the worker's event loop only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta

from service.clock import Clock
from service.errors import StoreError
from service.notify.base import ChannelConfig, Notifier
from service.store import ClaimedDelivery, Store

logger = logging.getLogger("service.delivery")

#: The lease exceeds the longest send deadline by at least this much (time to record).
LEASE_MARGIN = timedelta(seconds=5)


@dataclass(slots=True)
class _Host:
    slots: asyncio.Semaphore
    load: int = 0  # deliveries bound here: sending, or waiting for one of `slots`


@dataclass(slots=True)
class _Bound:
    delivery: ClaimedDelivery
    destination: str | None


@dataclass
class Claims:
    """What this process holds claimed, by destination."""

    per_host: int
    recheck: float = 60.0
    monotonic: Callable[[], float] = time.monotonic
    _hosts: dict[str, _Host] = field(default_factory=dict)
    _bound: dict[str, _Bound] = field(default_factory=dict)
    _missing: dict[str, float] = field(default_factory=dict)  # channel -> when last seen so

    def __post_init__(self) -> None:
        if self.per_host < 1:
            raise ValueError("per_host must be at least 1")

    def bind(self, delivery: ClaimedDelivery, destination: str | None) -> None:
        """Hold `delivery` (just claimed) against `destination` (None: it sends nowhere,
        e.g. it is refused before any send)."""
        self._bound[delivery.id] = _Bound(delivery, destination)
        if destination is not None:
            host = self._hosts.get(destination)
            if host is None:
                host = self._hosts[destination] = _Host(asyncio.Semaphore(self.per_host))
            host.load += 1

    def sent(self, delivery: ClaimedDelivery) -> bool:
        """The delivery's send ended (its record may still be on its way): it no longer
        counts against its host, still held (its lease renewed, never claimed again).
        True when this ends its host's cap (a claim skipped it, and may take more now)."""
        bound = self._bound.get(delivery.id)
        if bound is None or bound.destination is None:
            return False
        destination, bound.destination = bound.destination, None
        self._leave(destination)
        host = self._hosts.get(destination)
        return host is not None and host.load == self.per_host

    def unbind(self, delivery: ClaimedDelivery) -> None:
        """The delivery's task ended (sent, failed, refused or cancelled)."""
        bound = self._bound.pop(delivery.id, None)
        if bound is not None and bound.destination is not None:
            self._leave(bound.destination)

    def _leave(self, destination: str) -> None:
        host = self._hosts[destination]
        host.load -= 1
        if host.load <= 0:
            del self._hosts[destination]

    def gate(self, delivery: ClaimedDelivery) -> asyncio.Semaphore | None:
        """The host slot this delivery must hold while it sends, if it sends anywhere."""
        bound = self._bound.get(delivery.id)
        if bound is None or bound.destination is None:
            return None
        return self._hosts[bound.destination].slots

    def ids(self) -> list[str]:
        """Every delivery held, sending or waiting: the leases to renew."""
        return list(self._bound)

    def waiting(self) -> int:
        """Bound deliveries waiting for a host slot (they hold no worker slot)."""
        return sum(max(0, host.load - self.per_host) for host in self._hosts.values())

    def full(self) -> set[str]:
        """Destinations with more than `per_host` deliveries bound: all their slots
        sending and some claimed ahead (a slot that frees starts the next one without a
        claim; the next claim, for the whole batch, comes when none is left waiting)."""
        return {name for name, host in self._hosts.items() if host.load > self.per_host}

    def channel_missing(self, channel: str) -> bool:
        """Note that `channel` is not in the rule file; True the first time (to log it)."""
        first = channel not in self._missing
        self._missing[channel] = self.monotonic()
        return first

    def excluded(self, destinations: Mapping[str, str | None]) -> tuple[set[str], list[str]]:
        """(channels the next claim skips, channels that came back). `destinations` maps
        each channel in the rule file to where it sends."""
        now = self.monotonic()
        back = [name for name in self._missing if name in destinations]
        for name in back:
            del self._missing[name]
        skip = {name for name, seen in self._missing.items() if now - seen < self.recheck}
        full = self.full()
        if full:
            skip |= {name for name, where in destinations.items() if where in full}
        return skip, back


def destination_of(notifier: Notifier, config: ChannelConfig, channel: str) -> str:
    """Where `notifier` sends for this channel; a config it cannot read is its own host
    (it is refused at send time)."""
    try:
        return notifier.destination(config)
    except Exception:
        return f"channel:{channel}"


def destinations(
    notifiers: Mapping[str, Notifier], channels: Mapping[str, ChannelConfig]
) -> dict[str, str | None]:
    """Each channel of the rule file, and where its sends go (None: no notifier takes it)."""
    by_config = {n.Config: n for n in notifiers.values()}
    out: dict[str, str | None] = {}
    for name, config in channels.items():
        notifier = by_config.get(type(config))
        out[name] = None if notifier is None else destination_of(notifier, config, name)
    return out


class Destinations:
    """`destinations()` and `destination_of()`, remembered per channel while its config
    (and notifier) stay the same objects: a rule-file reload makes new configs, so a
    changed URL is read again. Used from the worker's event loop only."""

    def __init__(self, notifiers: Mapping[str, Notifier]) -> None:
        self._by_config = {n.Config: n for n in notifiers.values()}
        self._known: dict[str, tuple[Notifier, ChannelConfig, str]] = {}

    def of(self, notifier: Notifier, config: ChannelConfig, channel: str) -> str:
        """`destination_of(notifier, config, channel)`."""
        known = self._known.get(channel)
        if known is not None and known[0] is notifier and known[1] is config:
            return known[2]
        where = destination_of(notifier, config, channel)
        self._known[channel] = (notifier, config, where)
        return where

    def of_all(self, channels: Mapping[str, ChannelConfig]) -> dict[str, str | None]:
        """`destinations(notifiers, channels)`; forgets the channels no longer there."""
        out: dict[str, str | None] = {}
        for name, config in channels.items():
            notifier = self._by_config.get(type(config))
            out[name] = None if notifier is None else self.of(notifier, config, name)
        if len(self._known) > len(out):
            self._known = {name: v for name, v in self._known.items() if name in out}
        return out


@contextlib.asynccontextmanager
async def renewing(
    store: Store, claims: Claims, lease: timedelta, clock: Clock, every: float
) -> AsyncIterator[None]:
    """Renew the leases of every delivery `claims` holds to `lease` from now, every
    `every` seconds (a third of the lease), while the block runs."""
    task = asyncio.create_task(_keep_leases(store, claims, lease, clock, every))
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _keep_leases(
    store: Store, claims: Claims, lease: timedelta, clock: Clock, every: float
) -> None:
    while True:
        await asyncio.sleep(every)
        ids = claims.ids()
        if not ids:
            continue
        try:
            await asyncio.to_thread(store.renew, ids, clock.now() + lease)
        except StoreError as exc:  # the sends end within their deadline, inside the lease
            logger.error("delivery: cannot renew %d leases: %s", len(ids), exc)


def lease_over_deadlines(lease: timedelta, notifiers: Mapping[str, Notifier]) -> timedelta:
    """`lease`, raised (with a warning) to the longest send deadline plus `LEASE_MARGIN`:
    a send that cannot renew its lease still ends before the lease does."""
    longest = max((n.deadline for n in notifiers.values()), default=0.0)
    floor = timedelta(seconds=longest) + LEASE_MARGIN
    if lease >= floor:
        return lease
    logger.warning(
        "delivery: EARNWATCH_DELIVERY_LEASE %.0f s is not above the longest send "
        "deadline (%.0f s) plus %.0f s; using %.0f s",
        lease.total_seconds(),
        longest,
        LEASE_MARGIN.total_seconds(),
        floor.total_seconds(),
    )
    return floor
