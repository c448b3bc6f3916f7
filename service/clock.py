"""Where time comes from: one clock object, handed in.

Only this module and `daemon.py` read the wall clock. Everything else takes `now`.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    """A source of the current time (timezone-aware, UTC) and of sleeping."""

    def now(self) -> datetime: ...

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    """The real clock."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    async def sleep(self, seconds: float) -> None:
        import asyncio  # loaded by whoever runs a loop; `check` imports this module without one

        await asyncio.sleep(seconds)


class FakeClock:
    """A clock that moves only when told to (tests), or `speed` times faster than real time
    from a chosen start (replay and the demo)."""

    def __init__(self, start: datetime, *, speed: float = 0.0) -> None:
        if start.tzinfo is None:
            raise ValueError("FakeClock needs a timezone-aware start")
        self._start = start.astimezone(UTC)
        self._offset = timedelta(0)
        self._speed = speed
        self._loop_start: float | None = None

    def _elapsed(self) -> timedelta:
        if self._speed <= 0:
            return timedelta(0)
        import time

        if self._loop_start is None:
            self._loop_start = time.monotonic()
        return timedelta(seconds=(time.monotonic() - self._loop_start) * self._speed)

    def now(self) -> datetime:
        return self._start + self._offset + self._elapsed()

    def advance(self, delta: timedelta | float) -> datetime:
        """Move the clock forward by `delta` (a timedelta or seconds) and return the new now."""
        self._offset += delta if isinstance(delta, timedelta) else timedelta(seconds=delta)
        return self.now()

    def set(self, moment: datetime) -> None:
        """Jump to `moment` (never backwards)."""
        now = self.now()
        if moment > now:
            self._offset += moment - now

    async def sleep(self, seconds: float) -> None:
        import asyncio

        if self._speed > 0:
            await asyncio.sleep(seconds / self._speed)
        else:
            self.advance(seconds)
            await asyncio.sleep(0)
