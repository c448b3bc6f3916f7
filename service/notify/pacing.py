"""Pacing of sends per key (a Slack URL, a Telegram chat): one turn per `interval`, in
arrival order; callers queue, nothing is dropped. A 429 holds a key back (`hold`). A turn
further off than `max_wait` is not slept through: `turn()` raises a retryable
DeliveryError with `retry_after` set to the wait, so the worker retries then instead of
cutting the send at its deadline."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from service.errors import DeliveryError

if TYPE_CHECKING:  # asyncio loads with the first turn: the channel registry needs no loop
    import asyncio


def _lock() -> asyncio.Lock:
    import asyncio

    return asyncio.Lock()


async def _sleep(seconds: float) -> None:
    import asyncio

    await asyncio.sleep(seconds)


@dataclass(slots=True)
class _Slot:
    lock: asyncio.Lock = field(default_factory=_lock)
    next_at: float = float("-inf")


class Pacer:
    """Per-key spacing of sends: one turn per `interval`, in arrival order. `what` names
    a key in the error of a turn too far off."""

    what = "destination"

    def __init__(
        self,
        interval: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[Any]] = _sleep,
        max_wait: float = 60.0,
    ) -> None:
        self._interval = interval
        self._clock = clock
        self._sleep = sleep
        self._max_wait = max_wait
        self._slots: dict[str, _Slot] = {}

    async def turn(self, key: str) -> None:
        """Wait for this key's next turn and take it; raise a retryable DeliveryError
        (retry_after = the wait) instead of waiting longer than `max_wait`."""
        slot = self._slots.setdefault(key, _Slot())
        async with slot.lock:
            wait = slot.next_at - self._clock()
            if wait > self._max_wait:
                raise DeliveryError(
                    f"{self.what} paced for {wait:.1f} s more", permanent=False, retry_after=wait
                )
            if wait > 0:
                await self._sleep(wait)
            slot.next_at = self._clock() + self._interval

    def hold(self, key: str, seconds: float) -> None:
        """No turn for `key` sooner than `seconds` from now (after a 429)."""
        slot = self._slots.setdefault(key, _Slot())
        slot.next_at = max(slot.next_at, self._clock() + seconds)
